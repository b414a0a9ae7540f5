import Emulation
import Execution
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Commands on one board through the system's OpenSSH client. Keys stay where they are: `ssh -i KEY` reads the
/// coordinator's key file; nothing is copied to the board.
public struct SSHBoard: Sendable {
  public let board: Inventory.Board

  public init(_ board: Inventory.Board) { self.board = board }

  /// `ssh … user@host --`: non-interactive (no password prompts), failing fast when the board is unreachable,
  /// and noticing within about 3 s when a connection is lost (keep-alives every second).
  public var prefix: [String] {
    var args = [
      "ssh", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "ServerAliveInterval=1", "-o",
      "ServerAliveCountMax=3", "-o", "LogLevel=ERROR",
    ]
    if let k = board.key { args += ["-i", k, "-o", "IdentitiesOnly=yes"] }
    if let p = board.port { args += ["-p", String(p)] }
    args += board.sshOptions ?? []
    args.append(board.user.map { "\($0)@\(board.host)" } ?? board.host)
    return args + ["--"]
  }

  /// `tc` as this board's user may run it.
  public var tc: String { board.sudo == true ? "sudo -n tc" : "tc" }

  /// Runs a shell command line on the board; (exit status, stdout, stderr). Status 255 is SSH's own failure;
  /// a command still running after `timeout` seconds is killed (status 124).
  @discardableResult
  public func run(_ script: String, timeout: Double = 20) -> (status: Int32, out: String, err: String) {
    Shell.capture(prefix + [script], timeout: timeout)
  }

  /// Runs and throws with the board's name and what it printed when the command fails.
  @discardableResult
  public func check(_ script: String, what: String, timeout: Double = 20) throws(BoardsError) -> String {
    let r = run(script, timeout: timeout)
    guard r.status == 0 else {
      let said = (r.err + r.out).trimmingCharacters(in: .whitespacesAndNewlines)
      throw BoardsError(
        "board \(board.name) (\(board.host)): \(what) failed (\(r.status == 255 ? "ssh could not connect or was cut off" : "status \(r.status)")): \(said.isEmpty ? "no output" : String(said.prefix(400)))",
        kind: .board(board.name))
    }
    return r.out
  }
}
