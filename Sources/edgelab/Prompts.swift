import Engine
import Foundation
import Runner
import Spec
import Tokenizer

/// Workload prompts through the model's own tokenizer: the checkpoint's (a GGUF file's metadata, or the
/// tokenizer.json of a Hugging Face directory). Loaded once per checkpoint.
final class ModelPromptEncoder: PromptEncoder, @unchecked Sendable {
  private let lock = NSLock()
  private var loaded: [String: Tokenizer] = [:]

  struct NoTokenizer: Error, CustomStringConvertible {
    var description: String
  }

  func tokenizer(_ x: ResolvedExperiment) throws -> Tokenizer {
    guard let path = x.spec.model.checkpoint else {
      throw NoTokenizer(
        description:
          "the model has no checkpoint, so no tokenizer: give model.checkpoint (a GGUF file or a Hugging Face directory) to use real prompts"
      )
    }
    lock.lock()
    defer { lock.unlock() }
    if let t = loaded[path] { return t }
    let weights = try ModelSource.checkpoint(path: path, storage: .native).open()
    let t = try ModelTokenizer.load(model: path, weights: weights, override: nil)
    loaded[path] = t
    return t
  }

  func encode(_ prompts: [String], chat: Bool, experiment: ResolvedExperiment) throws -> [[Int32]] {
    let t = try tokenizer(experiment)
    return try prompts.map { try ModelTokenizer.promptTokens($0, tokenizer: t, chat: chat) }
  }

  func decode(_ ids: [Int32], experiment: ResolvedExperiment) -> String? {
    guard let t = try? tokenizer(experiment) else { return nil }
    // The reply ends at the end of its turn (a run generates its fixed number of tokens regardless).
    let end = ids.firstIndex { t.stopTokens.contains($0) } ?? ids.count
    return t.decode(Array(ids[..<end]), skipSpecial: true)
  }
}
