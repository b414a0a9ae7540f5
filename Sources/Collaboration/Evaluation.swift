/// One model's reply to one question, as measured.
public struct ModelAnswer: Hashable, Sendable, Codable {
  public var reply: String
  /// Tokens generated (1 for a multiple-choice letter).
  public var outputTokens: Int
  /// Nil when nothing was measured (a timing-only study).
  public var correct: Bool?
  /// The smallest probability of a chosen token among the first probe tokens (see `QueryFeatures`).
  public var minProbability: Double
  /// The mean entropy (nats) over those tokens.
  public var meanEntropy: Double

  public init(reply: String, outputTokens: Int, correct: Bool?, minProbability: Double, meanEntropy: Double) {
    self.reply = reply
    self.outputTokens = outputTokens
    self.correct = correct
    self.minProbability = minProbability
    self.meanEntropy = meanEntropy
  }
}

/// Both models on one question.
public struct QueryEvaluation: Hashable, Sendable, Codable {
  public var id: Int
  public var promptTokens: Int
  public var multipleChoice: Bool
  public var edge: ModelAnswer
  public var cloud: ModelAnswer
  /// How far the edge model, drafting, agrees with the cloud model's reply at each position.
  public var trace: MatchTrace
  /// The prompt's token ids (real runs send them; nil when nothing was measured).
  public var promptIDs: [Int32]? = nil

  public init(
    id: Int, promptTokens: Int, multipleChoice: Bool, edge: ModelAnswer, cloud: ModelAnswer, trace: MatchTrace
  ) {
    self.id = id
    self.promptTokens = promptTokens
    self.multipleChoice = multipleChoice
    self.edge = edge
    self.cloud = cloud
    self.trace = trace
  }

  public var features: QueryFeatures {
    QueryFeatures(
      index: id, promptTokens: promptTokens, edgeMinProbability: edge.minProbability,
      edgeMeanEntropy: edge.meanEntropy, edgeCorrect: edge.correct ?? false, cloudCorrect: cloud.correct ?? false)
  }
}

/// Both models measured on a task set: what every strategy's accuracy and the simulated agreement come from.
public struct TaskEvaluation: Hashable, Sendable, Codable {
  public var queries: [QueryEvaluation]
  public var edgeModel: String
  public var cloudModel: String
  public var tasks: String
  /// Wall seconds the measurement took on this machine.
  public var seconds: Double

  public init(queries: [QueryEvaluation], edgeModel: String, cloudModel: String, tasks: String, seconds: Double) {
    self.queries = queries
    self.edgeModel = edgeModel
    self.cloudModel = cloudModel
    self.tasks = tasks
    self.seconds = seconds
  }

  public var edgeAccuracy: Double { accuracy(\.edge) }
  public var cloudAccuracy: Double { accuracy(\.cloud) }
  func accuracy(_ side: KeyPath<QueryEvaluation, ModelAnswer>) -> Double {
    let known = queries.compactMap { $0[keyPath: side].correct }
    return queries.isEmpty || known.count < queries.count
      ? .nan : Double(known.filter { $0 }.count) / Double(known.count)
  }

  /// Nothing measured: each request's lengths as both models' replies, correctness unknown, no agreement trace.
  public static func unmeasured(
    _ requests: [(id: Int, prompt: Int, output: Int)], edgeModel: String, cloudModel: String
  )
    -> TaskEvaluation
  {
    let queries = requests.map { r in
      let answer = ModelAnswer(reply: "", outputTokens: r.output, correct: nil, minProbability: .nan, meanEntropy: .nan)
      return QueryEvaluation(
        id: r.id, promptTokens: r.prompt, multipleChoice: false, edge: answer, cloud: answer,
        trace: MatchTrace(runs: [], depth: 0, maxNewTokens: r.output, outputTokens: r.output))
    }
    return TaskEvaluation(
      queries: queries, edgeModel: edgeModel, cloudModel: cloudModel, tasks: "(none: timing only)", seconds: 0)
  }

  /// Whether the answers were measured (on questions with references).
  public var isMeasured: Bool { queries.allSatisfy { $0.cloud.correct != nil } }
}
