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
}
