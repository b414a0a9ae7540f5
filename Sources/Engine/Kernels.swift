import CKernels
import COpenBLAS
import Catalog
import Dispatch

/// Runs `body(i)` for i in 0..<count on up to `Parallel.threads` threads of a persistent pool (C, spinning
/// briefly between jobs, as the decode loop issues over a hundred short parallel jobs per token).
enum Parallel {
  nonisolated(unsafe) static var threads = 1

  static func forEach(_ count: Int, _ body: (Int) -> Void) {
    if count <= 1 || threads <= 1 {
      for i in 0..<count { body(i) }
      return
    }
    withoutActuallyEscaping(body) { body in
      var box = TaskBox(body: body)
      withUnsafeMutablePointer(to: &box) { ctx in
        el_parallel(Int32(count), { raw, i in
          raw!.assumingMemoryBound(to: TaskBox.self).pointee.body(Int(i))
        }, ctx)
      }
    }
  }

  struct TaskBox { var body: (Int) -> Void }
}

/// The numeric kernels: the C matrix-vector kernels for decoding, OpenBLAS sgemm for prefill.
public enum Kernels {
  /// Sets the threads used by the kernels and by OpenBLAS. Results do not depend on it.
  public static func setThreads(_ n: Int) {
    Parallel.threads = max(1, n)
    el_pool_set_threads(Int32(max(1, n)))
    openblas_set_num_threads(Int32(max(1, n)))
  }
  public static var threads: Int { Parallel.threads }

  /// The instruction set the C kernels use on this machine.
  public static var isa: String { String(cString: el_kernel_isa()) }

  static func cType(_ d: WeightDType) -> el_dtype {
    switch d {
    case .f32: EL_F32
    case .bf16: EL_BF16
    case .f16: EL_F16
    }
  }

  static func widen(_ src: UnsafeRawPointer, dtype: WeightDType, into dst: UnsafeMutablePointer<Float>, count: Int) {
    el_widen(src, cType(dtype), dst, count)
  }

  /// Stores v at element `index` of a buffer of `dtype` (round to nearest even for 16-bit types).
  static func store(_ v: Float, dtype: WeightDType, at p: UnsafeMutableRawPointer, index: Int) {
    switch dtype {
    case .f32: p.storeBytes(of: v, toByteOffset: 4 * index, as: Float.self)
    case .bf16: p.storeBytes(of: bf16Bits(v), toByteOffset: 2 * index, as: UInt16.self)
    case .f16: p.storeBytes(of: Float16(v).bitPattern, toByteOffset: 2 * index, as: UInt16.self)
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
    }
  }

  /// out[t, :] = W · x[t, :] for `tokens` rows of x.
  ///
  /// - Parameter rowwise: use the per-row kernel (deterministic per row, independent of `tokens` and threads);
  ///   decode steps always do. Otherwise (prefill), OpenBLAS sgemm; 16-bit weights are widened in blocks.
  static func linear(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int, _ out: UnsafeMutablePointer<Float>, rowwise: Bool) {
    linear([(w, out)], x, tokens: tokens, rowwise: rowwise)
  }

  /// out_i[t, :] = W_i · x[t, :] for several matrices with the same input, in one parallel region when
  /// decoding (Q, K and V; gate and up), so they cost one synchronisation of the threads instead of one each.
  static func linear(_ group: [(WeightMatrix, UnsafeMutablePointer<Float>)], _ x: UnsafePointer<Float>, tokens: Int,
                     rowwise: Bool) {
    if rowwise || tokens == 1 {
      let jobs = group.map { w, out in
        el_matvec_job(w: w.base, dtype: cType(w.dtype), rows: w.rows, cols: w.cols, x: x, x_stride: w.cols,
                      y: out, y_stride: w.rows)
      }
      // Chunks of about 256 KiB of weights: small enough to balance two threads on a noisy host, large
      // enough that handing them out costs nothing next to reading them.
      let rowBytes = group.map { $0.0.cols * $0.0.dtype.size }.max() ?? 1
      el_matvec_many(jobs, Int32(jobs.count), tokens, max(4, (256 << 10) / max(1, rowBytes)), Int32(Parallel.threads))
      return
    }
    for (w, out) in group { gemm(w, x, tokens: tokens, out) }
  }

  /// Prefill: OpenBLAS sgemm; 16-bit weights are widened in blocks.
  static func gemm(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int, _ out: UnsafeMutablePointer<Float>) {
    if w.dtype == .f32 {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(tokens), Int32(w.rows), Int32(w.cols), 1,
                  x, Int32(w.cols), w.base.assumingMemoryBound(to: Float.self), Int32(w.cols), 0, out, Int32(w.rows))
      return
    }
    let block = 256
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: block * w.cols)
    defer { scratch.deallocate() }
    var r = 0
    while r < w.rows {
      let n = min(block, w.rows - r)
      widen(w.base + r * w.cols * w.dtype.size, dtype: w.dtype, into: scratch, count: n * w.cols)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(tokens), Int32(n), Int32(w.cols), 1,
                  x, Int32(w.cols), scratch, Int32(w.cols), 0, out + r, Int32(w.rows))
      r += n
    }
  }

  /// y = W · x with the decode kernel on the configured threads (for bandwidth measurements).
  public static func stream(_ w: WeightMatrix, _ x: [Float], _ y: inout [Float]) {
    x.withUnsafeBufferPointer { xb in
      y.withUnsafeMutableBufferPointer { yb in linear(w, xb.baseAddress!, tokens: 1, yb.baseAddress!, rowwise: true) }
    }
  }

  /// The decode roofline as the kernel sees it: streams a `bytes` FP32 matrix (matrix × one vector) on the
  /// configured threads, once to warm up and then `passes` times; returns the bytes read per pass and the
  /// seconds of each pass. The matrix holds distinct values: identical pages could be deduplicated by the
  /// host and read from cache.
  public static func streamPasses(bytes: Int, passes: Int) throws -> (bytesPerPass: Int, seconds: [Double]) {
    let cols = 4096
    let rows = bytes / 4 / cols
    let w = try SyntheticWeights(config: ModelPreset.tiny.config, seed: 4).matrix("bandwidth-probe", rows: rows, cols: cols)
    let x = [Float](repeating: 1, count: cols)
    var y = [Float](repeating: 0, count: rows)
    stream(w, x, &y)
    let seconds = (0..<passes).map { _ in
      let start = monotonic()
      stream(w, x, &y)
      return monotonic() - start
    }
    return (rows * cols * 4, seconds)
  }
}

struct UnsafePointerBox: @unchecked Sendable {
  let pointer: UnsafePointer<Float>
  init(_ p: UnsafePointer<Float>) { pointer = p }
}
struct UnsafeMutablePointerBox: @unchecked Sendable {
  let pointer: UnsafeMutablePointer<Float>
  init(_ p: UnsafeMutablePointer<Float>) { pointer = p }
}
