import Catalog
import EdgeLabCore
import Foundation
import TestSupport
import Testing

@testable import Engine

/// The members of a group in one process, each on its own thread: every exchange waits for all of them, then
/// gives each the first member's values (broadcast) or their sum in member order (all-reduce).
final class ThreadExchange: @unchecked Sendable {
  let count: Int
  private let lock = NSCondition()
  private var slots: [[Float]]
  private var arrived = 0
  private var round = 0
  private var result: [Float] = []

  init(members: Int) {
    count = members
    slots = Array(repeating: [], count: members)
  }

  struct Member: GroupExchange {
    let group: ThreadExchange
    let index: Int
    func broadcast(_ values: inout [Float]) { group.exchange(index, &values, sum: false) }
    func allReduce(_ values: inout [Float]) { group.exchange(index, &values, sum: true) }
  }

  func member(_ i: Int) -> Member { Member(group: self, index: i) }

  func exchange(_ i: Int, _ values: inout [Float], sum: Bool) {
    lock.lock()
    defer { lock.unlock() }
    let mine = round
    slots[i] = values
    arrived += 1
    if arrived == count {
      var out = slots[0]
      if sum {
        for j in 1..<count { for k in out.indices { out[k] += slots[j][k] } }
      }
      result = out
      arrived = 0
      round += 1
      lock.broadcast()
    } else {
      while round == mine { lock.wait() }
    }
    values = result
  }
}

/// A stage shared by a tensor-parallel group gives the unsplit model's greedy tokens, and logits within a small
/// tolerance of its logits (only the order of the partial sums differs), for every weight type, 2 and 4
/// members, even and uneven shares.
@Suite("Tensor-parallel shards of a stage")
struct TensorShardTests {
  /// Four KV heads and 1024 FFN columns (whole 256-value K-quant blocks per member at four members).
  static let config = ModelConfig(
    hiddenSize: 256, numHiddenLayers: 3, numAttentionHeads: 8, numKeyValueHeads: 4, intermediateSize: 1024,
    vocabSize: 256, ropeTheta: 10_000, tieWordEmbeddings: true, maxPositionEmbeddings: 512)
  static let prompt: [Int32] = [5, 17, 3, 99, 42, 5, 17, 3, 8, 64, 5, 17]

  /// Greedy tokens and every step's logits of a model whose blocks are shared by a group with these shares:
  /// the first member holds the embedding, every block's share and the head; the others their shares.
  static func generate(
    _ weights: any WeightSource, kvHeads: [Int], ffnColumns: [Int], steps: Int, arithmetic: Arithmetic = .exact
  ) throws -> (tokens: [Int32], logits: [[Float]]) {
    let c = weights.config
    let n = kvHeads.count
    let stages = try (0..<n).map { i in
      try LlamaStage(
        weights: weights, layers: i == 0 ? 0..<(c.numHiddenLayers + 2) : 1..<(c.numHiddenLayers + 1),
        arithmetic: arithmetic, shard: TensorShard.member(i, kvHeads: kvHeads, ffnColumns: ffnColumns))
    }
    let exchange = ThreadExchange(members: n)
    var tokens: [Int32] = []
    var logits: [[Float]] = []
    let done = DispatchGroup()
    for i in 1..<n {
      done.enter()
      Thread.detachNewThread {
        var position = 0
        var count = Self.prompt.count
        for _ in 0..<steps {
          _ = stages[i].forward(
            [SequenceSpan(id: 0, start: position, count: count)], .hidden([]), exchange: exchange.member(i))
          position += count
          count = 1
        }
        done.leave()
      }
    }
    var input = Self.prompt
    var position = 0
    for _ in 0..<steps {
      let out = stages[0].forward(
        [SequenceSpan(id: 0, start: position, count: input.count)], .tokens(input), exchange: exchange.member(0))
      let l = out.floats
      logits.append(l)
      let next = l.withUnsafeBufferPointer { Sampler.argmax($0) }
      tokens.append(next)
      position += input.count
      input = [next]
    }
    done.wait()
    return (tokens, logits)
  }

  static func unsplit(_ weights: any WeightSource, steps: Int, arithmetic: Arithmetic = .exact) throws -> (
    tokens: [Int32], logits: [[Float]]
  ) {
    let c = weights.config
    let stage = try LlamaStage(weights: weights, layers: 0..<(c.numHiddenLayers + 2), arithmetic: arithmetic)
    var tokens: [Int32] = []
    var logits: [[Float]] = []
    var input = Self.prompt
    var position = 0
    for _ in 0..<steps {
      let l = stage.forward([SequenceSpan(id: 0, start: position, count: input.count)], .tokens(input)).floats
      logits.append(l)
      let next = l.withUnsafeBufferPointer { Sampler.argmax($0) }
      tokens.append(next)
      position += input.count
      input = [next]
    }
    return (tokens, logits)
  }

  /// The largest difference of a logit from the unsplit model's, relative to the largest logit's magnitude.
  static func relativeError(_ a: [[Float]], _ b: [[Float]]) -> Float {
    var worst: Float = 0
    for (x, y) in zip(a, b) {
      let scale = max(y.map { abs($0) }.max() ?? 1, 1e-6)
      for (u, v) in zip(x, y) { worst = max(worst, abs(u - v) / scale) }
    }
    return worst
  }

  /// The tolerance the split model's logits keep, relative to the largest logit: partial sums added in another
  /// order move them by about 10⁻⁶ (measured on every case here), a hundredth of this.
  static let tolerance: Float = 1e-4

  /// K-quants: a KV head's query columns (2 heads of 128) and each member's FFN columns are whole 256-value
  /// blocks.
  static let wide = ModelConfig(
    hiddenSize: 1024, numHiddenLayers: 1, numAttentionHeads: 8, numKeyValueHeads: 4, intermediateSize: 1024,
    vocabSize: 256, ropeTheta: 10_000, tieWordEmbeddings: true, maxPositionEmbeddings: 512)

  @Test(arguments: [WeightDType.f32, .bf16, .f16, .q8_0, .q4_0, .q4_1, .q4_K, .q6_K])
  func sharesGiveTheUnsplitTokens(dtype: WeightDType) throws {
    let weights = SyntheticWeights(
      config: dtype.blockValues == 256 ? Self.wide : Self.config, seed: 9, dtype: dtype)
    let kQuant = dtype.blockValues == 256
    let steps = kQuant ? 4 : 8
    let reference = try Self.unsplit(weights, steps: steps)
    let shares: [([Int], [Int])] =
      kQuant
      ? [([1, 3], [256, 768]), ([1, 1, 1, 1], [256, 256, 256, 256])]
      : [([2, 2], [512, 512]), ([1, 3], [128, 896]), ([1, 1, 1, 1], [128, 384, 256, 256])]
    for (heads, columns) in shares {
      let split = try Self.generate(weights, kvHeads: heads, ffnColumns: columns, steps: steps)
      #expect(split.tokens == reference.tokens, "\(dtype) heads \(heads) columns \(columns)")
      let error = Self.relativeError(split.logits, reference.logits)
      #expect(error <= Self.tolerance, "\(dtype) heads \(heads) columns \(columns): \(error)")
    }
  }

  /// llama.cpp's arithmetic too (8-bit inputs of quantized products, float16 KV cache): the inputs of the
  /// sliced projections are quantized on the same blocks as unsplit, so only the order of sums differs.
  @Test(arguments: [WeightDType.q8_0, .q4_0])
  func sharesKeepLlamaCppArithmetic(dtype: WeightDType) throws {
    let weights = SyntheticWeights(config: Self.config, seed: 9, dtype: dtype)
    let reference = try Self.unsplit(weights, steps: 6, arithmetic: .llamaCpp)
    let split = try Self.generate(
      weights, kvHeads: [1, 3], ffnColumns: [256, 768], steps: 6, arithmetic: .llamaCpp)
    #expect(split.tokens == reference.tokens)
    #expect(Self.relativeError(split.logits, reference.logits) <= Self.tolerance)
  }

  /// Real GGUF files (random weights written by the `gguf` package, whose greedy tokens vary where synthetic
  /// weights' repeat one token): two members, one KV head each.
  @Test(arguments: ["tiny-llama-f32.gguf", "tiny-llama-q8_0.gguf", "tiny-llama-q4_0.gguf", "tiny-llama-q4_1.gguf"])
  func ggufFilesGiveTheUnsplitTokens(file: String) throws {
    let weights = try GGUFWeights(path: GGUFFixtures.directory + "/" + file)
    let reference = try Self.unsplit(weights, steps: 8)
    let f = weights.config.intermediateSize
    for columns in [[f / 2, f / 2], [32, f - 32]] {
      let split = try Self.generate(weights, kvHeads: [1, 1], ffnColumns: columns, steps: 8)
      #expect(split.tokens == reference.tokens, "\(file) columns \(columns)")
      #expect(Self.relativeError(split.logits, reference.logits) <= Self.tolerance, "\(file) columns \(columns)")
    }
  }

  @Test func sharesThatCutABlockOrLeaveTheModelAreRefusedByName() throws {
    let weights = SyntheticWeights(config: Self.config, seed: 9, dtype: .q4_0)
    do {
      _ = try LlamaStage(
        weights: weights, layers: 1..<2, shard: TensorShard(kvHeads: 0..<2, ffnColumns: 0..<100))
      Issue.record("a share that cuts a Q4_0 block was accepted")
    } catch {
      #expect(error.description.contains("mlp.down_proj.weight") && error.description.contains("multiples of 32"))
    }
    #expect(throws: CheckpointError.self) {
      try LlamaStage(weights: weights, layers: 1..<2, shard: TensorShard(kvHeads: 2..<5, ffnColumns: 0..<128))
    }
    // A member holds its share of the weights.
    let whole = try LlamaStage(weights: weights, layers: 1..<4).weightBytes
    let half = try LlamaStage(
      weights: weights, layers: 1..<4, shard: TensorShard(kvHeads: 0..<2, ffnColumns: 0..<512)
    ).weightBytes
    #expect(abs(Double(half) / Double(whole) - 0.5) < 0.01)
  }
}
