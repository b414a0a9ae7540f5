import Catalog
public import Collaboration
public import EdgeLabCore
import Engine
public import Execution
import Foundation
public import Spec
import Tokenizer

/// Why the models of an edge–cloud experiment could not be measured.
public enum EvaluationError: Error, Equatable, CustomStringConvertible, ReportableError {
  /// Accuracy needs real weights and a tokenizer.
  case noCheckpoint(field: String)
  case tokenizer(String)
  /// A question whose prompt, with the longest reply, does not fit the model's positions.
  case promptTooLong(question: Int, tokens: Int, limit: Int)
  /// A multiple-choice letter the tokenizer cannot write as a token.
  case letter(String)

  public var description: String {
    switch self {
    case .noCheckpoint(let field):
      "\(field): accuracy is measured with the real model; give a checkpoint (a GGUF file or a Hugging Face directory)"
    case .tokenizer(let why): "tokenizer: \(why)"
    case .promptTooLong(let q, let n, let limit):
      "question \(q) has \(n) prompt tokens; with collaboration.max_answer_tokens it exceeds the model's \(limit) positions (fewer shots, or a shorter question)"
    case .letter(let l): "the tokenizer has no token for the answer letter ' \(l)'"
    }
  }
  public var failureClass: FailureClass { .specRefused }
  public var code: String {
    switch self {
    case .noCheckpoint: "evaluation_no_checkpoint"
    case .tokenizer: "evaluation_tokenizer"
    case .promptTooLong: "evaluation_prompt_too_long"
    case .letter: "evaluation_letter"
    }
  }
  public var details: [String: JSONValue] {
    switch self {
    case .noCheckpoint(let field): ["field": .string(field)]
    case .promptTooLong(let q, let n, let limit):
      ["question": .number(Double(q)), "tokens": .number(Double(n)), "limit": .number(Double(limit))]
    case .tokenizer, .letter: [:]
    }
  }
}

/// Measures an experiment's edge and target models on its questions, greedily, on this machine: each model's
/// reply and whether it is right, the edge model's confidence on its first tokens, and at every position of the
/// target's reply how far the edge model (drafting) agrees with it.
///
/// Multiple choice is scored as MMLU's harnesses do: the letter whose token has the highest log-likelihood after
/// the prompt (one forward pass, one output token). Free text: greedy decoding to the end of the line (or the
/// end of turn, or `max_answer_tokens`), scored by normalised exact match.
public struct ModelEvaluator: TaskEvaluator {
  public var threads: Int

  public init(threads: Int = 1) { self.threads = max(1, threads) }

  public func evaluate(_ x: ResolvedExperiment) throws -> TaskEvaluation {
    let started = Date()
    guard let c = x.spec.collaboration else {
      return TaskEvaluation(queries: [], edgeModel: "", cloudModel: "", tasks: "", seconds: 0)
    }
    guard let path = x.spec.model.checkpoint else { throw EvaluationError.noCheckpoint(field: "model.checkpoint") }
    guard let tasks = c.tasks else { throw EvaluationError.noCheckpoint(field: "collaboration.tasks") }
    let items = try tasks.load()
    let weights = try ModelSource.checkpoint(path: path, storage: .native).open()
    let tokenizer: Tokenizer
    do { tokenizer = try ModelTokenizer.load(model: path, weights: weights, override: nil) } catch {
      throw EvaluationError.tokenizer(error.description)
    }
    let arithmetic = x.spec.model.arithmetic
    let config = weights.config
    let target = try LocalPipeline(weights: weights, threads: threads, arithmetic: arithmetic)
    let edge: LocalPipeline
    if let n = c.edgeModel.earlyExit {
      _ = try c.edgeModel.config(target: config)
      edge = try LocalPipeline.earlyExit(weights: weights, blocks: n, threads: threads, arithmetic: arithmetic)
    } else {
      guard let other = c.edgeModel.model?.checkpoint else {
        throw EvaluationError.noCheckpoint(field: "collaboration.edge_model.model.checkpoint")
      }
      let w = try ModelSource.checkpoint(path: other, storage: .native).open()
      guard w.config.vocabSize == config.vocabSize else {
        throw SpecError(
          field: "collaboration.edge_model.model",
          "\(other) has \(w.config.vocabSize) tokens in its vocabulary, the target \(config.vocabSize); the edge model must share the target's tokenizer"
        )
      }
      edge = try LocalPipeline(weights: w, threads: threads, arithmetic: c.edgeModel.model?.arithmetic ?? .exact)
    }
    let stop = Self.replyStops(tokenizer, vocabulary: config.vocabSize)
    let limit = config.maxPositionEmbeddings - c.maxAnswerTokens - c.traceDepth
    var queries: [QueryEvaluation] = []
    for item in items {
      let prompt = tokenizer.encode(item.prompt, addSpecial: true)
      guard !prompt.isEmpty, prompt.count <= limit else {
        throw EvaluationError.promptTooLong(question: item.id, tokens: prompt.count, limit: limit)
      }
      if let choices = item.choices {
        let letters = try (0..<choices.count).map { i -> Int32 in
          let ids = tokenizer.encode(" " + TaskItem.letter(i))
          guard let last = ids.last else { throw EvaluationError.letter(TaskItem.letter(i)) }
          return last
        }
        let cloud = choose(target, prompt: prompt, letters: letters, answer: item.answer)
        let edgeAnswer = choose(edge, prompt: prompt, letters: letters, answer: item.answer)
        var q = QueryEvaluation(
          id: item.id, promptTokens: prompt.count, multipleChoice: true, edge: edgeAnswer, cloud: cloud,
          trace: MatchTrace(runs: [], depth: c.traceDepth, maxNewTokens: 1, outputTokens: 1))
        q.promptIDs = prompt
        queries.append(q)
        continue
      }
      let (cloudTokens, _, _) = generate(target, prompt: prompt, max: c.maxAnswerTokens, stop: stop, probe: 0)
      // The edge model keeps its cache of the prompt for the agreement below.
      let (edgeTokens, edgeProbe, edgeCache) = generate(
        edge, prompt: prompt, max: c.maxAnswerTokens, stop: stop, probe: c.probeTokens, keep: true)
      func answer(_ tokens: [Int32], _ probe: (Double, Double)) -> ModelAnswer {
        let reply = tokenizer.decode(tokens.filter { !tokenizer.stopTokens.contains($0) }, skipSpecial: true)
        return ModelAnswer(
          reply: reply, outputTokens: tokens.count, correct: Scoring.exactMatch(reply: reply, answer: item.answer),
          minProbability: probe.0, meanEntropy: probe.1)
      }
      let runs = agreement(
        draft: edge, cached: edgeCache, prompt: prompt, reply: cloudTokens, depth: c.traceDepth, stop: stop)
      var q = QueryEvaluation(
        id: item.id, promptTokens: prompt.count, multipleChoice: false, edge: answer(edgeTokens, edgeProbe),
        cloud: answer(cloudTokens, (.nan, .nan)),
        trace: MatchTrace(
          runs: runs, depth: c.traceDepth, maxNewTokens: c.maxAnswerTokens, outputTokens: cloudTokens.count))
      q.promptIDs = prompt
      queries.append(q)
    }
    let edgeName =
      c.edgeModel.earlyExit.map { "\(x.spec.model.displayName) first \($0) of \(config.numHiddenLayers) blocks + head" }
      ?? c.edgeModel.model?.displayName ?? "?"
    return TaskEvaluation(
      queries: queries, edgeModel: edgeName, cloudModel: x.spec.model.displayName, tasks: tasks.displayName,
      seconds: Date().timeIntervalSince(started))
  }

  public func trace(_ x: ResolvedExperiment, requests: [RequestPlan]) throws -> TaskEvaluation? {
    let started = Date()
    guard let c = x.spec.collaboration, let n = c.edgeModel.earlyExit else { return nil }
    let w = x.spec.model
    let source: ModelSource =
      if let path = w.checkpoint {
        .checkpoint(path: path, storage: .native)
      } else {
        .synthetic(preset: w.preset ?? "tiny", seed: w.weightsSeed ?? x.spec.seed, dtype: WeightDType(w.precision))
      }
    let weights = try source.open()
    let target = try LocalPipeline(weights: weights, threads: threads, arithmetic: w.arithmetic)
    _ = try c.edgeModel.config(target: weights.config)
    let edge = try LocalPipeline.earlyExit(weights: weights, blocks: n, threads: threads, arithmetic: w.arithmetic)
    var queries: [QueryEvaluation] = []
    for r in requests {
      let (reply, _, _) = generate(target, prompt: r.promptTokens, max: r.outputLength, stop: [], probe: 0)
      // The draft reads the prompt first (as the edge worker does while the target reads it), then drafts.
      _ = edge.forward([SequenceSpan(id: 0, start: 0, count: r.promptTokens.count)], tokens: r.promptTokens)
      let runs = agreement(
        draft: edge, cached: r.promptTokens, prompt: r.promptTokens, reply: reply, depth: c.traceDepth, stop: [])
      let answer = ModelAnswer(
        reply: "", outputTokens: reply.count, correct: nil, minProbability: .nan, meanEntropy: .nan)
      var q = QueryEvaluation(
        id: r.id, promptTokens: r.promptTokens.count, multipleChoice: false, edge: answer, cloud: answer,
        trace: MatchTrace(runs: runs, depth: c.traceDepth, maxNewTokens: r.outputLength, outputTokens: reply.count))
      q.promptIDs = r.promptTokens
      queries.append(q)
    }
    return TaskEvaluation(
      queries: queries, edgeModel: "\(w.displayName) first \(n) of \(weights.config.numHiddenLayers) blocks + head",
      cloudModel: w.displayName, tasks: "the workload's prompts (agreement only)",
      seconds: Date().timeIntervalSince(started))
  }

  /// What ends a free-text reply: the end of its turn, or any token that writes a line break.
  static func replyStops(_ tokenizer: Tokenizer, vocabulary: Int) -> Set<Int32> {
    var stop = tokenizer.stopTokens
    for id in 0..<min(tokenizer.vocabularySize, vocabulary) where tokenizer.decode([Int32(id)]).contains("\n") {
      stop.insert(Int32(id))
    }
    return stop
  }

  /// The letter with the highest logit after the prompt; its probability and the entropy among the letters.
  func choose(_ model: LocalPipeline, prompt: [Int32], letters: [Int32], answer: String) -> ModelAnswer {
    let out = model.forward([SequenceSpan(id: 0, start: 0, count: prompt.count)], tokens: prompt).floats
    model.release(sequence: 0)
    let logits = letters.map { Double(out[Int($0)]) }
    let (p, h) = Self.distribution(logits)
    let best = logits.indices.max { logits[$0] < logits[$1] } ?? 0
    let letter = TaskItem.letter(best)
    return ModelAnswer(
      reply: letter, outputTokens: 1, correct: letter == answer, minProbability: p[best], meanEntropy: h)
  }

  /// Greedy tokens after the prompt (the stop token kept), and over the first `probe` of them the smallest
  /// probability of a chosen token and the mean entropy. With `keep`, sequence 0's cache is kept and the tokens it
  /// holds are returned (the prompt and every token but the last).
  func generate(
    _ model: LocalPipeline, prompt: [Int32], max: Int, stop: Set<Int32>, probe: Int, keep: Bool = false
  ) -> ([Int32], (Double, Double), [Int32]) {
    var tokens: [Int32] = []
    var minP = 1.0
    var entropy = 0.0
    var out = model.forward([SequenceSpan(id: 0, start: 0, count: prompt.count)], tokens: prompt).floats
    while true {
      let next = out.withUnsafeBufferPointer { Sampler.argmax($0) }
      if tokens.count < probe {
        let (p, h) = Self.distribution(out.map(Double.init))
        minP = Swift.min(minP, p[Int(next)])
        entropy += h
      }
      tokens.append(next)
      if tokens.count == max || stop.contains(next) { break }
      out =
        model.forward([SequenceSpan(id: 0, start: prompt.count + tokens.count - 1, count: 1)], tokens: [next]).floats
    }
    let probed = Swift.min(probe, tokens.count)
    let cached = prompt + tokens.dropLast()
    if !keep { model.release(sequence: 0) }
    return (tokens, probed > 0 ? (minP, entropy / Double(probed)) : (.nan, .nan), cached)
  }

  /// Softmax probabilities and entropy (nats) of logits.
  static func distribution(_ logits: [Double]) -> ([Double], Double) {
    let m = logits.max() ?? 0
    let e = logits.map { exp($0 - m) }
    let z = e.reduce(0, +)
    let p = e.map { $0 / z }
    let h = -p.reduce(0) { $0 + ($1 > 0 ? $1 * log($1) : 0) }
    return (p, h)
  }

  /// At each position j of the target's reply but the last: how many of the draft's greedy tokens after the
  /// prompt and reply[0…j] equal reply[j+1…] (up to `depth`; a stop token is never counted). The draft's KV
  /// cache (holding `cached`) keeps what the next position shares.
  func agreement(
    draft: LocalPipeline, cached: [Int32], prompt: [Int32], reply: [Int32], depth: Int, stop: Set<Int32>
  ) -> [Int] {
    defer { draft.release(sequence: 0) }
    guard reply.count > 1 else { return [] }
    var cached = cached
    var runs: [Int] = []
    for j in 0..<(reply.count - 1) {
      let context = prompt + reply[0...j]
      let common = Swift.min(zip(cached, context).prefix { $0 == $1 }.count, context.count - 1)
      draft.truncate(sequence: 0, to: common)
      var out = draft.forward(
        [SequenceSpan(id: 0, start: common, count: context.count - common)], tokens: Array(context[common...]))
      cached = context
      let expected = reply[(j + 1)...]
      var r = 0
      while r < depth && r < expected.count {
        let next = out.floats.withUnsafeBufferPointer { Sampler.argmax($0) }
        guard next == expected[expected.startIndex + r], !stop.contains(next) else { break }
        r += 1
        if r == depth || r == expected.count { break }
        out = draft.forward([SequenceSpan(id: 0, start: cached.count, count: 1)], tokens: [next])
        cached.append(next)
      }
      runs.append(r)
    }
    return runs
  }
}
