import Foundation

/// One turn of a conversation.
public struct ChatMessage: Sendable, Hashable, Codable {
  public var role: String
  public var content: String
  public init(role: String, content: String) {
    self.role = role
    self.content = content
  }
}

/// The chat formats of the instruct models the lab runs, rendered exactly as their Jinja templates render them
/// (checked against Hugging Face's `apply_chat_template`). A model's template is recognised from its source text;
/// templates of other families are refused with a message rather than guessed.
public enum ChatTemplate: Sendable, Hashable {
  /// `<|im_start|>role\ncontent<|im_end|>\n` (SmolLM, Qwen…), with the system message the template adds when the
  /// conversation has none.
  case chatML(defaultSystem: String?)
  /// Llama 3: headers, content trimmed, `<|eot_id|>` after each turn, BOS first.
  case llama3
  /// Llama 3.1–3.3: as Llama 3 with a system turn that always carries the knowledge and today's dates.
  case llama31(date: String)
  /// Llama 2: `<s>[INST] <<SYS>>…<</SYS>> … [/INST] answer </s>`.
  case llama2

  /// Recognises a template from its Jinja source.
  public static func recognise(_ source: String) throws(TokenizerError) -> ChatTemplate {
    if source.contains("<|im_start|>") {
      // The system message a template inserts when the first message is not one.
      var system: String? = nil
      if let r = source.range(of: "<|im_start|>system\n"), source.contains("!= 'system'") {
        let rest = source[r.upperBound...]
        if let end = rest.range(of: "<|im_end|>") { system = String(rest[..<end.lowerBound]) }
      }
      return .chatML(defaultSystem: system)
    }
    if source.contains("<|start_header_id|>") {
      if source.contains("Cutting Knowledge Date") {
        var date = "26 Jul 2024"
        if let r = source.range(of: #"set date_string = ""#) {
          let rest = source[r.upperBound...]
          if let end = rest.firstIndex(of: "\"") { date = String(rest[..<end]) }
        }
        return .llama31(date: date)
      }
      return .llama3
    }
    if source.contains("[INST]") { return .llama2 }
    throw TokenizerError(
      "chat template",
      "the model's chat template is not one the lab renders (ChatML, Llama 3, Llama 3.1 and Llama 2 are); give the prompt already formatted, without --chat"
    )
  }

  /// The conversation as the model reads it; with `addGenerationPrompt`, the header of the assistant's reply.
  public func render(
    _ messages: [ChatMessage], bos: String, eos: String, addGenerationPrompt: Bool = true
  ) throws(TokenizerError) -> String {
    func trim(_ s: String) -> String { s.trimmingCharacters(in: .whitespacesAndNewlines) }
    var out = ""
    switch self {
    case .chatML(let system):
      for (i, m) in messages.enumerated() {
        if i == 0, m.role != "system", let system { out += "<|im_start|>system\n\(system)<|im_end|>\n" }
        out += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n"
      }
      if addGenerationPrompt { out += "<|im_start|>assistant\n" }
    case .llama3:
      for (i, m) in messages.enumerated() {
        if i == 0 { out += bos }
        out += "<|start_header_id|>\(m.role)<|end_header_id|>\n\n\(trim(m.content))<|eot_id|>"
      }
      if addGenerationPrompt { out += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
    case .llama31(let date):
      var rest = messages[...]
      var system = ""
      if let first = rest.first, first.role == "system" {
        system = trim(first.content)
        rest = rest.dropFirst()
      }
      out += bos + "<|start_header_id|>system<|end_header_id|>\n\n"
      out += "Cutting Knowledge Date: December 2023\nToday Date: \(date)\n\n\(system)<|eot_id|>"
      for m in rest { out += "<|start_header_id|>\(m.role)<|end_header_id|>\n\n\(trim(m.content))<|eot_id|>" }
      if addGenerationPrompt { out += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
    case .llama2:
      var rest = messages[...]
      var system: String? = nil
      if let first = rest.first, first.role == "system" {
        system = first.content
        rest = rest.dropFirst()
      }
      for (i, m) in rest.enumerated() {
        guard (m.role == "user") == (i % 2 == 0) else {
          throw TokenizerError("chat template", "Llama 2 conversations must alternate user/assistant/user/…")
        }
        var content = m.content
        if i == 0, let system { content = "<<SYS>>\n\(system)\n<</SYS>>\n\n" + content }
        if m.role == "user" {
          out += bos + "[INST] " + trim(content) + " [/INST]"
        } else if m.role == "assistant" {
          out += " " + trim(content) + " " + eos
        }
      }
    }
    return out
  }
}
