public import Catalog
public import Collaboration
public import EdgeLabCore

/// Edge–cloud cooperation beyond splitting one model: a second, smaller model on an edge device, the questions
/// both are measured on, and what the strategies of the experiment compare.
///
/// The experiment's `model` is the large (target, cloud) model; `strategies` put the edge model to work beside
/// it. Accuracy is measured by running both models on `tasks` for real (greedy, on this machine) before any run;
/// the backends then time what each strategy does with the answers.
public struct CollaborationSpec: Codable, Hashable, Sendable {
  /// The edge device: it holds the user's query, runs the edge model and drafts; the target model is planned on
  /// the other devices.
  public var edge: String
  public var edgeModel: EdgeModelSpec
  /// The questions both models are measured on. Without them nothing is measured: requests come from the
  /// workload, accuracy is unknown, and speculation needs an assumed `acceptance_rate` (a timing-only study,
  /// e.g. of models too large to run here).
  public var tasks: TaskSetSpec?
  /// The acceptance rate of speculative strategies that give none (an assumption, recorded as such); the measured
  /// agreement of the two models when nil.
  public var acceptanceRate: Double?
  /// Tokens the edge model generates before a router that needs its confidence decides.
  public var probeTokens: Int
  /// Longest reply of either model to a free-text question.
  public var maxAnswerTokens: Int
  /// Longest agreement of draft and target measured per position (the largest lookahead a strategy may use).
  public var traceDepth: Int

  public init(
    edge: String, edgeModel: EdgeModelSpec, tasks: TaskSetSpec?, acceptanceRate: Double? = nil, probeTokens: Int = 2,
    maxAnswerTokens: Int = 8, traceDepth: Int = 8
  ) {
    self.edge = edge
    self.edgeModel = edgeModel
    self.tasks = tasks
    self.acceptanceRate = acceptanceRate
    self.probeTokens = probeTokens
    self.maxAnswerTokens = maxAnswerTokens
    self.traceDepth = traceDepth
  }

  enum CodingKeys: String, CodingKey {
    case edge, tasks
    case edgeModel = "edge_model"
    case acceptanceRate = "acceptance_rate"
    case probeTokens = "probe_tokens"
    case maxAnswerTokens = "max_answer_tokens"
    case traceDepth = "trace_depth"
  }
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    edge = try c.decode(String.self, forKey: .edge)
    edgeModel = try c.decode(EdgeModelSpec.self, forKey: .edgeModel)
    tasks = try c.decodeIfPresent(TaskSetSpec.self, forKey: .tasks)
    acceptanceRate = try c.decodeIfPresent(Double.self, forKey: .acceptanceRate)
    probeTokens = try c.decodeIfPresent(Int.self, forKey: .probeTokens) ?? 2
    maxAnswerTokens = try c.decodeIfPresent(Int.self, forKey: .maxAnswerTokens) ?? 8
    traceDepth = try c.decodeIfPresent(Int.self, forKey: .traceDepth) ?? 8
  }
}

/// The edge model: the target's own first blocks and its head (self-speculative, as LayerSkip drafts), or a
/// separate model with the target's vocabulary.
public struct EdgeModelSpec: Codable, Hashable, Sendable {
  /// Decoder blocks of the target kept (early exit after block `earlyExit`).
  public var earlyExit: Int?
  /// A separate model.
  public var model: ModelChoice?

  public static func earlyExit(_ blocks: Int) -> Self { Self(earlyExit: blocks, model: nil) }
  public static func separate(_ model: ModelChoice) -> Self { Self(earlyExit: nil, model: model) }

  enum CodingKeys: String, CodingKey {
    case earlyExit = "early_exit"
    case model
  }

  /// The edge model's architecture, given the target's.
  public func config(target: ModelConfig) throws(SpecError) -> ModelConfig {
    if let n = earlyExit {
      guard n >= 1 && n < target.numHiddenLayers else {
        throw SpecError(
          field: "collaboration.edge_model.early_exit",
          "keeps \(n) of the target's \(target.numHiddenLayers) blocks; give 1…\(target.numHiddenLayers - 1)")
      }
      var c = target
      c.numHiddenLayers = n
      return c
    }
    guard let model else {
      throw SpecError(field: "collaboration.edge_model", "give 'early_exit' (blocks kept) or 'model'")
    }
    let c = try model.resolvedConfig()
    if c.vocabSize != target.vocabSize {
      throw SpecError(
        field: "collaboration.edge_model.model",
        "has \(c.vocabSize) tokens in its vocabulary, the target \(target.vocabSize); the edge model must share the target's tokenizer"
      )
    }
    return c
  }

  public var displayName: String {
    if let n = earlyExit { return "first \(n) blocks + head" }
    return model?.displayName ?? "?"
  }
}

/// The questions: a set the lab generates, or a file (JSON Lines or MMLU's CSV) read from a local path.
public struct TaskSetSpec: Codable, Hashable, Sendable {
  public var builtin: BuiltinTasks.Kind?
  public var path: String?
  public var format: TaskFiles.Format?
  /// Questions used (the first `count` of a file; all when nil). Generated sets need it.
  public var count: Int?
  /// Worked examples before each generated question.
  public var shots: Int
  public var seed: UInt64

  public init(
    builtin: BuiltinTasks.Kind? = nil, path: String? = nil, format: TaskFiles.Format? = nil, count: Int? = nil,
    shots: Int = 3, seed: UInt64 = 1
  ) {
    self.builtin = builtin
    self.path = path
    self.format = format
    self.count = count
    self.shots = shots
    self.seed = seed
  }

  enum CodingKeys: String, CodingKey { case builtin, path, format, count, shots, seed }
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    builtin = try c.decodeIfPresent(BuiltinTasks.Kind.self, forKey: .builtin)
    path = try c.decodeIfPresent(String.self, forKey: .path)
    format = try c.decodeIfPresent(TaskFiles.Format.self, forKey: .format)
    count = try c.decodeIfPresent(Int.self, forKey: .count)
    shots = try c.decodeIfPresent(Int.self, forKey: .shots) ?? 3
    seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 1
  }

  /// The questions (reads the file, if any).
  public func load() throws(TaskFileError) -> [TaskItem] {
    if let builtin { return BuiltinTasks.generate(builtin, count: count ?? 0, seed: seed, shots: shots) }
    guard let path else { throw TaskFileError(.unreadable, path: "(tasks)", "give 'builtin' or 'path'") }
    let all = try TaskFiles.load(path, format: format)
    return count.map { Array(all.prefix($0)) } ?? all
  }

  public var displayName: String {
    if let builtin { return "\(builtin.rawValue) (\(count ?? 0) generated, \(shots)-shot)" }
    return path ?? "?"
  }
}

/// A way of cooperating, compared beside the partition algorithms. `name` labels its runs (sweep paths reach it
/// as `strategies[NAME]`).
public struct StrategyChoice: Codable, Hashable, Sendable {
  public var name: String
  public var speculative: SpeculativeStrategy?
  public var route: RouteStrategy?

  public init(name: String, speculative: SpeculativeStrategy) {
    self.name = name
    self.speculative = speculative
  }
  public init(name: String, route: RouteStrategy) {
    self.name = name
    self.route = route
  }

  /// The partition algorithm that places the target (cloud) model.
  public var target: AlgorithmChoice? { speculative?.target ?? route?.cloud }
}

/// The edge model drafts `lookahead` tokens, the target verifies them in one pass (greedy: the reply is the
/// target's).
public struct SpeculativeStrategy: Codable, Hashable, Sendable {
  public var lookahead: Int
  public var target: AlgorithmChoice
  /// The acceptance rate to simulate with; the measured agreement of the two models when nil.
  public var acceptanceRate: Double?

  public init(lookahead: Int, target: AlgorithmChoice, acceptanceRate: Double? = nil) {
    self.lookahead = lookahead
    self.target = target
    self.acceptanceRate = acceptanceRate
  }
  enum CodingKeys: String, CodingKey {
    case lookahead, target
    case acceptanceRate = "acceptance_rate"
  }
}

/// A router sends each query to the edge model or to the cloud model.
public struct RouteStrategy: Codable, Hashable, Sendable {
  public var router: RouterChoice
  public var cloud: AlgorithmChoice

  public init(router: RouterChoice, cloud: AlgorithmChoice) {
    self.router = router
    self.cloud = cloud
  }
}

public struct RouterChoice: Codable, Hashable, Sendable {
  public var name: String
  public var parameters: [String: JSONValue]
  public init(_ name: String, parameters: [String: JSONValue] = [:]) {
    self.name = name
    self.parameters = parameters
  }
  enum CodingKeys: String, CodingKey { case name, parameters }
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    name = try c.decode(String.self, forKey: .name)
    parameters = try c.decodeIfPresent([String: JSONValue].self, forKey: .parameters) ?? [:]
  }
}

extension ExperimentSpec {
  /// Problems of the collaboration part: each names its field.
  func collaborationProblems(knownAlgorithms: Set<String>?) -> [SpecError.Issue] {
    var issues: [SpecError.Issue] = []
    func add(_ field: String, _ message: String) { issues.append(.init(field: field, message: message)) }
    guard let c = collaboration else {
      if !strategies.isEmpty {
        add("strategies", "strategies need 'collaboration' (the edge device, the edge model and the tasks)")
      }
      return issues
    }
    let names = devices.flatMap(\.instanceNames)
    if !names.contains(c.edge) {
      add(
        "collaboration.edge", "'\(c.edge)' is not a device of the experiment; devices: \(names.joined(separator: ", "))"
      )
    } else if names.count < 2 {
      add("devices", "edge–cloud collaboration needs the edge device and at least one device for the target model")
    }
    if let s = source, s != c.edge { add("source", "with collaboration the source is the edge device '\(c.edge)'") }
    if workload.prompts != nil && c.tasks != nil {
      add("workload.prompts", "with collaboration the questions of 'collaboration.tasks' are the prompts; leave it out")
    }
    if (c.edgeModel.earlyExit == nil) == (c.edgeModel.model == nil) {
      add("collaboration.edge_model", "give exactly one of 'early_exit' (blocks of the target kept) or 'model'")
    }
    if let t = c.tasks {
      if (t.builtin == nil) == (t.path == nil) {
        add(
          "collaboration.tasks",
          "give exactly one of 'builtin' (\(BuiltinTasks.Kind.allCases.map(\.rawValue).joined(separator: ", "))) or 'path'"
        )
      }
      if t.builtin != nil && !(1...10_000).contains(t.count ?? 0) {
        add("collaboration.tasks.count", "a generated task set needs 'count' in 1…10000")
      }
      if let n = t.count, n < 1 { add("collaboration.tasks.count", "must be at least 1") }
      if !(0...16).contains(t.shots) { add("collaboration.tasks.shots", "must be in 0…16") }
    }
    if let a = c.acceptanceRate, !(0...1).contains(a) { add("collaboration.acceptance_rate", "must be in 0…1") }
    if !(1...64).contains(c.probeTokens) { add("collaboration.probe_tokens", "must be in 1…64") }
    if !(1...512).contains(c.maxAnswerTokens) { add("collaboration.max_answer_tokens", "must be in 1…512") }
    if !(1...32).contains(c.traceDepth) { add("collaboration.trace_depth", "must be in 1…32") }
    var labels = Set(algorithms.map(\.displayLabel))
    for (i, s) in strategies.enumerated() {
      let f = "strategies[\(s.name)]"
      if s.name.isEmpty { add("strategies[\(i)].name", "give each strategy a name (it labels its runs)") }
      if !labels.insert(s.name).inserted {
        add(f, "the name '\(s.name)' is used twice (algorithms' labels and strategies' names must differ)")
      }
      if (s.speculative == nil) == (s.route == nil) {
        add(f, "give exactly one of 'speculative' or 'route'")
        continue
      }
      if let known = knownAlgorithms, let t = s.target, !known.contains(t.name) {
        add(f + (s.speculative != nil ? ".speculative.target" : ".route.cloud"), "unknown algorithm '\(t.name)'")
      }
      if let sp = s.speculative {
        if !(1...c.traceDepth).contains(sp.lookahead) {
          add(f + ".speculative.lookahead", "must be in 1…\(c.traceDepth) (collaboration.trace_depth)")
        }
        if let a = sp.acceptanceRate, !(0...1).contains(a) {
          add(f + ".speculative.acceptance_rate", "must be in 0…1")
        }
        // Without questions, an early-exit draft's agreement is measured on the workload's own prompts.
        if backend == .simulated && c.tasks == nil && sp.acceptanceRate == nil && c.acceptanceRate == nil
          && c.edgeModel.earlyExit == nil
        {
          add(
            f + ".speculative.acceptance_rate",
            "without collaboration.tasks nothing measures a separate draft's agreement; give an acceptance_rate (here or in collaboration)"
          )
        }
      }
      if let r = s.route?.router, c.tasks == nil, ["confidence", "oracle"].contains(r.name) {
        add(f + ".route.router", "the '\(r.name)' router needs measured answers: give collaboration.tasks")
      }
    }
    // Real runs: speculative decoding with the target's own early exit as the draft (drafting at the edge
    // worker, verifying through the target's workers); routing and separate draft models are simulated only.
    if backend != .simulated {
      for s in strategies {
        let f = "strategies[\(s.name)]"
        if s.route != nil {
          add(
            f + ".route",
            "routing runs on the simulated backend only (its accuracy is measured for real first); run with --backend simulated"
          )
        }
        if let sp = s.speculative {
          if c.edgeModel.earlyExit == nil {
            add(
              "collaboration.edge_model",
              "a real speculative run drafts with the target's own first blocks (early_exit); a separate draft model runs on the simulated backend only"
            )
          }
          if sp.acceptanceRate != nil || c.acceptanceRate != nil {
            add(f + ".speculative.acceptance_rate", "a real run measures its acceptance; leave acceptance_rate out")
          }
        }
      }
    }
    return issues
  }
}

extension ResolvedExperiment {
  /// The experiment without one device (and its links): where a strategy's target model is placed, its source
  /// the first remaining device.
  public func without(device name: String) -> ResolvedExperiment {
    var x = self
    x.devices.removeAll { $0.name == name }
    x.links.removeAll { $0.from == name || $0.to == name }
    for i in x.segments.indices { x.segments[i].pairs.removeAll { $0.from == name || $0.to == name } }
    if x.source == name, let first = x.devices.first { x.source = first.name }
    return x
  }
}
