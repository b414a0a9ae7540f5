import Catalog
import Foundation

/// Where weights come from: a checkpoint (directory or GGUF file), or a preset's shapes with synthetic weights.
public enum ModelSource: Sendable, Hashable {
  /// A Hugging Face checkpoint directory, or a GGUF file.
  case checkpoint(path: String, storage: WeightStorage)
  case synthetic(preset: String, seed: UInt64, dtype: WeightDType)

  /// "DIR" if it is a directory, "FILE.gguf" if it is a file, else a preset name.
  public static func parse(_ text: String, seed: UInt64, dtype: WeightDType, storage: WeightStorage) -> ModelSource {
    if FileManager.default.fileExists(atPath: text) { return .checkpoint(path: text, storage: storage) }
    return .synthetic(preset: text, seed: seed, dtype: dtype)
  }

  public func open() throws(CheckpointError) -> any WeightSource {
    switch self {
    case .checkpoint(let path, let storage):
      var isDir: ObjCBool = false
      if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue {
        return try GGUFWeights(path: path, storage: storage)
      }
      return CheckpointWeights(try Checkpoint(directory: path), storage: storage)
    case .synthetic(let preset, let seed, let dtype):
      guard let p = ModelPreset.named(preset) else {
        throw CheckpointError(
          .missingFile, file: preset,
          "neither a checkpoint (a directory or a .gguf file) nor a model preset (\(ModelPreset.all.map(\.name).joined(separator: ", ")))"
        )
      }
      return SyntheticWeights(config: p.config, seed: seed, dtype: dtype)
    }
  }
}
