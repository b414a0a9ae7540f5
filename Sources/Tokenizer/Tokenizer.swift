import Foundation
import HeapModule

/// A tokenizer error naming the file (or field) and what is wrong.
public struct TokenizerError: Error, CustomStringConvertible, Sendable, Equatable {
  public var source: String
  public var detail: String
  public init(_ source: String, _ detail: String) {
    self.source = source
    self.detail = detail
  }
  public var description: String { "\(source): \(detail)" }
}

/// Text to token ids and back, as the model's own tokenizer does it, without Python: byte-level BPE (GPT-2,
/// Llama 3, SmolLM) and SentencePiece-style BPE with byte fallback (Llama 2), read from a Hugging Face
/// `tokenizer.json` or from a GGUF file's `tokenizer.ggml.*` metadata.
public struct Tokenizer: Sendable {
  public enum Kind: Sendable, Hashable {
    /// Bytes mapped to printable characters (GPT-2's table), split by the pre-tokenizer, merged by rank.
    case byteLevel
    /// Spaces become "▁" (one prepended when `addPrefixSpace`); characters merged by rank; characters with no
    /// token are spelled as byte tokens `<0xXX>`.
    case sentencePiece(addPrefixSpace: Bool, byteFallback: Bool)
  }

  public let kind: Kind
  /// id → token string (as stored: byte-level characters, or "▁" for spaces).
  public let tokens: [String]
  let ids: [String: Int32]
  let merges: MergeTable
  let preTokenizer: PreTokenizer
  /// A whole pre-tokenized piece that is itself a token is taken as it is, before any merge (Llama 3).
  let ignoreMerges: Bool
  /// Tokens matched in the text before anything else (special and added tokens), longest first.
  let specials: [(text: String, id: Int32)]
  let specialIds: Set<Int32>
  public let bos: Int32?
  public let eos: Int32?
  /// Tokens that end a turn (eos, and the chat templates' end-of-turn tokens that the vocabulary has).
  public let stopTokens: Set<Int32>
  public let unknown: Int32?
  /// Whether `encode(_:addSpecial: true)` puts `bos` first.
  public let addBos: Bool
  /// The chat template the model ships with (Jinja source), if any.
  public let chatTemplate: String?
  var byteTokens: [Int32?] = []

  init(
    kind: Kind, tokens: [String], merges: MergeTable, preTokenizer: PreTokenizer, ignoreMerges: Bool = false,
    specials: [(String, Int32)], bos: Int32?, eos: Int32?, unknown: Int32?, addBos: Bool, chatTemplate: String?,
    source: String
  ) throws(TokenizerError) {
    self.kind = kind
    self.tokens = tokens
    var ids: [String: Int32] = [:]
    ids.reserveCapacity(tokens.count)
    for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = Int32(i) }
    self.ids = ids
    self.merges = merges
    self.preTokenizer = preTokenizer
    self.ignoreMerges = ignoreMerges
    self.specials = specials.filter { !$0.0.isEmpty }.sorted { $0.0.utf8.count > $1.0.utf8.count }
    specialIds = Set(specials.map(\.1))
    for (name, v) in [("bos", bos), ("eos", eos), ("unknown", unknown)] {
      if let v, v < 0 || Int(v) >= tokens.count {
        throw TokenizerError(source, "\(name) token id \(v) is outside the vocabulary of \(tokens.count)")
      }
    }
    self.bos = bos
    self.eos = eos
    self.unknown = unknown
    self.addBos = addBos && bos != nil
    self.chatTemplate = chatTemplate
    var stops = Set<Int32>()
    if let eos { stops.insert(eos) }
    for t in ["<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "</s>", "<|endoftext|>", "<|eom_id|>"] {
      if let id = ids[t], specialIds.contains(id) || t == "</s>" { stops.insert(id) }
    }
    stopTokens = stops
    if case .sentencePiece = kind {
      byteTokens = (0..<256).map { ids[String(format: "<0x%02X>", $0)] }
    }
  }

  public var vocabularySize: Int { tokens.count }

  /// Token ids of `text`. Special tokens written in the text (`<|im_start|>`, `<|eot_id|>` …) become their ids;
  /// with `addSpecial`, the tokenizer's BOS comes first when the model wants one.
  public func encode(_ text: String, addSpecial: Bool = false) -> [Int32] {
    var out: [Int32] = []
    if addSpecial && addBos, let bos { out.append(bos) }
    for segment in splitSpecials(text) {
      switch segment {
      case .special(let id): out.append(id)
      case .text(let s): encodeOrdinary(s, into: &out)
      }
    }
    return out
  }

  enum Segment {
    case text(String)
    case special(Int32)
  }

  /// Cuts the text at every occurrence of a special token (the longest one where several start at a place).
  func splitSpecials(_ text: String) -> [Segment] {
    guard !specials.isEmpty else { return text.isEmpty ? [] : [.text(text)] }
    let bytes = Array(text.utf8)
    var out: [Segment] = []
    var start = 0
    var i = 0
    let firsts = Set(specials.compactMap { $0.text.utf8.first })
    while i < bytes.count {
      if firsts.contains(bytes[i]),
        let m = specials.first(where: { s in
          let u = s.text.utf8
          return u.count <= bytes.count - i && bytes[i..<(i + u.count)].elementsEqual(u)
        })
      {
        if start < i { out.append(.text(String(decoding: bytes[start..<i], as: UTF8.self))) }
        out.append(.special(m.id))
        i += m.text.utf8.count
        start = i
      } else {
        i += 1
      }
    }
    if start < bytes.count { out.append(.text(String(decoding: bytes[start...], as: UTF8.self))) }
    return out
  }

  func encodeOrdinary(_ text: String, into out: inout [Int32]) {
    switch kind {
    case .byteLevel:
      for piece in preTokenizer.split(text) {
        let symbols = piece.utf8.map { ByteLevel.character[Int($0)] }
        if ignoreMerges, let id = ids[symbols.joined()] {
          out.append(id)
          continue
        }
        for t in merges.apply(symbols) { appendToken(t, into: &out) }
      }
    case .sentencePiece(let prefix, _):
      guard !text.isEmpty else { return }
      let normalized = (prefix ? "▁" : "") + text.replacingOccurrences(of: " ", with: "▁")
      let symbols = normalized.unicodeScalars.map { String($0) }
      for t in merges.apply(symbols) { appendToken(t, into: &out) }
    }
  }

  func appendToken(_ t: String, into out: inout [Int32]) {
    if let id = ids[t] {
      out.append(id)
      return
    }
    if case .sentencePiece(_, true) = kind {
      let bytes = t.utf8.map { byteTokens[Int($0)] }
      if bytes.allSatisfy({ $0 != nil }) {
        out += bytes.map { $0! }
        return
      }
    }
    if case .byteLevel = kind {
      // A merged symbol missing from the vocabulary (a broken merge list): fall back to its characters.
      let chars = t.map { String($0) }
      if chars.count > 1, chars.allSatisfy({ ids[$0] != nil }) {
        out += chars.map { ids[$0]! }
        return
      }
    }
    if let unknown { out.append(unknown) }
  }

  /// The bytes a token stands for (special tokens: their text).
  public func bytes(of id: Int32) -> [UInt8] {
    guard id >= 0, Int(id) < tokens.count else { return [] }
    let t = tokens[Int(id)]
    if specialIds.contains(id) { return Array(t.utf8) }
    switch kind {
    case .byteLevel:
      var out: [UInt8] = []
      for ch in t.unicodeScalars {
        if let b = ByteLevel.byte[ch] { out.append(b) } else { out += Array(String(ch).utf8) }
      }
      return out
    case .sentencePiece:
      if t.count == 6, t.hasPrefix("<0x"), t.hasSuffix(">"), let b = UInt8(t.dropFirst(3).prefix(2), radix: 16) {
        return [b]
      }
      return Array(t.replacingOccurrences(of: "▁", with: " ").utf8)
    }
  }

  /// Text of `ids` as Hugging Face's `decode` gives it (SentencePiece drops the one space its normalizer added
  /// in front); invalid UTF-8 becomes U+FFFD.
  public func decode(_ ids: [Int32], skipSpecial: Bool = false) -> String {
    var bytes: [UInt8] = []
    for id in ids where !(skipSpecial && specialIds.contains(id)) { bytes += self.bytes(of: id) }
    if case .sentencePiece = kind, bytes.first == 0x20 { bytes.removeFirst() }
    return String(decoding: bytes, as: UTF8.self)
  }
}

/// Decodes generated tokens as they come, giving back only whole UTF-8 characters (a character split across
/// tokens waits for its last byte).
public struct StreamingDecoder: Sendable {
  let tokenizer: Tokenizer
  var pending: [UInt8] = []
  public init(_ tokenizer: Tokenizer) { self.tokenizer = tokenizer }

  /// Text completed by this token (possibly empty).
  public mutating func push(_ id: Int32) -> String {
    pending += tokenizer.bytes(of: id)
    var end = pending.count
    // Hold back an incomplete trailing sequence (at most 3 bytes of a 4-byte character).
    var back = 0
    while back < min(4, end) {
      let b = pending[end - 1 - back]
      if b & 0xC0 == 0x80 {
        back += 1
        continue
      }
      let need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
      if need > back + 1 { end -= back + 1 }
      break
    }
    let text = String(decoding: pending[..<end], as: UTF8.self)
    pending.removeFirst(end)
    return text
  }

  /// Whatever is left (an incomplete character becomes U+FFFD).
  public mutating func finish() -> String {
    defer { pending = [] }
    return String(decoding: pending, as: UTF8.self)
  }
}

/// GPT-2's table from bytes to printable characters (so that BPE works on strings without spaces or controls).
enum ByteLevel {
  static let table: [Unicode.Scalar] = {
    var bs = Array(33...126) + Array(161...172) + Array(174...255)
    var cs = bs
    var n = 0
    for b in 0..<256 where !bs.contains(b) {
      bs.append(b)
      cs.append(256 + n)
      n += 1
    }
    var out = [Unicode.Scalar](repeating: " ", count: 256)
    for (b, c) in zip(bs, cs) { out[b] = Unicode.Scalar(UInt32(c))! }
    return out
  }()
  static let character: [String] = table.map { String($0) }
  static let byte: [Unicode.Scalar: UInt8] = {
    var m: [Unicode.Scalar: UInt8] = [:]
    for (b, c) in table.enumerated() { m[c] = UInt8(b) }
    return m
  }()
}

/// Which adjacent pair merges first: a merge list's rank, or (SentencePiece files in GGUF) the score of the
/// token the pair makes — the highest score first.
struct MergeTable: Sendable {
  struct Pair: Hashable, Sendable {
    var a: String
    var b: String
  }
  var ranks: [Pair: Int] = [:]
  /// Token → score, for GGUF SentencePiece vocabularies (no merge list).
  var scores: [String: Float]? = nil

  func priority(_ a: String, _ b: String) -> Double? {
    if let scores {
      guard let s = scores[a + b] else { return nil }
      return -Double(s)
    }
    return ranks[Pair(a: a, b: b)].map(Double.init)
  }

  /// Merges `symbols` pair by pair, always the best-ranked pair first (the leftmost among equals), as Hugging Face's
  /// BPE and llama.cpp's SentencePiece do: candidates in a heap ordered by (priority, position), the symbols in a
  /// linked list, stale candidates skipped — O(n log n), so a long SentencePiece segment (one piece) stays fast.
  func apply(_ symbols: [String]) -> [String] {
    let n = symbols.count
    guard n > 1 else { return symbols }
    var text = symbols
    var next = Array(1...n)
    var prev = Array(-1..<(n - 1))
    var version = [Int](repeating: 0, count: n)
    var heap = Heap<Candidate>()
    func consider(_ left: Int) {
      let right = next[left]
      guard left >= 0, right < n, let p = priority(text[left], text[right]) else { return }
      heap.insert(
        Candidate(priority: p, left: left, right: right, leftVersion: version[left], rightVersion: version[right]))
    }
    for i in 0..<(n - 1) { consider(i) }
    while let c = heap.popMin() {
      guard next[c.left] == c.right, version[c.left] == c.leftVersion, version[c.right] == c.rightVersion else {
        continue
      }
      text[c.left] += text[c.right]
      version[c.left] += 1
      version[c.right] += 1
      next[c.left] = next[c.right]
      if next[c.right] < n { prev[next[c.right]] = c.left }
      next[c.right] = -1
      if prev[c.left] >= 0 { consider(prev[c.left]) }
      consider(c.left)
    }
    var out: [String] = []
    var i = 0
    while i < n {
      out.append(text[i])
      i = next[i]
    }
    return out
  }

  struct Candidate: Comparable {
    var priority: Double
    var left: Int
    var right: Int
    var leftVersion: Int
    var rightVersion: Int
    static func < (a: Candidate, b: Candidate) -> Bool { (a.priority, a.left) < (b.priority, b.left) }
    static func == (a: Candidate, b: Candidate) -> Bool { (a.priority, a.left) == (b.priority, b.left) }
  }
}
