public import Catalog
import Foundation

/// A Hugging Face checkpoint directory: `config.json` and `model.safetensors`, or shards listed in
/// `model.safetensors.index.json`. Read from a local path only; nothing is downloaded.
public struct Checkpoint: Sendable {
  public let directory: String
  public let config: ModelConfig
  let files: [String: SafeTensorsFile]
  /// Tensor name → file name.
  let index: [String: String]

  public init(directory: String) throws(CheckpointError) {
    self.directory = directory
    let configPath = directory + "/config.json"
    guard let data = FileManager.default.contents(atPath: configPath) else {
      throw CheckpointError(
        .missingFile, file: configPath, "no config.json (is this a Hugging Face checkpoint directory?)")
    }
    guard let raw = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
      throw CheckpointError(.badConfig, file: configPath, "not a JSON object")
    }
    let archs = raw["architectures"] as? [String] ?? []
    let modelType = raw["model_type"] as? String
    if !(archs.contains("LlamaForCausalLM") || (archs.isEmpty && modelType == "llama"))
      || (modelType != nil && modelType != "llama")
    {
      throw CheckpointError(
        .unknownArchitecture, file: configPath,
        "architecture \(archs.isEmpty ? modelType ?? "unknown" : archs.joined(separator: ", ")) is not supported (LlamaForCausalLM only)"
      )
    }
    if let act = raw["hidden_act"] as? String, act != "silu" {
      throw CheckpointError(.badConfig, file: configPath, "hidden_act '\(act)' is not supported (silu only)")
    }
    do { config = try JSONDecoder().decode(ModelConfig.self, from: data) } catch {
      throw CheckpointError(.badConfig, file: configPath, "\(error)")
    }
    if let p = config.problems().first { throw CheckpointError(.badConfig, file: configPath, p) }
    if let type = config.ropeScaling?.ropeType, type != "llama3", type != "default" {
      throw CheckpointError(.badConfig, file: configPath, "rope scaling '\(type)' is not supported (llama3 only)")
    }

    let indexPath = directory + "/model.safetensors.index.json"
    var index: [String: String] = [:]
    var files: [String: SafeTensorsFile] = [:]
    if let indexData = FileManager.default.contents(atPath: indexPath) {
      guard let obj = try? JSONSerialization.jsonObject(with: indexData) as? [String: Any],
        let map = obj["weight_map"] as? [String: String]
      else { throw CheckpointError(.malformedHeader, file: indexPath, "no weight_map") }
      // Shards are files of this directory: a name that leads elsewhere is refused, not followed.
      if let bad = Set(map.values).first(where: { $0.isEmpty || $0.contains("/") || $0 == "." || $0 == ".." }) {
        throw CheckpointError(
          .malformedHeader, file: indexPath, "weight_map names '\(bad)', which is not a file of this directory")
      }
      index = map
      for f in Set(map.values).sorted() { files[f] = try SafeTensorsFile(path: directory + "/" + f) }
    } else {
      let single = "model.safetensors"
      let f = try SafeTensorsFile(path: directory + "/" + single)
      files[single] = f
      for name in f.tensors.keys { index[name] = single }
    }
    self.files = files
    self.index = index
  }

  /// The tensor's entry and its file, checking the shape.
  func tensor(_ name: String, shape: [Int]) throws(CheckpointError) -> (SafeTensorsFile, TensorEntry) {
    guard let fileName = index[name], let file = files[fileName] else {
      throw CheckpointError(.missingTensor, file: directory, tensor: name, "the checkpoint has no such tensor")
    }
    guard let entry = file.tensors[name] else {
      throw CheckpointError(
        .missingTensor, file: directory + "/" + fileName, tensor: name, "listed in the index but not in the file")
    }
    guard entry.shape == shape else {
      throw CheckpointError(
        .wrongShape, file: directory + "/" + fileName, tensor: name,
        "shape \(entry.shape), expected \(shape) from config.json")
    }
    return (file, entry)
  }

  func has(_ name: String) -> Bool { index[name] != nil }
}
