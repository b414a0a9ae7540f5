import Catalog
import EdgeLabCore
import Foundation
import TestSupport
import Testing

@testable import Engine

/// Speculative decoding is lossless: whatever the drafter proposes, the tokens are the target's greedy tokens,
/// and the KV cache after rejections is the cache of a run that never saw the rejected tokens.
@Suite("Speculative decoding")
struct SpeculativeTests {
  static let prompt: [Int32] = [5, 17, 3, 99, 42, 5, 17, 3, 8, 64, 5, 17]

  /// A target and its drafters: the same weights (every proposal accepted), other weights, prompt lookup (no
  /// model), and the target's own greedy tokens with every third proposal position wrong (rejections at every
  /// depth of a draft, which synthetic models, repeating one token, would rarely give).
  enum DraftKind: String, CaseIterable, Sendable { case same, other, lookup, corrupted }

  static func drafter(
    _ kind: DraftKind, for weights: any WeightSource, config: ModelConfig, truth: [Int32] = []
  ) throws -> any Drafter {
    switch kind {
    case .same: return ModelDrafter(model: try LocalPipeline(weights: weights))
    case .other: return ModelDrafter(model: try LocalPipeline(weights: SyntheticWeights(config: config, seed: 77)))
    case .lookup: return PromptLookup()
    case .corrupted: return Corrupted(prompt: Self.prompt.count, truth: truth, vocabulary: config.vocabSize)
    }
  }

  /// Proposes the right tokens, except at generated positions p with p % 3 == 1 (a wrong id there).
  struct Corrupted: Drafter {
    let prompt: Int
    let truth: [Int32]
    let vocabulary: Int
    mutating func propose(after context: [Int32], count: Int) -> [Int32] {
      let p = context.count - prompt
      guard p < truth.count else { return [] }
      return (p..<min(truth.count, p + count)).map { i in
        i % 3 == 1 ? Int32((Int(truth[i]) + 1) % vocabulary) : truth[i]
      }
    }
  }

  @Test(arguments: [1, 2, 4, 8], DraftKind.allCases)
  func syntheticTargetsGiveTheirGreedyTokens(lookahead: Int, kind: DraftKind) throws {
    let config = ModelPreset.tiny.config
    let weights = SyntheticWeights(config: config, seed: 3)
    for cuts in [[], [2]] {
      let target = try LocalPipeline(weights: weights, cuts: cuts)
      let greedy = target.generate(prompt: Self.prompt, maxNewTokens: 24).tokens
      var drafter = try Self.drafter(kind, for: weights, config: config, truth: greedy)
      let (tokens, stats) = target.generateSpeculative(
        prompt: Self.prompt, maxNewTokens: 24, lookahead: lookahead, drafter: &drafter)
      #expect(tokens == greedy, "cuts \(cuts), k = \(lookahead), \(kind) drafter")
      // Each verification yields its accepted drafts and one token of the target's own.
      #expect(stats.accepted.reduce(0, +) + stats.verifications + 1 >= tokens.count)
      #expect(zip(stats.accepted, stats.proposed).allSatisfy { $0 <= $1 && $1 <= lookahead })
      if kind == .same { #expect(stats.accepted == stats.proposed, "the target's own drafts are all accepted") }
      if kind == .corrupted && lookahead > 1 {
        #expect(stats.accepted.contains { $0 > 0 } && zip(stats.accepted, stats.proposed).contains { $0 < $1 })
      }
    }
  }

  /// Quantized GGUF weights in llama.cpp's arithmetic (8-bit inputs, float16 cache), split and unsplit.
  @Test(arguments: ["tiny-llama-q8_0.gguf", "tiny-llama-q4_0.gguf", "tiny-llama-q4_k.gguf"], [1, 4])
  func ggufTargetsGiveTheirGreedyTokens(model: String, lookahead: Int) throws {
    let weights = try GGUFWeights(path: GGUFFixtures.directory + "/" + model)
    let prompt = Self.prompt.map { $0 % Int32(weights.config.vocabSize) }
    for cuts in [[], [2]] {
      let target = try LocalPipeline(weights: weights, cuts: cuts, arithmetic: .llamaCpp)
      let greedy = target.generate(prompt: prompt, maxNewTokens: 16).tokens
      var same: any Drafter = ModelDrafter(model: try LocalPipeline(weights: weights, arithmetic: .llamaCpp))
      #expect(
        target.generateSpeculative(prompt: prompt, maxNewTokens: 16, lookahead: lookahead, drafter: &same).tokens
          == greedy)
      var lookup: any Drafter = PromptLookup()
      #expect(
        target.generateSpeculative(prompt: prompt, maxNewTokens: 16, lookahead: lookahead, drafter: &lookup).tokens
          == greedy)
      var corrupted: any Drafter = Corrupted(prompt: prompt.count, truth: greedy, vocabulary: weights.config.vocabSize)
      let (tokens, stats) = target.generateSpeculative(
        prompt: prompt, maxNewTokens: 16, lookahead: lookahead, drafter: &corrupted)
      #expect(tokens == greedy)
      #expect(stats.accepted.reduce(0, +) < stats.proposed.reduce(0, +))
    }
  }

  /// After rejections, every stage's KV cache equals, byte for byte, the cache of plain decoding of the same
  /// tokens.
  @Test(arguments: [[], [2]])
  func theCacheAfterRollbackIsTheCacheOfPlainDecoding(cuts: [Int]) throws {
    let config = ModelPreset.tiny.config
    let weights = SyntheticWeights(config: config, seed: 3)
    let target = try LocalPipeline(weights: weights, cuts: cuts)
    let greedy = target.generate(prompt: Self.prompt, maxNewTokens: 20).tokens
    var drafter: any Drafter = try Self.drafter(.corrupted, for: weights, config: config, truth: greedy)
    let (tokens, stats) = target.generateSpeculative(
      prompt: Self.prompt, maxNewTokens: 20, lookahead: 4, drafter: &drafter, keepCache: true)
    #expect(stats.accepted.reduce(0, +) < stats.proposed.reduce(0, +), "the test needs rejected drafts")
    let plain = try LocalPipeline(weights: weights, cuts: cuts)
    _ = plain.forward([SequenceSpan(id: 0, start: 0, count: Self.prompt.count)], tokens: Self.prompt)
    for (i, t) in tokens.dropLast().enumerated() {
      _ = plain.forward([SequenceSpan(id: 0, start: Self.prompt.count + i, count: 1)], tokens: [t])
    }
    for (a, b) in zip(target.stages, plain.stages) {
      #expect(a.kvContents(sequence: 0) == b.kvContents(sequence: 0))
    }
  }

  @Test func promptLookupProposesWhatFollowedTheLatestMatch() {
    var lookup = PromptLookup(maxNgram: 2)
    #expect(lookup.propose(after: [1, 2, 3, 4, 1, 2], count: 3) == [3, 4, 1])
    #expect(lookup.propose(after: [1, 2, 3, 9, 2, 3, 7, 2, 3], count: 2) == [7, 2])
    #expect(lookup.propose(after: [1, 2, 3], count: 4) == [])
    #expect(lookup.propose(after: [4, 4], count: 3) == [4])
  }

  @Test func statsCountPerPosition() {
    var s = SpeculationStats()
    s.proposed = [4, 4, 2, 0]
    s.accepted = [4, 1, 0, 0]
    #expect(s.verifications == 4)
    #expect(s.acceptanceRate == 5.0 / 10.0)
    #expect(s.tokensPerVerification == 9.0 / 4.0)
    #expect(s.acceptedByPosition.map(\.accepted) == [2, 1, 1, 1])
    #expect(s.acceptedByPosition.map(\.proposed) == [3, 3, 2, 2])
  }
}
