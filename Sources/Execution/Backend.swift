public import CostModel
public import EdgeLabCore
import Foundation
public import Metrics
public import Pipeline
public import Spec

/// One run handed to a backend: the resolved experiment, the plan, the requests, and what the backend may
/// need to know about time. Nothing here names a partition algorithm: a backend executes the plan's data.
public struct RunJob: Sendable {
  /// The experiment at this run's sweep point.
  public var experiment: ResolvedExperiment
  public var plan: Plan
  public var requests: [RequestPlan]
  /// Seed of the run's randomness (jitter, synthetic weights).
  public var seed: UInt64
  /// Per-layer times of the declared devices, for backends that predict (the simulator) or bound (deadlines).
  public var timeModel: any LayerTimeModel
  /// A short name for logs ("even bandwidth=10Mbit/s rep 0").
  public var label: String
  /// Polled by backends that run long: the user asked to stop (Ctrl-C).
  public var cancellation: Cancellation
  /// Edge–cloud runs: the edge model, both models' measured answers and the strategy.
  public var collaboration: CollaborationJob?

  public init(
    experiment: ResolvedExperiment, plan: Plan, requests: [RequestPlan], seed: UInt64,
    timeModel: any LayerTimeModel, label: String = "", cancellation: Cancellation = .never,
    collaboration: CollaborationJob? = nil
  ) {
    self.collaboration = collaboration
    self.experiment = experiment
    self.plan = plan
    self.requests = requests
    self.seed = seed
    self.timeModel = timeModel
    self.label = label
    self.cancellation = cancellation
  }
}

/// Whether the user asked to stop; polled, never waited on.
public struct Cancellation: Sendable {
  private let check: @Sendable () -> Bool
  public init(_ check: @escaping @Sendable () -> Bool) { self.check = check }
  public var isRequested: Bool { check() }
  public static let never = Cancellation { false }
}

/// Where runs execute. Every backend reports a `RunOutcome`, so results are comparable run for run.
public protocol ExecutionBackend: Sendable {
  var kind: BackendKind { get }
  /// Executes one run. Throw `BackendError.fatal` to stop the whole sweep (what finished is saved);
  /// return an outcome with status `.failed` to record the failure and go on.
  func execute(_ job: RunJob) throws -> RunOutcome
}

/// Errors that stop a sweep, as data: what was refused or what failed, and what finished.
public enum BackendError: Error, CustomStringConvertible, ReportableError {
  /// The backend cannot run here (no such backend in this runner, no emulation, boards unreachable).
  case unavailable(BackendKind, String)
  /// The run cannot start with these inputs (a checkpoint that does not match, a plan too big for this host, a
  /// worker of another build); nothing ran.
  case refused(Refusal)
  /// The run could not go on. `logs` is where the workers' logs were kept; `partial` holds what finished.
  case fatal(Fault, logs: String? = nil, partial: RunOutcome?)
  case interrupted(partial: RunOutcome?)

  public var description: String {
    switch self {
    case .unavailable(let k, let why): "backend '\(k.rawValue)' is not available: \(why)"
    case .refused(let r): r.description
    case .fatal(let f, let logs, _): f.description + (logs.map { " (worker logs: \($0))" } ?? "")
    case .interrupted: "interrupted"
    }
  }

  public var failureClass: FailureClass {
    switch self {
    case .unavailable: .deviceFailed
    case .refused(let r): r.failureClass
    case .fatal(let f, _, _): f.failureClass
    case .interrupted: .interrupted
    }
  }

  public var code: String {
    switch self {
    case .unavailable: "backend_unavailable"
    case .refused(let r): r.code
    case .fatal(let f, _, _): f.code
    case .interrupted: "interrupted"
    }
  }

  public var details: [String: JSONValue] {
    switch self {
    case .unavailable(let k, _): ["backend": .string(k.rawValue)]
    case .refused(let r): r.details
    case .fatal(let f, let logs, _):
      f.details.merging(["logs": .optional(logs)]) { a, _ in a }
    case .interrupted: [:]
    }
  }
}

/// Why a backend refused a run before starting it.
public enum Refusal: Error, Sendable, Equatable, CustomStringConvertible, ReportableError {
  /// A setting this backend cannot run as given: `field` names it, `reason` says what to change.
  case setting(field: String, reason: String)
  /// An input file (a checkpoint, an inventory) is missing, unreadable or corrupt.
  case input(path: String, reason: String)
  /// The plan keeps more weights in this host's memory than it has.
  case hostMemory(neededBytes: Double, availableBytes: Double, precision: String)
  /// A worker or board runs another build of EdgeLab than the coordinator; `remedy` is the command that fixes it.
  case buildMismatch(device: String, ours: String, theirs: String, remedy: String)
  /// Declared devices that no board of the inventory can be.
  case noBoard(devices: [String], inventory: String, reason: String)

  /// The remedy of a board running another build: deploying this one.
  public static func deployRemedy(inventory: String?) -> String {
    "copy this build to the boards: edgelab boards deploy --inventory \(inventory ?? "INVENTORY.json")"
  }

  public var description: String {
    switch self {
    case .setting(let field, let reason): "\(field): \(reason)"
    case .input(let path, let reason): "\(path): \(reason)"
    case .hostMemory(let needed, let available, let precision):
      String(
        format:
          "the plan keeps %.1f GB of %@ weights in worker memory, but this machine has %.1f GB available; choose a smaller model or precision (e.g. Model(.llama32_1B) or precision .bf16), or run it with --backend simulated",
        needed / 1e9, precision, available / 1e9)
    case .noBoard(_, _, let reason): reason
    case .buildMismatch(let device, let ours, let theirs, let remedy):
      "\(device) runs edgelab \(theirs.isEmpty ? "(an older build, without a build identity)" : theirs), the coordinator \(ours); \(remedy)"
    }
  }

  public var failureClass: FailureClass {
    switch self {
    case .setting, .hostMemory, .noBoard: .specRefused
    case .input: .inputCorrupt
    case .buildMismatch: .deviceFailed
    }
  }

  public var code: String {
    switch self {
    case .setting: "setting_refused"
    case .input: "input_unreadable"
    case .hostMemory: "host_memory"
    case .buildMismatch: "build_mismatch"
    case .noBoard: "no_board"
    }
  }

  public var details: [String: JSONValue] {
    switch self {
    case .setting(let field, _): ["field": .string(field)]
    case .input(let path, _): ["path": .string(path)]
    case .hostMemory(let needed, let available, let precision):
      ["needed_bytes": .number(needed), "available_bytes": .number(available), "precision": .string(precision)]
    case .buildMismatch(let device, let ours, let theirs, let remedy):
      ["device": .string(device), "ours": .string(ours), "theirs": .string(theirs), "remedy": .string(remedy)]
    case .noBoard(let devices, let inventory, _):
      ["devices": .array(devices.map(JSONValue.string)), "inventory": .string(inventory)]
    }
  }
}

/// What stopped a run that had started.
public enum Fault: Error, Sendable, Equatable, CustomStringConvertible, ReportableError {
  /// A worker failed: it exited, went silent, reported an error, or lost its connection.
  case worker(WorkerFault)
  /// Work stopped moving: `stalled` says which stage or link held a micro-batch longer than `boundSeconds`.
  case stuck(stalled: String, boundSeconds: Double)
  /// The workers took longer than `seconds` `what` (e.g. "to load their weights").
  case timedOut(what: String, seconds: Double)
  /// A system call on this machine failed (creating the run directory, starting a process).
  case system(operation: String, path: String, errno: Int32?)
  /// A board could not be prepared or cleaned (ssh, tc).
  case board(name: String, reason: String)

  public var description: String {
    switch self {
    case .worker(let w): w.description
    case .stuck(let stalled, let bound):
      stalled + " (execution.progress_timeout is \(String(format: "%.0f", bound)) s)"
    case .timedOut(let what, let seconds): "workers took longer than \(seconds) s \(what)"
    case .system(let operation, let path, let code):
      "\(operation) \(path) failed" + (code.map { ": " + String(cString: strerror($0)) } ?? "")
    case .board(let name, let reason): "board \(name): \(reason)"
    }
  }

  public var failureClass: FailureClass {
    if case .system = self { return .osError }
    return .deviceFailed
  }

  public var code: String {
    switch self {
    case .worker(let w): w.code
    case .stuck: "stuck"
    case .timedOut: "timed_out"
    case .system: "system_call_failed"
    case .board: "board_failed"
    }
  }

  public var details: [String: JSONValue] {
    switch self {
    case .worker(let w): w.details
    case .stuck(let stalled, let bound): ["stalled": .string(stalled), "bound_s": .number(bound)]
    case .timedOut(let what, let seconds): ["what": .string(what), "seconds": .number(seconds)]
    case .system(let operation, let path, let code):
      ["operation": .string(operation), "path": .string(path), "errno": code.map { .number(Double($0)) } ?? .null]
    case .board(let name, _): ["board": .string(name)]
    }
  }
}

/// A worker that failed: which device and stages, how, how its process ended, and the end of its log.
public struct WorkerFault: Sendable, Equatable, CustomStringConvertible {
  public enum Kind: Sendable, Equatable {
    /// The process ended while the run needed it.
    case exited
    /// No message (not even a heartbeat) for `seconds`.
    case silent(seconds: Double)
    /// The worker reported a failure (its own words).
    case reported(String)
    /// Its control connection closed (the transport's reason).
    case connectionLost(String)
    /// It could not be reached to send a message.
    case unreachable(String)
    /// The process ended before it was listening.
    case exitedBeforeListening
    /// It did not start listening within `seconds`.
    case notListening(seconds: Double)

    var code: String {
      switch self {
      case .exited: "worker_exited"
      case .silent: "worker_silent"
      case .reported: "worker_reported"
      case .connectionLost: "worker_connection_lost"
      case .unreachable: "worker_unreachable"
      case .exitedBeforeListening: "worker_exited_before_listening"
      case .notListening: "worker_not_listening"
      }
    }
  }

  public var device: String
  /// The plan's stages on the device (empty for the source when it holds no stage).
  public var stages: [Int]
  public var kind: Kind
  /// How the process ended, once it has ("was killed by signal 9", "exited with status 3").
  public var process: String?
  public var logPath: String?
  /// The last lines of its log.
  public var logTail: String?

  public init(
    device: String, stages: [Int], kind: Kind, process: String? = nil, logPath: String? = nil, logTail: String? = nil
  ) {
    self.device = device
    self.stages = stages
    self.kind = kind
    self.process = process
    self.logPath = logPath
    self.logTail = logTail
  }

  public var code: String { kind.code }

  public var description: String {
    let placement =
      stages.isEmpty
      ? "no stage" : "stage" + (stages.count > 1 ? "s " : " ") + stages.map(String.init).joined(separator: ", ")
    var m = "worker \(device) (\(placement)) "
    switch kind {
    case .exited: m += "stopped unexpectedly"
    case .silent(let s): m += "is not responding (no message for \(s) s)"
    case .reported(let why): m += "failed: \(why)"
    case .connectionLost(let why): m += "closed its control connection (\(why))"
    case .unreachable(let why): m += "cannot be reached: \(why)"
    case .exitedBeforeListening: m += "ended before listening"
    case .notListening(let s): m += "did not start listening within \(s) s"
    }
    if let process { m += "; the process \(process)" }
    if let logPath, let logTail, !logTail.isEmpty {
      m += "; log \(logPath): \(logTail.replacingOccurrences(of: "\n", with: " | "))"
    } else if let logPath {
      m += "; see \(logPath)"
    }
    return m
  }

  public var details: [String: JSONValue] {
    var d: [String: JSONValue] = [
      "device": .string(device), "stages": .array(stages.map { .number(Double($0)) }),
      "process": .optional(process), "log": .optional(logPath),
    ]
    switch kind {
    case .silent(let s), .notListening(let s): d["seconds"] = .number(s)
    case .reported(let why), .connectionLost(let why), .unreachable(let why): d["reason"] = .string(why)
    case .exited, .exitedBeforeListening: break
    }
    return d
  }
}

extension RunJob {
  /// Micro-batches in flight: the experiment's setting, else the plan's own count.
  public var microBatches: Int { max(1, experiment.spec.execution.microBatches ?? plan.microBatches) }

  /// How the source schedules this run (`PipelineScheduler`), the same for every backend.
  public var schedulerConfiguration: PipelineScheduler.Configuration {
    let arrivals: PipelineScheduler.Configuration.Arrivals
    switch experiment.spec.workload.arrival {
    case .closedLoop(let n, let think): arrivals = .closedLoop(concurrency: n, think: think.value)
    default: arrivals = .open
    }
    let admission = experiment.spec.execution.memoryAdmission == .wait ? memoryBudget.tightest?.tokens : nil
    return PipelineScheduler.Configuration(
      arrivals: arrivals, maxBatch: experiment.spec.execution.maxBatch,
      microBatches: microBatches, kvTokenBudget: admission,
      rounds: experiment.spec.execution.schedule == .bubbles)
  }

  /// Why a request the scheduler refused can never run: it alone outgrows the tightest device.
  public func refusal(request: Int, tokens: Int, budget: Int) -> String {
    let device = memoryBudget.tightest?.device ?? "?"
    return "out of memory on device \(device): request \(request) can reach \(tokens) tokens of context (prompt + "
      + "output), and \(device) holds the KV cache of at most \(budget) beside its weights (shorten the "
      + "workload's lengths, or choose a plan that leaves \(device) more memory)"
  }

  /// The requests as the scheduler sees them (arrival times in device seconds).
  public var schedulerRequests: [PipelineScheduler.Request] {
    requests.map {
      PipelineScheduler.Request(
        id: $0.id, arrival: $0.arrival?.value ?? 0, promptLength: $0.promptLength,
        outputLength: $0.outputLength)
    }
  }
}
