public import Catalog
import Foundation

/// How a checkpoint lays out the two halves that rotary embeddings rotate together in each head.
public enum RopeLayout: String, Sendable, Hashable {
  /// Hugging Face's Llama: dimension i pairs with i + head_dim/2.
  case halfSplit
  /// GGUF files of llama.cpp's `llama` architecture: dimensions 2i and 2i+1 pair (the converter permutes the rows
  /// of the Q and K projections so). Attention scores are the same: Q and K are permuted alike within each head.
  case interleaved
}

extension WeightSource {
  public var ropeLayout: RopeLayout { .halfSplit }
  public var ropeFrequencyFactors: [Float]? { nil }
}

/// Weights read from a GGUF file (llama.cpp's `llama` architecture), in place from the memory mapping: the model's
/// shapes, rotary settings and tokenizer come from the file's metadata, and llama.cpp's tensor names are mapped to
/// the engine's (Hugging Face's) names. Only the tensors a stage asks for are read.
public struct GGUFWeights: WeightSource {
  public let file: GGUFFile
  public let config: ModelConfig
  public let storage: WeightStorage
  public let ropeFrequencyFactors: [Float]?
  public var ropeLayout: RopeLayout { .interleaved }

  public init(path: String, storage: WeightStorage = .native) throws(CheckpointError) {
    let f = try GGUFFile(path: path)
    file = f
    self.storage = storage
    config = try Self.config(f)
    if let t = f.tensors["rope_freqs.weight"] {
      guard t.dtype == .f32, t.dimensions == [config.headDim / 2] else {
        throw CheckpointError(
          .wrongShape, file: path, tensor: t.name, "expected \(config.headDim / 2) F32 factors, found \(t.dimensions)")
      }
      ropeFrequencyFactors = Quantization.dequantize(f.bytes(t), dtype: .f32, count: t.elementCount)
    } else {
      ropeFrequencyFactors = nil
    }
  }

  /// The model's configuration from `llama.*` metadata (and the shapes of the embedding when the vocabulary size
  /// is not stated).
  static func config(_ f: GGUFFile) throws(CheckpointError) -> ModelConfig {
    let path = f.path
    let arch = f.metadata["general.architecture"]?.string ?? "(none)"
    guard arch == "llama" else {
      throw CheckpointError(
        .unknownArchitecture, file: path,
        "general.architecture is '\(arch)'; only llama (Llama, SmolLM, Mistral-style) GGUF files are supported")
    }
    func int(_ key: String) throws(CheckpointError) -> Int {
      guard let v = f.metadata["llama." + key]?.int, v > 0 else {
        throw CheckpointError(.badConfig, file: path, "metadata llama.\(key) is missing or not a positive integer")
      }
      return v
    }
    let heads = try int("attention.head_count")
    let kvHeads = f.metadata["llama.attention.head_count_kv"] == nil ? heads : try int("attention.head_count_kv")
    let hidden = try int("embedding_length")
    guard let embedding = f.tensors["token_embd.weight"], embedding.dimensions.count == 2 else {
      throw CheckpointError(.missingTensor, file: path, tensor: "token_embd.weight", "the file has no 2-D embedding")
    }
    let vocab = f.metadata["llama.vocab_size"]?.int ?? embedding.dimensions[1]
    var headDim: Int? = nil
    if let k = f.metadata["llama.attention.key_length"]?.int, k != hidden / max(1, heads) { headDim = k }
    if let r = f.metadata["llama.rope.dimension_count"]?.int, r != (headDim ?? hidden / max(1, heads)) {
      throw CheckpointError(
        .badConfig, file: path, "llama.rope.dimension_count \(r) is not the head size (partial rotary is not supported)"
      )
    }
    if let s = f.metadata["llama.rope.scaling.type"]?.string, s != "none" {
      throw CheckpointError(.badConfig, file: path, "rope scaling '\(s)' is not supported")
    }
    let c = ModelConfig(
      hiddenSize: hidden, numHiddenLayers: try int("block_count"), numAttentionHeads: heads,
      numKeyValueHeads: kvHeads, intermediateSize: try int("feed_forward_length"), vocabSize: vocab,
      ropeTheta: f.metadata["llama.rope.freq_base"]?.double ?? 10000,
      rmsNormEps: f.metadata["llama.attention.layer_norm_rms_epsilon"]?.double ?? 1e-5,
      tieWordEmbeddings: f.tensors["output.weight"] == nil,
      maxPositionEmbeddings: f.metadata["llama.context_length"]?.int ?? 2048, headDim: headDim)
    if let p = c.problems().first { throw CheckpointError(.badConfig, file: path, p) }
    guard c.headDim <= 512 else {
      throw CheckpointError(.badConfig, file: path, "head size \(c.headDim) is larger than the 512 the engine supports")
    }
    return c
  }

  /// llama.cpp's name of a tensor the engine asks for by its Hugging Face name.
  static func ggufName(_ hf: String) -> String {
    switch hf {
    case "model.embed_tokens.weight": return "token_embd.weight"
    case "model.norm.weight": return "output_norm.weight"
    case "lm_head.weight": return "output.weight"
    default: break
    }
    let parts = hf.split(separator: ".")
    guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let n = Int(parts[2]) else { return hf }
    let rest = parts[3...].joined(separator: ".")
    let map = [
      "input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
      "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
      "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
      "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
      "mlp.down_proj.weight": "ffn_down.weight",
    ]
    return map[rest].map { "blk.\(n).\($0)" } ?? hf
  }

  public func has(_ name: String) -> Bool { file.tensors[Self.ggufName(name)] != nil }

  func tensor(_ name: String, dimensions: [Int]) throws(CheckpointError) -> GGUFTensor {
    let g = Self.ggufName(name)
    guard let t = file.tensors[g] else {
      throw CheckpointError(.missingTensor, file: file.path, tensor: g, "the file has no such tensor")
    }
    guard t.dimensions == dimensions else {
      throw CheckpointError(
        .wrongShape, file: file.path, tensor: g,
        "dimensions \(t.dimensions), expected \(dimensions) from the file's metadata")
    }
    return t
  }

  public func matrix(_ name: String, rows: Int, cols: Int) throws(CheckpointError) -> WeightMatrix {
    let t = try tensor(name, dimensions: [cols, rows])
    if t.dtype == .f32 || storage == .native {
      return WeightMatrix(
        rows: rows, cols: cols, dtype: t.dtype,
        memory: WeightMemory(mapping: file.file, offset: t.begin, bytes: t.end - t.begin))
    }
    let m = WeightMemory(allocating: rows * cols * 4)
    Kernels.widen(file.bytes(t), dtype: t.dtype, into: m.owned!.assumingMemoryBound(to: Float.self), count: rows * cols)
    return WeightMatrix(rows: rows, cols: cols, dtype: .f32, memory: m)
  }

  public func vector(_ name: String, count: Int) throws(CheckpointError) -> [Float] {
    let t = try tensor(name, dimensions: [count])
    return Quantization.dequantize(file.bytes(t), dtype: t.dtype, count: count)
  }
}
