/// A micro-batch's activations on the wire (binary payload of an `activation` frame):
/// `batch u64 · stage u32 · flags u8 (bit 0: prefill, bit 1: FP16 values) · span count u32 ·
/// spans (id u64, start u32, count u32)… · value count u32 · values (FP32 or FP16)…`.
/// With `tokens` (bit 2) the values are token ids (u32) instead of hidden states. A speculative verification
/// (bit 3) carries one sequence's last token and the drafted ones: each stage first forgets the sequence's
/// positions from the span's start on (what the previous verification rejected), computes every token as a
/// decode step, and the last stage returns a token for every position.
public struct ActivationMessage: Sendable, Equatable {
  public struct Span: Sendable, Equatable, Hashable {
    public var id: UInt64
    public var start: UInt32
    public var count: UInt32
    public init(id: UInt64, start: UInt32, count: UInt32) {
      self.id = id
      self.start = start
      self.count = count
    }
  }
  public var batch: UInt64
  /// Index of the pipeline stage that must process this message.
  public var stage: UInt32
  public var prefill: Bool
  /// A speculative verification (see above).
  public var verify: Bool
  public var spans: [Span]
  /// Hidden states (FP32 in memory) or, when `tokens` is set, token ids.
  public var values: [Float]
  public var tokens: [Int32]?

  public init(
    batch: UInt64, stage: UInt32, prefill: Bool, verify: Bool = false, spans: [Span], values: [Float] = [],
    tokens: [Int32]? = nil
  ) {
    self.batch = batch
    self.stage = stage
    self.prefill = prefill
    self.verify = verify
    self.spans = spans
    self.values = values
    self.tokens = tokens
  }

  /// Encodes with FP32 values, or FP16 (`halfPrecision`: round to nearest even; halves the bytes).
  public func encoded(halfPrecision: Bool = false) -> [UInt8] {
    var out: [UInt8] = []
    let n = tokens?.count ?? values.count
    out.reserveCapacity(21 + spans.count * 16 + n * (halfPrecision && tokens == nil ? 2 : 4))
    out.appendLE(batch)
    out.appendLE(stage)
    var flags: UInt8 = prefill ? 1 : 0
    if halfPrecision && tokens == nil { flags |= 2 }
    if tokens != nil { flags |= 4 }
    if verify { flags |= 8 }
    out.append(flags)
    out.appendLE(UInt32(spans.count))
    for s in spans {
      out.appendLE(s.id)
      out.appendLE(s.start)
      out.appendLE(s.count)
    }
    out.appendLE(UInt32(n))
    if let tokens {
      for t in tokens { out.appendLE(UInt32(bitPattern: t)) }
    } else if halfPrecision {
      let start = out.count
      out.append(contentsOf: repeatElement(0, count: 2 * values.count))
      out.withUnsafeMutableBytes { raw in
        values.withUnsafeBufferPointer { v in
          for i in 0..<v.count {
            raw.storeBytes(of: HalfFloat.bits(v[i]).littleEndian, toByteOffset: start + 2 * i, as: UInt16.self)
          }
        }
      }
    } else {
      values.withUnsafeBytes { raw in
        if UInt32(1).littleEndian == 1 {
          out.append(contentsOf: raw)
        } else {
          for v in values { out.appendLE(v.bitPattern) }
        }
      }
    }
    return out
  }

  public static func decode(_ p: [UInt8]) throws(WireError) -> ActivationMessage {
    var r = Reader(p)
    let batch = try r.read(UInt64.self)
    let stage = try r.read(UInt32.self)
    let flags = try r.read(UInt8.self)
    let spanCount = Int(try r.read(UInt32.self))
    guard spanCount <= p.count / 16 else { throw .malformed("span count \(spanCount) does not fit the payload") }
    var spans: [Span] = []
    for _ in 0..<spanCount {
      spans.append(Span(id: try r.read(UInt64.self), start: try r.read(UInt32.self), count: try r.read(UInt32.self)))
    }
    let n = Int(try r.read(UInt32.self))
    let width = flags & 4 != 0 ? 4 : (flags & 2 != 0 ? 2 : 4)
    guard r.remaining == n * width else {
      throw .malformed("\(n) values of \(width) bytes need \(n * width) bytes, the payload has \(r.remaining)")
    }
    guard flags & 0xF0 == 0 else { throw .malformed("unknown flags \(flags)") }
    var m = ActivationMessage(
      batch: batch, stage: stage, prefill: flags & 1 != 0, verify: flags & 8 != 0, spans: spans)
    let offset = r.offset
    p.withUnsafeBytes { raw in
      if flags & 4 != 0 {
        m.tokens = (0..<n).map {
          Int32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4 * $0, as: Int32.self))
        }
      } else if flags & 2 != 0 {
        HalfFloat.table.withUnsafeBufferPointer { table in
          m.values = [Float](unsafeUninitializedCapacity: n) { out, count in
            for i in 0..<n {
              out[i] =
                table[Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 2 * i, as: UInt16.self)))]
            }
            count = n
          }
        }
      } else {
        m.values = [Float](unsafeUninitializedCapacity: n) { out, count in
          for i in 0..<n {
            out[i] = Float(
              bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4 * i, as: UInt32.self)))
          }
          count = n
        }
      }
    }
    return m
  }
}

/// Bounds-checked little-endian reads.
struct Reader {
  let bytes: [UInt8]
  var offset = 0
  init(_ bytes: [UInt8]) { self.bytes = bytes }
  var remaining: Int { bytes.count - offset }
  mutating func read<T: FixedWidthInteger>(_: T.Type) throws(WireError) -> T {
    let size = MemoryLayout<T>.size
    guard remaining >= size else { throw .truncated(needed: offset + size, got: bytes.count) }
    return unchecked(T.self)
  }
  mutating func unchecked<T: FixedWidthInteger>(_: T.Type) -> T {
    let v = bytes.readLE(T.self, at: offset)
    offset += MemoryLayout<T>.size
    return v
  }
}

/// IEEE half-precision conversion without a library call per value: round-to-nearest-even by bit
/// manipulation on the way out, a 65,536-entry table on the way in (both exact, as `Float16` would be).
enum HalfFloat {
  static let table: [Float] = (0...0xFFFF).map { Float(Float16(bitPattern: UInt16($0))) }

  @inline(__always) static func bits(_ f: Float) -> UInt16 {
    let x = f.bitPattern
    let sign = UInt16((x >> 16) & 0x8000)
    let e = Int((x >> 23) & 0xFF) - 127 + 15
    var m = x & 0x7F_FFFF
    if e >= 31 {  // overflow, infinity or NaN
      let nan = (x & 0x7FFF_FFFF) > 0x7F80_0000
      return sign | 0x7C00 | (nan ? 0x200 : 0)
    }
    if e <= 0 {  // subnormal half, or zero
      if e < -10 { return sign }
      m |= 0x80_0000
      let shift = UInt32(14 - e)
      var h = m >> shift
      let rem = m & ((1 << shift) - 1)
      let halfway = UInt32(1) << (shift - 1)
      if rem > halfway || (rem == halfway && (h & 1) == 1) { h += 1 }
      return sign | UInt16(h)
    }
    var h = UInt32(e) << 10 | (m >> 13)
    let rem = m & 0x1FFF
    if rem > 0x1000 || (rem == 0x1000 && (h & 1) == 1) { h += 1 }  // may carry into the exponent: correct
    return sign | UInt16(h)
  }
}
