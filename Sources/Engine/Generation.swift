public import Catalog
public import EdgeLabCore
import Foundation

/// How the next token is chosen from logits.
public struct Sampler: Sendable, Hashable {
  /// 0 means greedy (argmax; ties go to the lowest id).
  public var temperature: Double
  /// Keep only the k most likely tokens (0: all).
  public var topK: Int
  /// Keep the smallest set of most likely tokens whose probability reaches p (1: all).
  public var topP: Double
  public var seed: UInt64

  public init(temperature: Double = 0, topK: Int = 0, topP: Double = 1, seed: UInt64 = 0) {
    self.temperature = temperature
    self.topK = topK
    self.topP = topP
    self.seed = seed
  }

  public static let greedy = Sampler()

  public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
    var best = 0
    for i in 1..<logits.count where logits[i] > logits[best] { best = i }
    return Int32(best)
  }

  /// Picks a token. `rng` advances only when sampling (not for greedy decoding).
  public func pick(_ logits: UnsafeBufferPointer<Float>, _ rng: inout SeededRandom) -> Int32 {
    if temperature <= 0 { return Self.argmax(logits) }
    var order = Array(0..<logits.count)
    order.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
    if topK > 0 && topK < order.count { order.removeLast(order.count - topK) }
    let maxLogit = Double(logits[order[0]])
    var probs = order.map { exp((Double(logits[$0]) - maxLogit) / temperature) }
    let total = probs.reduce(0, +)
    probs = probs.map { $0 / total }
    if topP < 1 {
      var cumulative = 0.0
      var keep = 0
      while keep < probs.count {
        cumulative += probs[keep]
        keep += 1
        if cumulative >= topP { break }
      }
      order.removeLast(order.count - keep)
      probs.removeLast(probs.count - keep)
      let kept = probs.reduce(0, +)
      probs = probs.map { $0 / kept }
    }
    var u = rng.nextUnit()
    for (i, p) in probs.enumerated() {
      if u < p { return Int32(order[i]) }
      u -= p
    }
    return Int32(order[order.count - 1])
  }
}

/// Stages chained in one process: the unsplit model is a pipeline of one stage.
public struct LocalPipeline: Sendable {
  public let stages: [LlamaStage]

  public init(stages: [LlamaStage]) { self.stages = stages }

  /// Builds stages cutting the model at `cuts` (problem-layer indices); no cuts is the whole model.
  public init(
    weights: any WeightSource, cuts: [Int] = [], threads: Int = 1, arithmetic: Arithmetic = .exact
  ) throws(CheckpointError) {
    let total = weights.config.numHiddenLayers + 2
    let bounds = [0] + cuts.sorted() + [total]
    var stages: [LlamaStage] = []
    for (a, b) in zip(bounds, bounds.dropFirst()) {
      stages.append(try LlamaStage(weights: weights, layers: a..<b, threads: threads, arithmetic: arithmetic))
    }
    self.stages = stages
  }

  /// Runs a batch through every stage; returns the last stage's output (`decodeArithmetic`: see
  /// `LlamaStage.forward`).
  public func forward(
    _ spans: [SequenceSpan], tokens: [Int32], allLogits: Bool = false, decodeArithmetic: Bool = false
  ) -> StageOutput {
    var input = StageInput.tokens(tokens)
    var out = StageOutput.hidden([])
    for s in stages {
      out = s.forward(spans, input, allLogits: allLogits, decodeArithmetic: decodeArithmetic)
      if case .hidden(let h) = out { input = .hidden(h) }
    }
    return out
  }

  public func release(sequence: Int) { for s in stages { s.release(sequence: sequence) } }

  /// Forgets a sequence's positions from `length` on, on every stage.
  public func truncate(sequence: Int, to length: Int) { for s in stages { s.truncate(sequence: sequence, to: length) } }
}

/// A finished generation.
public struct GenerationResult: Sendable {
  public var tokens: [Int32]
  /// Logits at every position that produced a generated token (row-major [tokens × vocab]) when asked for.
  public var logits: [Float]
  public var prefillSeconds: Double
  public var decodeSeconds: Double
  public var decodeTokensPerSecond: Double {
    tokens.count > 1 && decodeSeconds > 0 ? Double(tokens.count - 1) / decodeSeconds : .nan
  }
}

extension LocalPipeline {
  /// Generates `maxNewTokens` tokens after `prompt`, or fewer when a token of `stop` comes (it is kept as the
  /// last token). `onToken` sees each token as soon as it is chosen.
  public func generate(
    prompt: [Int32], maxNewTokens: Int, sampler: Sampler = .greedy, sequence: Int = 0,
    recordLogits: Bool = false, stop: Set<Int32> = [], onToken: (Int32) -> Void = { _ in }
  ) -> GenerationResult {
    precondition(!prompt.isEmpty, "the prompt needs at least one token")
    var rng = SeededRandom(seed: sampler.seed)
    var tokens: [Int32] = []
    var logits: [Float] = []
    let t0 = monotonic()
    var out = forward([SequenceSpan(id: sequence, start: 0, count: prompt.count)], tokens: prompt)
    let t1 = monotonic()
    for step in 0..<maxNewTokens {
      let row = out.floats
      if recordLogits { logits += row }
      let next = row.withUnsafeBufferPointer { sampler.pick($0, &rng) }
      tokens.append(next)
      onToken(next)
      if step + 1 == maxNewTokens || stop.contains(next) { break }
      out = forward([SequenceSpan(id: sequence, start: prompt.count + step, count: 1)], tokens: [next])
    }
    let t2 = monotonic()
    release(sequence: sequence)
    return GenerationResult(tokens: tokens, logits: logits, prefillSeconds: t1 - t0, decodeSeconds: t2 - t1)
  }
}

func monotonic() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// This process's memory use, from /proc/self/status.
public enum ProcessMemory {
  /// Peak resident set size (VmHWM) in bytes; 0 where unavailable.
  public static func peakResidentBytes() -> Int { field("VmHWM:") }
  /// Current resident set size (VmRSS) in bytes.
  public static func residentBytes() -> Int { field("VmRSS:") }
  /// Sets the peak resident set size back to the current one (Linux: "5" written to /proc/self/clear_refs);
  /// returns whether the kernel took it.
  @discardableResult
  public static func resetPeak() -> Bool {
    guard let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
    defer { try? h.close() }
    return (try? h.write(contentsOf: Data("5".utf8))) != nil
  }

  static func field(_ name: String) -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in s.split(separator: "\n") where line.hasPrefix(name) {
      let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
      return kb * 1024
    }
    return 0
  }
}
