import DSL
import EdgeLabCore
import Engine
import Experiments
public import Foundation
import Runner
import Spec

/// Mutation fuzzing of what the lab reads from files: safetensors headers and experiment specs. Every case must
/// end in a result or a named error; a trap ends the process, so finishing is the check. Deterministic: the same
/// seed gives the same cases.
public enum Fuzz {
  /// How a batch of cases ended.
  public struct Report: Sendable, CustomStringConvertible {
    public var cases = 0
    public var accepted = 0
    public var refused = 0
    /// Refusals by their first words, the most common first (what the inputs ran into).
    public var reasons: [String: Int] = [:]
    public var slowestSeconds = 0.0

    public var description: String {
      let top = reasons.sorted { $0.value > $1.value }.prefix(5).map { "\($0.value)× \($0.key)" }.joined(
        separator: "; ")
      return
        "\(cases) cases: \(accepted) accepted, \(refused) refused with a named error, 0 crashes; slowest \(Seconds(slowestSeconds)); most common refusals: \(top)"
    }

    mutating func record(_ error: String?, seconds: Double) {
      cases += 1
      slowestSeconds = max(slowestSeconds, seconds)
      guard let error else {
        accepted += 1
        return
      }
      refused += 1
      let key =
        error.split(separator: ":").dropFirst().first.map { String($0.prefix(40)).trimmingWhitespace() } ?? error
      reasons[key, default: 0] += 1
    }
  }

  // MARK: Safetensors

  /// A valid two-tensor safetensors file (F32 [2, 3] and BF16 [4]).
  static func validSafetensors() -> [UInt8] {
    let header =
      #"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},"__metadata__":{"format":"pt"}}"#
    var out: [UInt8] = []
    withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { out += $0 }
    out += Array(header.utf8)
    out += [UInt8](repeating: 7, count: 32)
    return out
  }

  static let hostileNumbers = [
    "-1", "0", "1e30", "9223372036854775807", "9223372036854775808", "18446744073709551615", "4294967296", "1.5",
    "-9223372036854775808", "3037000500", "\"x\"", "true", "null", "[]", "{}",
  ]

  /// One mutated safetensors file.
  public static func mutatedSafetensors(seed: UInt64) -> [UInt8] {
    var g = SeededRandom(seed: seed)
    var bytes = validSafetensors()
    func pick<T>(_ xs: [T]) -> T { xs[Int(g.next() % UInt64(xs.count))] }
    for _ in 0..<(1 + Int(g.next() % 3)) {
      switch g.next() % 7 {
      case 0:  // the header length
        let v: UInt64 = pick([
          0, 1, 7, 8, UInt64(bytes.count), UInt64(max(0, bytes.count - 8)), UInt64.max, UInt64(Int.max), 1 << 40,
          g.next(),
        ])
        withUnsafeBytes(of: v.littleEndian) { raw in for i in 0..<8 where i < bytes.count { bytes[i] = raw[i] } }
      case 1:  // a number in the header replaced
        var text = String(decoding: bytes.dropFirst(8).prefix(headerLength(bytes)), as: UTF8.self)
        let digits = text.indices.filter { text[$0].isNumber }
        if let at = digits.isEmpty ? nil : pick(digits) {
          var end = at
          while end < text.endIndex && text[end].isNumber { end = text.index(after: end) }
          text.replaceSubrange(at..<end, with: pick(hostileNumbers))
          bytes = withHeader(text, data: 32)
        }
      case 2:  // bytes flipped anywhere
        for _ in 0..<(1 + Int(g.next() % 4)) where !bytes.isEmpty {
          bytes[Int(g.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: g.next())
        }
      case 3:  // truncated
        bytes = Array(bytes.prefix(Int(g.next() % UInt64(bytes.count + 1))))
      case 4:  // a shape whose product overflows, or with many dimensions
        let shape = pick([
          "[65536,65536,65536,65536]", "[3037000500,3037000500]", "[1,1,1,1,1,1,1,1,1,1,1,1]", "[-2,-3]",
        ])
        bytes = withHeader(
          #"{"a":{"dtype":"F32","shape":\#(shape),"data_offsets":[0,24]}}"#, data: 32)
      case 5:  // another dtype, or the wrong kinds of values
        bytes = withHeader(
          #"{"a":{"dtype":\#(pick(["\"Q4_0\"", "\"F64\"", "1", "null", "\"\""])),"shape":\#(pick(["[2,3]", "\"2x3\"", "[]", "null"])),"data_offsets":\#(pick(["[0,24]", "[24,0]", "[0]", "\"0-24\"", "[0,24,48]"]))}}"#,
          data: 32)
      default:  // not a JSON object at all
        bytes = withHeader(
          pick(["[1,2,3]", "\"x\"", "{", "{\"a\":", "null", String(repeating: "[", count: 10_000)]), data: 0)
      }
    }
    return bytes
  }

  static func headerLength(_ bytes: [UInt8]) -> Int {
    guard bytes.count >= 8 else { return 0 }
    var v: UInt64 = 0
    for i in 0..<8 { v |= UInt64(bytes[i]) << (8 * UInt64(i)) }
    return Int(min(v, UInt64(max(0, bytes.count - 8))))
  }

  static func withHeader(_ header: String, data: Int) -> [UInt8] {
    var out: [UInt8] = []
    withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { out += $0 }
    return out + Array(header.utf8) + [UInt8](repeating: 1, count: data)
  }

  /// Parses `count` mutated safetensors headers.
  public static func safetensors(count: Int, seed: UInt64 = 1) -> Report {
    var report = Report()
    for i in 0..<count {
      let bytes = mutatedSafetensors(seed: seed &+ UInt64(i))
      let t0 = MonotonicClockSeconds.now()
      var refusal: String?
      do { _ = try SafeTensors.checkHeader(bytes, path: "fuzz-\(i).safetensors") } catch { refusal = error.description }
      report.record(refusal, seconds: MonotonicClockSeconds.now() - t0)
    }
    return report
  }

  // MARK: Specs

  static let hostileValues: [JSONValue] = [
    .number(1e30), .number(-1), .number(0), .number(1e9), .number(1e-300), .number(1e6), .number(1.5),
    .string("nan"), .string("inf"), .string("-1s"), .string("1e999GB"), .string(""), .string("NaN ms"), .null,
    .bool(true),
    .array([]), .object([:]), .string("1e308Tbit/s"), .number(4_294_967_296), .number(9.3e18),
  ]

  /// One mutated experiment spec (JSON), from one of the catalog's experiments.
  public static func mutatedSpec(seed: UInt64) -> Data {
    var g = SeededRandom(seed: seed)
    func pick<T>(_ xs: [T]) -> T { xs[Int(g.next() % UInt64(xs.count))] }
    let base = pick(ExperimentCatalog.all).spec
    var tree = (try? JSONValue(encoding: base)) ?? .null
    for _ in 0..<(1 + Int(g.next() % 3)) {
      let paths = tree.leafPaths()
      guard !paths.isEmpty else { break }
      let path = pick(paths)
      switch g.next() % 5 {
      case 0, 1: tree = tree.replacing(path, with: pick(hostileValues))
      case 2: tree = tree.replacing(path, with: nil)  // deleted
      case 3:  // a long sweep over a hostile setting
        let values = (0..<Int(1 + g.next() % 200)).map { _ in pick(hostileValues) }
        let text = path.reduce("") { acc, c in Int(c) != nil ? acc + "[\(c)]" : (acc.isEmpty ? c : acc + "." + c) }
        tree = tree.appendingSweep(path: text, values: values)
      default:  // a device count or request count far beyond reason
        tree = tree.replacing(
          pick([["devices", "0", "count"], ["workload", "requests"], ["repetitions"]]),
          with: .number(pick([1e6, 1e9, 1e30, -5])))
      }
    }
    return (try? JSONCoding.encoder.encode(tree)) ?? Data()
  }

  /// Reads and expands `count` mutated specs (validation, limits, sweep expansion; nothing runs).
  public static func specs(count: Int, seed: UInt64 = 1) -> Report {
    var report = Report()
    for i in 0..<count {
      let data = mutatedSpec(seed: seed &+ UInt64(i))
      let t0 = MonotonicClockSeconds.now()
      var refusal: String?
      do {
        let spec = try ExperimentSpec.load(json: data, source: "fuzz-\(i).json")
        _ = try ExperimentRunner.expand(spec)
      } catch {
        refusal = "\(error)"
      }
      report.record(refusal, seconds: MonotonicClockSeconds.now() - t0)
    }
    return report
  }
}

/// Wall seconds for timing fuzz cases (reported, never asserted).
enum MonotonicClockSeconds {
  static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }
}

extension JSONValue {
  /// Paths (as keys and indices) of every leaf value.
  func leafPaths(_ prefix: [String] = []) -> [[String]] {
    switch self {
    case .object(let o): return o.keys.sorted().flatMap { o[$0]!.leafPaths(prefix + [$0]) }
    case .array(let a): return a.isEmpty ? [prefix] : a.indices.flatMap { a[$0].leafPaths(prefix + [String($0)]) }
    default: return [prefix]
    }
  }

  /// The tree with the value at `path` replaced (nil: removed); paths that do not exist are created as keys.
  func replacing(_ path: [String], with value: JSONValue?) -> JSONValue {
    guard let first = path.first else { return value ?? .null }
    let rest = Array(path.dropFirst())
    switch self {
    case .object(var o):
      if rest.isEmpty && value == nil {
        o[first] = nil
      } else {
        o[first] = (o[first] ?? .object([:])).replacing(rest, with: value)
      }
      return .object(o)
    case .array(var a):
      guard let i = Int(first), a.indices.contains(i) else { return self }
      if rest.isEmpty && value == nil {
        a.remove(at: i)
      } else {
        a[i] = a[i].replacing(rest, with: value)
      }
      return .array(a)
    default:
      return self
    }
  }

  /// The tree with one more sweep axis.
  func appendingSweep(path: String, values: [JSONValue]) -> JSONValue {
    guard case .object(var o) = self else { return self }
    var sweeps: [JSONValue] = []
    if case .array(let existing)? = o["sweeps"] { sweeps = existing }
    sweeps.append(.object(["path": .string(path), "values": .array(values)]))
    o["sweeps"] = .array(sweeps)
    return .object(o)
  }
}
