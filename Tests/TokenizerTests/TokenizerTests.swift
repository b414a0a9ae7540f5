import Engine
import Foundation
import Testing

@testable import Tokenizer

/// Ids, tokens and decoded text from Hugging Face `tokenizers`, and chat prompts rendered by Transformers'
/// `apply_chat_template` (Fixtures/make_tokenizer_fixtures.py).
enum Fixtures {
  static let root = Bundle.module.resourcePath! + "/Fixtures"

  struct Case: Decodable {
    var text: String
    var ids: [Int32]
    var idsWithSpecial: [Int32]
    var decoded: String
    var decodedWithSpecial: String
    var decodedSkipSpecial: String
    enum CodingKeys: String, CodingKey {
      case text, ids, decoded
      case idsWithSpecial = "ids_with_special"
      case decodedWithSpecial = "decoded_with_special"
      case decodedSkipSpecial = "decoded_skip_special"
    }
  }
  struct Cases: Decodable { var tokenizers: [String: [Case]] }

  struct Chat: Decodable {
    struct Template: Decodable {
      var template: String
      var bosToken: String
      var eosToken: String
      var tokenizer: String
      var cases: [ChatCase]
      enum CodingKeys: String, CodingKey {
        case template, tokenizer, cases
        case bosToken = "bos_token"
        case eosToken = "eos_token"
      }
    }
    struct ChatCase: Decodable {
      var conversation: String
      var messages: [ChatMessage]
      var addGenerationPrompt: Bool
      var rendered: String
      var ids: [Int32]
      enum CodingKeys: String, CodingKey {
        case conversation, messages, rendered, ids
        case addGenerationPrompt = "add_generation_prompt"
      }
    }
    var templates: [String: Template]
  }

  static func load<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(contentsOf: URL(fileURLWithPath: root + "/" + name)))
  }
  static func tokenizer(_ name: String) throws -> Tokenizer { try Tokenizer(json: root + "/\(name)/tokenizer.json") }
}

@Suite struct TokenizerTests {
  static let names = ["bytelevel-bpe", "bytelevel-bpe-smollm", "sentencepiece-bpe", "tiny-llama-bpe"]

  @Test(arguments: names) func idsAndTextMatchHuggingFace(_ name: String) throws {
    let t = try Fixtures.tokenizer(name)
    let cases = try #require(try Fixtures.load(Fixtures.Cases.self, "cases.json").tokenizers[name])
    #expect(cases.count > 20)
    for c in cases {
      #expect(t.encode(c.text) == c.ids, "\(name): \(c.text.debugDescription)")
      #expect(t.encode(c.text, addSpecial: true) == c.idsWithSpecial, "\(name): \(c.text.debugDescription)")
      #expect(t.decode(c.ids) == c.decoded, "\(name): \(c.text.debugDescription)")
      #expect(t.decode(c.idsWithSpecial) == c.decodedWithSpecial, "\(name): \(c.text.debugDescription)")
      #expect(t.decode(c.idsWithSpecial, skipSpecial: true) == c.decodedSkipSpecial, "\(name)")
    }
  }

  @Test(arguments: names) func streamingGivesTheSameTextAsDecoding(_ name: String) throws {
    let t = try Fixtures.tokenizer(name)
    for c in try #require(try Fixtures.load(Fixtures.Cases.self, "cases.json").tokenizers[name]) {
      var s = StreamingDecoder(t)
      var text = ""
      for id in c.ids {
        let piece = s.push(id)
        #expect(!piece.contains("\u{FFFD}") || c.decoded.contains("\u{FFFD}"), "a character was cut: \(c.text)")
        text += piece
      }
      text += s.finish()
      // SentencePiece's decode drops the space its normalizer put in front; a stream keeps it.
      let expected = t.kind == .byteLevel ? c.decoded : (c.ids.isEmpty ? "" : t.decode(c.ids))
      #expect(text == expected || " " + expected == text, "\(name): \(c.text.debugDescription)")
    }
  }

  /// decode(encode(text)) gives the text back, for seeded random texts over a mixed alphabet (every byte has a
  /// token in byte-level BPE; SentencePiece falls back to byte tokens).
  @Test(arguments: names) func roundTripsRandomText(_ name: String) throws {
    let t = try Fixtures.tokenizer(name)
    let alphabet = Array("abcXYZ 019  \n\t.,!?'\"-_/éüßçñ東京日本語Привет🙂🦙\u{301}<|>")
    var state: UInt64 = 42
    for _ in 0..<200 {
      var text = ""
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      for _ in 0..<Int(state >> 58) {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        text.append(alphabet[Int((state >> 33) % UInt64(alphabet.count))])
      }
      #expect(t.decode(t.encode(text)) == text, "\(name): \(text.debugDescription)")
    }
  }

  @Test func chatTemplatesRenderAsTransformersDoes() throws {
    let chat = try Fixtures.load(Fixtures.Chat.self, "chat.json")
    #expect(chat.templates.count == 4)
    for (name, tpl) in chat.templates {
      let template = try ChatTemplate.recognise(tpl.template)
      let t = try Fixtures.tokenizer(tpl.tokenizer)
      for c in tpl.cases {
        let rendered = try template.render(
          c.messages, bos: tpl.bosToken, eos: tpl.eosToken, addGenerationPrompt: c.addGenerationPrompt)
        #expect(rendered == c.rendered, "\(name) \(c.conversation)")
        #expect(t.encode(rendered) == c.ids, "\(name) \(c.conversation)")
      }
    }
  }

  @Test func recognisedTemplates() throws {
    let chat = try Fixtures.load(Fixtures.Chat.self, "chat.json")
    #expect(
      try ChatTemplate.recognise(chat.templates["smollm2"]!.template)
        == .chatML(defaultSystem: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"))
    #expect(try ChatTemplate.recognise(chat.templates["llama3"]!.template) == .llama3)
    #expect(try ChatTemplate.recognise(chat.templates["llama3.1"]!.template) == .llama31(date: "26 Jul 2024"))
    #expect(try ChatTemplate.recognise(chat.templates["llama2"]!.template) == .llama2)
    #expect(throws: TokenizerError.self) { try ChatTemplate.recognise("{{ messages }}") }
  }

  /// The tokenizer stored in a GGUF file's metadata gives the ids of the same tokenizer's tokenizer.json.
  @Test func ggufMetadataTokenizerMatchesTokenizerJSON() throws {
    // The engine's fixtures, next to this target's in the source tree.
    let engineFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../EngineTests/Fixtures/gguf").standardized.path
    let gguf = try GGUFFile(path: engineFixtures + "/tiny-llama-q4_0.gguf")
    let fromGGUF = try Tokenizer(gguf: gguf)
    let fromJSON = try Fixtures.tokenizer("tiny-llama-bpe")
    #expect(fromGGUF.vocabularySize == fromJSON.vocabularySize)
    for c in try #require(try Fixtures.load(Fixtures.Cases.self, "cases.json").tokenizers["tiny-llama-bpe"]) {
      #expect(fromGGUF.encode(c.text) == c.ids, "\(c.text.debugDescription)")
      #expect(fromGGUF.encode(c.text, addSpecial: true) == c.idsWithSpecial, "\(c.text.debugDescription)")
      #expect(fromGGUF.decode(c.ids) == c.decoded)
    }
    #expect(fromGGUF.chatTemplate != nil)
  }

  /// A SentencePiece vocabulary in a GGUF file (scores and byte tokens, no merge list), as llama.cpp stores Llama 2's:
  /// the same ids as the tokenizer.json it was made from (llama.cpp's own tokenizer agrees on every case; checked
  /// when the fixture was made).
  @Test func sentencePieceFromGGUFScores() throws {
    let t = try Tokenizer(gguf: try GGUFFile(path: Fixtures.root + "/sentencepiece-bpe/tokenizer.gguf"))
    #expect(t.kind == .sentencePiece(addPrefixSpace: true, byteFallback: true))
    for c in try #require(try Fixtures.load(Fixtures.Cases.self, "cases.json").tokenizers["sentencepiece-bpe"]) {
      #expect(t.encode(c.text) == c.ids, "\(c.text.debugDescription)")
      #expect(t.encode(c.text, addSpecial: true) == c.idsWithSpecial, "\(c.text.debugDescription)")
      #expect(t.decode(c.ids) == c.decoded, "\(c.text.debugDescription)")
    }
  }

  @Test func badTokenizerFilesNameTheFile() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    for (i, body) in [
      "not json", #"{"model": {"type": "WordPiece", "vocab": {}}}"#, #"{"model": {"vocab": {"a": -1}}}"#,
    ]
    .enumerated() {
      let path = dir.appendingPathComponent("t\(i).json").path
      try body.write(toFile: path, atomically: true, encoding: .utf8)
      let e = #expect(throws: TokenizerError.self) { try Tokenizer(json: path) }
      #expect(e?.source == path)
    }
    #expect(throws: TokenizerError.self) { try Tokenizer(json: dir.path + "/missing.json") }
  }
}

/// Corrupted GGUF files (seeded random byte changes of a real one): reading the file, its model configuration and
/// its tokenizer either works or throws a named error — never a trap.
@Suite("Corrupted GGUF files")
struct CorruptedGGUFTests {
  @Test func randomByteChangesNeverTrap() throws {
    let engineFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../EngineTests/Fixtures/gguf").standardized.path
    let original = try Data(contentsOf: URL(fileURLWithPath: engineFixtures + "/tiny-llama-q4_0.gguf"))
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-fuzz-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("f.gguf").path
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next() -> UInt64 {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return state >> 11
    }
    // The header and metadata (where the counts, lengths and types are) take the first ~12 KB.
    let header = min(original.count, 12_000)
    var outcomes = [0, 0]
    for _ in 0..<300 {
      var bytes = original
      for _ in 0..<(1 + Int(next() % 4)) {
        let at = Int(next() % UInt64(header))
        bytes[at] = UInt8(truncatingIfNeeded: next())
      }
      try bytes.write(to: URL(fileURLWithPath: path))
      do {
        let file = try GGUFFile(path: path)
        _ = try? GGUFWeights(path: path)
        _ = try? Tokenizer(gguf: file)
        outcomes[0] += 1
      } catch {
        outcomes[1] += 1
      }
    }
    // Both kinds happen: the changes are not all harmless, nor all caught at the magic number.
    #expect(outcomes[0] > 0 && outcomes[1] > 0)
  }
}
