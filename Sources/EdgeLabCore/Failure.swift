/// What kind of failure stopped a command, for a caller that cannot read English (a sweep driver, a notebook
/// reading exit codes). Each class has one exit code, after `sysexits.h`; README, "Exit codes", lists them.
public enum FailureClass: String, Codable, Sendable, CaseIterable {
  /// The experiment, a flag or a setting cannot be run as given (a field names what to change).
  case specRefused = "spec_refused"
  /// An input file (checkpoint, results file, profile, manifest, inventory) is missing, unreadable or corrupt.
  case inputCorrupt = "input_corrupt"
  /// A device the run depends on failed: a worker or board died, went silent, is unreachable or runs another
  /// build.
  case deviceFailed = "device_failed"
  /// Writing an output failed (a full disk, a read-only directory).
  case ioFailed = "io_failed"
  /// The operating system refused a resource: a process could not be started, a pipe or a run directory could
  /// not be made.
  case osError = "os_error"
  /// Someone else holds what the command needs (another run writes the same results file); try again later.
  case busy
  /// Ctrl-C or SIGTERM; what finished is saved.
  case interrupted
  /// A bug in EdgeLab: please report it with the message.
  case internalError = "internal"
  /// The command finished, but some of its runs (or cases, or boards) failed; the results file says which.
  case runsFailed = "runs_failed"
  /// A partition problem (`edgelab partition`) has no feasible plan.
  case infeasible

  /// The process exit status for this class.
  public var exitCode: Int32 {
    switch self {
    case .specRefused: 65  // EX_DATAERR
    case .inputCorrupt: 66  // EX_NOINPUT
    case .deviceFailed: 69  // EX_UNAVAILABLE
    case .internalError: 70  // EX_SOFTWARE
    case .osError: 71  // EX_OSERR
    case .ioFailed: 74  // EX_IOERR
    case .busy: 75  // EX_TEMPFAIL
    case .interrupted: 130  // 128 + SIGINT, as shells report it
    case .runsFailed: 1
    case .infeasible: 2
    }
  }
}

/// An error that says what failed as data: its class (and so its exit code), a stable case name, and the
/// details — field, file and offset, device and errno, peer and message type — from which its sentence
/// (`description`) is derived. Tests match `code` and `details`, never the sentence.
public protocol ReportableError: Error, CustomStringConvertible {
  var failureClass: FailureClass { get }
  /// A stable snake_case name of the case, e.g. `worker_exited`, `build_mismatch`, `spec_invalid`.
  var code: String { get }
  /// What failed, as JSON-ready data (snake_case keys).
  var details: [String: JSONValue] { get }
}

extension ReportableError {
  /// The failure as one JSON object: `{"class", "code", "exit_code", "message", "details"}`.
  public var report: JSONValue {
    .object([
      "class": .string(failureClass.rawValue), "code": .string(code),
      "exit_code": .number(Double(failureClass.exitCode)), "message": .string(description),
      "details": .object(details),
    ])
  }
}

extension JSONValue {
  /// `.string(s)`, or `.null` for nil: for optional context fields.
  public static func optional(_ s: String?) -> JSONValue { s.map(JSONValue.string) ?? .null }
}
