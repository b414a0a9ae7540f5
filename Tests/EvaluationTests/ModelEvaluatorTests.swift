import Collaboration
import DSL
import Engine
import Foundation
import TestSupport
import Testing
import Tokenizer

@testable import Evaluation

@Suite("Measuring models on questions")
struct ModelEvaluatorTests {
  /// The tiny Llama of the engine's fixtures (2 blocks, byte-level BPE tokenizer in the file).
  static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("EngineTests/Fixtures/gguf/tiny-llama-f32.gguf").path

  static func experiment(tasks: String, depth: Int = 6, edge: EdgeModelSpec = .earlyExit(1)) throws
    -> ResolvedExperiment
  {
    try Experiment("eval") {
      Model(.tiny, checkpoint: Self.model)
      Device("nano", .orinNano8GB)
      Device("server", .rtx3090Server)
      Collaboration(
        edge: "nano", model: edge, tasks: .file(tasks), probeTokens: 2, maxAnswerTokens: 10, traceDepth: depth)
      Strategy("spec", .speculative(lookahead: 2, target: "even"))
    }.spec.resolve()
  }

  static func taskFile() throws -> String {
    let path = temporaryDirectory() + "/tasks.jsonl"
    let lines = [
      #"{"prompt": "Question: What is 3 + 4?\nAnswer:", "answer": "7"}"#,
      #"{"prompt": "The quick brown fox", "answer": "jumps"}"#,
      #"{"prompt": "Pick a letter.", "choices": ["one", "two", "three"], "answer": "C"}"#,
      #"{"prompt": "Once upon a time there was", "answer": "a king"}"#,
    ]
    try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  @Test func measuresBothModelsAndTheirAgreement() throws {
    let x = try Self.experiment(tasks: Self.taskFile())
    let e = try ModelEvaluator().evaluate(x)
    #expect(e.queries.count == 4)
    let mc = e.queries[2]
    #expect(mc.multipleChoice && mc.cloud.outputTokens == 1 && ["A", "B", "C"].contains(mc.cloud.reply))
    #expect(mc.cloud.correct == (mc.cloud.reply == "C"))
    #expect(mc.edge.minProbability > 0 && mc.edge.minProbability <= 1)
    for q in e.queries where !q.multipleChoice {
      #expect((1...10).contains(q.cloud.outputTokens) && (1...10).contains(q.edge.outputTokens))
      #expect(q.trace.runs.count == q.cloud.outputTokens - 1 && q.trace.runs.allSatisfy { (0...6).contains($0) })
      #expect(q.edge.minProbability > 0 && q.edge.minProbability <= 1 && q.edge.meanEntropy >= 0)
      #expect(q.cloud.correct == Scoring.exactMatch(reply: q.cloud.reply, answer: ["7", "jumps", "", "a king"][q.id]))
    }
    // Deterministic: measured again, the same.
    // Deterministic: measured again, the same replies, confidences and agreement.
    let again = try ModelEvaluator().evaluate(x)
    #expect(again.queries.map(\.edge.reply) == e.queries.map(\.edge.reply))
    #expect(again.queries.map(\.cloud.reply) == e.queries.map(\.cloud.reply))
    #expect(again.queries.map(\.edge.minProbability) == e.queries.map(\.edge.minProbability))
    #expect(again.queries.map(\.trace) == e.queries.map(\.trace))
  }

  /// The agreement trace replays a real speculative run: for every lookahead up to its depth, the verifications
  /// (drafted and accepted per pass) are those of `generateSpeculative` with the same draft — the early exit,
  /// which agrees little, and the target itself as a separate model, which agrees wherever it can.
  @Test(arguments: [false, true])
  func theTraceReplaysARealSpeculativeRun(selfDraft: Bool) throws {
    let path = try Self.taskFile()
    let x = try Self.experiment(tasks: path, edge: selfDraft ? .model(.tiny, checkpoint: Self.model) : .earlyExit(1))
    let e = try ModelEvaluator().evaluate(x)
    let weights = try GGUFWeights(path: Self.model)
    let tokenizer = try ModelTokenizer.load(model: Self.model, weights: weights, override: nil)
    let stop = ModelEvaluator.replyStops(tokenizer, vocabulary: weights.config.vocabSize)
    let target = try LocalPipeline(weights: weights)
    let items = try TaskFiles.load(path)
    var compared = 0
    for q in e.queries where !q.multipleChoice {
      let prompt = tokenizer.encode(items[q.id].prompt, addSpecial: true)
      for k in [1, 2, 4, 6] {
        let draft =
          selfDraft ? try LocalPipeline(weights: weights) : try LocalPipeline.earlyExit(weights: weights, blocks: 1)
        var drafter = ModelDrafter(model: draft)
        let (tokens, stats) = target.generateSpeculative(
          prompt: prompt, maxNewTokens: 10, lookahead: k, drafter: &drafter, stop: stop)
        #expect(tokens.count == q.cloud.outputTokens)
        let replayed = SpeculationMath.replay(q.trace, lookahead: k)
        #expect(replayed.map(\.proposed) == stats.proposed, "question \(q.id), k = \(k)")
        #expect(replayed.map(\.accepted) == stats.accepted, "question \(q.id), k = \(k)")
        compared += stats.verifications
      }
    }
    #expect(compared > 0)
    if selfDraft {
      // The target drafting for itself: every draft is accepted up to the lookahead and the room left.
      #expect(
        e.queries.filter { !$0.multipleChoice }.allSatisfy { q in
          q.trace.runs.enumerated().allSatisfy { $1 == min(6, q.cloud.outputTokens - 1 - $0) }
        })
    }
  }

  @Test func refusesWhatItCannotMeasure() throws {
    var x = try Self.experiment(tasks: Self.taskFile())
    x.spec.model.checkpoint = nil
    #expect(throws: EvaluationError.noCheckpoint(field: "model.checkpoint")) { try ModelEvaluator().evaluate(x) }
    let long = temporaryDirectory() + "/long.jsonl"
    let prompt = String(repeating: "word ", count: 400)
    try "{\"prompt\": \"\(prompt)\", \"answer\": \"x\"}".write(toFile: long, atomically: true, encoding: .utf8)
    #expect {
      try ModelEvaluator().evaluate(try Self.experiment(tasks: long))
    } throws: { error in
      guard case .promptTooLong(0, _, let limit)? = error as? EvaluationError else { return false }
      return limit == 256 - 10 - 6
    }
    #expect(throws: TaskFileError.self) {
      try ModelEvaluator().evaluate(try Self.experiment(tasks: temporaryDirectory() + "/missing.jsonl"))
    }
  }
}
