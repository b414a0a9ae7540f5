import CKernels
public import Catalog

/// Element types of stored weights the engine reads: float32, the two 16-bit floats, and llama.cpp's block
/// quantizations (a row is a sequence of blocks, each holding its scales and its packed integers).
// swift-format-ignore: AlwaysUseLowerCamelCase
// The quantized cases keep llama.cpp's names (Q4_0, Q4_K), as GGUF files and tools print them.
public enum WeightDType: String, Sendable, Hashable, CaseIterable {
  case f32 = "F32"
  case bf16 = "BF16"
  case f16 = "F16"
  case q8_0 = "Q8_0"
  case q4_0 = "Q4_0"
  case q4_1 = "Q4_1"
  case q5_0 = "Q5_0"
  case q5_1 = "Q5_1"
  case q4_K = "Q4_K"
  case q5_K = "Q5_K"
  case q6_K = "Q6_K"

  /// Whether values are stored in blocks with scales (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K).
  public var isQuantized: Bool { blockValues > 1 }
  /// Values per block: 1 for the plain types, 32 or 256 for the quantized ones.
  public var blockValues: Int { el_block_values(cType) }
  /// Bytes per block (per value for the plain types).
  public var blockBytes: Int { el_block_bytes(cType) }
  /// Average bytes per value, block scales included.
  public var bytesPerValue: Double { Double(blockBytes) / Double(blockValues) }

  /// Bytes of `count` values: nil if `count` is not a whole number of blocks or the size overflows.
  public func bytes(_ count: Int) -> Int? {
    guard count >= 0, count % blockValues == 0 else { return nil }
    let (b, overflow) = (count / blockValues).multipliedReportingOverflow(by: blockBytes)
    return overflow ? nil : b
  }

  /// The storage type that holds a model of `precision`.
  public init(_ precision: Precision) {
    switch precision {
    case .fp32: self = .f32
    case .bf16: self = .bf16
    case .fp16: self = .f16
    case .q8_0: self = .q8_0
    case .q4_0: self = .q4_0
    case .q4_1: self = .q4_1
    case .q4_K: self = .q4_K
    case .q6_K: self = .q6_K
    }
  }

  var cType: el_dtype {
    switch self {
    case .f32: EL_F32
    case .bf16: EL_BF16
    case .f16: EL_F16
    case .q8_0: EL_Q8_0
    case .q4_0: EL_Q4_0
    case .q4_1: EL_Q4_1
    case .q5_0: EL_Q5_0
    case .q5_1: EL_Q5_1
    case .q4_K: EL_Q4_K
    case .q5_K: EL_Q5_K
    case .q6_K: EL_Q6_K
    }
  }
}

/// Converting between float32 and the block types (llama.cpp's layouts, dequantized as llama.cpp does).
public enum Quantization {
  /// Dequantizes (or widens) `values.count / blockValues` blocks of `dtype` from `bytes`.
  ///
  /// - Precondition: `bytes` holds at least `dtype.bytes(count)` bytes; `count` is a whole number of blocks.
  public static func dequantize(_ bytes: UnsafeRawPointer, dtype: WeightDType, count: Int) -> [Float] {
    precondition(dtype.bytes(count) != nil, "\(count) values are not whole \(dtype.rawValue) blocks")
    var out = [Float](repeating: 0, count: count)
    out.withUnsafeMutableBufferPointer { el_widen(bytes, dtype.cType, $0.baseAddress!, count) }
    return out
  }

  /// Quantizes `values` (a whole number of blocks) into `dtype`'s blocks.
  public static func quantize(_ values: [Float], dtype: WeightDType) -> [UInt8] {
    guard let n = dtype.bytes(values.count) else {
      preconditionFailure("\(values.count) values are not whole \(dtype.rawValue) blocks")
    }
    var out = [UInt8](repeating: 0, count: n)
    values.withUnsafeBufferPointer { v in
      out.withUnsafeMutableBytes { el_quantize(v.baseAddress!, dtype.cType, $0.baseAddress!, values.count) }
    }
    return out
  }
}
