import BuildInfo
import Foundation

/// A second build of `edgelab` without compiling twice: a copy of the built binary whose build identity (the
/// string `BuildIdentity.current`, stored once in the binary's read-only data) is replaced by another of the
/// same length. The copy is a real program that answers `--version` and every handshake as that other build.
public enum OtherBuild {
  /// The identity the copy carries: this build's with its source hash replaced by f's.
  public static var identity: String {
    let ours = BuildIdentity.current
    guard let plus = ours.firstIndex(of: "+") else { return String(repeating: "f", count: ours.count) }
    let head = ours[...plus]
    let tail = ours[ours.index(after: plus)...]
    let hash = tail.prefix { $0 != "." }
    return head + String(repeating: "f", count: hash.count) + tail.dropFirst(hash.count)
  }

  /// Writes the copy into `directory` and returns its path.
  public static func make(in directory: String, from binary: String = Binary.path) throws -> String {
    let ours = Array(BuildIdentity.current.utf8)
    let theirs = Array(identity.utf8)
    precondition(ours.count == theirs.count && ours != theirs)
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: binary)))
    var replaced = 0
    var i = 0
    while i + ours.count <= bytes.count {
      if bytes[i] == ours[0] && Array(bytes[i..<(i + ours.count)]) == ours {
        bytes.replaceSubrange(i..<(i + ours.count), with: theirs)
        replaced += 1
        i += ours.count
      } else {
        i += 1
      }
    }
    guard replaced > 0 else { throw CocoaError(.fileReadCorruptFile) }
    let path = directory + "/edgelab-other-build"
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    guard chmod(path, 0o755) == 0 else { throw CocoaError(.fileWriteNoPermission) }
    return path
  }
}
