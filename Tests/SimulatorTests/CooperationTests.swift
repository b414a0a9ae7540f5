import Collaboration
import CostModel
import DSL
import Execution
import Foundation
import Metrics
import Pipeline
import TestSupport
import Testing

@testable import Simulator

@Suite("Simulated edge–cloud strategies")
struct CooperationTests {
  static func experiment(latency: Seconds = .ms(10)) throws -> ResolvedExperiment {
    try Experiment("coop") {
      Model(.llama31_8B, precision: .bf16)
      Device("nano", .orinNano8GB)
      Device("server", .rtx3090Server)
      Network(bandwidth: .mbit(100), latency: latency)
      Workload(requests: 6, prompt: 32, output: 2000)
      Collaboration(edge: "nano", model: .model(.llama32_1B, precision: .bf16), acceptanceRate: 0.7)
      Strategy("spec", .speculative(lookahead: 4, target: "even"))
    }.spec.resolve()
  }

  static func run(_ x: ResolvedExperiment, _ mode: CollaborationJob.Mode, outputs: Int = 2000, seed: UInt64 = 1) throws
    -> RunOutcome
  {
    let plan = Plan(
      algorithm: "test", objective: .latency,
      stages: [.init(device: "server", firstLayer: 0, endLayer: x.model.numHiddenLayers + 2)], microBatches: 1,
      valueSeconds: 0, exact: false)
    let requests = x.spec.workload.materialize(seed: seed, vocabularySize: x.model.vocabSize)
    let evaluation = TaskEvaluation.unmeasured(
      requests.map { ($0.id, $0.promptLength, outputs) }, edgeModel: "1b", cloudModel: "8b")
    let edge = try x.spec.collaboration!.edgeModel.config(target: x.model)
    let job = RunJob(
      experiment: x, plan: plan, requests: requests, seed: seed,
      timeModel: RooflineModel(calibration: x.spec.calibration),
      collaboration: CollaborationJob(mode: mode, edgeDevice: "nano", edgeModel: edge, evaluation: evaluation))
    return try SimulatedBackend().execute(job)
  }

  @Test(arguments: [(0.5, 2), (0.7, 4), (0.9, 8), (0.8, 1)])
  func tokensPerVerificationMatchTheClosedForm(alpha: Double, k: Int) throws {
    let out = try Self.run(Self.experiment(), .speculative(lookahead: k, acceptance: .rate(alpha)))
    #expect(out.status == .complete)
    let summary = RunSummary(out).collaboration
    let expected = SpeculationMath.expectedTokensPerVerification(acceptance: alpha, lookahead: k)
    // 6 replies of 2000 tokens: thousands of verifications; the last of each reply is capped by its length
    // (a bias below 0.1%). The tolerance is about five standard errors.
    let verifications = out.queries!.reduce(0) { $0 + $1.proposed.count }
    let sd =
      (SpeculationMath.acceptedDistribution(acceptance: alpha, lookahead: k).enumerated().reduce(0.0) {
        $0 + pow(Double($1.offset + 1) - expected, 2) * $1.element
      } / Double(verifications)).squareRoot()
    #expect(
      abs(summary.tokensPerVerification - expected) < 5 * sd + 0.002 * expected,
      "got \(summary.tokensPerVerification), closed form \(expected)")
    // Every reply is the target's, whole: 2000 tokens each.
    #expect(out.requests.allSatisfy { $0.tokenTimes.count == 2000 })
  }

  @Test func speculationPaysARoundTripPerVerificationAndStreamingNone() throws {
    // The target streaming from the server pays the round trip once per query; speculation pays it once per
    // verification, so its time per token grows by the added round trip ÷ the tokens each verification made.
    func run(_ mode: CollaborationJob.Mode, _ latency: Seconds) throws -> RunOutcome {
      try Self.run(Self.experiment(latency: latency), mode, outputs: 64)
    }
    let spec = CollaborationJob.Mode.speculative(lookahead: 4, acceptance: .rate(0.8))
    let cloud = CollaborationJob.Mode.route(decisions: Array(repeating: .cloud, count: 6), probe: nil)
    let (cloudNear, cloudFar) = (try run(cloud, .ms(1)), try run(cloud, .ms(100)))
    #expect(abs(RunSummary(cloudFar).tpot.mean - RunSummary(cloudNear).tpot.mean) < 1e-9)
    #expect(RunSummary(cloudFar).ttft.mean - RunSummary(cloudNear).ttft.mean > 2 * 0.099 * 0.999)

    let (near, far) = (try run(spec, .ms(1)), try run(spec, .ms(100)))
    // The same seed draws the same acceptances at both latencies.
    #expect(near.queries!.map(\.accepted) == far.queries!.map(\.accepted))
    let added = zip(far.requests, near.requests).map { f, n in
      (f.completion! - f.firstToken!) - (n.completion! - n.firstToken!)
    }
    for (q, a) in zip(far.queries!, added) {
      // Each verification adds the 198 ms of extra round trip, but the first: near, it waits for the draft's
      // own prefill, which the longer round trip hides in part.
      let v = Double(q.proposed.count)
      #expect(a <= 0.198 * v + 1e-9 && a >= 0.198 * (v - 1), "added \(a) s for \(q.proposed.count) verifications")
    }
  }

  @Test func routesTimeTheModelThatAnswers() throws {
    let x = try Self.experiment(latency: .ms(20))
    let edge = try Self.run(x, .route(decisions: Array(repeating: .edge, count: 6), probe: nil), outputs: 10)
    let cloud = try Self.run(x, .route(decisions: Array(repeating: .cloud, count: 6), probe: nil), outputs: 10)
    let probed = try Self.run(x, .route(decisions: Array(repeating: .cloud, count: 6), probe: 2), outputs: 10)
    for o in [edge, cloud, probed] { #expect(o.status == .complete) }
    #expect(edge.queries!.allSatisfy { $0.servedBy == .edge && $0.bytesToCloud == 0 && $0.cloudPromptTokens == 0 })
    #expect(cloud.queries!.allSatisfy { $0.servedBy == .cloud && $0.bytesToCloud > 0 && $0.edgeCompletionTokens == 0 })
    #expect(probed.queries!.allSatisfy { $0.edgeCompletionTokens == 2 && $0.cloudCompletionTokens == 10 })
    // A cloud answer waits at least one round trip for its first token; probing first adds the edge's work.
    #expect(cloud.requests.allSatisfy { ($0.ttft ?? 0) >= 0.040 })
    #expect(RunSummary(probed).ttft.mean > RunSummary(cloud).ttft.mean)
    // Unmeasured answers: accuracy is unknown, not zero.
    #expect(RunSummary(cloud).collaboration.accuracy.isNaN)
    #expect(RunSummary(edge).collaboration.edgeRatio == 1 && RunSummary(cloud).collaboration.edgeRatio == 0)
  }
}
