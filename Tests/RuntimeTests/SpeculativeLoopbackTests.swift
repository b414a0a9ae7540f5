import DSL
import Execution
import Foundation
import Metrics
import Pipeline
import Results
import Runner
import Simulator
import TestSupport
import Testing

@testable import Runtime

/// Speculative decoding across real worker processes: the edge worker drafts with the target's own first blocks,
/// the target split over two other workers verifies, and the tokens equal the unsplit model's greedy tokens
/// (the run's lossless check), for k = 1, 2, 4, 8, with FP32 and Q8_0 weights.
@Suite("Speculative decoding on loopback workers", .serialized)
struct SpeculativeLoopbackTests {
  static func spec(precision: Precision, lookaheads: [Int]) -> ExperimentSpec {
    Experiment("speculative-loopback") {
      Model(.small, precision: precision)
      Device("edge", .orinNano8GB).source()
      Device("s", .orinNano8GB, count: 2)
      Workload(requests: 2, prompt: .uniform(min: 3, max: 9), output: .fixed(12))
      Collaboration(edge: "edge", model: .earlyExit(6))
      for k in lookaheads { Strategy("speculative-\(k)", .speculative(lookahead: k, target: "even")) }
      Backend(.loopback)
      Emulation(.none)
      Seed(5)
    }.spec
  }

  /// The `small` model drafting with 6 of its 8 blocks agrees with itself part of the time: verifications accept
  /// none, some and all of their drafts, so stages forget rejected tokens at several depths.
  @Test(arguments: [(Precision.fp32, [1, 2, 4, 8]), (.q8_0, [4])])
  func verifiedTokensEqualTheUnsplitModelsAndRejectionsRollBack(precision: Precision, lookaheads: [Int]) throws {
    let pids = Pids()
    let (report, file) = try Runs.run(Self.spec(precision: precision, lookaheads: lookaheads), Runs.options(pids: pids))
    #expect(report.statusCounts == [.complete: lookaheads.count], "\(file.runs.map { $0.outcome.message ?? "" })")
    var rejected = 0
    var partial = 0
    for run in file.runs {
      #expect(run.outcome.facts["lossless"] == .number(1), "\(run.label)")
      // The target runs on the two other workers; the edge drafts and holds the token loop.
      #expect(run.plan?.stages.map(\.device) == ["s0", "s1"])
      let k = Int(run.label.split(separator: "-").last!)!
      let queries = try #require(run.outcome.queries)
      #expect(queries.count == 2)
      for q in queries {
        #expect(!q.proposed.isEmpty && zip(q.proposed, q.accepted).allSatisfy { p, a in 0 <= a && a <= p && p <= k })
        // Every verification makes its accepted tokens and one of the target's; the prefill made the first.
        let made = 1 + zip(q.proposed, q.accepted).reduce(0) { $0 + $1.1 + 1 }
        #expect(made >= 12 && made - 12 <= k, "\(made) tokens for 12")
        rejected += zip(q.proposed, q.accepted).filter { $0.1 < $0.0 }.count
        partial += zip(q.proposed, q.accepted).filter { $0.1 > 0 && $0.1 < $0.0 }.count
      }
      #expect(run.outcome.requests.allSatisfy { $0.isComplete && $0.tokenTimes.count == 12 })
      let summary = run.summary.collaboration
      #expect(summary.tokensPerVerification >= 1 && summary.tokensPerVerification <= Double(k + 1))
    }
    // Rejections happened, so the stages' rollback was exercised (and the lossless check still held).
    #expect(rejected > 0)
    if lookaheads.contains(4) { #expect(partial > 0, "no verification accepted part of its draft") }
    #expect(pids.allGone)
  }

  @Test func routingOnRealWorkersIsRefusedByName() throws {
    var spec = Self.spec(precision: .fp32, lookaheads: [])
    spec.strategies = [
      StrategyChoice(name: "r", route: RouteStrategy(router: .cloudOnly, cloud: AlgorithmChoice("even")))
    ]
    do {
      _ = try Runs.run(spec, Runs.options())
      Issue.record("routing ran on loopback")
    } catch {
      #expect("\(error)".contains("strategies[r].route: routing runs on the simulated backend only"))
    }
  }
}
