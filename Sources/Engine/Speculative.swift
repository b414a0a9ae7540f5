public import Catalog

/// Speculative decoding on one machine: a drafter proposes up to k tokens, the target verifies them in one
/// forward pass of k + 1 tokens, keeps the longest prefix that equals its own greedy choice plus its own next
/// token, and forgets the rest of its KV cache.
///
/// Verification computes every token as a decode step alone (`decodeArithmetic`), so the output is the target's
/// greedy output bit for bit, whatever the drafter proposes (the tests compare them for k = 1, 2, 4, 8 on split
/// and unsplit targets). Greedy acceptance only: sampling would need the rejection rule of Leviathan et al.

/// Proposes the next tokens of a sequence.
public protocol Drafter {
  /// Up to `count` tokens to follow `context` (fewer, or none, when it has no guess).
  mutating func propose(after context: [Int32], count: Int) -> [Int32]
}

/// Prompt lookup (Saxena, "Prompt lookup decoding", 2023): the most recent earlier occurrence of the context's
/// last n tokens (n from `maxNgram` down to `minNgram`) predicts what follows it. No model; it pays off where
/// replies copy from the prompt (summaries, code edits, extraction).
public struct PromptLookup: Drafter, Sendable {
  public var maxNgram: Int
  public var minNgram: Int

  public init(maxNgram: Int = 3, minNgram: Int = 1) {
    precondition(minNgram >= 1 && maxNgram >= minNgram, "n-gram sizes must satisfy 1 ≤ min ≤ max")
    self.maxNgram = maxNgram
    self.minNgram = minNgram
  }

  public mutating func propose(after context: [Int32], count: Int) -> [Int32] {
    guard count > 0 else { return [] }
    for n in stride(from: min(maxNgram, context.count - 1), through: minNgram, by: -1) {
      let tail = context[(context.count - n)...]
      // Latest match first: the most recent context is the best predictor.
      var start = context.count - n - 1
      while start >= 0 {
        if context[start..<(start + n)].elementsEqual(tail) {
          let from = start + n
          return Array(context[from..<min(context.count, from + count)])
        }
        start -= 1
      }
    }
    return []
  }
}

/// A separate (smaller) model drafting greedily, with its own KV cache kept in step with the context: what the
/// target rejected is forgotten before the next proposal.
public final class ModelDrafter: Drafter {
  public let model: LocalPipeline
  let sequence: Int
  /// The tokens whose keys and values the draft model's cache holds, in order.
  private var cached: [Int32] = []

  public init(model: LocalPipeline, sequence: Int = 0) {
    self.model = model
    self.sequence = sequence
  }

  deinit { model.release(sequence: sequence) }

  /// Reads `context` into the draft's cache without proposing (e.g. the prompt, while the target reads it).
  public func read(_ context: [Int32]) {
    guard !context.isEmpty else { return }
    let common = zip(cached, context).prefix { $0 == $1 }.count
    model.truncate(sequence: sequence, to: common)
    if common < context.count {
      _ = model.forward(
        [SequenceSpan(id: sequence, start: common, count: context.count - common)], tokens: Array(context[common...]))
    }
    cached = context
  }

  public func propose(after context: [Int32], count: Int) -> [Int32] {
    guard count > 0, !context.isEmpty else { return [] }
    // Keep the common prefix (at least one token must be fed to get logits for the next).
    var common = zip(cached, context).prefix { $0 == $1 }.count
    common = min(common, context.count - 1)
    model.truncate(sequence: sequence, to: common)
    var out = model.forward(
      [SequenceSpan(id: sequence, start: common, count: context.count - common)], tokens: Array(context[common...]))
    cached = context
    var proposal: [Int32] = []
    while true {
      let next = Int32(argmax(out.floats))
      proposal.append(next)
      if proposal.count == count { break }
      out = model.forward([SequenceSpan(id: sequence, start: cached.count, count: 1)], tokens: [next])
      cached.append(next)
    }
    return proposal
  }
}

extension LocalPipeline {
  /// A self-speculative draft (LayerSkip's early exit): the model's embedding and first `blocks` decoder blocks,
  /// then its final norm and head.
  public static func earlyExit(
    weights: any WeightSource, blocks: Int, threads: Int = 1, arithmetic: Arithmetic = .exact
  ) throws(CheckpointError) -> LocalPipeline {
    let n = weights.config.numHiddenLayers
    guard blocks >= 1 && blocks < n else {
      throw CheckpointError(
        .badConfig, file: "(early exit)", "keep 1…\(n - 1) of the model's \(n) blocks, not \(blocks)")
    }
    let body = try LlamaStage(weights: weights, layers: 0..<(blocks + 1), threads: threads, arithmetic: arithmetic)
    let head = try LlamaStage(weights: weights, layers: (n + 1)..<(n + 2), threads: threads, arithmetic: arithmetic)
    return LocalPipeline(stages: [body, head])
  }
}

/// What a speculative generation did: per verification, how many tokens were proposed and accepted.
public struct SpeculationStats: Sendable, Hashable, Codable {
  /// Drafted tokens per verification (0 when the drafter had no guess: a plain decode step).
  public var proposed: [Int] = []
  /// Of those, how many the target accepted (a prefix).
  public var accepted: [Int] = []

  public init() {}

  public var verifications: Int { proposed.count }
  /// Accepted ÷ proposed over the whole generation (NaN when nothing was proposed).
  public var acceptanceRate: Double {
    let p = proposed.reduce(0, +)
    return p == 0 ? .nan : Double(accepted.reduce(0, +)) / Double(p)
  }
  /// Tokens the target produced per verification pass (accepted drafts + its own token).
  public var tokensPerVerification: Double {
    verifications == 0 ? .nan : Double(accepted.reduce(0, +) + verifications) / Double(verifications)
  }
  /// How often the draft token at each position (0 = first after the context) was accepted, of how often it was
  /// proposed.
  public var acceptedByPosition: [(accepted: Int, proposed: Int)] {
    let depth = proposed.max() ?? 0
    return (0..<depth).map { i in
      (zip(proposed, accepted).filter { $0.1 > i }.count, proposed.filter { $0 > i }.count)
    }
  }
}

extension LocalPipeline {
  /// Generates up to `maxNewTokens` tokens greedily after `prompt`, `lookahead` drafted tokens verified at a
  /// time; the tokens equal `generate(prompt:maxNewTokens:stop:)`'s (greedy). Stops after a token of `stop`,
  /// which is kept. With `keepCache` the sequence's KV cache is left in place (the prompt and every generated
  /// token but the last), for inspection.
  public func generateSpeculative(
    prompt: [Int32], maxNewTokens: Int, lookahead: Int, drafter: inout some Drafter, sequence: Int = 0,
    stop: Set<Int32> = [], keepCache: Bool = false
  ) -> (tokens: [Int32], stats: SpeculationStats) {
    precondition(!prompt.isEmpty, "the prompt needs at least one token")
    precondition(lookahead >= 1, "lookahead must be at least 1")
    var stats = SpeculationStats()
    guard maxNewTokens > 0 else { return ([], stats) }
    defer { if !keepCache { release(sequence: sequence) } }
    let first = forward([SequenceSpan(id: sequence, start: 0, count: prompt.count)], tokens: prompt)
    var tokens = [Int32(argmax(first.floats))]
    var context = prompt + tokens
    while tokens.count < maxNewTokens && !stop.contains(tokens.last!) {
      let room = maxNewTokens - tokens.count
      let draft = Array(drafter.propose(after: context, count: min(lookahead, room)).prefix(min(lookahead, room)))
      // The last token (not yet in the cache) and the drafts, verified in one pass.
      let start = context.count - 1
      let out = forward(
        [SequenceSpan(id: sequence, start: start, count: 1 + draft.count)], tokens: [context.last!] + draft,
        allLogits: true, decodeArithmetic: true
      ).floats
      let vocab = out.count / (1 + draft.count)
      var accepted = 0
      var produced: [Int32] = []
      for i in 0...draft.count {
        let choice = Int32(argmax(out, (i * vocab)..<((i + 1) * vocab)))
        produced.append(choice)
        if i < draft.count && draft[i] == choice && !stop.contains(choice) {
          accepted += 1
        } else {
          break
        }
      }
      stats.proposed.append(draft.count)
      stats.accepted.append(accepted)
      // Positions start ... start + accepted hold the last token and the accepted drafts; the rest is rejected.
      truncate(sequence: sequence, to: start + 1 + accepted)
      for t in produced where tokens.count < maxNewTokens {
        tokens.append(t)
        context.append(t)
        if stop.contains(t) { break }
      }
    }
    // Tokens cut by maxNewTokens were verified but are not part of the output.
    truncate(sequence: sequence, to: context.count - 1)
    return (tokens, stats)
  }
}

/// Greedy's choice among `row` (`Sampler.argmax`: the lowest id of equals).
func argmax(_ row: [Float], _ range: Range<Int>? = nil) -> Int {
  row.withUnsafeBufferPointer { b in
    Int(Sampler.argmax(UnsafeBufferPointer(rebasing: b[range ?? 0..<row.count])))
  }
}
