public import EdgeLabCore

/// What a router may know about one query: what any router sees (its length), what the edge model showed on its
/// first tokens, and — for the oracle only — whether each model's answer is right.
public struct QueryFeatures: Hashable, Sendable, Codable {
  /// The query's position in the task set (a stable key for routers that draw at random).
  public var index: Int
  public var promptTokens: Int
  /// The smallest probability the edge model gave a token it chose among its first probe tokens (multiple choice:
  /// the chosen letter's probability among the letters).
  public var edgeMinProbability: Double
  /// The mean entropy (nats) of the edge model's next-token distributions over those tokens.
  public var edgeMeanEntropy: Double
  public var edgeCorrect: Bool
  public var cloudCorrect: Bool

  public init(
    index: Int, promptTokens: Int, edgeMinProbability: Double, edgeMeanEntropy: Double, edgeCorrect: Bool,
    cloudCorrect: Bool
  ) {
    self.index = index
    self.promptTokens = promptTokens
    self.edgeMinProbability = edgeMinProbability
    self.edgeMeanEntropy = edgeMeanEntropy
    self.edgeCorrect = edgeCorrect
    self.cloudCorrect = cloudCorrect
  }
}

public enum RouteDecision: String, Hashable, Sendable, Codable {
  case edge
  case cloud
}

/// Decides where a query is answered. A router is a pure function of the query's features (and its own
/// parameters): the same query always goes to the same place.
public protocol Router: Sendable {
  /// The router's registered name.
  static var name: String { get }
  /// What it must know before deciding: the edge model's first tokens (their cost is paid on the edge before a
  /// query goes to the cloud), or nothing.
  var probesEdge: Bool { get }
  func route(_ query: QueryFeatures) -> RouteDecision
}

extension Router {
  public var probesEdge: Bool { false }
}

/// A router's parameters could not be used.
public struct RouterError: Error, Equatable, Sendable, CustomStringConvertible, ReportableError {
  public var router: String
  public var reason: String
  public init(router: String, _ reason: String) {
    self.router = router
    self.reason = reason
  }
  public var description: String { "router '\(router)': \(reason)" }
  public var failureClass: FailureClass { .specRefused }
  public var code: String { "router_parameters" }
  public var details: [String: JSONValue] { ["router": .string(router)] }
}

/// Every query on the edge.
public struct EdgeOnlyRouter: Router {
  public static let name = "edge-only"
  public init() {}
  public func route(_ query: QueryFeatures) -> RouteDecision { .edge }
}

/// Every query to the cloud.
public struct CloudOnlyRouter: Router {
  public static let name = "cloud-only"
  public init() {}
  public func route(_ query: QueryFeatures) -> RouteDecision { .cloud }
}

/// A query goes to the cloud with probability `p`, drawn from the query's index and the router's seed.
public struct RandomRouter: Router {
  public static let name = "random"
  public var cloudProbability: Double
  public var seed: UInt64
  public init(cloudProbability: Double, seed: UInt64 = 1) {
    self.cloudProbability = cloudProbability
    self.seed = seed
  }
  public func route(_ query: QueryFeatures) -> RouteDecision {
    var r = SeededRandom.derived(seed: seed, UInt64(truncatingIfNeeded: query.index))
    return r.nextUnit() < cloudProbability ? .cloud : .edge
  }
}

/// Short prompts on the edge, long ones (more than `maxEdgeTokens`) to the cloud.
public struct PromptLengthRouter: Router {
  public static let name = "prompt-length"
  public var maxEdgeTokens: Int
  public init(maxEdgeTokens: Int) { self.maxEdgeTokens = maxEdgeTokens }
  public func route(_ query: QueryFeatures) -> RouteDecision {
    query.promptTokens <= maxEdgeTokens ? .edge : .cloud
  }
}

/// The edge model's own confidence on its first tokens: a query stays on the edge when the least likely token
/// it chose was at least `threshold` likely (`measure` probability), or when its mean entropy is at most
/// `threshold` nats (`measure` entropy). Needs no extra model.
public struct ConfidenceRouter: Router {
  public static let name = "confidence"
  public enum Measure: String, Sendable, CaseIterable {
    case probability
    case entropy
  }
  public var threshold: Double
  public var measure: Measure
  public init(threshold: Double, measure: Measure = .probability) {
    self.threshold = threshold
    self.measure = measure
  }
  public var probesEdge: Bool { true }
  public func route(_ query: QueryFeatures) -> RouteDecision {
    switch measure {
    case .probability: query.edgeMinProbability >= threshold ? .edge : .cloud
    case .entropy: query.edgeMeanEntropy <= threshold ? .edge : .cloud
    }
  }
}

/// The upper bound Ianvs reports: a query goes to the cloud only when the edge's answer is wrong and the
/// cloud's is right. It knows the answers, so no real router can do better.
public struct OracleRouter: Router {
  public static let name = "oracle"
  public init() {}
  public func route(_ query: QueryFeatures) -> RouteDecision {
    !query.edgeCorrect && query.cloudCorrect ? .cloud : .edge
  }
}

/// Routers by name, built from JSON parameters. The lab's own are `standard`; a researcher's own come from
/// `algorithms/Registry.swift` (`adding`).
public struct RouterRegistry: Sendable {
  public typealias Factory = @Sendable ([String: JSONValue]) throws(RouterError) -> any Router
  public struct Entry: Sendable {
    public var name: String
    public var summary: String
    public var parameters: [String]
    public var make: Factory
    public init(name: String, summary: String, parameters: [String] = [], make: @escaping Factory) {
      self.name = name
      self.summary = summary
      self.parameters = parameters
      self.make = make
    }
  }
  public private(set) var entries: [Entry]

  public init(_ entries: [Entry]) { self.entries = entries }

  public var names: [String] { entries.map(\.name) }

  /// A registry with `more` after these; a name already taken is refused.
  public func adding(_ more: [Entry]) throws(RouterError) -> RouterRegistry {
    var r = self
    for e in more {
      if r.names.contains(e.name) { throw RouterError(router: e.name, "a router with this name is already registered") }
      r.entries.append(e)
    }
    return r
  }

  public func make(_ name: String, parameters: [String: JSONValue]) throws(RouterError) -> any Router {
    guard let e = entries.first(where: { $0.name == name }) else {
      throw RouterError(router: name, "no such router; registered: \(names.joined(separator: ", "))")
    }
    let unknown = Set(parameters.keys).subtracting(e.parameters)
    if !unknown.isEmpty {
      throw RouterError(
        router: name,
        "unknown parameter(s) \(unknown.sorted().joined(separator: ", ")); it takes \(e.parameters.isEmpty ? "none" : e.parameters.joined(separator: ", "))"
      )
    }
    return try e.make(parameters)
  }

  /// The number parameter `key` in `range` (nil when absent), or an error naming the router and the key; for
  /// routers' factories, the lab's and a researcher's.
  public static func number(_ p: [String: JSONValue], _ key: String, router: String, in range: ClosedRange<Double>)
    throws(RouterError) -> Double?
  {
    guard let v = p[key] else { return nil }
    guard case .number(let x) = v, range.contains(x) else {
      throw RouterError(router: router, "'\(key)' must be a number in \(range.lowerBound)…\(range.upperBound)")
    }
    return x
  }

  public static let standard = RouterRegistry([
    Entry(name: EdgeOnlyRouter.name, summary: "every query on the edge model") { _ throws(RouterError) in
      EdgeOnlyRouter()
    },
    Entry(name: CloudOnlyRouter.name, summary: "every query to the cloud model") { _ throws(RouterError) in
      CloudOnlyRouter()
    },
    Entry(name: RandomRouter.name, summary: "to the cloud with probability p", parameters: ["p", "seed"]) {
      p throws(RouterError) in
      guard let prob = try number(p, "p", router: RandomRouter.name, in: 0...1) else {
        throw RouterError(router: RandomRouter.name, "give 'p', the probability of sending a query to the cloud")
      }
      let seed = try number(p, "seed", router: RandomRouter.name, in: 0...9.0e15) ?? 1
      return RandomRouter(cloudProbability: prob, seed: UInt64(seed))
    },
    Entry(
      name: PromptLengthRouter.name, summary: "prompts longer than max_edge_tokens to the cloud",
      parameters: ["max_edge_tokens"]
    ) { p throws(RouterError) in
      guard let n = try number(p, "max_edge_tokens", router: PromptLengthRouter.name, in: 0...1e9) else {
        throw RouterError(router: PromptLengthRouter.name, "give 'max_edge_tokens'")
      }
      return PromptLengthRouter(maxEdgeTokens: Int(n))
    },
    Entry(
      name: ConfidenceRouter.name,
      summary: "the edge model's confidence on its first tokens (probability ≥ or entropy ≤ threshold stays)",
      parameters: ["threshold", "measure"]
    ) { p throws(RouterError) in
      guard let t = try number(p, "threshold", router: ConfidenceRouter.name, in: 0...1e6) else {
        throw RouterError(router: ConfidenceRouter.name, "give 'threshold'")
      }
      var measure = ConfidenceRouter.Measure.probability
      if let m = p["measure"] {
        guard let s = m.stringValue, let parsed = ConfidenceRouter.Measure(rawValue: s) else {
          throw RouterError(router: ConfidenceRouter.name, "'measure' is \"probability\" or \"entropy\"")
        }
        measure = parsed
      }
      if measure == .probability && t > 1 {
        throw RouterError(router: ConfidenceRouter.name, "a probability threshold lies in 0…1")
      }
      return ConfidenceRouter(threshold: t, measure: measure)
    },
    Entry(
      name: OracleRouter.name, summary: "to the cloud only when the edge is wrong and the cloud right (upper bound)"
    ) { _ throws(RouterError) in OracleRouter() },
  ])
}
