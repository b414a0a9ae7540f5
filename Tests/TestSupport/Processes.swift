import CLinux
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The built `edgelab` binary (next to the test bundle, or $EDGELAB_BIN).
public enum Binary {
  public static var path: String {
    if let env = ProcessInfo.processInfo.environment["EDGELAB_BIN"] { return env }
    return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("edgelab")
      .path
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

/// Waits until process `pid` has exited (it need not be our child), without polling: a pidfd becomes readable
/// when the process terminates. Returns false if it is still running after `limit` seconds — a bound against
/// hanging forever, not a timing assertion.
@discardableResult
public func waitForExit(pid: Int32, limit: Double = 300) -> Bool {
  let fd = el_pidfd_open(pid)
  if fd < 0 { return kill(pid, 0) != 0 }  // already gone (ESRCH)
  defer { close(fd) }
  var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
  var remaining = Int32(limit * 1000)
  while remaining > 0 {
    let step = min(remaining, 10_000)
    let r = poll(&p, 1, step)
    if r > 0 { return true }
    if r < 0 && errno != EINTR { return kill(pid, 0) != 0 }
    if r == 0 { remaining -= step }
  }
  return false
}

/// A command whose standard error (and, with `mergeOutput`, standard output) is read line by line, so a test can
/// wait for something it prints instead of sleeping. Every line read is kept in `lines`. The command starts in
/// its own process group with default signal handling, as from a shell, so SIGINT and SIGTERM reach it.
public final class LineProcess: @unchecked Sendable {
  public let pid: Int32
  private let readEnd: Int32
  private var buffer: [UInt8] = []
  private var status: Int32?
  public private(set) var lines: [String] = []

  public init(_ arguments: [String], mergeOutput: Bool = false) throws {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw POSIXError(.EMFILE) }
    var fa = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fa)
    defer { posix_spawn_file_actions_destroy(&fa) }
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
    if mergeOutput {
      posix_spawn_file_actions_adddup2(&fa, fds[1], 1)
    } else {
      posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0)
    }
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2)
    posix_spawn_file_actions_addclose(&fa, fds[0])
    posix_spawn_file_actions_addclose(&fa, fds[1])
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    posix_spawnattr_setpgroup(&attr, 0)
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attr, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for sig in [SIGINT, SIGTERM, SIGPIPE, SIGHUP] { sigaddset(&defaults, sig) }
    posix_spawnattr_setsigdefault(&attr, &defaults)
    let argv = arguments.map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    var child: pid_t = 0
    let r = posix_spawn(&child, arguments[0], &fa, &attr, argv, environ)
    close(fds[1])
    if r != 0 {
      close(fds[0])
      throw POSIXError(POSIXErrorCode(rawValue: r) ?? .ENOENT)
    }
    pid = child
    readEnd = fds[0]
  }

  deinit { close(readEnd) }

  public func signal(_ s: Int32) { kill(pid, s) }

  /// Reads until a line containing `text` arrives (true) or the output ends (false).
  @discardableResult
  public func waitForLine(containing text: String) -> Bool {
    if lines.contains(where: { $0.contains(text) }) { return true }
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
      while let nl = buffer.firstIndex(of: 10) {
        let line = String(decoding: buffer[..<nl], as: UTF8.self)
        buffer.removeSubrange(...nl)
        lines.append(line)
        if line.contains(text) { return true }
      }
      let n = chunk.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
      if n < 0 && errno == EINTR { continue }
      if n <= 0 {
        if !buffer.isEmpty {
          lines.append(String(decoding: buffer, as: UTF8.self))
          buffer = []
        }
        return lines.last?.contains(text) ?? false
      }
      buffer += chunk[0..<n]
    }
  }

  /// Reads the rest of the output and waits for the process to exit. Returns its exit status, or 128 + the
  /// signal that killed it.
  @discardableResult
  public func wait() -> Int32 {
    if let status { return status }
    _ = waitForLine(containing: "\u{0}")
    var s: Int32 = 0
    while waitpid(pid, &s, 0) < 0 && errno == EINTR {}
    let result = s & 0x7f == 0 ? (s >> 8) & 0xff : 128 + (s & 0x7f)
    status = result
    return result
  }

  public var output: String { lines.joined(separator: "\n") }
}

/// Items that arrive from other threads; `wait` blocks until enough have arrived.
public final class Arrivals<T: Sendable>: @unchecked Sendable {
  private var items: [T] = []
  private let condition = NSCondition()
  public init() {}
  public func add(_ x: T) {
    condition.lock()
    items.append(x)
    condition.broadcast()
    condition.unlock()
  }
  /// The items once there are at least `n` (or after `limit` seconds, a bound against hanging).
  public func wait(_ n: Int, limit: Double = 120) -> [T] {
    condition.lock()
    defer { condition.unlock() }
    let deadline = Date().addingTimeInterval(limit)
    while items.count < n && condition.wait(until: deadline) {}
    return items
  }
  public var all: [T] { condition.withLock { items } }
}

/// `args` run through a shell that first closes every inherited file descriptor above 2. Long-lived helpers a test
/// starts (sshd, slurmctld, munged) would otherwise keep the write end of another concurrently running test's
/// output pipe open, and that test would wait for an end of file that never comes.
public func closingInheritedFiles(_ args: [String]) -> [String] {
  let script =
    #"for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done; exec "$@""#
  return ["/bin/bash", "-c", script, "bash"] + args
}

/// Runs a short command to its end; (exit status, standard output and error together).
@discardableResult
public func runCommand(_ args: [String], environment: [String: String] = [:]) -> (status: Int32, out: String) {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
  p.arguments = args
  var env = ProcessInfo.processInfo.environment
  for (k, v) in environment { env[k] = v }
  p.environment = env
  let out = Pipe()
  p.standardOutput = out
  p.standardError = out
  do { try p.run() } catch { return (127, "\(error)") }
  let data = out.fileHandleForReading.readDataToEndOfFile()
  p.waitUntilExit()
  return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}
