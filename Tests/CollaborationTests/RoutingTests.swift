import EdgeLabCore
import TestSupport
import Testing

@testable import Collaboration

@Suite("Routers and speculation's arithmetic")
struct RoutingTests {
  /// Features of `n` queries drawn from a seed: lengths, confidences and which model is right.
  static func queries(_ n: Int, seed: UInt64) -> [QueryFeatures] {
    var r = SeededRandom(seed: seed)
    return (0..<n).map { i in
      QueryFeatures(
        index: i, promptTokens: 1 + Int(r.next() % 500), edgeMinProbability: r.nextUnit(),
        edgeMeanEntropy: r.nextUnit() * 5, edgeCorrect: r.nextUnit() < 0.4, cloudCorrect: r.nextUnit() < 0.7)
    }
  }

  static func accuracy(_ router: any Router, _ qs: [QueryFeatures]) -> Double {
    Double(qs.filter { q in router.route(q) == .edge ? q.edgeCorrect : q.cloudCorrect }.count) / Double(qs.count)
  }

  @Test func everyStandardRouterIsPure() throws {
    let qs = Self.queries(500, seed: 3)
    let parameters: [String: [String: JSONValue]] = [
      "random": ["p": .number(0.3), "seed": .number(9)], "prompt-length": ["max_edge_tokens": .number(200)],
      "confidence": ["threshold": .number(0.5)],
    ]
    for name in RouterRegistry.standard.names {
      let a = try RouterRegistry.standard.make(name, parameters: parameters[name] ?? [:])
      let b = try RouterRegistry.standard.make(name, parameters: parameters[name] ?? [:])
      // The same query goes to the same place, whatever was routed before and in whatever order.
      let forward = qs.map(a.route)
      let backward = qs.reversed().map(b.route).reversed()
      #expect(forward == Array(backward), "\(name)")
    }
  }

  @Test func eachRouterDecidesByItsRule() throws {
    let qs = Self.queries(4000, seed: 1)
    #expect(qs.allSatisfy { EdgeOnlyRouter().route($0) == .edge })
    #expect(qs.allSatisfy { CloudOnlyRouter().route($0) == .cloud })
    let random = RandomRouter(cloudProbability: 0.25, seed: 4)
    let share = Double(qs.filter { random.route($0) == .cloud }.count) / Double(qs.count)
    // 4000 draws at p = 0.25: the standard deviation of the share is 0.0068.
    #expect(abs(share - 0.25) < 0.035)
    #expect(qs.allSatisfy { RandomRouter(cloudProbability: 0, seed: 1).route($0) == .edge })
    #expect(qs.allSatisfy { RandomRouter(cloudProbability: 1, seed: 1).route($0) == .cloud })
    let length = PromptLengthRouter(maxEdgeTokens: 100)
    #expect(qs.allSatisfy { length.route($0) == ($0.promptTokens <= 100 ? .edge : .cloud) })
    let p = ConfidenceRouter(threshold: 0.6)
    #expect(qs.allSatisfy { p.route($0) == ($0.edgeMinProbability >= 0.6 ? .edge : .cloud) })
    let h = ConfidenceRouter(threshold: 2, measure: .entropy)
    #expect(qs.allSatisfy { h.route($0) == ($0.edgeMeanEntropy <= 2 ? .edge : .cloud) })
    #expect(p.probesEdge && !length.probesEdge && !OracleRouter().probesEdge)
  }

  @Test func theOracleIsAtLeastAsAccurateAsEitherModelAndEveryRouter() throws {
    for seed in UInt64(1)...20 {
      let qs = Self.queries(200, seed: seed)
      let oracle = Self.accuracy(OracleRouter(), qs)
      #expect(oracle >= Self.accuracy(EdgeOnlyRouter(), qs))
      #expect(oracle >= Self.accuracy(CloudOnlyRouter(), qs))
      #expect(oracle >= Self.accuracy(ConfidenceRouter(threshold: 0.5), qs))
      #expect(oracle >= Self.accuracy(RandomRouter(cloudProbability: 0.5, seed: seed), qs))
      // It sends a query to the cloud only when that makes a wrong answer right.
      #expect(qs.allSatisfy { OracleRouter().route($0) == .edge || (!$0.edgeCorrect && $0.cloudCorrect) })
    }
  }

  @Test func registryRefusesBadRoutersByName() throws {
    func refused(_ name: String, _ p: [String: JSONValue]) -> Bool {
      do {
        _ = try RouterRegistry.standard.make(name, parameters: p)
        return false
      } catch {
        return error.router == name && error.code == "router_parameters"
      }
    }
    #expect(refused("nope", [:]))
    #expect(refused("random", [:]))
    #expect(refused("random", ["p": .number(1.5)]))
    #expect(refused("random", ["p": .string("half")]))
    #expect(refused("confidence", ["threshold": .number(2)]))
    #expect(refused("confidence", ["threshold": .number(0.5), "measure": .string("vibes")]))
    #expect(refused("edge-only", ["threshold": .number(0.5)]))
    #expect(refused("prompt-length", [:]))
    #expect(!refused("confidence", ["threshold": .number(2), "measure": .string("entropy")]))
    let mine = RouterRegistry.Entry(name: "mine", summary: "") { _ throws(RouterError) in EdgeOnlyRouter() }
    #expect(try RouterRegistry.standard.adding([mine]).names.last == "mine")
    #expect(throws: RouterError.self) {
      try RouterRegistry.standard.adding([
        RouterRegistry.Entry(name: "oracle", summary: "") { _ throws(RouterError) in OracleRouter() }
      ])
    }
  }

  @Test(arguments: [0.0, 0.3, 0.6, 0.9, 1.0])
  func theClosedFormIsTheMeanOfTheAcceptedDistribution(alpha: Double) {
    for k in 1...8 {
      let pmf = SpeculationMath.acceptedDistribution(acceptance: alpha, lookahead: k)
      #expect(isClose(pmf.reduce(0, +), 1, rtol: 1e-12))
      let mean = pmf.enumerated().reduce(0.0) { $0 + Double($1.offset + 1) * $1.element }
      #expect(
        isClose(mean, SpeculationMath.expectedTokensPerVerification(acceptance: alpha, lookahead: k), rtol: 1e-12))
    }
    #expect(SpeculationMath.expectedTokensPerVerification(acceptance: 1, lookahead: 4) == 5)
    #expect(SpeculationMath.expectedTokensPerVerification(acceptance: 0, lookahead: 4) == 1)
  }

  @Test func samplingFollowsTheDistribution() {
    var r = SeededRandom(seed: 8)
    let k = 4
    let alpha = 0.7
    var counts = [Int](repeating: 0, count: k + 1)
    let n = 40_000
    for _ in 0..<n { counts[SpeculationMath.sampleAccepted(acceptance: alpha, proposed: k, &r)] += 1 }
    let pmf = SpeculationMath.acceptedDistribution(acceptance: alpha, lookahead: k)
    for i in 0...k {
      let sd = (pmf[i] * (1 - pmf[i]) / Double(n)).squareRoot()
      #expect(abs(Double(counts[i]) / Double(n) - pmf[i]) < 5 * sd, "P(accepted = \(i))")
    }
  }

  @Test func replayAcceptsTheAgreementCappedByLookaheadAndRoom() {
    // Reply of 8 tokens (max 8): agreement after each position.
    let trace = MatchTrace(runs: [3, 0, 2, 5, 1, 0, 1], depth: 8, maxNewTokens: 8, outputTokens: 8)
    // k = 2: after token 0 → accept 2 (runs[0] = 3 capped), produce 3 → next position 3: runs[3] = 5 → 2,
    // produce 3 → position 6: runs[6] = 1 but room is 8 − 7 = 1 → propose 1, accept 1, produce 2 (one is cut).
    let v = SpeculationMath.replay(trace, lookahead: 2)
    #expect(v == [.init(proposed: 2, accepted: 2), .init(proposed: 2, accepted: 2), .init(proposed: 1, accepted: 1)])
    let one = SpeculationMath.replay(trace, lookahead: 1)
    // k = 1 visits positions 0, 2, 4, 6 (each accepting its one draft): runs[1] = 0 and runs[5] = 0 are skipped.
    #expect(one.map(\.accepted) == [1, 1, 1, 1])
    let zero = MatchTrace(runs: [0, 0, 1], depth: 8, maxNewTokens: 16, outputTokens: 4)
    #expect(
      SpeculationMath.replay(zero, lookahead: 4) == [
        .init(proposed: 4, accepted: 0), .init(proposed: 4, accepted: 0), .init(proposed: 4, accepted: 1),
      ])
    // A reply of one token needs no verification.
    #expect(
      SpeculationMath.replay(MatchTrace(runs: [], depth: 4, maxNewTokens: 8, outputTokens: 1), lookahead: 4).isEmpty)
  }
}
