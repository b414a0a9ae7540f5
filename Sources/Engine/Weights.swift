import CKernels
public import Catalog
import EdgeLabCore
import Foundation

/// Memory that holds weights: a region of a memory-mapped checkpoint, or an allocation of our own.
final class WeightMemory: @unchecked Sendable {
  let base: UnsafeRawPointer
  let owned: UnsafeMutableRawPointer?
  let mapping: MappedFile?
  let parent: WeightMemory?
  let bytes: Int

  init(view: UnsafeRawPointer, keeping parent: WeightMemory, bytes: Int) {
    base = view
    owned = nil
    mapping = nil
    self.parent = parent
    self.bytes = bytes
  }

  init(mapping: MappedFile, offset: Int, bytes: Int) {
    self.mapping = mapping
    base = mapping.base + offset
    owned = nil
    parent = nil
    self.bytes = bytes
    Self.populate(base, bytes: bytes)
  }

  /// Maps the pages of a tensor now (MADV_POPULATE_READ, Linux 5.14), as llama.cpp maps its files with
  /// MAP_POPULATE: the first prompt then takes no page faults (a tenth of a 1B model's FP32 prefill with one thread,
  /// 40 → 44 tokens/s). Only the tensors an engine maps are touched (its layers' matrices, offloaded ones and the
  /// whole tensors a tensor-parallel shard slices included). Where the kernel lacks the advice, pages fault in on
  /// first use as before.
  private static func populate(_ p: UnsafeRawPointer, bytes: Int) {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    guard bytes > 0, page > 0 else { return }
    let start = Int(bitPattern: p) / page * page
    let end = Int(bitPattern: p) + bytes
    let madvPopulateRead: Int32 = 22
    _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, madvPopulateRead)
  }

  init(allocating bytes: Int, alignment: Int = 64) {
    let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 64), alignment: alignment)
    owned = p
    base = UnsafeRawPointer(p)
    mapping = nil
    parent = nil
    self.bytes = bytes
  }

  deinit { owned?.deallocate() }
}

/// A weight matrix in Hugging Face's [out, in] row-major layout, stored as FP32, a 16-bit type or a block
/// quantization (each row a whole number of blocks).
public struct WeightMatrix: Sendable {
  public let rows: Int
  public let cols: Int
  public let dtype: WeightDType
  let memory: WeightMemory
  /// Q4_0 or Q4_K repacked in groups of 8 rows for llama.cpp's arithmetic (`repackedForLlamaCpp`): read only by
  /// the 8-bit-input kernels, never row by row.
  let interleaved: Bool

  init(rows: Int, cols: Int, dtype: WeightDType, memory: WeightMemory, interleaved: Bool = false) {
    self.rows = rows
    self.cols = cols
    self.dtype = dtype
    self.memory = memory
    self.interleaved = interleaved
  }

  /// The kernels' name for this matrix's layout.
  var kernelType: el_dtype {
    guard interleaved else { return dtype.cType }
    return dtype == .q4_K ? EL_Q4_KX8 : EL_Q4_0X8
  }

  /// The matrix laid out for llama.cpp's arithmetic, as llama.cpp repacks at load: Q4_0 with a multiple of 8 rows
  /// becomes 8-row groups (one stream of weights for eight outputs, each weight unpacked once for four tokens of a
  /// prompt; the same bits per row), and so does Q4_K on CPUs with AVX2 (where llama.cpp repacks it); others as
  /// they are.
  func repackedForLlamaCpp() -> WeightMatrix {
    guard !interleaved, rows % 8 == 0 else { return self }
    let repack: (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int) -> Void
    switch dtype {
    case .q4_0: repack = el_repack_q4_0x8
    case .q4_K where el_repack_q4_kx8_wanted() != 0: repack = el_repack_q4_kx8
    default: return self
    }
    let m = WeightMemory(allocating: byteCount)
    repack(base, m.owned!, rows, cols)
    return WeightMatrix(rows: rows, cols: cols, dtype: dtype, memory: m, interleaved: true)
  }

  /// Rows `range` of the matrix in memory of their own (a tensor-parallel member's output rows).
  func rows(_ range: Range<Int>) -> WeightMatrix {
    precondition(!interleaved && range.lowerBound >= 0 && range.upperBound <= rows, "rows \(range) of \(rows)")
    let m = WeightMemory(allocating: range.count * rowBytes)
    m.owned!.copyMemory(from: base + range.lowerBound * rowBytes, byteCount: range.count * rowBytes)
    return WeightMatrix(rows: range.count, cols: cols, dtype: dtype, memory: m)
  }

  /// Columns `range` of every row in memory of their own (a tensor-parallel member's input columns); nil when
  /// the range does not start and end on a block of the matrix's type.
  func columns(_ range: Range<Int>) -> WeightMatrix? {
    let b = dtype.blockValues
    guard !interleaved, range.lowerBound >= 0, range.upperBound <= cols, range.lowerBound % b == 0,
      range.upperBound % b == 0
    else { return nil }
    let offset = range.lowerBound / b * dtype.blockBytes
    let bytes = range.count / b * dtype.blockBytes
    let m = WeightMemory(allocating: rows * bytes)
    for r in 0..<rows { (m.owned! + r * bytes).copyMemory(from: base + r * rowBytes + offset, byteCount: bytes) }
    return WeightMatrix(rows: rows, cols: range.count, dtype: dtype, memory: m)
  }

  /// Bytes of one row (block scales included).
  public var rowBytes: Int { cols / dtype.blockValues * dtype.blockBytes }
  public var byteCount: Int { rows * rowBytes }
  var base: UnsafeRawPointer { memory.base }

  /// Row `r` widened (or dequantized) to FP32 (for the embedding lookup).
  func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
    precondition(!interleaved, "a repacked matrix is read by the 8-bit-input kernels only")
    let p = base + r * rowBytes
    switch dtype {
    case .f32: out.update(from: p.assumingMemoryBound(to: Float.self), count: cols)
    default: Kernels.widen(p, dtype: dtype, into: out, count: cols)
    }
  }

  /// The whole matrix dequantized to FP32, row-major (for tests and tools).
  public func floats() -> [Float] {
    precondition(!interleaved, "a repacked matrix is read by the 8-bit-input kernels only")
    return Quantization.dequantize(base, dtype: dtype, count: rows * cols)
  }
}

/// Where a stage's weights come from.
public protocol WeightSource: Sendable {
  var config: ModelConfig { get }
  func matrix(_ name: String, rows: Int, cols: Int) throws(CheckpointError) -> WeightMatrix
  func vector(_ name: String, count: Int) throws(CheckpointError) -> [Float]
  /// Whether a tensor exists (`lm_head.weight` is absent from tied checkpoints).
  func has(_ name: String) -> Bool
  /// How the Q and K projections' rows pair dimensions for rotary embeddings (Hugging Face's half split unless
  /// the format says otherwise).
  var ropeLayout: RopeLayout { get }
  /// Per-frequency divisors of the rotary frequencies when the file stores them (llama.cpp's `rope_freqs`).
  var ropeFrequencyFactors: [Float]? { get }
}

/// How stored 16-bit weights are kept in memory.
public enum WeightStorage: String, Sendable, Hashable, CaseIterable {
  /// Keep the checkpoint's type (16-bit weights are widened inside the kernels; half the bytes per token).
  case native
  /// Widen to FP32 when loading (twice the memory for 16-bit checkpoints; same results).
  case fp32
}

/// Weights read from a Hugging Face checkpoint, in place from the memory mapping where possible.
public struct CheckpointWeights: WeightSource {
  public let checkpoint: Checkpoint
  public let storage: WeightStorage
  public var config: ModelConfig { checkpoint.config }

  public init(_ checkpoint: Checkpoint, storage: WeightStorage = .native) {
    self.checkpoint = checkpoint
    self.storage = storage
  }

  public func has(_ name: String) -> Bool { checkpoint.has(name) }

  public func matrix(_ name: String, rows: Int, cols: Int) throws(CheckpointError) -> WeightMatrix {
    let (file, e) = try checkpoint.tensor(name, shape: [rows, cols])
    if e.dtype == .f32 || storage == .native {
      if e.begin % e.dtype.blockBytes == 0 {
        return WeightMatrix(
          rows: rows, cols: cols, dtype: e.dtype,
          memory: WeightMemory(mapping: file.file, offset: e.begin, bytes: e.end - e.begin))
      }
      let m = WeightMemory(allocating: e.end - e.begin)
      m.owned!.copyMemory(from: file.file.base + e.begin, byteCount: e.end - e.begin)
      return WeightMatrix(rows: rows, cols: cols, dtype: e.dtype, memory: m)
    }
    let m = WeightMemory(allocating: rows * cols * 4)
    Kernels.widen(
      file.file.base + e.begin, dtype: e.dtype, into: m.owned!.assumingMemoryBound(to: Float.self), count: rows * cols)
    return WeightMatrix(rows: rows, cols: cols, dtype: .f32, memory: m)
  }

  public func vector(_ name: String, count: Int) throws(CheckpointError) -> [Float] {
    let (file, e) = try checkpoint.tensor(name, shape: [count])
    var out = [Float](repeating: 0, count: count)
    out.withUnsafeMutableBufferPointer { b in
      if e.dtype == .f32 {
        for i in 0..<count { b[i] = (file.file.base + e.begin + 4 * i).loadUnaligned(as: Float.self) }
      } else {
        Kernels.widen(file.file.base + e.begin, dtype: e.dtype, into: b.baseAddress!, count: count)
      }
    }
    return out
  }
}

/// Synthetic weights at a model's true shapes, from a seed: the same seed gives the same weights in every
/// process, whatever the thread count. Matrices are uniform in ±0.02·√3 (standard deviation 0.02, like
/// Hugging Face's initialisation); norm weights are 1 ± 0.1. Stored as FP32, BF16 or FP16 (rounded to
/// nearest even), or quantized into a block type (norm weights then stay FP32, as in GGUF files).
public struct SyntheticWeights: WeightSource {
  public let config: ModelConfig
  public let seed: UInt64
  public let dtype: WeightDType

  public init(config: ModelConfig, seed: UInt64, dtype: WeightDType = .f32) {
    self.config = config
    self.seed = seed
    self.dtype = dtype
  }

  public func has(_ name: String) -> Bool { !(config.tieWordEmbeddings && name == "lm_head.weight") }

  /// A stable 64-bit hash of a tensor name (FNV-1a), so every process derives the same stream.
  public static func nameHash(_ name: String) -> UInt64 { FNV1a.hash(name.utf8) }

  static let chunk = 1 << 16

  /// Quantized types draw the same FP32 values as `.f32` and quantize them block by block.
  public func matrix(_ name: String, rows: Int, cols: Int) throws(CheckpointError) -> WeightMatrix {
    let n = rows * cols
    guard cols % dtype.blockValues == 0, let bytes = dtype.bytes(n) else {
      throw CheckpointError(
        .badConfig, file: "(synthetic weights)", tensor: name,
        "\(dtype.rawValue) stores rows in blocks of \(dtype.blockValues) values; rows of \(cols) are not whole blocks (use q8_0, q4_0 or q4_1, or a floating-point type)"
      )
    }
    let m = WeightMemory(allocating: bytes)
    let scale = 0.02 * 3.0.squareRoot()
    let base = Self.nameHash(name)
    let chunks = (n + Self.chunk - 1) / Self.chunk
    let dst = UnsafeMutableRawPointerBox(m.owned!)
    let dt = dtype
    let seed = self.seed
    Parallel.forEach(chunks) { c in
      var g = SeededRandom.derived(seed: seed, base, UInt64(c))
      let start = c * Self.chunk
      let end = min(n, start + Self.chunk)
      if dt.isQuantized {
        // Chunks are whole blocks (the chunk size is a multiple of every block size).
        let values = (start..<end).map { _ in Float((2 * g.nextUnit() - 1) * scale) }
        let q = Quantization.quantize(values, dtype: dt)
        q.withUnsafeBytes {
          (dst.pointer + start / dt.blockValues * dt.blockBytes).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
        }
        return
      }
      for i in start..<end {
        let v = Float((2 * g.nextUnit() - 1) * scale)
        Kernels.store(v, dtype: dt, at: dst.pointer, index: i)
      }
    }
    return WeightMatrix(rows: rows, cols: cols, dtype: dtype, memory: m)
  }

  public func vector(_ name: String, count: Int) throws(CheckpointError) -> [Float] {
    var g = SeededRandom.derived(seed: seed, Self.nameHash(name))
    return (0..<count).map { _ in
      let v = Float(1 + 0.1 * (2 * g.nextUnit() - 1))
      // Round through the storage type, as a stored checkpoint would be.
      return Kernels.roundTrip(v, dtype: dtype)
    }
  }
}

/// Lets a pointer cross into `Parallel.forEach` (the caller guarantees disjoint writes).
struct UnsafeMutableRawPointerBox: @unchecked Sendable {
  let pointer: UnsafeMutableRawPointer
  init(_ p: UnsafeMutableRawPointer) { pointer = p }
}
