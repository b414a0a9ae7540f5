public import Catalog
public import Collaboration
public import Spec

/// What an edge–cloud run does besides running the target model's plan: the edge device and model, the
/// measured answers of both models, and the strategy.
public struct CollaborationJob: Sendable {
  public enum Mode: Sendable {
    /// The plan alone (splitting): every query answered by the target model.
    case split
    /// The edge model drafts `lookahead` tokens, the target verifies them.
    case speculative(lookahead: Int, acceptance: Acceptance)
    /// Each query to the edge model or the cloud; `probe`: the edge model's first tokens are generated before
    /// deciding.
    case route(decisions: [RouteDecision], probe: Int?)
  }
  public var mode: Mode
  public var edgeDevice: String
  public var edgeModel: ModelConfig
  /// By request id (the task's index).
  public var evaluation: TaskEvaluation
  /// The target's blocks the edge model keeps when it is the target's own early exit (nil: a separate model).
  public var draftBlocks: Int?

  public init(
    mode: Mode, edgeDevice: String, edgeModel: ModelConfig, evaluation: TaskEvaluation, draftBlocks: Int? = nil
  ) {
    self.mode = mode
    self.edgeDevice = edgeDevice
    self.edgeModel = edgeModel
    self.evaluation = evaluation
    self.draftBlocks = draftBlocks
  }

  public var isSplit: Bool {
    if case .split = mode { return true }
    return false
  }
}

/// Runs the edge and the target model on an experiment's questions for real (greedy) and scores their replies:
/// what every edge–cloud run's accuracy, reply lengths and draft agreement come from. The command line provides
/// one (the runner knows no inference engine).
public protocol TaskEvaluator: Sendable {
  func evaluate(_ experiment: ResolvedExperiment) throws -> TaskEvaluation
  /// Both models on the workload's own prompts (token ids), the target to each request's reply length without
  /// stopping: the draft's agreement per request, for speculative runs of experiments that declare no questions
  /// (nothing is scored). Nil when this evaluator cannot.
  func trace(_ experiment: ResolvedExperiment, requests: [RequestPlan]) throws -> TaskEvaluation?
}

extension TaskEvaluator {
  public func trace(_ experiment: ResolvedExperiment, requests: [RequestPlan]) throws -> TaskEvaluation? { nil }
}
