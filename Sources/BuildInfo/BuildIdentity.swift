/// Who this build of EdgeLab is, from its sources (written before every build by the BuildIdentity plugin; see
/// scripts/build-identity.sh): `current` is `DESCRIBE+HASH[.dirty]`, e.g. `1961e90a1b2c+7fb8ec1e6c9c` — git
/// describe of the checkout, the first 12 hex digits of a SHA-256 over every source file and Package.resolved,
/// and `.dirty` when those sources differed from their commit.
///
/// Every results file records it, `edgelab --version` prints it, workers answer with it in the handshake, and
/// a coordinator refuses a worker, board or shard of another build: two processes of one run, or two files of
/// one merge, must come from the same code.
public enum BuildIdentity {
  /// The part of an identity that says which code it is: `HASH[.dirty]` (what follows the last `+`). Two
  /// clones of one commit may describe it differently (with or without tags) and still be one build.
  public static func code(of identity: String) -> Substring {
    guard let plus = identity.lastIndex(of: "+") else { return Substring(identity) }
    return identity[identity.index(after: plus)...]
  }

  /// Whether two identities are the same build (the same sources and resolved dependencies).
  public static func sameBuild(_ a: String, _ b: String) -> Bool { code(of: a) == code(of: b) }
}
