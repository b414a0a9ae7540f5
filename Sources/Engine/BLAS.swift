import COpenBLAS
import Foundation

/// Which OpenBLAS kernels ("core") this process runs, and which it should.
///
/// Debian's OpenBLAS is built for every x86-64 core (`DYNAMIC_ARCH`) and picks one when it loads, from the CPU
/// it recognises; a CPU newer than the library falls back to an old core (Prescott: SSE3 kernels, about 4× slower
/// prefill on an AVX-512 server). OpenBLAS reads `OPENBLAS_CORETYPE` only when it loads, so `edgelab` sets it
/// and starts itself again, once, before doing any work (`BLASSelection.reexecIfNeeded`); workers inherit it.
public enum BLASCore {
  /// Cores that OpenBLAS 0.3 can be told to use on x86-64, best first, each with the CPU flags its kernels need
  /// (as /proc/cpuinfo names them).
  public static let x86: [(name: String, needs: Set<String>)] = [
    ("Cooperlake", ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16", "avx2", "fma"]),
    ("SkylakeX", ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma"]),
    ("Haswell", ["avx2", "fma"]),
    ("Sandybridge", ["avx"]),
  ]

  /// How capable an OpenBLAS core is: 3 AVX-512, 2 AVX2, 1 AVX, 0 older (the generic fallbacks).
  public static func rank(_ core: String) -> Int {
    switch core.lowercased() {
    case "skylakex", "cooperlake", "sapphirerapids": 3
    case "haswell", "zen", "zen2", "zen3": 2
    case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator": 1
    default: 0
    }
  }

  /// The core to run with: the best one whose kernels this CPU has, when it is better than what OpenBLAS chose;
  /// nil to keep OpenBLAS's choice (already the best, or a core of another architecture).
  ///
  /// - Parameters:
  ///   - current: `openblas_get_corename()` as loaded.
  ///   - flags: the CPU's feature flags.
  public static func choice(current: String, flags: Set<String>) -> String? {
    guard let best = x86.first(where: { $0.needs.isSubset(of: flags) }) else { return nil }
    return rank(best.name) > rank(current) ? best.name : nil
  }

  /// The core OpenBLAS runs in this process.
  public static var current: String { String(cString: openblas_get_corename()) }
  /// OpenBLAS's build configuration ("OpenBLAS 0.3.21 DYNAMIC_ARCH …").
  public static var config: String { String(cString: openblas_get_config()) }

  /// This CPU's feature flags (/proc/cpuinfo; empty where there is none).
  public static func cpuFlags() -> Set<String> {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
      let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
    else { return [] }
    return Set(line.split(separator: ":", maxSplits: 1).last?.split(separator: " ").map(String.init) ?? [])
  }

  /// A small product through OpenBLAS against a plain triple loop: false if the kernels compute wrongly on this
  /// machine (a core whose instructions the CPU lacks would crash before, but a broken build would not).
  public static func verify() -> Bool {
    let m = 7
    let n = 33
    let k = 65
    let a = (0..<(m * k)).map { Float(($0 * 37) % 19) / 19 - 0.5 }
    let b = (0..<(n * k)).map { Float(($0 * 53) % 23) / 23 - 0.5 }
    var c = [Float](repeating: 0, count: m * n)
    cblas_sgemm(
      CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(k), 0, &c,
      Int32(n))
    for i in 0..<m {
      for j in 0..<n {
        var s: Double = 0
        for p in 0..<k { s += Double(a[i * k + p]) * Double(b[j * k + p]) }
        if abs(Double(c[i * n + j]) - s) > 1e-4 * max(1, abs(s)) { return false }
      }
    }
    return true
  }
}

/// Choosing the core for this process, and starting again with it.
///
/// `edgelab` runs the best kernels this CPU has: it replaces OpenBLAS's choice when that is weaker, whether
/// OpenBLAS guessed it or `OPENBLAS_CORETYPE` asked for it (a machine may set that for other tools).
/// `EDGELAB_BLAS_CORE=<core>` forces a core for `edgelab` alone. Results files record the core used.
public enum BLASSelection {
  /// Set in the environment of the process started again (to the core it replaced), so it does not start
  /// itself again.
  public static let marker = "EDGELAB_BLAS_SELECTED"

  /// The core this process's selection replaced, if it replaced one.
  public static var replaced: String? { ProcessInfo.processInfo.environment[marker] }
  /// Forces a core for `edgelab` (e.g. on a machine whose CPU flags promise more than it runs).
  public static let override = "EDGELAB_BLAS_CORE"

  /// The `OPENBLAS_CORETYPE` this process should run with, or nil to leave things as they are: this is the
  /// second start, or the core running now is the one forced or the best this CPU supports.
  public static func wanted(
    environment: [String: String], current: String = BLASCore.current,
    flags: Set<String> = BLASCore.cpuFlags()
  ) -> String? {
    if environment[marker] != nil { return nil }
    if let forced = environment[override], !forced.isEmpty {
      return forced.lowercased() == current.lowercased() ? nil : forced
    }
    return BLASCore.choice(current: current, flags: flags)
  }

  /// Starts this executable again with the better core, if there is one (replacing this process; returns only
  /// when nothing needs doing or the new start failed).
  public static func reexecIfNeeded() {
    let env = ProcessInfo.processInfo.environment
    guard let core = wanted(environment: env) else { return }
    setenv("OPENBLAS_CORETYPE", core, 1)
    setenv(marker, BLASCore.current, 1)
    let argv = CommandLine.arguments.map { strdup($0) } + [nil]
    execv("/proc/self/exe", argv)
    // exec failed: carry on with OpenBLAS's own choice.
    for p in argv { free(p) }
    unsetenv("OPENBLAS_CORETYPE")
  }
}
