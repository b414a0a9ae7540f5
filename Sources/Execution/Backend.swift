public import CostModel
import EdgeLabCore
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

  public init(
    experiment: ResolvedExperiment, plan: Plan, requests: [RequestPlan], seed: UInt64,
    timeModel: any LayerTimeModel, label: String = "", cancellation: Cancellation = .never
  ) {
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

/// Errors that stop a sweep.
public enum BackendError: Error, CustomStringConvertible {
  case unavailable(BackendKind, String)
  /// The run cannot start with these inputs (a checkpoint that does not match, a plan too big for this host);
  /// nothing ran.
  case refused(String)
  /// The run could not go on; `partial` holds what finished.
  case fatal(String, partial: RunOutcome?)
  case interrupted(partial: RunOutcome?)

  public var description: String {
    switch self {
    case .unavailable(let k, let why): "backend '\(k.rawValue)' is not available: \(why)"
    case .refused(let why): why
    case .fatal(let why, _): why
    case .interrupted: "interrupted"
    }
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
