import EdgeLabCore
import Execution

#if canImport(Glibc)
import Glibc
#endif

/// Receives progress of a sweep. The CLI picks a terminal or a plain-line implementation.
public protocol ProgressSink: AnyObject, Sendable {
  func started(total: Int, skipped: Int)
  func runFinished(done: Int, total: Int, description: String, status: String, runSeconds: Double)
  func note(_ line: String)
  func finished()
}

/// No output (`--quiet`).
public final class SilentProgress: ProgressSink, @unchecked Sendable {
  public init() {}
  public func started(total: Int, skipped: Int) {}
  public func runFinished(done: Int, total: Int, description: String, status: String, runSeconds: Double) {}
  public func note(_ line: String) {}
  public func finished() {}
}

/// Progress on stderr: one self-rewriting line on a terminal, plain lines otherwise.
public final class StderrProgress: ProgressSink, @unchecked Sendable {
  let isTerminal: Bool
  var start = 0.0
  var baseline = 0
  var lastDraw = 0.0

  public init(isTerminal: Bool? = nil) { self.isTerminal = isTerminal ?? (isatty(2) != 0) }

  func write(_ s: String) {
    var bytes = Array(s.utf8)
    bytes.withUnsafeMutableBytes { raw in
      var off = 0
      while off < raw.count {
        let n = Glibc.write(2, raw.baseAddress! + off, raw.count - off)
        if n <= 0 { break }
        off += n
      }
    }
  }

  public func started(total: Int, skipped: Int) {
    start = MonotonicClock.now()
    baseline = skipped
    if skipped > 0 { note("resuming: \(skipped) of \(total) runs already in the results file") }
  }

  static func clock(_ s: Double) -> String {
    guard s.isFinite else { return "--:--" }
    let t = Int(s.rounded())
    return t >= 3600 ? "\(t / 3600):" + pad(t / 60 % 60) + ":" + pad(t % 60) : "\(t / 60):" + pad(t % 60)
  }
  static func pad(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }

  public func runFinished(done: Int, total: Int, description: String, status: String, runSeconds: Double) {
    let elapsed = MonotonicClock.now() - start
    let fresh = done - baseline
    let eta = fresh > 0 ? elapsed / Double(fresh) * Double(total - done) : .infinity
    let pct = total > 0 ? 100 * done / total : 100
    if isTerminal {
      let now = MonotonicClock.now()
      if done < total && now - lastDraw < 0.1 { return }
      lastDraw = now
      var line =
        "[\(done)/\(total)] \(pct)%  elapsed \(Self.clock(elapsed))  ETA \(done == total ? "0:00" : Self.clock(eta))  \(description)"
      if line.count > 110 { line = String(line.prefix(107)) + "..." }
      write("\r\u{1B}[K" + line + (done == total ? "\n" : ""))
    } else {
      write(
        "run \(done)/\(total) (\(pct)%) \(description): \(status) in \(String(format: runSeconds, digits: 2)) s; elapsed \(Self.clock(elapsed)), ETA \(Self.clock(eta))\n"
      )
    }
  }

  public func note(_ line: String) {
    write((isTerminal ? "\r\u{1B}[K" : "") + line + "\n")
  }

  public func finished() {}
}
