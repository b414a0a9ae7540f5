public import Engine
import Foundation

extension Tokenizer {
  /// Most tokens a vocabulary may have (the largest real ones have a few hundred thousand).
  static let maxVocabulary = 1 << 22

  /// The tokenizer of a GGUF file (`tokenizer.ggml.*`): model "gpt2" (byte-level BPE with merges) or "llama"
  /// (SentencePiece-style with scores and byte tokens).
  public init(gguf file: GGUFFile) throws(TokenizerError) {
    let m = file.metadata
    let source = file.path
    guard let model = m["tokenizer.ggml.model"]?.string else {
      throw TokenizerError(source, "no tokenizer.ggml.model metadata (the file carries no tokenizer)")
    }
    guard let raw = m["tokenizer.ggml.tokens"]?.array, !raw.isEmpty, raw.count <= Self.maxVocabulary else {
      throw TokenizerError(source, "tokenizer.ggml.tokens is missing or empty")
    }
    var tokens: [String] = []
    tokens.reserveCapacity(raw.count)
    for t in raw {
      guard let s = t.string else { throw TokenizerError(source, "tokenizer.ggml.tokens holds a non-string") }
      tokens.append(s)
    }
    let types = m["tokenizer.ggml.token_type"]?.array?.map { $0.int ?? 1 }
    if let types, types.count != tokens.count {
      throw TokenizerError(
        source, "tokenizer.ggml.token_type has \(types.count) entries for \(tokens.count) tokens (one per token)")
    }
    // Control (3) and user-defined (4) tokens are matched in text as llama.cpp does with special parsing.
    var specials: [(String, Int32)] = []
    if let types {
      for (i, t) in types.enumerated() where (t == 3 || t == 4) && i < tokens.count {
        specials.append((tokens[i], Int32(i)))
      }
    }
    // A negative id (llama.cpp writes -1) means none.
    func id(_ key: String) -> Int32? {
      m["tokenizer.ggml." + key]?.int.flatMap { $0 < 0 ? nil : Int32(exactly: $0) }
    }
    let template = m["tokenizer.chat_template"]?.string
    switch model {
    case "gpt2":
      guard let rawMerges = m["tokenizer.ggml.merges"]?.array else {
        throw TokenizerError(source, "tokenizer.ggml.merges is missing (a gpt2 tokenizer needs its merges)")
      }
      var table = MergeTable()
      for (rank, v) in rawMerges.enumerated() {
        guard let s = v.string, let space = s.firstIndex(of: " ") else {
          throw TokenizerError(source, "tokenizer.ggml.merges[\(rank)] is not 'left right'")
        }
        let pair = MergeTable.Pair(a: String(s[..<space]), b: String(s[s.index(after: space)...]))
        if table.ranks[pair] == nil { table.ranks[pair] = rank }
      }
      let pre = m["tokenizer.ggml.pre"]?.string
      try self.init(
        kind: .byteLevel, tokens: tokens, merges: table,
        preTokenizer: try PreTokenizer.gguf(pre: pre, source: source),
        ignoreMerges: ["llama3", "llama-v3", "llama-bpe"].contains(pre ?? ""), specials: specials,
        bos: id("bos_token_id"), eos: id("eos_token_id"), unknown: id("unknown_token_id"),
        addBos: m["tokenizer.ggml.add_bos_token"]?.bool ?? false, chatTemplate: template, source: source)
    case "llama":
      guard let rawScores = m["tokenizer.ggml.scores"]?.array, rawScores.count == tokens.count else {
        throw TokenizerError(source, "tokenizer.ggml.scores is missing or not one per token")
      }
      var scores: [String: Float] = [:]
      for (i, t) in tokens.enumerated() where (types?[i] ?? 1) == 1 {
        scores[t] = Float(rawScores[i].double ?? 0)
      }
      try self.init(
        kind: .sentencePiece(addPrefixSpace: m["tokenizer.ggml.add_space_prefix"]?.bool ?? true, byteFallback: true),
        tokens: tokens, merges: MergeTable(scores: scores), preTokenizer: PreTokenizer(steps: []),
        specials: specials, bos: id("bos_token_id"), eos: id("eos_token_id"), unknown: id("unknown_token_id"),
        addBos: m["tokenizer.ggml.add_bos_token"]?.bool ?? true, chatTemplate: template, source: source)
    default:
      throw TokenizerError(source, "tokenizer.ggml.model '\(model)' is not supported (gpt2 and llama are)")
    }
  }

  /// A Hugging Face `tokenizer.json` (BPE models: byte-level, or SentencePiece-style with byte fallback), with
  /// the chat template and special tokens of `tokenizer_config.json` beside it when there is one.
  public init(json path: String) throws(TokenizerError) {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw TokenizerError(path, "cannot read the file")
    }
    guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
      throw TokenizerError(path, "not a JSON object")
    }
    guard let model = root["model"] as? [String: Any], (model["type"] as? String ?? "BPE") == "BPE",
      let vocab = model["vocab"] as? [String: Any]
    else {
      throw TokenizerError(
        path, "model.type must be BPE with a vocab (WordPiece, Unigram and others are not supported)")
    }
    var size = 0
    var pairs: [(String, Int)] = []
    for (t, v) in vocab {
      guard let n = Self.tokenId(v) else {
        throw TokenizerError(path, "model.vocab['\(t)'] is not a token id below \(Self.maxVocabulary)")
      }
      pairs.append((t, n))
      size = max(size, n + 1)
    }
    var specials: [(String, Int32)] = []
    for a in root["added_tokens"] as? [[String: Any]] ?? [] {
      guard let c = a["content"] as? String, let n = a["id"].flatMap(Self.tokenId) else {
        throw TokenizerError(path, "added_tokens holds an entry without content and a token id")
      }
      pairs.append((c, n))
      size = max(size, n + 1)
      specials.append((c, Int32(n)))
    }
    var tokens = [String](repeating: "", count: size)
    var owner: [Int: String] = [:]
    for (t, n) in pairs {
      if let other = owner[n], other != t {
        throw TokenizerError(path, "tokens '\(other)' and '\(t)' share the id \(n)")
      }
      owner[n] = t
      tokens[n] = t
    }
    var table = MergeTable()
    for (rank, v) in (model["merges"] as? [Any] ?? []).enumerated() {
      let pair: MergeTable.Pair
      if let s = v as? String, let space = s.firstIndex(of: " ") {
        pair = .init(a: String(s[..<space]), b: String(s[s.index(after: space)...]))
      } else if let l = v as? [String], l.count == 2 {
        pair = .init(a: l[0], b: l[1])
      } else {
        throw TokenizerError(path, "model.merges[\(rank)] is neither 'a b' nor [a, b]")
      }
      if table.ranks[pair] == nil { table.ranks[pair] = rank }
    }
    let tokenId = { (s: String) -> Int32? in pairs.first { $0.0 == s }.map { Int32($0.1) } }
    // Beside it: tokenizer_config.json (chat template, bos/eos names).
    let dir = (path as NSString).deletingLastPathComponent
    let config =
      FileManager.default.contents(atPath: dir + "/tokenizer_config.json").flatMap {
        try? JSONSerialization.jsonObject(with: $0) as? [String: Any]
      } ?? [:]
    func name(_ key: String) -> String? {
      if let s = config[key] as? String { return s }
      return (config[key] as? [String: Any])?["content"] as? String
    }
    let byteFallback = model["byte_fallback"] as? Bool ?? false
    let normalizer = root["normalizer"] as? [String: Any]
    let kind: Kind
    let pre: PreTokenizer
    if Self.describes(normalizer, "Replace") || byteFallback {
      kind = .sentencePiece(addPrefixSpace: Self.describes(normalizer, "Prepend"), byteFallback: byteFallback)
      pre = PreTokenizer(steps: [])
    } else {
      kind = .byteLevel
      pre = try Self.preTokenizer(root["pre_tokenizer"] as? [String: Any], source: path)
    }
    // BOS: the post-processor's template puts a special token before the sequence.
    var bosName = name("bos_token")
    var addBos = config["add_bos_token"] as? Bool
    if let single = Self.templateSingle(root["post_processor"] as? [String: Any]),
      let first = single.first?["SpecialToken"] as? [String: Any], let id = first["id"] as? String
    {
      bosName = bosName ?? id
      addBos = addBos ?? true
    }
    let unk = (model["unk_token"] as? String).flatMap(tokenId)
    try self.init(
      kind: kind, tokens: tokens, merges: table, preTokenizer: pre,
      ignoreMerges: kind == .byteLevel && (model["ignore_merges"] as? Bool ?? false), specials: specials,
      bos: bosName.flatMap(tokenId), eos: name("eos_token").flatMap(tokenId), unknown: unk,
      addBos: addBos ?? false, chatTemplate: config["chat_template"] as? String, source: path)
  }

  /// A JSON token id: a whole number in 0..<maxVocabulary (not a fraction).
  static func tokenId(_ v: Any) -> Int? {
    guard let n = v as? NSNumber else { return nil }
    let d = n.doubleValue
    guard d.isFinite, d == d.rounded(), d >= 0, d < Double(maxVocabulary) else { return nil }
    return Int(d)
  }

  static func describes(_ node: [String: Any]?, _ type: String) -> Bool {
    guard let node else { return false }
    if node["type"] as? String == type { return true }
    for key in ["normalizers", "pretokenizers", "processors", "decoders"] {
      for child in node[key] as? [[String: Any]] ?? [] where describes(child, type) { return true }
    }
    return false
  }

  static func templateSingle(_ node: [String: Any]?) -> [[String: Any]]? {
    guard let node else { return nil }
    if node["type"] as? String == "TemplateProcessing" { return node["single"] as? [[String: Any]] }
    for child in node["processors"] as? [[String: Any]] ?? [] {
      if let s = templateSingle(child) { return s }
    }
    return nil
  }

  /// The byte-level pre-tokenizers of tokenizer.json: Sequence, Split (Isolated), Digits and ByteLevel.
  static func preTokenizer(_ node: [String: Any]?, source: String) throws(TokenizerError) -> PreTokenizer {
    guard let node else {
      return PreTokenizer(steps: [.isolate(try PreTokenizer.regex(PreTokenizer.gpt2, source: source))])
    }
    var steps: [PreTokenizer.Step] = []
    func add(_ n: [String: Any]) throws(TokenizerError) {
      switch n["type"] as? String {
      case "Sequence":
        for c in n["pretokenizers"] as? [[String: Any]] ?? [] { try add(c) }
      case "Split":
        guard let pattern = n["pattern"] as? [String: Any], (n["behavior"] as? String) == "Isolated",
          (n["invert"] as? Bool) != true
        else { throw TokenizerError(source, "pre_tokenizer Split: only Isolated, non-inverted splits are supported") }
        if let r = pattern["Regex"] as? String {
          steps.append(.isolate(try PreTokenizer.regex(r, source: source)))
        } else if let s = pattern["String"] as? String {
          steps.append(.isolate(try PreTokenizer.regex(NSRegularExpression.escapedPattern(for: s), source: source)))
        }
      case "Digits":
        steps.append(.digits(individual: n["individual_digits"] as? Bool ?? false))
      case "ByteLevel":
        if (n["add_prefix_space"] as? Bool) == true {
          throw TokenizerError(source, "pre_tokenizer ByteLevel with add_prefix_space is not supported")
        }
        if (n["use_regex"] as? Bool) ?? true {
          steps.append(.isolate(try PreTokenizer.regex(PreTokenizer.gpt2, source: source)))
        }
      case let t:
        throw TokenizerError(source, "pre_tokenizer type \(t ?? "(none)") is not supported")
      }
    }
    try add(node)
    return PreTokenizer(steps: steps)
  }
}
