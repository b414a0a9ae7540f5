import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An emulation step that failed, with the command and what it printed.
public struct EmulationError: Error, CustomStringConvertible, Sendable {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// Runs system commands (ip, tc, nft, ethtool) and keeps the exact command lines, so results can say what
/// was configured.
public final class Shell: @unchecked Sendable {
  private var log: [String] = []
  private let lock = NSLock()

  /// The commands run so far.
  var commands: [String] { lock.withLock { log } }

  /// Runs a command; throws with its output when it fails (unless `check` is false). Returns stdout.
  @discardableResult
  func run(_ args: [String], check: Bool = true, record: Bool = true) throws -> String {
    if record {
      lock.lock()
      log.append(args.map { $0.contains(" ") || $0.contains("{") ? "'\($0)'" : $0 }.joined(separator: " "))
      lock.unlock()
    }
    let (status, out, err) = Self.capture(args)
    if check && status != 0 {
      throw EmulationError(
        "`\(args.joined(separator: " "))` failed (status \(status)): \((err + out).trimmingCharacters(in: .whitespacesAndNewlines))"
      )
    }
    return out
  }

  /// Runs a command and returns (status, stdout, stderr): status 127 if it cannot start, 124 if it was still
  /// running after `timeout` seconds (then it is killed). Both outputs are read at once, so neither can fill its
  /// pipe and stall the command.
  public static func capture(_ args: [String], timeout: Double? = nil) -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    do { try p.run() } catch { return (127, "", "\(error)") }
    let collected = Collected()
    let readers = DispatchGroup()
    DispatchQueue.global().async(group: readers) { collected.out = out.fileHandleForReading.readDataToEndOfFile() }
    DispatchQueue.global().async(group: readers) { collected.err = err.fileHandleForReading.readDataToEndOfFile() }
    var timedOut = false
    if let timeout {
      let done = DispatchSemaphore(value: 0)
      DispatchQueue.global().async {
        p.waitUntilExit()
        done.signal()
      }
      if done.wait(timeout: .now() + timeout) == .timedOut {
        timedOut = true
        kill(p.processIdentifier, SIGKILL)
        done.wait()
      }
    } else {
      p.waitUntilExit()
    }
    readers.wait()
    return (
      timedOut ? 124 : p.terminationStatus, String(decoding: collected.out, as: UTF8.self),
      String(decoding: collected.err, as: UTF8.self)
    )
  }

  /// Records an action that is not a command (e.g. a cgroup file write).
  func note(_ line: String) {
    lock.lock()
    log.append(line)
    lock.unlock()
  }

  static func exists(_ tool: String) -> Bool { capture(["which", tool]).0 == 0 }

  /// Names of the network namespaces (`ip netns list`).
  static func namespaces() -> [String] {
    capture(["ip", "netns", "list"]).1.split(separator: "\n").compactMap {
      $0.split(separator: " ").first.map(String.init)
    }
  }

  /// Names of the links in this namespace (`ip -o link show`), without the `@peer` suffix.
  static func linkNames() -> [String] {
    capture(["ip", "-o", "link", "show"]).1.split(separator: "\n").compactMap {
      $0.split(separator: ":").dropFirst().first?.trimmingCharacters(in: .whitespaces).split(separator: "@").first.map(
        String.init)
    }
  }

  /// Kills what runs in a namespace, then deletes it (with its links, qdiscs and nft tables).
  static func deleteNamespace(_ netns: String) {
    for p in capture(["ip", "netns", "pids", netns]).1.split(separator: "\n").compactMap({ Int32($0) }) {
      kill(p, SIGKILL)
    }
    _ = capture(["ip", "netns", "del", netns])
  }
}

/// What this machine's kernel and tools offer for emulation.
public struct KernelFeatures: Sendable, Codable {
  public var kernel: String
  public var root: Bool
  public var netem: Bool
  public var htb: Bool
  public var nftables: Bool
  public var ethtool: Bool
  /// The cgroups workers are limited with (v1 or v2), nil when there is no cpu controller to use.
  public var cgroups: CgroupLayout?
  public var cgroupV1CPU: Bool { cgroups?.version == .v1 }
  public var cgroupCPU: Bool { cgroups?.cpu == true }
  public var cgroupMemory: Bool { cgroups?.memory == true }

  /// What this machine offers, probed once per process (concurrent runs share the answer).
  public static var current: KernelFeatures { cached }
  private static let cached = probe()

  /// Probes in a throwaway namespace (root only; nothing is left behind).
  public static func probe() -> KernelFeatures {
    var u = utsname()
    uname(&u)
    let kernel = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    let root = geteuid() == 0
    var f = KernelFeatures(
      kernel: kernel, root: root, netem: false, htb: false, nftables: Shell.exists("nft"),
      ethtool: Shell.exists("ethtool"),
      cgroups: CgroupLayout.detect())
    guard root else { return f }
    let ns = "edgelab-probe-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    guard Shell.capture(["ip", "netns", "add", ns]).0 == 0 else { return f }
    defer { _ = Shell.capture(["ip", "netns", "del", ns]) }
    // A veth pair: the dummy driver is a module that minimal kernels lack.
    _ = Shell.capture(["ip", "-n", ns, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1"])
    f.netem = Shell.capture(["tc", "-n", ns, "qdisc", "add", "dev", "probe0", "root", "netem", "delay", "1ms"]).0 == 0
    _ = Shell.capture(["tc", "-n", ns, "qdisc", "del", "dev", "probe0", "root"])
    f.htb = Shell.capture(["tc", "-n", ns, "qdisc", "add", "dev", "probe0", "root", "handle", "1:", "htb"]).0 == 0
    return f
  }
}

/// Output of a command, filled by its two reader tasks (each writes its own field; read after both finished).
private final class Collected: @unchecked Sendable {
  var out = Data()
  var err = Data()
}
