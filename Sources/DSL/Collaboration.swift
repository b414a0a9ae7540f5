public import Collaboration
import EdgeLabCore
public import Spec

/// Edge–cloud cooperation: the edge device (it holds the queries), the edge model it runs, and the questions
/// both models are measured on.
///
/// ```swift
/// Collaboration(edge: "nano", model: .earlyExit(12), tasks: .builtin(.mixed, count: 30))
/// Strategy("speculate-4", .speculative(lookahead: 4, target: "edgeshard-latency"))
/// Strategy("confidence", .route(.confidence(threshold: 0.5), cloud: "edgeshard-latency"))
/// ```
public struct Collaboration: ExperimentComponent {
  public var spec: CollaborationSpec
  public init(
    edge: String, model: EdgeModelSpec, tasks: TaskSetSpec? = nil, acceptanceRate: Double? = nil, probeTokens: Int = 2,
    maxAnswerTokens: Int = 8, traceDepth: Int = 8
  ) {
    spec = CollaborationSpec(
      edge: edge, edgeModel: model, tasks: tasks, acceptanceRate: acceptanceRate, probeTokens: probeTokens,
      maxAnswerTokens: maxAnswerTokens, traceDepth: traceDepth)
  }
  public var parts: [ExperimentPart] { [.collaboration(spec)] }
}

extension TaskSetSpec {
  /// A set the lab generates with computed answers.
  public static func builtin(_ kind: BuiltinTasks.Kind, count: Int, shots: Int = 3, seed: UInt64 = 1) -> Self {
    TaskSetSpec(builtin: kind, count: count, shots: shots, seed: seed)
  }
  /// A local task file (JSON Lines) or MMLU's CSV files (a file or a directory).
  public static func file(_ path: String, format: TaskFiles.Format? = nil, count: Int? = nil) -> Self {
    TaskSetSpec(path: path, format: format, count: count)
  }
}

extension EdgeModelSpec {
  /// A separate edge model from a preset (synthetic weights unless `checkpoint`); it must share the target's
  /// vocabulary.
  public static func model(_ preset: ModelPreset, precision: Precision = .fp32, checkpoint: String? = nil) -> Self {
    .separate(ModelChoice(preset: preset.name, precision: precision, checkpoint: checkpoint))
  }
}

/// How a strategy cooperates.
public enum StrategyKind: Sendable {
  /// The edge model drafts `lookahead` tokens; the target, placed by the partition algorithm `target`, verifies.
  /// `acceptanceRate` replaces the measured agreement of the two models.
  case speculative(lookahead: Int, target: String, acceptanceRate: Double? = nil)
  /// `router` sends each query to the edge model or to the target, placed by `cloud`.
  case route(RouterChoice, cloud: String)
}

extension RouterChoice {
  public static let edgeOnly = RouterChoice("edge-only")
  public static let cloudOnly = RouterChoice("cloud-only")
  public static func random(p: Double, seed: UInt64 = 1) -> Self {
    RouterChoice("random", parameters: ["p": .number(p), "seed": .number(Double(seed))])
  }
  public static func promptLength(maxEdgeTokens: Int) -> Self {
    RouterChoice("prompt-length", parameters: ["max_edge_tokens": .number(Double(maxEdgeTokens))])
  }
  public static func confidence(threshold: Double, measure: String = "probability") -> Self {
    RouterChoice("confidence", parameters: ["threshold": .number(threshold), "measure": .string(measure)])
  }
  public static let oracle = RouterChoice("oracle")
}

/// A cooperation strategy compared beside the algorithms; `name` labels its runs.
public struct Strategy: ExperimentComponent {
  public var choice: StrategyChoice
  public init(_ name: String, _ kind: StrategyKind) {
    switch kind {
    case .speculative(let k, let target, let rate):
      choice = StrategyChoice(
        name: name,
        speculative: SpeculativeStrategy(lookahead: k, target: AlgorithmChoice(target), acceptanceRate: rate))
    case .route(let router, let cloud):
      choice = StrategyChoice(name: name, route: RouteStrategy(router: router, cloud: AlgorithmChoice(cloud)))
    }
  }
  public var parts: [ExperimentPart] { [.strategy(choice)] }
}

extension SweepTarget where Value == Int {
  /// A speculative strategy's lookahead.
  public static func lookahead(of strategy: String) -> Self { .init("strategies[\(strategy)].speculative.lookahead") }
}
extension SweepTarget where Value == Double {
  /// The acceptance rate assumed for speculative strategies without their own.
  public static var acceptanceRate: Self { .init("collaboration.acceptance_rate") }
  /// A router's numeric parameter (e.g. the confidence router's `threshold`).
  public static func routerParameter(_ name: String, of strategy: String) -> Self {
    .init("strategies[\(strategy)].route.router.parameters.\(name)")
  }
}
