/// Who this build of EdgeLab is, from its sources (written before every build by the BuildIdentity plugin; see
/// scripts/build-identity.sh): `current` is `DESCRIBE+HASH[.dirty]`, e.g. `1961e90+7fb8ec1e6c9c` — git describe of
/// the checkout, the first 12 hex digits of a SHA-256 over every source file and Package.resolved, and `.dirty`
/// when the work tree differed from its commit.
///
/// Every results file records it, `edgelab --version` prints it, workers answer with it in the handshake, and
/// a coordinator refuses a worker, board or shard whose identity differs from its own: two processes of one run,
/// or two files of one merge, must come from the same code.
public enum BuildIdentity {
  /// One line for logs and `--version`: the identity, and whether the tree had uncommitted changes.
  public static var summary: String {
    "edgelab \(current)" + (dirty ? " (built from a work tree with uncommitted changes)" : "")
  }

  /// Whether `other` is this build.
  public static func isCurrent(_ other: String) -> Bool { other == current }
}
