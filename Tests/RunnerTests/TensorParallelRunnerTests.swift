import DSL
import Experiments
import Metrics
import Pipeline
import Results
import Runner
import Simulator
import TestSupport
import Testing

/// `dllama-scaling` as declared, simulated: group plans run, the results file keeps their groups, and the
/// simulator's time per token agrees with the plan's own prediction (one cost model for both).
@Suite("Tensor-parallel plans through the runner")
struct TensorParallelRunnerTests {
  @Test func dllamaScalingRunsAndKeepsItsGroups() throws {
    var spec = try #require(ExperimentCatalog.named("dllama-scaling")).spec
    spec.workload.requests = 2
    let path = temporaryDirectory() + "/dllama.h5"
    let report = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
      spec, options: RunOptions(outputPath: path))
    let file = try ResultsStore.read(path)
    #expect(report.statusCounts == [.complete: file.runs.count], "\(file.runs.map { $0.outcome.message ?? "" })")
    for r in file.runs where r.label.hasPrefix("tp") {
      let plan = try #require(r.plan)
      let n = Int(r.label.split(separator: "-").last!)!
      #expect((plan.stages[0].group?.members.count ?? 1) == n, "\(r.label)")
      // Decode with one request: the simulator's time per token is the plan's value up to the contexts it
      // decodes at (the plan takes the mean).
      let tpot = r.summary.tpot.mean
      #expect(abs(tpot / plan.valueSeconds - 1) < 0.03, "\(r.label): simulated \(tpot), planned \(plan.valueSeconds)")
    }
    // The eighth device stops paying for the ring once the latency is 500 µs; the star keeps gaining.
    func tpot(_ label: String, _ latency: String) throws -> Double {
      try #require(
        file.runs.first { $0.label == label && $0.parameters.first?.value.stringValue == latency }
      ).summary.tpot.mean
    }
    #expect(try tpot("tp-8", "500us") > tpot("tp-4", "500us"))
    #expect(try tpot("tp-8", "50us") < tpot("tp-4", "50us"))
    #expect(try tpot("tp-star-8", "500us") < tpot("tp-star-4", "500us"))
  }

  /// `hybrid-vs-pipeline` as declared: on the fast LAN hybrid shares the blocks between the two wired devices and
  /// pipelines the rest, faster per token than the pipeline and than one group of three, its simulated time per
  /// token close to its plan's value; where every link is slow it cannot beat the pipeline and equals it.
  @Test func hybridBeatsBothWhereTheLANIsFastAndTiesWhereItIsNot() throws {
    var spec = try #require(ExperimentCatalog.named("hybrid-vs-pipeline")).spec
    spec.workload.requests = 1
    let path = temporaryDirectory() + "/hybrid.h5"
    let report = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
      spec, options: RunOptions(outputPath: path))
    let file = try ResultsStore.read(path)
    #expect(report.statusCounts == [.complete: file.runs.count], "\(file.runs.map { $0.outcome.message ?? "" })")
    func value(_ r: RunRecord, _ key: String) -> String? {
      r.parameters.first { $0.label == key }?.value.stringValue
    }
    func run(_ label: String, lan: String, wifi: String) throws -> RunRecord {
      let found = file.runs.first { r in
        r.label == label && value(r, "lan_latency") == lan && value(r, "wifi_latency") == wifi
      }
      return try #require(found)
    }
    for wifi in ["100us", "1ms", "3ms", "10ms"] {
      let hybrid = try run("hybrid", lan: "100us", wifi: wifi)
      let plan = try #require(hybrid.plan)
      #expect(plan.stages.count == 2 && plan.stages[0].group?.members == ["nx0", "nx1"], "\(wifi)")
      #expect(hybrid.summary.tpot.mean < (try run("pipeline", lan: "100us", wifi: wifi)).summary.tpot.mean)
      #expect(hybrid.summary.tpot.mean < (try run("tensor", lan: "100us", wifi: wifi)).summary.tpot.mean)
      #expect(abs(hybrid.summary.tpot.mean / plan.valueSeconds - 1) < 0.03, "\(wifi)")
    }
    for wifi in ["1ms", "3ms", "10ms"] {
      let hybrid = try #require(try run("hybrid", lan: "5ms", wifi: wifi).plan)
      let pipeline = try #require(try run("pipeline", lan: "5ms", wifi: wifi).plan)
      #expect(!hybrid.hasGroups && hybrid.stages == pipeline.stages, "\(wifi)")
    }
  }
}
