public import Foundation

/// Any JSON value. Sweeps use it to override any field of an experiment by path, and algorithm parameters use
/// it so that a new algorithm can take parameters without changing the spec types.
public enum JSONValue: Hashable, Sendable, Codable, CustomStringConvertible {
  case null
  case bool(Bool)
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])

  public init(from decoder: any Decoder) throws {
    let c = try decoder.singleValueContainer()
    if c.decodeNil() {
      self = .null
    } else if let b = try? c.decode(Bool.self) {
      self = .bool(b)
    } else if let n = try? c.decode(Double.self) {
      self = .number(n)
    } else if let s = try? c.decode(String.self) {
      self = .string(s)
    } else if let a = try? c.decode([JSONValue].self) {
      self = .array(a)
    } else {
      self = .object(try c.decode([String: JSONValue].self))
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.singleValueContainer()
    switch self {
    case .null: try c.encodeNil()
    case .bool(let b): try c.encode(b)
    case .number(let n):
      if n == n.rounded(), abs(n) < 9e15 { try c.encode(Int64(n)) } else { try c.encode(n) }
    case .string(let s): try c.encode(s)
    case .array(let a): try c.encode(a)
    case .object(let o): try c.encode(o)
    }
  }

  /// Compact JSON text with sorted keys.
  public var description: String { (try? JSONCoding.compactString(self)) ?? "<unencodable>" }

  public var doubleValue: Double? { if case .number(let n) = self { n } else { nil } }
  public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
  public var intValue: Int? {
    if case .number(let n) = self, n == n.rounded(), abs(n) < 9e15 { return Int(n) }
    return nil
  }
  public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }

  /// Converts a Codable value to a JSON tree (through the project's encoder).
  public init<T: Encodable>(encoding value: T) throws {
    let data = try JSONCoding.encoder.encode(value)
    self = try JSONCoding.decoder.decode(JSONValue.self, from: data)
  }

  /// Decodes a Codable value from this tree.
  public func decode<T: Decodable>(_ type: T.Type) throws -> T {
    try JSONCoding.decoder.decode(T.self, from: JSONCoding.encoder.encode(self))
  }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByFloatLiteral, ExpressibleByIntegerLiteral,
  ExpressibleByBooleanLiteral
{
  public init(stringLiteral value: String) { self = .string(value) }
  public init(floatLiteral value: Double) { self = .number(value) }
  public init(integerLiteral value: Int) { self = .number(Double(value)) }
  public init(booleanLiteral value: Bool) { self = .bool(value) }
}

// MARK: - Paths

/// A path into a JSON tree: `network.link.bandwidth`, `devices[1].count`, `devices[agx].count`
/// (`[name]` selects the array element whose `"name"` is that string), `network.overrides[wan].bandwidth`.
public struct JSONPath: Hashable, Sendable, CustomStringConvertible {
  public enum Component: Hashable, Sendable {
    case key(String)
    case index(Int)
    case named(String)
  }
  public var components: [Component]
  public var text: String
  public var description: String { text }

  public init(_ text: String) throws(JSONPathError) {
    self.text = text
    var comps: [Component] = []
    var i = text.startIndex
    var current = ""
    func flush() {
      if !current.isEmpty {
        comps.append(.key(current))
        current = ""
      }
    }
    while i < text.endIndex {
      let ch = text[i]
      if ch == "." {
        flush()
      } else if ch == "[" {
        flush()
        guard let close = text[i...].firstIndex(of: "]") else {
          throw JSONPathError(path: text, reason: "unclosed '['")
        }
        let inner = String(text[text.index(after: i)..<close])
        if inner.isEmpty { throw JSONPathError(path: text, reason: "empty '[]'") }
        if let n = Int(inner) { comps.append(.index(n)) } else { comps.append(.named(inner)) }
        i = close
      } else {
        current.append(ch)
      }
      i = text.index(after: i)
    }
    flush()
    if comps.isEmpty { throw JSONPathError(path: text, reason: "the path is empty") }
    components = comps
  }

  /// The last key component, for column names ("network.link.bandwidth" → "bandwidth").
  public var leaf: String {
    for c in components.reversed() {
      switch c {
      case .key(let k): return k
      case .named(let n): return n
      case .index(let i): return String(i)
      }
    }
    return text
  }
}

public struct JSONPathError: Error, CustomStringConvertible, Equatable {
  public var path: String
  public var reason: String
  public var description: String { "path '\(path)': \(reason)" }
}

extension JSONValue {
  /// The value at `path`, or nil when some component does not exist.
  public func value(at path: JSONPath) -> JSONValue? {
    var node = self
    for c in path.components {
      switch (c, node) {
      case (.key(let k), .object(let o)):
        guard let n = o[k] else { return nil }
        node = n
      case (.index(let i), .array(let a)):
        guard a.indices.contains(i) else { return nil }
        node = a[i]
      case (.named(let name), .array(let a)):
        guard let n = a.first(where: { $0.objectValue?["name"]?.stringValue == name }) else { return nil }
        node = n
      default: return nil
      }
    }
    return node
  }

  public var objectValue: [String: JSONValue]? { if case .object(let o) = self { o } else { nil } }

  /// Object keys (as dotted paths) that this tree has and `known` lacks, where both are objects at the same
  /// place; lists are compared element by element. Compare what a user wrote with what decoding it and
  /// encoding it again gives, and these are the keys the decoder ignored (misspelt or unsupported).
  ///
  /// Keys written as `null` or `false` are not reported (encoders leave out false flags), nor anything under a
  /// path in `opaque` (objects read leniently on purpose, such as a pasted Hugging Face config).
  public func keysMissing(from known: JSONValue, at prefix: String = "", opaque: Set<String> = []) -> [String] {
    if opaque.contains(prefix) { return [] }
    switch (self, known) {
    case (.object(let mine), .object(let theirs)):
      return mine.keys.sorted().flatMap { k -> [String] in
        let path = prefix.isEmpty ? k : prefix + "." + k
        guard let v = mine[k], v != .null, v != .bool(false) else { return [] }
        guard let t = theirs[k] else { return opaque.contains(path) ? [] : [path] }
        return v.keysMissing(from: t, at: path, opaque: opaque)
      }
    case (.array(let mine), .array(let theirs)) where mine.count == theirs.count:
      return zip(mine, theirs).enumerated().flatMap { i, pair in
        pair.0.keysMissing(from: pair.1, at: "\(prefix)[\(i)]", opaque: opaque)
      }
    default:
      return []
    }
  }

  /// The keys of the deepest object along `path` that exists, with that object's path (for "did you mean").
  public func deepestKeys(along path: JSONPath) -> (path: String, keys: [String]) {
    var node = self
    var reached: [String] = []
    for c in path.components {
      let text: String
      switch c {
      case .key(let k): text = k
      case .index(let i): text = "[\(i)]"
      case .named(let n): text = "[\(n)]"
      }
      let next: JSONValue?
      switch (c, node) {
      case (.key(let k), .object(let o)): next = o[k]
      case (.index(let i), .array(let a)): next = a.indices.contains(i) ? a[i] : nil
      case (.named(let name), .array(let a)): next = a.first { $0.objectValue?["name"]?.stringValue == name }
      default: next = nil
      }
      guard let next else { break }
      node = next
      reached.append(text)
    }
    let keys = node.objectValue.map { $0.keys.sorted() } ?? []
    return (reached.joined(separator: ".").replacingOccurrences(of: ".[", with: "["), keys)
  }

  /// Sets the value at `path`. Object keys that do not exist yet are created (so an optional field can be
  /// swept); array elements must exist.
  public mutating func set(_ value: JSONValue, at path: JSONPath) throws(JSONPathError) {
    try set(value, components: path.components[...], path: path)
  }

  private mutating func set(_ value: JSONValue, components: ArraySlice<JSONPath.Component>, path: JSONPath)
    throws(JSONPathError)
  {
    guard let first = components.first else {
      self = value
      return
    }
    let rest = components.dropFirst()
    switch (first, self) {
    case (.key(let k), .object(var o)):
      var child = o[k] ?? (rest.isEmpty ? .null : .object([:]))
      try child.set(value, components: rest, path: path)
      o[k] = child
      self = .object(o)
    case (.key(let k), .null):
      var child: JSONValue = .object([:])
      try child.set(value, components: rest, path: path)
      self = .object([k: child])
    case (.index(let i), .array(var a)):
      guard a.indices.contains(i) else {
        throw JSONPathError(path: path.text, reason: "index \(i) is out of range (the list has \(a.count) elements)")
      }
      try a[i].set(value, components: rest, path: path)
      self = .array(a)
    case (.named(let name), .array(var a)):
      guard let i = a.firstIndex(where: { $0.objectValue?["name"]?.stringValue == name }) else {
        let names = a.compactMap { $0.objectValue?["name"]?.stringValue }
        throw JSONPathError(
          path: path.text, reason: "no element named '\(name)' (names: \(names.joined(separator: ", ")))")
      }
      try a[i].set(value, components: rest, path: path)
      self = .array(a)
    case (.key(let k), .array):
      throw JSONPathError(
        path: path.text,
        reason: "'\(k)' selects from a list: write [\(k)] (the element named \(k)) or [0] (by position)")
    default:
      let step: String
      switch first {
      case .key(let k): step = "'\(k)'"
      case .index(let i): step = "[\(i)]"
      case .named(let n): step = "[\(n)]"
      }
      throw JSONPathError(path: path.text, reason: "cannot descend into \(self.kindName) with \(step)")
    }
  }

  var kindName: String {
    switch self {
    case .null: "null"
    case .bool: "a boolean"
    case .number: "a number"
    case .string: "a string"
    case .array: "a list"
    case .object: "an object"
    }
  }
}

/// The project's JSON encoder and decoder: sorted keys, no escaped slashes, so output is stable and diffable.
public enum JSONCoding {
  public static var encoder: JSONEncoder {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return e
  }
  public static var prettyEncoder: JSONEncoder {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    return e
  }
  public static var decoder: JSONDecoder { JSONDecoder() }

  public static func compactString<T: Encodable>(_ value: T) throws -> String {
    String(decoding: try encoder.encode(value), as: UTF8.self)
  }
  public static func prettyString<T: Encodable>(_ value: T) throws -> String {
    String(decoding: try prettyEncoder.encode(value), as: UTF8.self)
  }

  /// A decoding error of `data` as one sentence naming the field path. A number that no integer field can hold
  /// (out of the 64-bit range, or negative where only seeds take integers that large) makes the decoder give up
  /// on the whole document; the path is then found by reading `data` again.
  public static func explain(_ error: any Error, in data: Data) -> String {
    if case DecodingError.dataCorrupted(let ctx) = error, ctx.codingPath.isEmpty,
      let tree = try? decoder.decode(JSONValue.self, from: data)
    {
      let suspects = tree.numbersNoIntegerFieldTakes()
      if let (path, n) = suspects.first {
        let more =
          suspects.count > 1
          ? " (and \(suspects.count - 1) more: \(suspects.dropFirst().map(\.0).joined(separator: ", ")))" : ""
        let shown = n.rounded() == n && abs(n) < 1e15 ? String(Int(n)) : "\(n)"
        return "field '\(path)': \(shown) is not a whole number in the range this field takes\(more)"
      }
    }
    return explain(error)
  }

  /// A decoding error as one sentence naming the field path, for users who wrote the JSON by hand.
  public static func explain(_ error: any Error) -> String {
    guard let e = error as? DecodingError else { return "\(error)" }
    func path(_ p: [any CodingKey]) -> String {
      let s = p.map { k in k.intValue.map { "[\($0)]" } ?? "." + k.stringValue }.joined()
      return s.hasPrefix(".") ? String(s.dropFirst()) : (s.isEmpty ? "(top level)" : s)
    }
    switch e {
    case .keyNotFound(let key, let ctx): return "missing field '\(path(ctx.codingPath + [key]))'"
    case .typeMismatch(let t, let ctx): return "field '\(path(ctx.codingPath))' should be \(t): \(ctx.debugDescription)"
    case .valueNotFound(let t, let ctx): return "field '\(path(ctx.codingPath))' is null but should be \(t)"
    case .dataCorrupted(let ctx): return "field '\(path(ctx.codingPath))': \(ctx.debugDescription)"
    @unknown default: return "\(e)"
    }
  }
}

extension JSONValue {
  /// Numbers no integer field of ours can take, with their paths: beyond ±2⁶³, or negative under a key ending
  /// in "seed" (seeds are unsigned).
  func numbersNoIntegerFieldTakes(at path: String = "") -> [(String, Double)] {
    switch self {
    case .number(let n):
      let key = path.split(separator: ".").last.map(String.init) ?? path
      if !n.isFinite || abs(n) >= 9.223_372_036_854_775_807e18 || (n < 0 && key.hasSuffix("seed")) {
        return [(path, n)]
      }
      return []
    case .array(let a):
      return a.enumerated().flatMap { $1.numbersNoIntegerFieldTakes(at: path + "[\($0)]") }
    case .object(let o):
      return o.keys.sorted().flatMap { o[$0]!.numbersNoIntegerFieldTakes(at: path.isEmpty ? $0 : path + "." + $0) }
    default:
      return []
    }
  }
}
