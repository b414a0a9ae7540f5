import EdgeLabCore

/// A Llama-architecture configuration, with the keys of Hugging Face's `config.json`.
///
/// The engine reads checkpoints' `config.json` into this type, and the cost model derives every per-layer
/// size from it, so a custom model is just a different value.
public struct ModelConfig: Codable, Hashable, Sendable {
  public var hiddenSize: Int
  public var numHiddenLayers: Int
  public var numAttentionHeads: Int
  public var numKeyValueHeads: Int
  public var intermediateSize: Int
  public var vocabSize: Int
  public var ropeTheta: Double
  public var rmsNormEps: Double
  public var tieWordEmbeddings: Bool
  public var maxPositionEmbeddings: Int
  public var ropeScaling: RopeScaling?
  /// Explicit head dimension (newer configs carry it); `hiddenSize / numAttentionHeads` otherwise.
  public var explicitHeadDim: Int?

  public init(
    hiddenSize: Int, numHiddenLayers: Int, numAttentionHeads: Int, numKeyValueHeads: Int, intermediateSize: Int,
    vocabSize: Int, ropeTheta: Double, rmsNormEps: Double = 1e-5, tieWordEmbeddings: Bool,
    maxPositionEmbeddings: Int, ropeScaling: RopeScaling? = nil, headDim: Int? = nil
  ) {
    self.hiddenSize = hiddenSize
    self.numHiddenLayers = numHiddenLayers
    self.numAttentionHeads = numAttentionHeads
    self.numKeyValueHeads = numKeyValueHeads
    self.intermediateSize = intermediateSize
    self.vocabSize = vocabSize
    self.ropeTheta = ropeTheta
    self.rmsNormEps = rmsNormEps
    self.tieWordEmbeddings = tieWordEmbeddings
    self.maxPositionEmbeddings = maxPositionEmbeddings
    self.ropeScaling = ropeScaling
    self.explicitHeadDim = headDim
  }

  enum CodingKeys: String, CodingKey {
    case hiddenSize = "hidden_size"
    case numHiddenLayers = "num_hidden_layers"
    case numAttentionHeads = "num_attention_heads"
    case numKeyValueHeads = "num_key_value_heads"
    case intermediateSize = "intermediate_size"
    case vocabSize = "vocab_size"
    case ropeTheta = "rope_theta"
    case rmsNormEps = "rms_norm_eps"
    case tieWordEmbeddings = "tie_word_embeddings"
    case maxPositionEmbeddings = "max_position_embeddings"
    case ropeScaling = "rope_scaling"
    case explicitHeadDim = "head_dim"
    case ropeParameters = "rope_parameters"
  }

  /// Transformers ≥ 5 writes `rope_parameters` (theta and scaling together) instead of `rope_theta` and
  /// `rope_scaling`; both layouts are read.
  struct RopeParameters: Decodable {
    var ropeTheta: Double?
    var ropeType: String?
    enum CodingKeys: String, CodingKey {
      case ropeTheta = "rope_theta"
      case ropeType = "rope_type"
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(hiddenSize, forKey: .hiddenSize)
    try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
    try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
    try c.encode(numKeyValueHeads, forKey: .numKeyValueHeads)
    try c.encode(intermediateSize, forKey: .intermediateSize)
    try c.encode(vocabSize, forKey: .vocabSize)
    try c.encode(ropeTheta, forKey: .ropeTheta)
    try c.encode(rmsNormEps, forKey: .rmsNormEps)
    try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
    try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
    try c.encodeIfPresent(ropeScaling, forKey: .ropeScaling)
    try c.encodeIfPresent(explicitHeadDim, forKey: .explicitHeadDim)
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
    numHiddenLayers = try c.decode(Int.self, forKey: .numHiddenLayers)
    numAttentionHeads = try c.decode(Int.self, forKey: .numAttentionHeads)
    // HF's default: no grouping when the key is absent (Llama-2 configs omit it).
    numKeyValueHeads = try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads) ?? numAttentionHeads
    intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
    vocabSize = try c.decode(Int.self, forKey: .vocabSize)
    let parameters = try c.decodeIfPresent(RopeParameters.self, forKey: .ropeParameters)
    ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? parameters?.ropeTheta ?? 10000
    rmsNormEps = try c.decodeIfPresent(Double.self, forKey: .rmsNormEps) ?? 1e-6
    tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
    maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 2048
    ropeScaling = try c.decodeIfPresent(RopeScaling.self, forKey: .ropeScaling)
    if ropeScaling == nil, let type = parameters?.ropeType, type != "default" {
      ropeScaling = try c.decode(RopeScaling.self, forKey: .ropeParameters)
    }
    explicitHeadDim = try c.decodeIfPresent(Int.self, forKey: .explicitHeadDim)
  }

  public var headDim: Int { explicitHeadDim ?? hiddenSize / numAttentionHeads }
  public var kvDim: Int { numKeyValueHeads * headDim }
  public var qDim: Int { numAttentionHeads * headDim }

  /// Parameters of one decoder block's attention (the query, key, value and output projections).
  public var attentionParametersPerBlock: Int { hiddenSize * qDim + 2 * hiddenSize * kvDim + qDim * hiddenSize }
  /// Parameters of one decoder block's MLP (gate, up and down projections).
  public var ffnParametersPerBlock: Int { 3 * hiddenSize * intermediateSize }
  /// Parameters of one decoder block (attention, MLP, two RMSNorm weights).
  public var parametersPerBlock: Int { attentionParametersPerBlock + ffnParametersPerBlock + 2 * hiddenSize }
  /// Parameters of the whole model, counting a tied embedding once.
  public var parameterCount: Int {
    let embedding = vocabSize * hiddenSize
    let head = tieWordEmbeddings ? 0 : vocabSize * hiddenSize
    return embedding + numHiddenLayers * parametersPerBlock + hiddenSize + head
  }

  /// Structural problems, each a sentence; empty when the configuration is usable.
  public func problems() -> [String] {
    var p: [String] = []
    // Ceilings well above every Llama (405B: hidden 16384, 126 layers, 128 heads, 53248, vocabulary 128256),
    // low enough that no size product can overflow.
    for (name, v, ceiling) in [
      ("hidden_size", hiddenSize, 1 << 17), ("num_hidden_layers", numHiddenLayers, 4096),
      ("num_attention_heads", numAttentionHeads, 4096), ("num_key_value_heads", numKeyValueHeads, 4096),
      ("intermediate_size", intermediateSize, 1 << 20), ("vocab_size", vocabSize, 1 << 22),
      ("max_position_embeddings", maxPositionEmbeddings, 1 << 24),
    ] where v <= 0 || v > ceiling {
      p.append(v <= 0 ? "\(name) must be positive (it is \(v))" : "\(name) \(v) is above the supported \(ceiling)")
    }
    if let d = explicitHeadDim, d <= 0 || d > 1 << 14 { p.append("head_dim must be in 1...\(1 << 14) (it is \(d))") }
    if !(rmsNormEps > 0 && rmsNormEps.isFinite) {
      p.append("rms_norm_eps must be a positive number (it is \(rmsNormEps))")
    }
    if !(ropeTheta > 0 && ropeTheta.isFinite) { p.append("rope_theta must be a positive number (it is \(ropeTheta))") }
    if let s = ropeScaling {
      for (name, v) in [
        ("factor", s.factor), ("low_freq_factor", s.lowFreqFactor), ("high_freq_factor", s.highFreqFactor),
      ]
      where !(v > 0 && v.isFinite) {
        p.append("rope_scaling.\(name) must be a positive number (it is \(v))")
      }
      if s.ropeType == "llama3" && !(s.highFreqFactor > s.lowFreqFactor) {
        p.append(
          "rope_scaling.high_freq_factor (\(s.highFreqFactor)) must be above low_freq_factor (\(s.lowFreqFactor))")
      }
      if s.originalMaxPositionEmbeddings <= 0 {
        p.append(
          "rope_scaling.original_max_position_embeddings must be positive (it is \(s.originalMaxPositionEmbeddings))")
      }
    }
    if p.isEmpty {
      if explicitHeadDim == nil && hiddenSize % numAttentionHeads != 0 {
        p.append("hidden_size \(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads)")
      }
      if numAttentionHeads % numKeyValueHeads != 0 {
        p.append(
          "num_attention_heads \(numAttentionHeads) is not a multiple of num_key_value_heads \(numKeyValueHeads)")
      }
      if headDim % 2 != 0 || headDim == 0 {
        p.append("the head dimension \(headDim) must be even and positive for rotary embeddings")
      }
    }
    return p
  }
}

/// Rotary-embedding frequency scaling. Only the `llama3` type (Llama 3.1/3.2/3.3) is implemented.
public struct RopeScaling: Codable, Hashable, Sendable {
  public var ropeType: String
  public var factor: Double
  public var lowFreqFactor: Double
  public var highFreqFactor: Double
  public var originalMaxPositionEmbeddings: Int

  public init(
    ropeType: String = "llama3", factor: Double, lowFreqFactor: Double = 1, highFreqFactor: Double = 4,
    originalMaxPositionEmbeddings: Int = 8192
  ) {
    self.ropeType = ropeType
    self.factor = factor
    self.lowFreqFactor = lowFreqFactor
    self.highFreqFactor = highFreqFactor
    self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
  }

  enum CodingKeys: String, CodingKey {
    case ropeType = "rope_type"
    case legacyType = "type"
    case factor
    case lowFreqFactor = "low_freq_factor"
    case highFreqFactor = "high_freq_factor"
    case originalMaxPositionEmbeddings = "original_max_position_embeddings"
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    ropeType =
      try c.decodeIfPresent(String.self, forKey: .ropeType)
      ?? c.decodeIfPresent(String.self, forKey: .legacyType) ?? "default"
    factor = try c.decodeIfPresent(Double.self, forKey: .factor) ?? 1
    lowFreqFactor = try c.decodeIfPresent(Double.self, forKey: .lowFreqFactor) ?? 1
    highFreqFactor = try c.decodeIfPresent(Double.self, forKey: .highFreqFactor) ?? 4
    originalMaxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .originalMaxPositionEmbeddings) ?? 8192
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(ropeType, forKey: .ropeType)
    try c.encode(factor, forKey: .factor)
    try c.encode(lowFreqFactor, forKey: .lowFreqFactor)
    try c.encode(highFreqFactor, forKey: .highFreqFactor)
    try c.encode(originalMaxPositionEmbeddings, forKey: .originalMaxPositionEmbeddings)
  }
}

/// Numeric format of stored weights (and of arithmetic in the cost model's roofline).
///
/// The quantized formats are llama.cpp's (GGML's) block formats: each block stores float16 scales next to its
/// packed integers, so the bytes per weight include them — Q8_0 34 bytes per 32 weights, Q4_0 18, Q4_1 20, Q4_K 144
/// per 256, Q6_K 210 per 256. Quantized layers compute at the device's 16-bit rate (the weights are expanded to
/// 16- or 32-bit floats for the arithmetic); activations and the KV cache stay in floating point.
// swift-format-ignore: AlwaysUseLowerCamelCase
// The quantized cases keep llama.cpp's names (q4_0, q4_K), which users know from model files.
public enum Precision: String, Codable, Hashable, Sendable, CaseIterable {
  case fp32, fp16, bf16
  case q8_0, q4_0, q4_1
  case q4_K = "q4_k"
  case q6_K = "q6_k"

  /// Stored bytes per weight, block scales included.
  public var bytesPerWeight: Double {
    switch self {
    case .fp32: 4
    case .fp16, .bf16: 2
    case .q8_0: 34.0 / 32
    case .q4_0: 18.0 / 32
    case .q4_1: 20.0 / 32
    case .q4_K: 144.0 / 256
    case .q6_K: 210.0 / 256
    }
  }

  /// Whether the format stores blocks of integers with scales.
  public var isQuantized: Bool {
    switch self {
    case .fp32, .fp16, .bf16: false
    default: true
    }
  }

  /// Values per block of the format (1 for the floating-point formats): a weight matrix's rows must be a whole
  /// number of blocks.
  public var blockValues: Int {
    switch self {
    case .fp32, .fp16, .bf16: 1
    case .q8_0, .q4_0, .q4_1: 32
    case .q4_K, .q6_K: 256
    }
  }
}

/// How the engine rounds: as Hugging Face Transformers computes in FP32, or as llama.cpp's CPU backend does.
public enum Arithmetic: String, Sendable, Hashable, CaseIterable, Codable {
  /// FP32 activations and KV cache; a quantized product equals dequantizing the weights and multiplying in FP32.
  case exact
  /// llama.cpp's CPU arithmetic (x86, AVX2 and AVX-512): the inputs of quantized products quantized to 8 bits —
  /// per block of 32 for Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1, per super-block of 256 (ggml's Q8_K) for Q4_K, Q5_K and
  /// Q6_K — with integer dot products (prefill too), a float16 KV cache with the attention query and weights
  /// rounded to float16 (its default cache type, flash attention off), and its exponential, rotary angles and
  /// orders of addition — a sequence's prompt as llama.cpp computes a batch of tokens, each generated token as it
  /// computes one. F32, F16 and BF16 weights keep the exact products.
  case llamaCpp = "llama.cpp"
}
