import Foundation

/// Splits text into the pieces BPE merges within (never across): a sequence of steps, each splitting every piece
/// the previous step produced, as Hugging Face's `Sequence` pre-tokenizer and llama.cpp's regex lists do.
struct PreTokenizer: @unchecked Sendable {
  enum Step {
    /// Matches of the pattern and the text between them, in order (Hugging Face's `Split` with `Isolated`).
    case isolate(NSRegularExpression)
    /// Each digit on its own (`Digits(individual_digits: true)`), or runs of digits.
    case digits(individual: Bool)
  }
  var steps: [Step]

  /// GPT-2's pattern, which the byte-level pre-tokenizer uses with `use_regex`.
  static let gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
  /// Llama 3's pattern (also `tokenizer.ggml.pre` = llama-bpe).
  static let llama3 =
    #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

  static func regex(_ pattern: String, source: String) throws(TokenizerError) -> NSRegularExpression {
    do { return try NSRegularExpression(pattern: pattern) } catch {
      throw TokenizerError(source, "the pre-tokenizer pattern \(pattern) does not compile: \(error)")
    }
  }

  /// llama.cpp's pre-tokenizer for a GGUF file's `tokenizer.ggml.pre`.
  static func gguf(pre: String?, source: String) throws(TokenizerError) -> PreTokenizer {
    switch pre ?? "default" {
    case "llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral":
      return PreTokenizer(steps: [.isolate(try regex(llama3, source: source))])
    case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b":
      return PreTokenizer(steps: [.digits(individual: true), .isolate(try regex(gpt2, source: source))])
    case "default", "gpt-2", "gpt2", "phi-2", "jina-es", "jina-de", "olmo", "jais", "trillion":
      return PreTokenizer(steps: [.isolate(try regex(gpt2, source: source))])
    case let other:
      throw TokenizerError(
        source,
        "tokenizer.ggml.pre '\(other)' is not supported (llama-bpe, llama3, smollm, starcoder and gpt-2 are); give the model's tokenizer.json with --tokenizer"
      )
    }
  }

  func split(_ text: String) -> [String] {
    var pieces = [text]
    for step in steps {
      var next: [String] = []
      for p in pieces {
        switch step {
        case .isolate(let re): next += Self.isolate(p, re)
        case .digits(let individual): next += Self.digits(p, individual: individual)
        }
      }
      pieces = next
    }
    return pieces.filter { !$0.isEmpty }
  }

  static func isolate(_ text: String, _ re: NSRegularExpression) -> [String] {
    let ns = text as NSString
    var out: [String] = []
    var last = 0
    for m in re.matches(in: text, range: NSRange(location: 0, length: ns.length)) where m.range.length > 0 {
      if m.range.location > last {
        out.append(ns.substring(with: NSRange(location: last, length: m.range.location - last)))
      }
      out.append(ns.substring(with: m.range))
      last = m.range.location + m.range.length
    }
    if last < ns.length { out.append(ns.substring(from: last)) }
    return out
  }

  static func digits(_ text: String, individual: Bool) -> [String] {
    var out: [String] = []
    var current = ""
    var currentIsDigit = false
    for ch in text {
      let isDigit = ch.unicodeScalars.count == 1 && CharacterSet.decimalDigits.contains(ch.unicodeScalars.first!)
      if !current.isEmpty && (isDigit != currentIsDigit || (isDigit && individual)) {
        out.append(current)
        current = ""
      }
      current.append(ch)
      currentIsDigit = isDigit
    }
    if !current.isEmpty { out.append(current) }
    return out
  }
}
