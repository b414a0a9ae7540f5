public import Catalog
public import EdgeLabCore

/// The unit a pipeline can be cut at: the token embedding, one decoder block, or the head (final RMSNorm and
/// LM head). Problem layer 0 is the embedding, layers 1…L the blocks, layer L+1 the head.
public enum LayerKind: Hashable, Sendable, Codable {
  case embedding
  case block(Int)
  case head

  public var name: String {
    switch self {
    case .embedding: "embed"
    case .block(let i): "block\(i)"
    case .head: "head"
    }
  }

  /// Whether this is a decoder block (what a tensor-parallel group shares).
  public var isBlock: Bool {
    if case .block = self { true } else { false }
  }
}

/// Work for one layer in one step.
public enum Work: Hashable, Sendable {
  /// A prompt of `tokens` tokens, written after `past` tokens already in the KV cache (0 for a fresh prompt).
  case prefill(tokens: Int, past: Int = 0)
  /// One new token for each sequence; `contexts[i]` tokens already in sequence i's KV cache.
  case decode(contexts: [Int])

  public var tokenCount: Int {
    switch self {
    case .prefill(let t, _): t
    case .decode(let c): c.count
    }
  }

  public var isPrefill: Bool {
    if case .prefill = self { true } else { false }
  }
}

/// Sizes and costs of one layer, derived from the architecture and the precision.
///
/// FLOPs count a multiply-add as 2. Attention over a context of c tokens costs 4·heads·head_dim·c FLOPs per
/// query token (scores and weighted sum); softmax, RoPE, norms and the SwiGLU gate are counted as elementwise
/// work (≈ 5 FLOPs per element), which is below 1% at Llama sizes.
public struct LayerCost: Hashable, Sendable {
  public var index: Int
  public var kind: LayerKind
  public var parameters: Int
  /// Bytes of weights (what offloading reads from storage).
  public var weightBytes: Bytes
  /// KV-cache bytes per token of context.
  public var kvBytesPerToken: Bytes
  /// Bytes of this layer's output per token: hidden states, or the sampled token id after the head.
  public var outputBytesPerToken: Bytes
  let config: ModelConfig
  let bytesPerValue: Double
  let activationBytes: Double

  /// Floating-point operations for `work`.
  public func flops(_ work: Work) -> Double {
    let h = Double(config.hiddenSize)
    switch kind {
    case .embedding:
      return 0
    case .head:
      return Double(work.tokenCount) * (2 * Double(config.vocabSize) * h + 5 * h)
    case .block:
      let matmul = 2 * Double(parameters - 2 * config.hiddenSize)
      let elementwise = 5 * (4 * h + 3 * Double(config.intermediateSize))
      let perContextToken = 4 * Double(config.qDim)
      switch work {
      case .prefill(let t, let past):
        let tt = Double(t)
        // Σ over new tokens of their context (past + position + 1).
        let attended = tt * Double(past) + tt * (tt + 1) / 2
        return tt * (matmul + elementwise) + perContextToken * attended
      case .decode(let contexts):
        let attended = contexts.reduce(0.0) { $0 + Double($1 + 1) }
        return Double(contexts.count) * (matmul + elementwise) + perContextToken * attended
      }
    }
  }

  /// Bytes moved between memory and the processor for `work`: weights once per step (a batch shares them),
  /// KV cache read and written, activations in and out.
  public func bytesMoved(_ work: Work) -> Double {
    let t = Double(work.tokenCount)
    let io = t * 2 * activationBytes * Double(config.hiddenSize)
    switch kind {
    case .embedding:
      return t * Double(config.hiddenSize) * bytesPerValue + io
    case .head:
      return weightBytes.value + io
    case .block:
      let kv = kvBytesPerToken.value
      switch work {
      case .prefill(let tokens, let past):
        return weightBytes.value + kv * Double(past) + kv * Double(tokens) + io
      case .decode(let contexts):
        return weightBytes.value + contexts.reduce(0.0) { $0 + kv * Double($1) } + kv * t + io
      }
    }
  }
}

/// Every layer of a model at a precision.
public struct ModelLayers: Sendable {
  public var config: ModelConfig
  public var precision: Precision
  public var layers: [LayerCost]

  /// - Parameters:
  ///   - wirePrecision: number format of activations between stages (hidden states); the KV cache uses the
  ///     weight precision (16 bits for the quantized formats).
  public init(config: ModelConfig, precision: Precision, wirePrecision: Precision = .fp32) {
    self.config = config
    self.precision = precision
    let b = precision.bytesPerWeight
    let act = wirePrecision.bytesPerWeight
    let h = config.hiddenSize
    // The KV cache is kept in floating point: a quantized model's cache in 16 bits (llama.cpp's default).
    let kvPerToken = Bytes(2 * Double(config.kvDim) * (precision.isQuantized ? 2 : b))
    var ls: [LayerCost] = []
    let embeddingParams = config.vocabSize * h
    ls.append(
      LayerCost(
        index: 0, kind: .embedding, parameters: embeddingParams, weightBytes: Bytes(Double(embeddingParams) * b),
        kvBytesPerToken: .zero, outputBytesPerToken: Bytes(Double(h) * act), config: config,
        bytesPerValue: b, activationBytes: act))
    for i in 0..<config.numHiddenLayers {
      let params = config.parametersPerBlock
      ls.append(
        LayerCost(
          index: i + 1, kind: .block(i), parameters: params, weightBytes: Bytes(Double(params) * b),
          kvBytesPerToken: kvPerToken, outputBytesPerToken: Bytes(Double(h) * act), config: config,
          bytesPerValue: b, activationBytes: act))
    }
    // The head holds its own copy of the LM head matrix even when tied (the embedding may be on another device).
    let headParams = config.vocabSize * h + h
    ls.append(
      LayerCost(
        index: config.numHiddenLayers + 1, kind: .head, parameters: headParams,
        weightBytes: Bytes(Double(headParams) * b), kvBytesPerToken: .zero, outputBytesPerToken: Bytes(4),
        config: config, bytesPerValue: b, activationBytes: act))
    layers = ls
  }

  public var count: Int { layers.count }
  public var totalWeightBytes: Bytes { layers.reduce(.zero) { $0 + $1.weightBytes } }
}
