public import DSL
import EdgeLabCore
import Engine
import Foundation
import Metrics
import Results
import Runner
import Runtime
import Transport

/// Costs of the distributed runtime: one pipeline hop over loopback TCP, and the end-to-end overhead
/// of an N-stage pipeline of worker processes over the same model in one process.
public enum PipelineBench {
  public struct Hop: Sendable {
    public var hidden: Int
    public var halfPrecision: Bool
    public var payloadBytes: Int
    public var medianSeconds: Double
    public var p99Seconds: Double
  }

  /// One-way time of an activation message (hidden × 1 token) between two threads over a loopback TCP
  /// connection, including encoding and decoding: half the median round trip of `iterations` ping-pongs.
  public static func hop(hidden: Int, halfPrecision: Bool, iterations: Int) throws -> Hop {
    let token = Array("hop-benchmark-token".utf8)
    let listener = try Listener(host: "127.0.0.1", port: 0, token: token)
    defer { listener.close() }
    let echo = Thread {
      guard let c = try? listener.accept() else { return }
      while let f = try? c.receive() {
        guard let m = try? ActivationMessage.decode(f.payload) else { break }
        try? c.send(.activation, m.encoded(halfPrecision: halfPrecision))
      }
      c.close()
    }
    echo.start()
    let c = try Connection.connect(to: listener.endpoint, token: token, name: "bench")
    defer { c.close() }
    var rng = SeededRandom(seed: 1)
    let m = ActivationMessage(
      batch: 1, stage: 1, prefill: false, spans: [.init(id: 1, start: 100, count: 1)],
      values: (0..<hidden).map { _ in Float(rng.nextUnit()) })
    var times: [Double] = []
    for i in 0..<(iterations + 50) {
      let t0 = monotonicNanoseconds()
      try c.send(.activation, m.encoded(halfPrecision: halfPrecision))
      let f = try c.receive()
      _ = try ActivationMessage.decode(f.payload)
      if i >= 50 { times.append(Double(monotonicNanoseconds() - t0) * 1e-9 / 2) }
    }
    times.sort()
    return Hop(
      hidden: hidden, halfPrecision: halfPrecision,
      payloadBytes: m.encoded(halfPrecision: halfPrecision).count + Wire.headerSize,
      medianSeconds: times[times.count / 2], p99Seconds: times[Int(Double(times.count) * 0.99)])
  }

  public struct Overhead: Sendable {
    public var stages: Int
    public var timePerTokenSeconds: Double
    public var overheadPerTokenSeconds: Double
    public var lossless: Bool
  }

  /// Time per output token of one request at a time (closed loop) through 1…`maxStages` worker processes
  /// (even split), against the same generation in this process, in `rounds` interleaved rounds (medians).
  /// The growth of the time per token from one stage to N, divided by N − 1, is what each added stage costs
  /// (one more process to wake and one more hop per token).
  public static func overhead(model: ModelPreset, maxStages: Int, tokens: Int, rounds: Int, executable: String) throws
    -> (local: Double, rows: [Overhead])
  {
    var rng = SeededRandom(seed: 3)
    let prompt = (0..<16).map { _ in Int32(rng.next() % UInt64(model.config.vocabSize)) }
    var local: [Double] = []
    var staged = [[Double]](repeating: [], count: maxStages + 1)
    var lossless = [Bool](repeating: true, count: maxStages + 1)
    let dir = NSTemporaryDirectory() + "/edgelab-pipeline-bench-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    for _ in 0..<rounds {
      do {
        let pipeline = try LocalPipeline(weights: SyntheticWeights(config: model.config, seed: 5))
        _ = pipeline.generate(prompt: prompt, maxNewTokens: 4)
        for i in 0..<3 {
          local.append(
            pipeline.generate(prompt: prompt, maxNewTokens: tokens, sequence: i).decodeSeconds / Double(tokens - 1))
        }
      }
      for n in 1...maxStages {
        let spec = Experiment("pipeline-bench") {
          Model(model, precision: .fp32, weightsSeed: 5)
          Device("d", .orinNano8GB, count: n).source()
          Workload(requests: 3, prompt: 16, output: .fixed(tokens))
          Algorithm("even")
          Backend(.loopback)
          Emulation(.none)
        }.spec
        let runner = ExperimentRunner(backends: [
          .loopback: LoopbackBackend(options: LoopbackOptions(executable: executable, referenceCache: nil))
        ])
        let path = dir + "/\(n).h5"
        _ = try runner.run(spec, options: RunOptions(outputPath: path, archiveDirectory: dir + "/archive"))
        let run = try Results.ResultsStore.read(path).runs[0]
        staged[n] += run.outcome.requests.compactMap(\.tpot)
        lossless[n] = lossless[n] && run.outcome.facts["lossless"] == .number(1)
      }
    }
    func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
    let localTPOT = median(local)
    let rows = (1...maxStages).map { n in
      Overhead(
        stages: n, timePerTokenSeconds: median(staged[n]), overheadPerTokenSeconds: median(staged[n]) - localTPOT,
        lossless: lossless[n])
    }
    return (localTPOT, rows)
  }
}
