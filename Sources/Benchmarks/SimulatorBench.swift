import CostModel
public import DSL
import EdgeLabCore
import Execution
import Foundation
import Metrics
import Partitioning
import Runner
import Simulator

/// How fast the simulator runs: N requests × 128 output tokens through a 16-stage pipeline of AGX Orins
/// (Llama-2-7B FP16, even split, Poisson arrivals at N / 200 per second, micro-batches of up to 8), for growing N.
public enum SimulatorBench {
  public struct Row: Sendable {
    public var requests: Int
    public var seconds: Double
    public var events: Int
    public var tokens: Int
  }

  public static func spec(requests: Int) -> ExperimentSpec {
    Experiment("simulator-bench") {
      Model(.llama2_7B, precision: .fp16)
      Device("agx", .agxOrin32GB, count: 16).source()
      Network(bandwidth: .gbit(1), latency: .ms(1))
      Workload(requests: requests, prompt: 32, output: 128, arrival: .poisson(rate: Double(requests) / 200))
      Algorithm("even")
      Execution(ExecutionOptions(maxBatch: 8, microBatches: 16))
    }.spec
  }

  /// Each size `rounds` times; the fastest is kept (the least disturbed by the rest of the machine).
  public static func run(sizes: [Int], rounds: Int) throws -> [Row] {
    var rows: [Row] = []
    for n in sizes {
      let x = try spec(requests: n).resolve()
      let builder = ProblemBuilder.roofline(x.spec.calibration)
      let plan = try Partitioners.solve(builder.problem(for: x, objective: .latency), algorithm: "even")
      let requests = x.spec.workload.materialize(seed: 1, vocabularySize: x.model.vocabSize)
      var best = Double.infinity
      var outcome: RunOutcome?
      for _ in 0..<max(1, rounds) {
        let t0 = MonotonicClock.now()
        let o = Simulator.run(
          SimulationInput(experiment: x, plan: plan, requests: requests, timeModel: builder.timeModel, seed: 1))
        best = min(best, MonotonicClock.now() - t0)
        outcome = o
      }
      let o = outcome!
      guard o.status == .complete else {
        throw BenchError("\(n) requests: the run ended \(o.status): \(o.message ?? "")")
      }
      rows.append(
        Row(
          requests: n, seconds: best, events: o.facts["simulated_events"]?.doubleValue.map { Int($0) } ?? 0,
          tokens: o.requests.reduce(0) { $0 + $1.tokenTimes.count }))
    }
    return rows
  }
}

/// A benchmark that could not produce its numbers.
public struct BenchError: Error, CustomStringConvertible {
  public var description: String
  public init(_ description: String) { self.description = description }
}
