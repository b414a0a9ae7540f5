import Catalog
public import Engine
import Foundation

/// The tokenizer that belongs to a model, and prompts as the model expects them.
public enum ModelTokenizer {
  /// The tokenizer of the model at `model`: `override` (a tokenizer.json) if given, else the GGUF file's own, else
  /// `tokenizer.json` in the checkpoint directory.
  public static func load(model: String, weights: any WeightSource, override: String?) throws(TokenizerError)
    -> Tokenizer
  {
    let t: Tokenizer
    if let override {
      t = try Tokenizer(json: override)
    } else if let g = weights as? GGUFWeights {
      t = try Tokenizer(gguf: g.file)
    } else if weights is CheckpointWeights {
      let path = model + "/tokenizer.json"
      guard FileManager.default.fileExists(atPath: path) else {
        throw TokenizerError(model, "the checkpoint has no tokenizer.json; give one with --tokenizer FILE")
      }
      t = try Tokenizer(json: path)
    } else {
      throw TokenizerError(
        model, "synthetic weights have no tokenizer; give token ids (--prompt-tokens) or a tokenizer (--tokenizer FILE)"
      )
    }
    guard t.vocabularySize <= weights.config.vocabSize else {
      throw TokenizerError(
        override ?? model,
        "the tokenizer has \(t.vocabularySize) tokens but the model's vocabulary is \(weights.config.vocabSize)")
    }
    return t
  }

  /// Token ids of a prompt: the text itself (with the tokenizer's BOS when it wants one), or, with `chat`, a user
  /// turn (after `system`, if given) in the model's chat template, ending with the assistant's header.
  public static func promptTokens(_ text: String, tokenizer t: Tokenizer, chat: Bool, system: String? = nil)
    throws(TokenizerError) -> [Int32]
  {
    guard chat else { return t.encode(text, addSpecial: true) }
    guard let source = t.chatTemplate else {
      throw TokenizerError("chat template", "the model ships no chat template; leave out --chat")
    }
    let template = try ChatTemplate.recognise(source)
    var messages: [ChatMessage] = []
    if let system { messages.append(ChatMessage(role: "system", content: system)) }
    messages.append(ChatMessage(role: "user", content: text))
    let bos = t.bos.map { t.tokens[Int($0)] } ?? ""
    let eos = t.eos.map { t.tokens[Int($0)] } ?? ""
    return t.encode(try template.render(messages, bos: bos, eos: eos), addSpecial: false)
  }
}
