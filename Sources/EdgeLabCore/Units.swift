// swift-format-ignore-file: AlwaysUseLowerCamelCase
// (The DSL reads as declarations, units as their symbols, presets as model names.)
// Physical quantities with their units in the type. Arithmetic is on `Double` base units (bytes, bit/s,
// seconds, FLOPs); the string forms ("8GB", "100Mbit/s", "2ms") are what experiment JSON carries.

/// An amount of memory or data, in bytes. Decimal prefixes (kB, MB, GB = 10⁹) and binary ones (KiB, MiB, GiB).
public struct Bytes: Hashable, Comparable, Sendable, AdditiveArithmetic, CustomStringConvertible {
  public var value: Double
  public init(_ value: Double) { self.value = value }
  public init(_ value: Int) { self.value = Double(value) }
  public static let zero = Bytes(0.0)
  public static func kB(_ v: Double) -> Bytes { Bytes(v * 1e3) }
  public static func MB(_ v: Double) -> Bytes { Bytes(v * 1e6) }
  public static func GB(_ v: Double) -> Bytes { Bytes(v * 1e9) }
  public static func GiB(_ v: Double) -> Bytes { Bytes(v * 1_073_741_824) }
  public static func MiB(_ v: Double) -> Bytes { Bytes(v * 1_048_576) }
  public static func + (a: Bytes, b: Bytes) -> Bytes { Bytes(a.value + b.value) }
  public static func - (a: Bytes, b: Bytes) -> Bytes { Bytes(a.value - b.value) }
  public static func * (a: Bytes, k: Double) -> Bytes { Bytes(a.value * k) }
  public static func * (k: Double, a: Bytes) -> Bytes { Bytes(a.value * k) }
  public static func / (a: Bytes, k: Double) -> Bytes { Bytes(a.value / k) }
  public static func < (a: Bytes, b: Bytes) -> Bool { a.value < b.value }
  /// Time to move these bytes at `rate`.
  public static func / (a: Bytes, rate: Bandwidth) -> Seconds { Seconds(a.value * 8 / rate.bitsPerSecond) }
  public var gigabytes: Double { value / 1e9 }
  /// Human form with one decimal, e.g. "28.1 GB".
  public var description: String { UnitFormat.human(value, units: UnitFormat.byteUnits, suffix: "B") }

  static let units: [(String, Double)] = [
    ("TiB", 1_099_511_627_776), ("GiB", 1_073_741_824), ("MiB", 1_048_576), ("KiB", 1024),
    ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("KB", 1e3), ("B", 1),
  ]
}

/// A data rate. Stored in bits per second; "100Mbit/s", "1Gbit/s", "100Mbps" and "12.5MB/s" (bytes) parse.
public struct Bandwidth: Hashable, Comparable, Sendable, CustomStringConvertible {
  public var bitsPerSecond: Double
  public init(bitsPerSecond: Double) { self.bitsPerSecond = bitsPerSecond }
  public static func mbit(_ v: Double) -> Bandwidth { Bandwidth(bitsPerSecond: v * 1e6) }
  public static func gbit(_ v: Double) -> Bandwidth { Bandwidth(bitsPerSecond: v * 1e9) }
  public static func gigabytesPerSecond(_ v: Double) -> Bandwidth { Bandwidth(bitsPerSecond: v * 8e9) }
  public static func megabytesPerSecond(_ v: Double) -> Bandwidth { Bandwidth(bitsPerSecond: v * 8e6) }
  public var bytesPerSecond: Double { bitsPerSecond / 8 }
  public var megabitsPerSecond: Double { bitsPerSecond / 1e6 }
  public static func < (a: Bandwidth, b: Bandwidth) -> Bool { a.bitsPerSecond < b.bitsPerSecond }
  public static func * (a: Bandwidth, k: Double) -> Bandwidth { Bandwidth(bitsPerSecond: a.bitsPerSecond * k) }
  public static func / (a: Bandwidth, k: Double) -> Bandwidth { Bandwidth(bitsPerSecond: a.bitsPerSecond / k) }
  public var description: String {
    if bitsPerSecond >= 8e9 && bitsPerSecond.truncatingRemainder(dividingBy: 8e9) == 0 {
      return UnitFormat.number(bitsPerSecond / 8e9) + " GB/s"
    }
    return UnitFormat.human(bitsPerSecond, units: UnitFormat.bitUnits, suffix: "bit/s")
  }

  static let units: [(String, Double)] = [
    ("Tbit/s", 1e12), ("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3), ("Kbit/s", 1e3), ("bit/s", 1),
    ("Tbps", 1e12), ("Gbps", 1e9), ("Mbps", 1e6), ("kbps", 1e3), ("Kbps", 1e3), ("bps", 1),
    ("TB/s", 8e12), ("GB/s", 8e9), ("MB/s", 8e6), ("kB/s", 8e3), ("KB/s", 8e3), ("B/s", 8),
    ("GiB/s", 8 * 1_073_741_824), ("MiB/s", 8 * 1_048_576),
  ]
}

/// A duration or a point in (virtual or wall) time, in seconds.
public struct Seconds: Hashable, Comparable, Sendable, AdditiveArithmetic, CustomStringConvertible {
  public var value: Double
  public init(_ value: Double) { self.value = value }
  public static let zero = Seconds(0.0)
  public static func ms(_ v: Double) -> Seconds { Seconds(v / 1e3) }
  /// As the parser scales "50us" (so a DSL value and its JSON text are one number).
  public static func us(_ v: Double) -> Seconds { Seconds(v * 1e-6) }
  public static func + (a: Seconds, b: Seconds) -> Seconds { Seconds(a.value + b.value) }
  public static func - (a: Seconds, b: Seconds) -> Seconds { Seconds(a.value - b.value) }
  public static func * (a: Seconds, k: Double) -> Seconds { Seconds(a.value * k) }
  public static func * (k: Double, a: Seconds) -> Seconds { Seconds(a.value * k) }
  public static func / (a: Seconds, k: Double) -> Seconds { Seconds(a.value / k) }
  public static func < (a: Seconds, b: Seconds) -> Bool { a.value < b.value }
  public static func += (a: inout Seconds, b: Seconds) { a.value += b.value }
  public var milliseconds: Double { value * 1e3 }
  public var description: String {
    let v = abs(value)
    if v == 0 { return "0 s" }
    if v < 1e-3 { return UnitFormat.number(value * 1e6, digits: 1) + " µs" }
    if v < 1 { return UnitFormat.number(value * 1e3, digits: 2) + " ms" }
    return UnitFormat.number(value, digits: 3) + " s"
  }

  static let units: [(String, Double)] = [
    ("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("ns", 1e-9), ("s", 1), ("min", 60),
  ]
}

// MARK: - Parsing and the canonical string forms

/// Errors from parsing a quantity such as "100Mbit/s".
public struct UnitParseError: Error, CustomStringConvertible, Equatable {
  public var text: String
  public var expected: String
  public var description: String { "cannot read '\(text)' as \(expected)" }
}

enum UnitFormat {
  static let byteUnits: [(String, Double)] = [("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1)]
  static let bitUnits: [(String, Double)] = [("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1)]

  static func number(_ v: Double, digits: Int = 3) -> String {
    var s = String(format: v, digits: digits)
    if s.contains("."), !s.contains("e") {  // trailing zeros of the fraction, never of an exponent
      while s.hasSuffix("0") { s.removeLast() }
      if s.hasSuffix(".") { s.removeLast() }
    }
    return s
  }

  /// One decimal, kept even when zero ("4.0 GB"), so sizes in messages line up.
  static func human(_ v: Double, units: [(String, Double)], suffix: String) -> String {
    for (prefix, scale) in units where abs(v) >= scale {
      return String(format: v / scale, digits: 1) + " " + prefix + suffix
    }
    return String(format: v, digits: 1) + " " + suffix
  }

  /// Parses "<number><unit>" against a unit table (longest unit suffix first); a bare number is in base units.
  static func parse(_ text: String, units: [(String, Double)], expected: String) throws -> Double {
    let t = text.trimmingWhitespace()
    // Quantities are finite: "nan", "inf" and numbers that overflow once scaled are refused.
    if let v = Double(t) {
      guard v.isFinite else { throw UnitParseError(text: text, expected: "a finite " + expected) }
      return v
    }
    for (unit, scale) in units.sorted(by: { $0.0.count > $1.0.count }) where t.hasSuffix(unit) {
      let numberPart = String(t.dropLast(unit.count)).trimmingWhitespace()
      if let v = Double(numberPart) {
        guard (v * scale).isFinite else { throw UnitParseError(text: text, expected: "a finite " + expected) }
        return v * scale
      }
    }
    throw UnitParseError(text: text, expected: expected)
  }

  /// The canonical string form: the largest unit in which the value prints exactly (round-trips bit for bit).
  static func canonical(_ v: Double, units: [(String, Double)], base: String) -> String {
    if v == 0 { return "0" + base }
    for (unit, scale) in units where abs(v) >= scale {
      let scaled = v / scale
      // The quotient may miss the written number by an ulp (50 µs = 5.0000000000000004e-05 s): try it rounded
      // to 12 significant digits first, and keep the first that reads back as exactly this value.
      let magnitude = (0..<30).reduce(1.0) { m, _ in abs(scaled) >= m * 10 ? m * 10 : m }
      let k = 1e11 / magnitude
      for candidate in [(scaled * k).rounded() / k, scaled] {
        let text = shortest(candidate)
        if let back = Double(text), back * scale == v { return text + unit }
      }
    }
    return shortest(v) + base
  }

  static func shortest(_ v: Double) -> String {
    if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
    return "\(v)"
  }
}

extension Bytes {
  public init(parsing text: String) throws {
    self.init(try UnitFormat.parse(text, units: Bytes.units, expected: "an amount of bytes such as '8GB' or '512MiB'"))
  }
  /// Canonical string: "8GB", "1.5MB", "4GiB" round-trip exactly.
  public var canonical: String {
    UnitFormat.canonical(
      value, units: [("GiB", 1_073_741_824), ("MiB", 1_048_576), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)],
      base: "B")
  }
}

extension Bandwidth {
  public init(parsing text: String) throws {
    self.init(
      bitsPerSecond: try UnitFormat.parse(
        text, units: Bandwidth.units, expected: "a bandwidth such as '100Mbit/s', '1Gbit/s' or '68GB/s'"))
  }
  public var canonical: String {
    UnitFormat.canonical(
      bitsPerSecond, units: [("GB/s", 8e9), ("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)], base: "bit/s")
  }
}

extension Seconds {
  public init(parsing text: String) throws {
    self.init(try UnitFormat.parse(text, units: Seconds.units, expected: "a duration such as '2ms', '250us' or '1.5s'"))
  }
  public var canonical: String {
    UnitFormat.canonical(value, units: [("s", 1), ("ms", 1e-3), ("us", 1e-6)], base: "s")
  }
}

// Codable: the canonical string on encode; a string with unit, or a bare number in base units, on decode.
extension Bytes: Codable {
  public init(from decoder: any Decoder) throws { self = try decodeQuantity(decoder, Bytes.init(parsing:), Bytes.init) }
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.singleValueContainer()
    try c.encode(canonical)
  }
}
extension Bandwidth: Codable {
  public init(from decoder: any Decoder) throws {
    self = try decodeQuantity(decoder, Bandwidth.init(parsing:), { Bandwidth(bitsPerSecond: $0) })
  }
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.singleValueContainer()
    try c.encode(canonical)
  }
}
extension Seconds: Codable {
  public init(from decoder: any Decoder) throws {
    self = try decodeQuantity(decoder, Seconds.init(parsing:), Seconds.init)
  }
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.singleValueContainer()
    try c.encode(canonical)
  }
}

private func decodeQuantity<T>(_ decoder: any Decoder, _ parse: (String) throws -> T, _ fromNumber: (Double) -> T)
  throws -> T
{
  let c = try decoder.singleValueContainer()
  if let number = try? c.decode(Double.self) {
    guard number.isFinite else {
      throw DecodingError.dataCorruptedError(in: c, debugDescription: "\(number) is not a finite quantity")
    }
    return fromNumber(number)
  }
  let text = try c.decode(String.self)
  do { return try parse(text) } catch let error as UnitParseError {
    throw DecodingError.dataCorruptedError(in: c, debugDescription: error.description)
  }
}

extension String {
  /// The string without leading and trailing spaces, tabs and newlines.
  public func trimmingWhitespace() -> String {
    var s = Substring(self)
    while let f = s.first, f.isWhitespace { s.removeFirst() }
    while let l = s.last, l.isWhitespace { s.removeLast() }
    return String(s)
  }

  /// Scientific notation without Foundation, for positive values: `String(scientific: 1.9494e26, digits: 2)` is
  /// "1.95e26".
  public init(scientific value: Double, digits: Int) {
    guard value.isFinite, value > 0 else {
      self = String(format: value, digits: digits)
      return
    }
    var exponent = 0
    var mantissa = value
    while mantissa >= 10 {
      mantissa /= 10
      exponent += 1
    }
    while mantissa < 1 {
      mantissa *= 10
      exponent -= 1
    }
    var text = String(format: mantissa, digits: digits)
    if text.hasPrefix("10") {  // rounded up to the next power of ten
      exponent += 1
      text = String(format: mantissa / 10, digits: digits)
    }
    self = text + "e\(exponent)"
  }

  /// Fixed-point formatting without Foundation: `String(format: 3.14159, digits: 2)` is "3.14".
  public init(format value: Double, digits: Int) {
    guard value.isFinite else {
      self = value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf")
      return
    }
    let scale = (0..<digits).reduce(1.0) { acc, _ in acc * 10 }
    var rounded = (abs(value) * scale).rounded()
    let negative = value < 0 && rounded != 0
    if rounded > 9.007e15 {  // beyond exact integers: scientific notation ("4.000e300")
      self = (value < 0 ? "-" : "") + String(scientific: abs(value), digits: digits)
      return
    }
    var intPart = UInt64(rounded / scale)
    var frac = UInt64(rounded - Double(intPart) * scale)
    if Double(frac) >= scale {
      intPart += 1
      frac = 0
      rounded = 0
    }
    var s = negative ? "-" : ""
    s += String(intPart)
    if digits > 0 {
      var f = String(frac)
      while f.count < digits { f = "0" + f }
      s += "." + f
    }
    self = s
  }
}

/// A compute rate in floating-point operations per second ("3.33TFLOPS").
public struct FlopRate: Hashable, Comparable, Sendable, CustomStringConvertible {
  public var flopsPerSecond: Double
  public init(flopsPerSecond: Double) { self.flopsPerSecond = flopsPerSecond }
  public static func tflops(_ v: Double) -> FlopRate { FlopRate(flopsPerSecond: v * 1e12) }
  public static func gflops(_ v: Double) -> FlopRate { FlopRate(flopsPerSecond: v * 1e9) }
  public static func < (a: FlopRate, b: FlopRate) -> Bool { a.flopsPerSecond < b.flopsPerSecond }
  public var description: String { UnitFormat.human(flopsPerSecond, units: UnitFormat.bitUnits, suffix: "FLOPS") }
  static let units: [(String, Double)] = [("TFLOPS", 1e12), ("GFLOPS", 1e9), ("MFLOPS", 1e6), ("FLOPS", 1)]

  public init(parsing text: String) throws {
    self.init(
      flopsPerSecond: try UnitFormat.parse(text, units: FlopRate.units, expected: "a compute rate such as '3.33TFLOPS'")
    )
  }
  public var canonical: String {
    UnitFormat.canonical(flopsPerSecond, units: [("TFLOPS", 1e12), ("GFLOPS", 1e9)], base: "FLOPS")
  }
}

extension FlopRate: Codable {
  public init(from decoder: any Decoder) throws {
    self = try decodeQuantity(decoder, FlopRate.init(parsing:), { FlopRate(flopsPerSecond: $0) })
  }
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.singleValueContainer()
    try c.encode(canonical)
  }
}
