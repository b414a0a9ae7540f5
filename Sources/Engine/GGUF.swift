import Foundation

/// A metadata value of a GGUF file.
public enum GGUFValue: Sendable, Hashable {
  case int(Int64)
  case uint(UInt64)
  case float(Double)
  case bool(Bool)
  case string(String)
  case array([GGUFValue])

  public var int: Int? {
    switch self {
    case .int(let v): Int(exactly: v)
    case .uint(let v): Int(exactly: v)
    default: nil
    }
  }
  public var double: Double? {
    switch self {
    case .float(let v): v
    case .int(let v): Double(v)
    case .uint(let v): Double(v)
    default: nil
    }
  }
  public var string: String? { if case .string(let s) = self { s } else { nil } }
  public var bool: Bool? { if case .bool(let b) = self { b } else { nil } }
  public var array: [GGUFValue]? { if case .array(let a) = self { a } else { nil } }
}

/// One tensor of a GGUF file: its type, its dimensions as GGUF lists them (`ne`: innermost first, so a matrix
/// of `rows` × `cols` is [cols, rows]) and where its bytes lie in the file.
public struct GGUFTensor: Sendable, Hashable {
  public var name: String
  public var dtype: WeightDType
  public var dimensions: [Int]
  /// Absolute byte range in the file.
  public var begin: Int
  public var end: Int
  public var elementCount: Int { dimensions.reduce(1, *) }
}

/// A GGUF file (llama.cpp's format, versions 2 and 3): a header, typed metadata, tensor descriptions, then the
/// tensor data at an aligned offset. The file is memory-mapped; tensors are read in place. Every count, length
/// and offset is checked against the file's size before anything is allocated.
public struct GGUFFile: Sendable {
  public let path: String
  public let version: Int
  public let metadata: [String: GGUFValue]
  public let tensors: [String: GGUFTensor]
  let file: MappedFile

  /// Most tensors and metadata entries a file may declare (real models have a few thousand).
  static let maxEntries = 1 << 20
  /// Longest string (a chat template or a token; real ones are far below).
  static let maxStringBytes = 16 << 20
  /// Most metadata values in all (a vocabulary of 256 k tokens with scores, types and merges is about a million).
  static let maxMetadataValues = 1 << 24

  public init(path: String) throws(CheckpointError) {
    self.path = path
    file = try MappedFile(path: path)
    var r = Reader(base: file.base, size: file.size, path: path)
    guard file.size >= 24, try r.u32() == 0x4655_4747 else {
      throw CheckpointError(.malformedHeader, file: path, "not a GGUF file (no 'GGUF' magic at the start)")
    }
    let v = try r.u32()
    guard v == 2 || v == 3 else {
      throw CheckpointError(
        .malformedHeader, file: path,
        "GGUF version \(v) is not supported (2 and 3 are); convert it again with llama.cpp")
    }
    version = Int(v)
    let tensorCount = try r.count("tensor count", limit: Self.maxEntries)
    let kvCount = try r.count("metadata count", limit: Self.maxEntries)
    var metadata: [String: GGUFValue] = [:]
    for _ in 0..<kvCount {
      let key = try r.string()
      let type = try r.u32()
      metadata[key] = try r.value(type: type, key: key, depth: 0)
    }
    var alignment = 32
    if let a = metadata["general.alignment"] {
      guard let n = a.int, n >= 8, n <= 1 << 20, n & (n - 1) == 0 else {
        throw CheckpointError(
          .malformedHeader, file: path, "general.alignment must be a power of two from 8 to 1 MiB (the format's rule)")
      }
      alignment = n
    }
    var infos: [(String, WeightDType, [Int], Int)] = []
    for _ in 0..<tensorCount {
      let name = try r.string()
      let dims = try r.u32()
      guard dims >= 1, dims <= 4 else {
        throw CheckpointError(.malformedHeader, file: path, tensor: name, "\(dims) dimensions (GGUF allows 1 to 4)")
      }
      var ne: [Int] = []
      for _ in 0..<dims { ne.append(try r.count("dimension of \(name)", limit: Int(Int32.max))) }
      let rawType = try r.u32()
      guard let t = Self.dtype(ggml: rawType) else {
        throw CheckpointError(
          .unsupportedDType, file: path, tensor: name,
          "GGML type \(Self.ggmlTypeName(rawType)) is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K are); requantize the file with llama-quantize"
        )
      }
      let offset = try r.count("offset of \(name)", limit: Int.max)
      infos.append((name, t, ne, offset))
    }
    let (padded, overflow) = r.position.addingReportingOverflow(alignment - 1)
    guard !overflow else { throw CheckpointError(.truncated, file: path, "the header is too long") }
    let dataStart = padded / alignment * alignment
    var tensors: [String: GGUFTensor] = [:]
    for (name, t, ne, offset) in infos {
      var count = 1
      for d in ne {
        let (p, o) = count.multipliedReportingOverflow(by: d)
        guard !o else {
          throw CheckpointError(.malformedHeader, file: path, tensor: name, "dimensions \(ne) overflow")
        }
        count = p
      }
      guard ne[0] % t.blockValues == 0, let bytes = t.bytes(count) else {
        throw CheckpointError(
          .malformedHeader, file: path, tensor: name,
          "rows of \(ne[0]) values are not whole \(t.rawValue) blocks of \(t.blockValues)")
      }
      let begin = dataStart.addingReportingOverflow(offset)
      let end = begin.partialValue.addingReportingOverflow(bytes)
      guard !begin.overflow, !end.overflow, end.partialValue <= file.size else {
        throw CheckpointError(
          .truncated, file: path, tensor: name,
          "the data ends beyond the file's \(file.size) bytes (truncated download?)")
      }
      guard offset % alignment == 0 else {
        throw CheckpointError(
          .malformedHeader, file: path, tensor: name, "offset \(offset) is not a multiple of the alignment \(alignment)"
        )
      }
      guard tensors[name] == nil else {
        throw CheckpointError(.malformedHeader, file: path, tensor: name, "the tensor is listed twice")
      }
      tensors[name] = GGUFTensor(
        name: name, dtype: t, dimensions: ne, begin: begin.partialValue, end: end.partialValue)
    }
    self.metadata = metadata
    self.tensors = tensors
  }

  /// The tensor's bytes (in the mapping).
  func bytes(_ t: GGUFTensor) -> UnsafeRawPointer { file.base + t.begin }

  /// GGML's type numbers for the types the engine reads.
  static func dtype(ggml: UInt32) -> WeightDType? {
    switch ggml {
    case 0: .f32
    case 1: .f16
    case 2: .q4_0
    case 3: .q4_1
    case 6: .q5_0
    case 7: .q5_1
    case 8: .q8_0
    case 12: .q4_K
    case 13: .q5_K
    case 14: .q6_K
    case 30: .bf16
    default: nil
    }
  }

  static func ggmlTypeName(_ t: UInt32) -> String {
    let names: [UInt32: String] = [
      9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS",
      18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32",
      27: "I64", 28: "F64", 29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0",
    ]
    return names[t] ?? "#\(t)"
  }

  /// A bounds-checked cursor over the mapped bytes.
  struct Reader {
    let base: UnsafeRawPointer
    let size: Int
    let path: String
    var position = 0
    /// Metadata values read so far (every array element counts).
    var values = 0

    mutating func take(_ n: Int, _ what: String) throws(CheckpointError) -> UnsafeRawPointer {
      guard n >= 0, n <= size - position else {
        throw CheckpointError(
          .truncated, file: path, "the header ends inside \(what) at byte \(position) (the file has \(size) bytes)")
      }
      defer { position += n }
      return base + position
    }
    mutating func u32() throws(CheckpointError) -> UInt32 {
      UInt32(littleEndian: try take(4, "a 32-bit field").loadUnaligned(as: UInt32.self))
    }
    mutating func u64() throws(CheckpointError) -> UInt64 {
      UInt64(littleEndian: try take(8, "a 64-bit field").loadUnaligned(as: UInt64.self))
    }
    /// A 64-bit count no larger than `limit`.
    mutating func count(_ what: String, limit: Int) throws(CheckpointError) -> Int {
      let v = try u64()
      guard let n = Int(exactly: v), n <= limit else {
        throw CheckpointError(.malformedHeader, file: path, "\(what) is \(v), more than the \(limit) allowed")
      }
      return n
    }
    mutating func string() throws(CheckpointError) -> String {
      let n = try count("a string length", limit: GGUFFile.maxStringBytes)
      let p = try take(n, "a string")
      return String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
    }

    /// The smallest encoding of a value of `type` (to bound array counts by the bytes left).
    static func minimumSize(_ type: UInt32) -> Int {
      switch type {
      case 0, 1, 7: 1
      case 2, 3: 2
      case 4, 5, 6: 4
      case 8, 10, 11, 12: 8
      case 9: 12
      default: 1
      }
    }

    mutating func value(type: UInt32, key: String, depth: Int) throws(CheckpointError) -> GGUFValue {
      switch type {
      case 0: return .uint(UInt64(try take(1, key).load(as: UInt8.self)))
      case 1: return .int(Int64(try take(1, key).load(as: Int8.self)))
      case 2: return .uint(UInt64(UInt16(littleEndian: try take(2, key).loadUnaligned(as: UInt16.self))))
      case 3: return .int(Int64(Int16(littleEndian: try take(2, key).loadUnaligned(as: Int16.self))))
      case 4: return .uint(UInt64(try u32()))
      case 5: return .int(Int64(Int32(bitPattern: try u32())))
      case 6: return .float(Double(Float(bitPattern: try u32())))
      case 7:
        let b = try take(1, key).load(as: UInt8.self)
        guard b <= 1 else { throw CheckpointError(.malformedHeader, file: path, "metadata '\(key)': bool \(b)") }
        return .bool(b == 1)
      case 8: return .string(try string())
      case 9:
        guard depth < 4 else {
          throw CheckpointError(.malformedHeader, file: path, "metadata '\(key)': arrays nested too deep")
        }
        let inner = try u32()
        let left = size - position
        let n = try count("the length of array '\(key)'", limit: left / Self.minimumSize(inner))
        values += n
        guard values <= GGUFFile.maxMetadataValues else {
          throw CheckpointError(
            .malformedHeader, file: path,
            "the metadata holds more than \(GGUFFile.maxMetadataValues) values (array '\(key)')")
        }
        var out: [GGUFValue] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try value(type: inner, key: key, depth: depth + 1)) }
        return .array(out)
      case 10: return .uint(try u64())
      case 11: return .int(Int64(bitPattern: try u64()))
      case 12: return .float(Double(bitPattern: try u64()))
      default:
        throw CheckpointError(.malformedHeader, file: path, "metadata '\(key)' has unknown value type \(type)")
      }
    }
  }
}
