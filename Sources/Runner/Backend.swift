public import CostModel
import EdgeLabCore
public import Metrics
public import Partitioning
public import Spec
import Simulator

/// One run handed to a backend: the run, its plan, and its requests.
public struct RunJob: Sendable {
  public var descriptor: RunDescriptor
  public var plan: Plan
  public var problem: PartitionProblem
  public var requests: [RequestPlan]
  public var builder: ProblemBuilder
  /// True once the user asked to stop (Ctrl-C); long-running backends poll it within a run.
  public var stopRequested: @Sendable () -> Bool = { false }

  public var experiment: ResolvedExperiment { descriptor.point.experiment }
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

/// The calibrated simulator.
public struct SimulatedBackend: ExecutionBackend {
  public let kind = BackendKind.simulated
  public init() {}

  public func execute(_ job: RunJob) throws -> RunOutcome {
    let started = MonotonicClock.now()
    var adapter: LimeMemoryAdapter?
    if job.plan.valueModel == "lime" {
      var params = Parameters(algorithm: Lime.name, job.descriptor.algorithm.parameters)
      let lime = try Lime(parameters: &params)
      adapter = try LimeMemoryAdapter(plan: job.plan, problem: job.problem, lime: lime)
    }
    var outcome = Simulator.run(SimulationInput(
      experiment: job.experiment, plan: job.plan, requests: job.requests, timeModel: job.builder.timeModel,
      seed: job.descriptor.seed, adapter: adapter, stopRequested: job.stopRequested))
    outcome.wallSeconds = MonotonicClock.now() - started
    if outcome.status == .incomplete && job.stopRequested() { throw BackendError.interrupted(partial: outcome) }
    return outcome
  }
}

/// Monotonic seconds (CLOCK_MONOTONIC), for durations and progress.
public enum MonotonicClock {
  public static func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
  }
}

#if canImport(Glibc)
import Glibc
#endif
