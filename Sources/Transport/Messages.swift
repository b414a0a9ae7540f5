/// A micro-batch's activations on the wire (binary payload of an `activation` frame):
/// `batch u64 · stage u32 · flags u8 (bit 0: prefill, bit 1: FP16 values) · span count u32 ·
/// spans (id u64, start u32, count u32)… · value count u32 · values (FP32 or FP16)…`.
/// With `tokens` (bit 2) the values are token ids (u32) instead of hidden states.
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
  public var spans: [Span]
  /// Hidden states (FP32 in memory) or, when `tokens` is set, token ids.
  public var values: [Float]
  public var tokens: [Int32]?

  public init(batch: UInt64, stage: UInt32, prefill: Bool, spans: [Span], values: [Float] = [], tokens: [Int32]? = nil) {
    self.batch = batch
    self.stage = stage
    self.prefill = prefill
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
      for v in values { out.appendLE(Float16(v).bitPattern) }
    } else {
      values.withUnsafeBytes { raw in
        if UInt32(1).littleEndian == 1 { out.append(contentsOf: raw) } else { for v in values { out.appendLE(v.bitPattern) } }
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
    var m = ActivationMessage(batch: batch, stage: stage, prefill: flags & 1 != 0, spans: spans)
    if flags & 4 != 0 {
      m.tokens = (0..<n).map { _ in Int32(bitPattern: r.unchecked(UInt32.self)) }
    } else if flags & 2 != 0 {
      m.values = (0..<n).map { _ in Float(Float16(bitPattern: r.unchecked(UInt16.self))) }
    } else {
      m.values = (0..<n).map { _ in Float(bitPattern: r.unchecked(UInt32.self)) }
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
