import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The built `edgelab` binary (next to the test bundle, or $EDGELAB_BIN).
public enum Binary {
  public static var path: String {
    if let env = ProcessInfo.processInfo.environment["EDGELAB_BIN"] { return env }
    return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("edgelab").path
  }
}

/// Processes of a run, for checking that none outlive it.
public final class Pids: @unchecked Sendable {
  private var value: [String: Int32] = [:]
  private let lock = NSLock()
  public init() {}
  public func set(_ v: [String: Int32]) { lock.withLock { value = v } }
  public var all: [String: Int32] { lock.withLock { value } }
  /// True when none of the processes exists any more (zombies are reaped by the runtime).
  public var allGone: Bool { all.values.allSatisfy { kill($0, 0) != 0 } }
}
