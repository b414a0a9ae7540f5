import EdgeLabCore
public import Pipeline

/// Exhaustive search under the standard semantics: every ordered sequence of distinct devices starting at the
/// source, every composition of the layers into that many non-empty contiguous stages, each valued by the
/// problem's objective (throughput counting its `requests_in_flight`). For tests and small studies; refuses
/// problems with more than `max_plans` candidate plans.
///
/// - Complexity: Σ_L P(M−1, L−1) · C(N−1, L−1) plans for N layers and M devices.
public struct BruteForce: Partitioner {
  public static let name = "brute-force"
  public static let summary = "exhaustive search over the standard semantics (small problems only)"
  let maxPlans: Double

  public init(parameters: inout Parameters) throws(PartitionError) {
    maxPlans = try parameters.double("max_plans", default: 5e7)
    if !(maxPlans >= 1) { throw .badParameter(algorithm: Self.name, "max_plans must be ≥ 1") }
  }

  /// A plan count as an integer while it is one exactly, else in scientific notation (it can exceed Int.max).
  static func describe(_ count: Double) -> String {
    count < 1e12 ? String(Int(count)) : String(scientific: count, digits: 2)
  }

  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    let n = p.layerCount
    let m = p.deviceCount
    var count = 0.0
    for l in 1...min(n, m) { count += permutations(m - 1, l - 1) * binomial(n - 1, l - 1) }
    if count > maxPlans {
      throw .badParameter(
        algorithm: Self.name,
        "the problem has \(Self.describe(count)) candidate plans, more than max_plans \(Self.describe(maxPlans)); use an exact DP (edgeshard-latency, edgeshard-throughput) or raise max_plans"
      )
    }
    let objective = p.problem.objective
    var best: (Double, [StandardSemantics.Span])?
    var order = [p.sourceIndex]
    var used = [Bool](repeating: false, count: m)
    used[p.sourceIndex] = true

    func tryCompositions(_ devices: [Int]) {
      let l = devices.count
      var cuts = Array(1..<l)  // cut positions, strictly increasing in 1..<n
      while true {
        var spans: [StandardSemantics.Span] = []
        var first = 0
        for (s, d) in devices.enumerated() {
          let end = s < l - 1 ? cuts[s] : n
          spans.append(.init(device: d, first: first, end: end))
          first = end
        }
        if StandardSemantics.violations(spans, p).isEmpty {
          let v = StandardSemantics.evaluate(spans, p).value(objective, inFlight: p.problem.requestsInFlight)
          if best == nil || v < best!.0 { best = (v, spans) }
        }
        // Next combination of l−1 cuts from 1..<n.
        var k = l - 2
        while k >= 0 && cuts[k] == n - (l - 1 - k) { k -= 1 }
        if k < 0 { return }
        cuts[k] += 1
        for t in (k + 1)..<(l - 1) { cuts[t] = cuts[t - 1] + 1 }
      }
    }
    func extend() {
      tryCompositions(order)
      if order.count == min(n, m) { return }
      for d in 0..<m where !used[d] {
        used[d] = true
        order.append(d)
        extend()
        order.removeLast()
        used[d] = false
      }
    }
    extend()
    guard let best else { throw .infeasible(Infeasibility.diagnose(p)) }
    return StandardSemantics.plan(best.1, p, algorithm: Self.name, exact: true)
  }

  private func permutations(_ n: Int, _ k: Int) -> Double { (0..<k).reduce(1.0) { $0 * Double(n - $1) } }
  private func binomial(_ n: Int, _ k: Int) -> Double {
    guard k >= 0 && k <= n else { return 0 }
    return (0..<k).reduce(1.0) { $0 * Double(n - $1) / Double($1 + 1) }
  }
}
