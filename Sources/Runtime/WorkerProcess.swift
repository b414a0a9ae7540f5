import CLinux
import Execution
import Foundation
import Synchronization
public import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A child process (a worker), in its own process group so a terminal's Ctrl-C reaches only the coordinator,
/// which then stops the workers itself. Its stdout and stderr go to a log file.
public final class ChildProcess: @unchecked Sendable {
  public let pid: Int32
  public let logPath: String
  private let exit = Mutex<Int32?>(nil)
  private let exited = NSCondition()

  /// The coordinator's end of the child's standard input, while open (with `standardInput`).
  private let input = Mutex<Int32?>(nil)

  /// Starts `arguments[0]` with `arguments` (after an optional prefix such as `ip netns exec NS`). With
  /// `standardInput`, the child reads those bytes and then waits on its input until `closeInput` (or `stop`):
  /// a remote worker exits when its input closes.
  public init(
    _ arguments: [String], logPath: String, environment: [String: String] = [:], standardInput: [UInt8]? = nil
  ) throws {
    self.logPath = logPath
    var fa = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fa)
    defer { posix_spawn_file_actions_destroy(&fa) }
    posix_spawn_file_actions_addopen(&fa, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&fa, 1, 2)
    // A socket pair rather than a pipe: writes to it never raise SIGPIPE (MSG_NOSIGNAL). Both ends are
    // close-on-exec, so no other child inherits the coordinator's end and the child sees EOF when it closes.
    var pair: [Int32] = [-1, -1]
    if standardInput != nil {
      guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
        throw Fault.system(operation: "pipe for the standard input of", path: arguments[0], errno: errno)
      }
      posix_spawn_file_actions_adddup2(&fa, pair[0], 0)
    } else {
      posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
    }
    defer { if pair[0] >= 0 { close(pair[0]) } }
    // Nothing else of the coordinator's goes with the child: an inherited results file (and the lock libhdf5 or
    // flock holds on it), a socket or a pipe would otherwise live as long as the worker.
    _ = el_spawn_close_from(&fa, 3)
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
    for s in [SIGINT, SIGTERM, SIGPIPE, SIGHUP] { sigaddset(&defaults, s) }
    posix_spawnattr_setsigdefault(&attr, &defaults)
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = env.map { strdup("\($0)=\($1)") } + [nil]
    defer {
      for p in argv { free(p) }
      for p in envp { free(p) }
    }
    var child: pid_t = 0
    let r = posix_spawnp(&child, arguments[0], &fa, &attr, argv, envp)
    if r != 0 {
      if pair[1] >= 0 { close(pair[1]) }
      let e = Errno(rawValue: r)
      throw Fault.system(operation: "posix_spawn", path: arguments[0], errno: e.rawValue)
    }
    pid = child
    if let data = standardInput, pair[1] >= 0 {
      data.withUnsafeBytes { b in
        var offset = 0
        while offset < b.count {
          let n = send(pair[1], b.baseAddress! + offset, b.count - offset, Int32(MSG_NOSIGNAL))
          if n <= 0 { break }
          offset += n
        }
      }
      input.withLock { $0 = pair[1] }
    }
    spawnThread("wait-\(child)") { [self] in
      var status: Int32 = 0
      while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
      exit.withLock { $0 = status }
      exited.lock()
      exited.broadcast()
      exited.unlock()
    }
  }

  /// The wait status once the process has exited.
  public var exitStatus: Int32? { exit.withLock { $0 } }
  public var isRunning: Bool { exitStatus == nil }

  /// "exited with status 3" / "was killed by signal 9".
  public var exitDescription: String {
    guard let s = exitStatus else { return "running" }
    let sig = s & 0x7f
    return sig == 0 ? "exited with status \((s >> 8) & 0xff)" : "was killed by signal \(sig)"
  }

  public func signal(_ sig: Int32) { if isRunning { kill(pid, sig) } }

  /// Blocks until the process has exited; returns its wait status.
  @discardableResult
  public func wait() -> Int32 {
    exited.lock()
    defer { exited.unlock() }
    while true {
      if let s = exitStatus { return s }
      exited.wait()
    }
  }

  /// Closes the child's standard input (a remote worker exits when it sees the end of it).
  public func closeInput() {
    input.withLock {
      if let fd = $0 { close(fd) }
      $0 = nil
    }
  }

  deinit { closeInput() }

  /// Closes its input, then SIGTERM, then SIGKILL after `grace` seconds; waits until it has exited.
  public func stop(grace: Double = 2) {
    closeInput()
    if !isRunning { return }
    signal(SIGTERM)
    exited.lock()
    let deadline = Date().addingTimeInterval(grace)
    while exitStatus == nil && exited.wait(until: deadline) {}
    exited.unlock()
    if isRunning { signal(SIGKILL) }
    wait()
  }

  /// The last lines of the log, for error messages.
  public func logTail(_ lines: Int = 5) -> String {
    guard let s = try? String(contentsOfFile: logPath, encoding: .utf8) else { return "" }
    return s.split(separator: "\n").suffix(lines).joined(separator: "\n")
  }
}

/// Sets this process to die when its parent does (Linux), so killing a coordinator with SIGKILL leaves no
/// workers behind. Returns false if the parent is already gone.
public func dieWithParent(expectedParent: Int32) -> Bool {
  _ = el_set_parent_death_signal(SIGKILL)
  return getppid() == expectedParent
}

/// Set by the SIGINT handler; the coordinator checks it while a run is in progress.
public enum Interrupt {
  static let requested = Atomic<Bool>(false)
  /// Whether Ctrl-C (SIGINT) or SIGTERM arrived since the handler was installed.
  public static var isRequested: Bool { requested.load(ordering: .relaxed) }

  /// Installs a SIGINT/SIGTERM handler that sets the flag (the run in progress then stops cleanly and is saved
  /// as incomplete) and says so; a second signal exits at once.
  public static func install() {
    let handler: @convention(c) (Int32) -> Void = { _ in
      if Interrupt.requested.exchange(true, ordering: .relaxed) { _exit(130) }
      let note: StaticString =
        "\nstopping: saving what finished (Ctrl-C again quits at once; emulated clusters are then left for `edgelab emulation clean`)\n"
      _ = write(2, note.utf8Start, note.utf8CodeUnitCount)
    }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
  }
}
