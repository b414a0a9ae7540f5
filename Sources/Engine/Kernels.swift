import CKernels
import COpenBLAS
import Catalog
import Dispatch
public import EdgeLabCore
import Foundation
import Synchronization

/// Runs `body(i)` for i in 0..<count, each on its own thread of a persistent pool (C, spinning briefly between
/// jobs, as the decode loop issues over a hundred short parallel jobs per token). The pool is process-wide, as
/// OpenBLAS's is; how many threads a call uses is the caller's `count`, so engines with different thread
/// counts in one process do not change each other's work split.
enum Parallel {
  static func forEach(_ count: Int, _ body: (Int) -> Void) {
    if count <= 1 {
      for i in 0..<count { body(i) }
      return
    }
    withoutActuallyEscaping(body) { body in
      var box = TaskBox(body: body)
      withUnsafeMutablePointer(to: &box) { ctx in
        el_parallel(
          Int32(count),
          { raw, i in
            raw!.assumingMemoryBound(to: TaskBox.self).pointee.body(Int(i))
          }, ctx)
      }
    }
  }

  struct TaskBox { var body: (Int) -> Void }
}

/// The numeric kernels: the C matrix-vector kernels for decoding; for prefill, the C tiled products (el_sgemm, in
/// the order of llama.cpp's tinyBLAS) on CPUs with AVX2 or AVX-512 (and, with llama.cpp's arithmetic, on every x86
/// CPU), OpenBLAS sgemm elsewhere and for matrices whose shapes the tiles do not take (rows not a multiple of 4,
/// rows not a multiple of the lanes).
///
/// Every entry point takes the number of threads to use; nothing here keeps a thread count of its own.
///
/// Which results depend on it: none. Decode steps compute each output row whole on one thread in a fixed order,
/// and attention gives each (token, head) pair to one thread; prefill's tiled products sum each output in an order
/// fixed by the row length and the lanes (the instruction set's with exact arithmetic: other bits on an AVX-512
/// CPU than on an AVX2 one; the reproduced llama.cpp build's with llama.cpp's), and where OpenBLAS runs, it runs
/// single-threaded on chunks of rows (its threaded sgemm cuts the token dimension differently and changes the last
/// bits). A stage's products have the same shapes as the unsplit model's, so a split model gives the unsplit
/// model's bits.
public enum Kernels {
  /// Most threads the kernels use (the pool's size limit).
  public static let maxThreads = 64

  /// Makes sure the pool can run `threads` threads at once (it grows, never shrinks).
  static func reserve(threads: Int) {
    el_pool_set_threads(Int32(min(max(1, threads), maxThreads)))
  }

  /// OpenBLAS keeps one process-wide thread count: calls with different counts take turns.
  private static let blas = BLASThreads()

  /// The instruction set the C kernels use on this machine (EDGELAB_KERNEL_ISA may ask for a lesser one).
  public static var isa: String { String(cString: el_kernel_isa()) }

  /// Whether EDGELAB_KERNEL_ISA holds something other than the instruction sets the kernels have.
  public static var isaRequestInvalid: Bool { el_kernel_isa_request_invalid() != 0 }

  /// The llama.cpp build that `.llamaCpp` arithmetic reproduces where ggml's code differs by vector width
  /// (exponential, softmax, SwiGLU, attention): "avx512" or "avx2", this CPU's unless EDGELAB_LLAMACPP_SIMD says.
  public static var llamaCppSIMD: String { String(cString: el_llamacpp_simd()) }

  /// Whether the reproduced llama.cpp build has AVX512-BF16 (its BF16 products as VDPBF16PS sums them): the CPU's
  /// AVX-512 build on a CPU with it, or EDGELAB_LLAMACPP_SIMD=avx512bf16.
  public static var llamaCppBF16Dot: Bool { el_llamacpp_bf16dot() != 0 }

  /// The reproduced llama.cpp build as results record it (`llamacpp_simd`): "avx512bf16", "avx512" or "avx2".
  public static var llamaCppBuild: String { llamaCppBF16Dot ? "avx512bf16" : llamaCppSIMD }

  /// Whether EDGELAB_LLAMACPP_SIMD holds something other than "avx512bf16", "avx512" or "avx2".
  public static var llamaCppSIMDRequestInvalid: Bool { el_llamacpp_simd_request_invalid() != 0 }

  static func widen(_ src: UnsafeRawPointer, dtype: WeightDType, into dst: UnsafeMutablePointer<Float>, count: Int) {
    el_widen(src, dtype.cType, dst, count)
  }

  /// Stores v at element `index` of a buffer of `dtype` (round to nearest even for 16-bit types).
  static func store(_ v: Float, dtype: WeightDType, at p: UnsafeMutableRawPointer, index: Int) {
    switch dtype {
    case .f32: p.storeBytes(of: v, toByteOffset: 4 * index, as: Float.self)
    case .bf16: p.storeBytes(of: bf16Bits(v), toByteOffset: 2 * index, as: UInt16.self)
    case .f16: p.storeBytes(of: Float16(v).bitPattern, toByteOffset: 2 * index, as: UInt16.self)
    default: preconditionFailure("quantized types are stored a block at a time (Quantization.quantize)")
    }
  }

  static func bf16Bits(_ v: Float) -> UInt16 {
    let u = v.bitPattern
    let rounding = 0x7FFF + ((u >> 16) & 1)
    return UInt16(truncatingIfNeeded: (u &+ rounding) >> 16)
  }

  static func roundTrip(_ v: Float, dtype: WeightDType) -> Float {
    switch dtype {
    case .f32: v
    case .bf16: Float(bitPattern: UInt32(bf16Bits(v)) << 16)
    case .f16: Float(Float16(v))
    default: v  // a quantized model's vectors (norm weights) stay FP32
    }
  }

  /// out[t, :] = W · x[t, :] for `tokens` rows of x.
  ///
  /// - Parameter rowwise: use the per-row kernel (deterministic per row, independent of `tokens` and threads);
  ///   decode steps always do. Otherwise (prefill), the tiled products or OpenBLAS sgemm; weights of other types
  ///   than FP32 are widened (dequantized) a chunk of rows at a time.
  static func linear(
    _ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int, _ out: UnsafeMutablePointer<Float>, rowwise: Bool,
    threads: Int, arithmetic: Arithmetic = .exact
  ) {
    linear([(w, out)], x, tokens: tokens, rowwise: rowwise, threads: threads, arithmetic: arithmetic)
  }

  /// out_i[t, :] = W_i · x[t, :] for several matrices with the same input, in one parallel region when
  /// decoding (Q, K and V; gate and up), so they cost one synchronisation of the threads instead of one each.
  ///
  /// With `.llamaCpp` arithmetic, quantized matrices take their inputs quantized to 8 bits (once per group), for
  /// decode and prefill alike: blocks of 32 (Q8_0 / Q8_1) for the 32-value types, ggml's Q8_K for the K-quants;
  /// F16 and BF16 matrices take them rounded to their type.
  static func linear(
    _ group: [(WeightMatrix, UnsafeMutablePointer<Float>)], _ x: UnsafePointer<Float>, tokens: Int,
    rowwise: Bool, threads: Int, arithmetic: Arithmetic = .exact
  ) {
    let llama = arithmetic == .llamaCpp
    let cols = group[0].0.cols
    // llama.cpp multiplies F16 and BF16 weights by inputs rounded to the same type (its vec_dot_type); the
    // kernels' order of additions is ggml's for these types.
    var rounded: [WeightDType: UnsafeMutablePointer<Float>] = [:]
    if llama {
      for dtype in [WeightDType.bf16, .f16] where group.contains(where: { $0.0.dtype == dtype }) {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: tokens * cols)
        for i in 0..<(tokens * cols) { p[i] = roundTrip(x[i], dtype: dtype) }
        rounded[dtype] = p
      }
    }
    defer { for p in rounded.values { p.deallocate() } }
    let inputs = group.map { w, _ in rounded[w.dtype].map { UnsafePointer($0) } ?? x }

    // A repacked matrix is read by the 8-bit-input kernels only.
    let blockInputs = group.contains { ($0.0.interleaved || llama) && el_act_supported($0.0.kernelType) != 0 }
    let superBlockInputs = group.contains { ($0.0.interleaved || llama) && el_actk_supported($0.0.kernelType) != 0 }
    let tiled = rowwise || tokens == 1 || blockInputs || superBlockInputs ? nil : tiledLanes(group, llama: llama)
    // llama.cpp multiplies a prompt by FP32 and 16-bit matrices with tinyBLAS where its shapes allow (el_sgemm's
    // order) and with its dot products, as decode steps do, where they do not.
    let llamaRowwise = llama && tiled == nil && group.allSatisfy { [.f32, .f16, .bf16].contains($0.0.dtype) }
    if rowwise || tokens == 1 || blockInputs || superBlockInputs || llamaRowwise {
      let blocks = cols / 32
      let superBlocks = cols / 256
      var xq: UnsafeMutablePointer<el_act_block>? = nil
      var xk: UnsafeMutablePointer<el_act_kblock>? = nil
      if blockInputs {
        xq = UnsafeMutablePointer<el_act_block>.allocate(capacity: max(1, tokens * blocks))
        for t in 0..<tokens { el_quantize_act(x + t * cols, cols, xq! + t * blocks) }
      }
      if superBlockInputs {
        xk = UnsafeMutablePointer<el_act_kblock>.allocate(capacity: max(1, tokens * superBlocks))
        for t in 0..<tokens { el_quantize_act_k(x + t * cols, cols, xk! + t * superBlocks) }
      }
      defer {
        xq?.deallocate()
        xk?.deallocate()
      }
      let jobs = zip(group, inputs).map { item, input in
        let (w, out) = item
        let q = xq != nil && el_act_supported(w.kernelType) != 0
        let k = xk != nil && el_actk_supported(w.kernelType) != 0
        let dtype = llama && w.dtype == .bf16 ? llamaBF16 : w.kernelType
        return el_matvec_job(
          w: w.base, dtype: dtype, rows: w.rows, cols: w.cols, x: input, x_stride: w.cols,
          y: out, y_stride: w.rows, x_q: q ? UnsafePointer(xq) : nil, x_q_stride: blocks,
          x_k: k ? UnsafePointer(xk) : nil, x_k_stride: superBlocks)
      }
      // Chunks of about 256 KiB of weights: small enough to balance two threads on a noisy host, large
      // enough that handing them out costs nothing next to reading them.
      let rowBytes = group.map { $0.0.rowBytes }.max() ?? 1
      el_matvec_many(jobs, Int32(jobs.count), tokens, max(4, (256 << 10) / max(1, rowBytes)), Int32(threads))
      return
    }
    if let lanes = tiled {
      let jobs = zip(group, inputs).map { item, input in
        let (w, out) = item
        return el_matvec_job(
          w: w.base, dtype: llama && w.dtype == .bf16 ? llamaBF16 : w.kernelType, rows: w.rows, cols: w.cols,
          x: input, x_stride: w.cols, y: out,
          y_stride: w.rows, x_q: nil, x_q_stride: 0, x_k: nil, x_k_stride: 0)
      }
      // Chunks of about 512 KiB of FP32 rows (64 rows of 2048), at least 16 rows.
      let chunk = max(16, (512 << 10) / max(1, 4 * cols))
      reserve(threads: threads)
      el_sgemm_many(jobs, Int32(jobs.count), tokens, chunk, Int32(lanes), Int32(threads))
      return
    }
    blas.with(threads: 1) { gemm(group, inputs, tokens: tokens, threads: threads) }
  }

  /// BF16 with llama.cpp's arithmetic: its order of additions for BF16, with the AVX512-BF16 dot-product
  /// instruction's arithmetic where the reproduced build has it.
  private static var llamaBF16: el_dtype { llamaCppBF16Dot ? EL_BF16_DP : EL_BF16_GGML }

  /// The partial sums per output of the tiled prefill products (el_sgemm) for this group, or nil where the group
  /// takes another path. With llama.cpp's arithmetic: FP32, F16 and BF16 matrices, as many lanes as the llama.cpp
  /// build reproduced (16 for AVX-512, 8 for AVX2; BF16 with AVX512-BF16: its own), where tinyBLAS takes the
  /// shapes. With exact arithmetic: every type that widens to FP32, on CPUs with the vector kernels (elsewhere
  /// OpenBLAS is faster).
  private static func tiledLanes(_ group: [(WeightMatrix, UnsafeMutablePointer<Float>)], llama: Bool) -> Int? {
    let lanes: Int
    if llama {
      // The x86 builds' order, on every x86 CPU (without AVX2 in C, for tests); ARM keeps OpenBLAS (llama.cpp's
      // NEON tinyBLAS sums in another order, which this does not reproduce).
      #if arch(x86_64)
      guard group.allSatisfy({ [.f32, .f16, .bf16].contains($0.0.dtype) }) else { return nil }
      lanes = llamaCppSIMD == "avx512" ? 16 : 8
      #else
      return nil
      #endif
    } else {
      guard group.allSatisfy({ !$0.0.interleaved }) else { return nil }
      switch isa {
      case "avx512": lanes = 16
      case "avx2": lanes = 8
      default: return nil
      }
    }
    // BF16 as VDPBF16PS sums it goes in steps of 32 values (tinyBLAS's for that instruction).
    let fits = group.allSatisfy {
      llama && llamaCppBF16Dot && $0.0.dtype == .bf16
        ? el_bf16dp_supported($0.0.rows, $0.0.cols) != 0
        : el_sgemm_supported($0.0.rows, $0.0.cols, Int32(lanes)) != 0
    }
    return fits ? lanes : nil
  }

  /// Rows per prefill chunk.
  static let gemmRows = 256

  /// Prefill: every matrix of the group in chunks of `gemmRows` rows, handed out to the pool's threads from one
  /// counter; each chunk one OpenBLAS sgemm on the thread that took it (16-bit and quantized rows widened first
  /// into that thread's scratch). OpenBLAS's own threads stay idle (runs inside `blas.with(threads: 1)`): its
  /// threads and the pool's waiting for each other on two cores lost a tenth of a 2-thread prefill, and the
  /// dequantization ran on one thread. A chunk is computed the same way whatever the thread count, so prefill
  /// results do not depend on it.
  private static func gemm(
    _ group: [(WeightMatrix, UnsafeMutablePointer<Float>)], _ inputs: [UnsafePointer<Float>], tokens: Int,
    threads: Int
  ) {
    var chunks: [(matrix: Int, row: Int)] = []
    for (i, (w, _)) in group.enumerated() {
      for r in stride(from: 0, to: w.rows, by: gemmRows) { chunks.append((i, r)) }
    }
    let scratchValues = group.filter { $0.0.dtype != .f32 }.map { gemmRows * $0.0.cols }.max() ?? 0
    let next = ChunkCounter()
    reserve(threads: threads)
    Parallel.forEach(min(max(1, threads), chunks.count)) { _ in
      let scratch = scratchValues > 0 ? UnsafeMutablePointer<Float>.allocate(capacity: scratchValues) : nil
      defer { scratch?.deallocate() }
      while case let c = next.take(), c < chunks.count {
        let (w, out) = group[chunks[c].matrix]
        let x = inputs[chunks[c].matrix]
        let r = chunks[c].row
        let n = min(gemmRows, w.rows - r)
        let rows: UnsafePointer<Float>
        if let scratch, w.dtype != .f32 {
          widen(w.base + r * w.rowBytes, dtype: w.dtype, into: scratch, count: n * w.cols)
          rows = UnsafePointer(scratch)
        } else {
          rows = UnsafePointer((w.base + r * w.rowBytes).assumingMemoryBound(to: Float.self))
        }
        cblas_sgemm(
          CblasRowMajor, CblasNoTrans, CblasTrans, Int32(tokens), Int32(n), Int32(w.cols), 1,
          x, Int32(w.cols), rows, Int32(w.cols), 0, out + r, Int32(w.rows))
      }
    }
  }

  /// Hands out chunk numbers 0, 1, 2, … to the threads of a parallel region.
  private final class ChunkCounter: Sendable {
    private let next = Atomic<Int>(0)
    func take() -> Int { next.wrappingAdd(1, ordering: .relaxed).oldValue }
  }

  /// y = W · x with the decode kernel on `threads` threads (for bandwidth measurements).
  public static func stream(_ w: WeightMatrix, _ x: [Float], _ y: inout [Float], threads: Int) {
    reserve(threads: threads)
    x.withUnsafeBufferPointer { xb in
      y.withUnsafeMutableBufferPointer { yb in
        linear(w, xb.baseAddress!, tokens: 1, yb.baseAddress!, rowwise: true, threads: threads)
      }
    }
  }

  /// The decode roofline as the kernel sees it: streams a `bytes` FP32 matrix (matrix × one vector) on
  /// `threads` threads, once to warm up and then `passes` times; returns the bytes read per pass and the
  /// seconds of each pass. The matrix holds distinct values: identical pages could be deduplicated by the
  /// host and read from cache.
  public static func streamPasses(bytes: Int, passes: Int, threads: Int) throws -> (
    bytesPerPass: Int, seconds: [Double]
  ) {
    let (perPass, seconds) = try streamPasses(bytes: bytes, passes: passes, threads: [threads])
    return (perPass, seconds[0])
  }

  /// The same for several thread counts over one matrix, round robin (every count once per pass, so that drift
  /// moves all alike): element i of `seconds` holds the passes of `threads[i]`.
  public static func streamPasses(bytes: Int, passes: Int, threads: [Int]) throws -> (
    bytesPerPass: Int, seconds: [[Double]]
  ) {
    let cols = 4096
    let rows = max(1, bytes / 4 / cols)
    let w = try SyntheticWeights(config: ModelPreset.tiny.config, seed: 4).matrix(
      "bandwidth-probe", rows: rows, cols: cols)
    let x = [Float](repeating: 1, count: cols)
    var y = [Float](repeating: 0, count: rows)
    for k in threads { stream(w, x, &y, threads: k) }
    var seconds = [[Double]](repeating: [], count: threads.count)
    for _ in 0..<passes {
      for (i, k) in threads.enumerated() {
        let start = monotonic()
        stream(w, x, &y, threads: k)
        seconds[i].append(monotonic() - start)
      }
    }
    return (rows * cols * 4, seconds)
  }

  /// The median rate of passes of `bytes` each.
  static func medianRate(bytes: Int, _ seconds: [Double]) -> Bandwidth {
    let rates = seconds.map { Double(bytes) / $0 }.sorted()
    return Bandwidth(bitsPerSecond: rates[rates.count / 2] * 8)
  }
}

/// OpenBLAS's process-wide thread count, set for each call that needs another one; calls take turns so that
/// one engine's setting cannot change under another's running sgemm.
private final class BLASThreads: @unchecked Sendable {
  private let lock = NSLock()
  private var current = 0

  func with(threads: Int, _ body: () -> Void) {
    lock.lock()
    defer { lock.unlock() }
    let n = min(max(1, threads), Kernels.maxThreads)
    if n != current {
      openblas_set_num_threads(Int32(n))
      current = n
    }
    body()
  }
}

/// The decode bandwidth of 1 … `workers` threads streaming one matrix of `bytes` through the decode kernel at
/// once, each its share of rows (as co-located workers each stream their own weights), all of them together:
/// element k − 1 for k threads. Measured round robin, every count once per round, so that drift moves all alike;
/// each the median of `passes` rounds.
public func sharedDecodeBandwidth(workers: Int, bytes: Int = 256 << 20, passes: Int = 5) throws -> [Bandwidth] {
  let (perPass, seconds) = try Kernels.streamPasses(
    bytes: bytes, passes: max(1, passes), threads: Array(1...max(1, workers)))
  return seconds.map { Kernels.medianRate(bytes: perPass, $0) }
}

/// The decode bandwidth of this host as the engine sees it: the median over `passes` of streaming `bytes` of
/// weights through the decode kernel on `threads` threads. The emulated cluster's time dilation is planned
/// from it (one core's rate), so it is measured once per process by whoever owns the cluster.
public func hostDecodeBandwidth(bytes: Int = 512 << 20, passes: Int = 5, threads: Int = 1) throws -> Bandwidth {
  let (perPass, seconds) = try Kernels.streamPasses(bytes: bytes, passes: passes, threads: threads)
  return Kernels.medianRate(bytes: perPass, seconds)
}

struct UnsafePointerBox: @unchecked Sendable {
  let pointer: UnsafePointer<Float>
  init(_ p: UnsafePointer<Float>) { pointer = p }
}
struct UnsafeMutablePointerBox: @unchecked Sendable {
  let pointer: UnsafeMutablePointer<Float>
  init(_ p: UnsafeMutablePointer<Float>) { pointer = p }
}
