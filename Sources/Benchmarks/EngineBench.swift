public import Catalog
import EdgeLabCore
public import Engine
import Foundation

/// Engine speed: prefill and decode tokens/s on a preset's true shapes with synthetic weights, and
/// this machine's memory read bandwidth — the roofline for batch-1 decoding, which reads every weight once
/// per token.
public enum EngineBench {
  public struct Result: Sendable, Codable {
    public var model: String
    public var dtype: String
    /// "exact" or "llama.cpp" (how quantized products and the KV cache round).
    public var arithmetic: String
    public var threads: Int
    public var promptTokens: Int
    public var newTokens: Int
    public var prefillTokensPerSecond: Double
    public var decodeTokensPerSecond: Double
    public var weightBytes: Int
    /// Weight bytes read per second while decoding (weight bytes × decode tokens/s).
    public var effectiveBandwidthGBs: Double
    public var peakResidentBytes: Int
    public var kernelISA: String
    /// OpenBLAS's kernels (prefill).
    public var blasCore: String
    public var repetitions: Int

    enum CodingKeys: String, CodingKey {
      case model
      case dtype
      case arithmetic
      case threads
      case repetitions
      case promptTokens = "prompt_tokens"
      case newTokens = "new_tokens"
      case prefillTokensPerSecond = "prefill_tokens_per_s"
      case decodeTokensPerSecond = "decode_tokens_per_s"
      case weightBytes = "weight_bytes"
      case effectiveBandwidthGBs = "effective_bandwidth_gb_s"
      case peakResidentBytes = "peak_resident_bytes"
      case kernelISA = "kernel_isa"
      case blasCore = "blas_core"
    }
  }

  /// Loads synthetic weights, warms up, then runs `repetitions` generations and reports medians.
  public static func run(
    model: String, dtype: WeightDType, prompt: Int, new: Int, threads: Int, repetitions: Int,
    arithmetic: Arithmetic = .exact, progress: (String) -> Void = { _ in }
  ) throws -> Result {
    guard let preset = ModelPreset.named(model) else {
      throw CheckpointError(
        .missingFile, file: model, "unknown model preset; known: \(ModelPreset.all.map(\.name).joined(separator: ", "))"
      )
    }
    if prompt + new > preset.config.maxPositionEmbeddings {
      throw CheckpointError(
        .badConfig, file: model,
        "\(prompt) prompt + \(new) new tokens exceed the model's \(preset.config.maxPositionEmbeddings) positions")
    }
    progress("generating synthetic \(preset.name) weights (\(dtype.rawValue))…")
    let pipeline = try LocalPipeline(
      weights: SyntheticWeights(config: preset.config, seed: 1, dtype: dtype), threads: threads, arithmetic: arithmetic)
    var rng = SeededRandom(seed: 2)
    let tokens = (0..<prompt).map { _ in Int32(rng.next() % UInt64(preset.config.vocabSize)) }
    progress("warm-up…")
    _ = pipeline.generate(prompt: Array(tokens.prefix(8)), maxNewTokens: 4)
    var prefill: [Double] = []
    var decode: [Double] = []
    for r in 0..<repetitions {
      let g = pipeline.generate(prompt: tokens, maxNewTokens: new, sequence: r)
      prefill.append(Double(prompt) / g.prefillSeconds)
      decode.append(g.decodeTokensPerSecond)
      progress(
        "run \(r + 1)/\(repetitions): prefill \(String(format: prefill.last!, digits: 1)) tok/s, decode \(String(format: decode.last!, digits: 2)) tok/s"
      )
    }
    func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
    let bytes = pipeline.stages.reduce(0) { $0 + $1.weightBytes }
    let d = median(decode)
    return Result(
      model: preset.name, dtype: dtype.rawValue, arithmetic: arithmetic.rawValue, threads: threads,
      promptTokens: prompt, newTokens: new,
      prefillTokensPerSecond: median(prefill), decodeTokensPerSecond: d, weightBytes: bytes,
      effectiveBandwidthGBs: Double(bytes) * d / 1e9, peakResidentBytes: ProcessMemory.peakResidentBytes(),
      kernelISA: Kernels.isa, blasCore: BLASCore.current, repetitions: repetitions)
  }

  /// Read bandwidth in GB/s as decoding sees it: `threads` threads stream a `bytes` FP32 matrix through the
  /// decode kernel (matrix × one vector), `passes` times. This is the roofline of batch-1 decoding.
  public static func memoryBandwidth(bytes: Int, threads: Int, passes: Int) throws -> Double {
    let (perPass, seconds) = try Kernels.streamPasses(bytes: bytes, passes: passes, threads: threads)
    return Double(perPass * passes) / seconds.reduce(0, +) / 1e9
  }

  struct Box: @unchecked Sendable { let pointer: UnsafeMutablePointer<Float> }
}
