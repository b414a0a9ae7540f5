public import Collaboration

/// A query stays on the edge when its prompt is short and the edge model is sure of its first tokens; anything
/// else goes to the cloud. An example of a researcher's own router: one type here, one entry in
/// `UserAlgorithms.routers` (Registry.swift), and `Strategy("mine", .route(RouterChoice("short-and-sure",
/// parameters: ["max_edge_tokens": 200, "threshold": 0.5]), cloud: "edgeshard-latency"))` in an experiment.
public struct ShortAndSureRouter: Router {
  public static let name = "short-and-sure"
  public var maxEdgeTokens: Int
  public var threshold: Double
  public init(maxEdgeTokens: Int, threshold: Double) {
    self.maxEdgeTokens = maxEdgeTokens
    self.threshold = threshold
  }
  /// It reads the edge model's confidence, so the edge's first tokens are computed (and timed) for every query.
  public var probesEdge: Bool { true }
  public func route(_ query: QueryFeatures) -> RouteDecision {
    query.promptTokens <= maxEdgeTokens && query.edgeMinProbability >= threshold ? .edge : .cloud
  }

  public static let entry = RouterRegistry.Entry(
    name: name, summary: "short prompts the edge model is sure of stay on the edge",
    parameters: ["max_edge_tokens", "threshold"]
  ) { p throws(RouterError) in
    let n = try RouterRegistry.number(p, "max_edge_tokens", router: name, in: 0...1e9) ?? 256
    let t = try RouterRegistry.number(p, "threshold", router: name, in: 0...1) ?? 0.5
    return ShortAndSureRouter(maxEdgeTokens: Int(n), threshold: t)
  }
}
