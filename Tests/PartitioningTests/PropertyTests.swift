import EdgeLabCore
import Partitioning
import Pipeline
import PropertyBased
import TestSupport
import Testing

/// Random small partition problems, built deterministically from a seed and sizes.
///
/// With `symmetric`, devices have types and everything about a device (memory, per-layer times, links to and
/// from every other device) depends only on its type, so interchangeable devices exist and the DPs' class
/// counting is exercised; otherwise every device and link is drawn independently. Memory is drawn so that
/// some problems are infeasible; some links are missing.
enum RandomProblems {
  static func make(seed: Int, layers n: Int, devices m: Int, symmetric: Bool, objective: Objective) -> PartitionProblem
  {
    var g = SeededRandom(seed: UInt64(seed))
    func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * g.nextUnit() }
    let names = (0..<m).map { "d\($0)" }
    let types = (0..<m).map { d in symmetric ? (d == 0 ? 0 : 1 + Int(g.next() % 2)) : d }
    let typeCount = (types.max() ?? 0) + 1
    let layerMemory = (0..<n).map { _ in Double(1 + g.next() % 6) }
    let total = layerMemory.reduce(0, +)
    let typeMemory = (0..<typeCount).map { _ in (total * uniform(0.15, 0.9)).rounded() }
    let typeSpeed = (0..<typeCount).map { _ in uniform(0.5, 3) }
    let layerWork = (0..<n).map { _ in uniform(0.001, 0.02) }
    var typeLink: [[(Double, Double)?]] = []
    for _ in 0..<typeCount {
      typeLink.append(
        (0..<typeCount).map { _ in g.nextUnit() < 0.85 ? (uniform(100, 10_000).rounded(), uniform(0, 0.01)) : nil })
    }
    let layers = (0..<n).map { i in
      PartitionProblem.Layer(
        name: "L\(i)", memoryBytes: layerMemory[i], outputBytes: uniform(10, 2000).rounded(),
        timeS: Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, layerWork[i] * typeSpeed[types[$0]]) }))
    }
    var links: [PartitionProblem.Link] = []
    for a in 0..<m {
      for b in 0..<m where a != b {
        let l: (Double, Double)? =
          symmetric
          ? typeLink[types[a]][types[b]]
          : (g.nextUnit() < 0.85 ? (uniform(100, 10_000).rounded(), uniform(0, 0.01)) : nil)
        if let (bw, lat) = l {
          links.append(.init(from: names[a], to: names[b], bandwidthBytesPerS: bw, latencyS: lat))
        }
      }
    }
    return PartitionProblem(
      objective: objective, source: "d0", returnToSource: g.nextUnit() < 0.5,
      devices: names.enumerated().map { .init(name: $1, memoryBytes: typeMemory[types[$0]]) }, layers: layers,
      links: links)
  }

  static func solve(_ p: PartitionProblem, _ algorithm: String, _ params: [String: JSONValue] = [:]) -> Result<
    Plan, PartitionError
  > {
    Result { () throws(PartitionError) -> Plan in try Partitioners.solve(p, algorithm: algorithm, parameters: params) }
  }
}

@Suite("Partitioning properties")
struct PropertyTests {
  /// Every plan obeys the rules and its value is the standard evaluation of its stages.
  func checkPlan(_ plan: Plan, _ p: PartitionProblem, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let ip = try IndexedProblem(p)
    let spans = try #require(StandardSemantics.spans(of: plan, ip))
    #expect(
      StandardSemantics.violations(spans, ip) == [], "\(plan.algorithm): \(plan.stages)", sourceLocation: sourceLocation
    )
    #expect(
      isClose(
        plan.valueSeconds, StandardSemantics.evaluate(spans, ip).value(plan.objective, inFlight: p.requestsInFlight)),
      sourceLocation: sourceLocation)
  }

  @Test(arguments: [Objective.latency, .throughput])
  func dynamicProgrammesMatchBruteForce(objective: Objective) async {
    let dp = objective == .latency ? "edgeshard-latency" : "edgeshard-throughput"
    await propertyCheck(count: 400, input: Gen.int(in: 0...1_000_000), Gen.int(in: 1...7), Gen.int(in: 1...4), Gen.bool)
    {
      seed, n, m, symmetric in
      let p = RandomProblems.make(seed: seed, layers: n, devices: m, symmetric: symmetric, objective: objective)
      let exact = RandomProblems.solve(p, "brute-force")
      let fast = RandomProblems.solve(p, dp)
      let plain = RandomProblems.solve(p, dp, ["symmetry": false])
      switch (exact, fast, plain) {
      case (.success(let e), .success(let f), .success(let q)):
        #expect(
          isClose(f.valueSeconds, e.valueSeconds),
          "seed \(seed): \(dp) \(f.valueSeconds) vs brute force \(e.valueSeconds)")
        #expect(isClose(q.valueSeconds, e.valueSeconds))
        #expect(f.exact && e.exact)
        try? checkPlan(f, p)
        try? checkPlan(e, p)
      case (.failure(.infeasible), .failure(.infeasible(let why)), .failure(.infeasible)):
        #expect(!why.isEmpty)
      default:
        Issue.record("seed \(seed) n \(n) m \(m): brute force \(exact), \(dp) \(fast), without symmetry \(plain)")
      }
    }
  }

  /// With C requests in flight the throughput DP finds the least max(latency / C, bottleneck) that brute force
  /// finds, and so is never worse than the latency plan or the paper's full-pipeline plan for that workload.
  @Test func throughputForTheRequestsInFlightMatchesBruteForce() async {
    await propertyCheck(
      count: 300, input: Gen.int(in: 0...1_000_000), Gen.int(in: 1...7), Gen.int(in: 1...4), Gen.bool,
      Gen.int(in: 0...5)
    ) { seed, n, m, symmetric, k in
      var p = RandomProblems.make(seed: seed, layers: n, devices: m, symmetric: symmetric, objective: .throughput)
      p.requestsInFlight = [1, 1.5, 2, 3, 5, 1000][k]
      let exact = RandomProblems.solve(p, "brute-force")
      let fast = RandomProblems.solve(p, "edgeshard-throughput")
      let plain = RandomProblems.solve(p, "edgeshard-throughput", ["symmetry": false])
      switch (exact, fast, plain) {
      case (.success(let e), .success(let f), .success(let q)):
        #expect(
          isClose(f.valueSeconds, e.valueSeconds),
          "seed \(seed) C \(p.requestsInFlight!): \(f.valueSeconds) vs brute force \(e.valueSeconds)")
        #expect(isClose(q.valueSeconds, e.valueSeconds) && f.exact)
        try? checkPlan(f, p)
        for other in ["edgeshard-latency", "edgeshard-throughput-paper"] {
          guard case .success(let o) = RandomProblems.solve(p, other) else { continue }
          // Valued for the same workload (a latency plan as a throughput plan of the same stages).
          let ip = try IndexedProblem(p)
          let spans = try #require(StandardSemantics.spans(of: o, ip))
          let v = StandardSemantics.evaluate(spans, ip).cycle(inFlight: p.requestsInFlight)
          #expect(f.valueSeconds <= v * (1 + 1e-9), "seed \(seed): \(other) beat edgeshard-throughput")
        }
      case (.failure(.infeasible), .failure(.infeasible), .failure(.infeasible)): break
      default:
        Issue.record("seed \(seed) n \(n) m \(m): brute force \(exact), dp \(fast), without symmetry \(plain)")
      }
    }
  }

  @Test func baselinesAreValidAndNeverBeatTheOptimum() async {
    await propertyCheck(count: 300, input: Gen.int(in: 0...1_000_000), Gen.int(in: 1...8), Gen.int(in: 1...4), Gen.bool)
    {
      seed, n, m, throughput in
      let objective: Objective = throughput ? .throughput : .latency
      let p = RandomProblems.make(seed: seed, layers: n, devices: m, symmetric: false, objective: objective)
      let best = RandomProblems.solve(p, "brute-force")
      for algorithm in [
        "even", "edge-solo", "cloud-edge-even", "cloud-edge-opt", "edgeshard-latency", "edgeshard-throughput",
      ] {
        guard case .success(let plan) = RandomProblems.solve(p, algorithm) else { continue }
        try? checkPlan(plan, p)
        guard case .success(let opt) = best else {
          Issue.record("seed \(seed): \(algorithm) found a plan where brute force found none")
          continue
        }
        // Each DP is optimal for its own objective only; others are judged under the problem's objective.
        let own =
          (algorithm == "edgeshard-latency" && objective == .throughput)
          || (algorithm == "edgeshard-throughput" && objective == .latency)
        if !own {
          #expect(plan.valueSeconds >= opt.valueSeconds * (1 - 1e-9), "seed \(seed): \(algorithm) beat the optimum")
        }
      }
    }
  }

  @Test func limePlansCoverTheModelAndFitMemory() async {
    await propertyCheck(count: 150, input: Gen.int(in: 0...1_000_000), Gen.int(in: 2...10), Gen.int(in: 1...4)) {
      seed, n, m in
      var p = RandomProblems.make(seed: seed, layers: n, devices: m, symmetric: false, objective: .latency)
      for i in p.devices.indices { p.devices[i].storageBytesPerS = 1000 }
      for i in p.layers.indices { p.layers[i].weightBytes = p.layers[i].memoryBytes * 0.8 }
      // The source alone can run the model with offloading when it holds every layer's KV cache, the embedding
      // and the head (LIME keeps both resident) and two staging slots of the largest layer (prefetch_depth = 2):
      // LIME, which tries the source alone among its rings, must then find a plan. Otherwise a failure must be
      // a proven infeasibility that names its reason.
      let kv = p.layers.reduce(0.0) { $0 + $1.memoryBytes - $1.weightBytes! }
      let weights = p.layers.map { $0.weightBytes! }
      let pinned = weights[0] + (n > 1 ? weights[n - 1] : 0)
      let sourceSuffices = kv + pinned + 2 * (weights.max() ?? 0) <= p.devices[0].memoryBytes
      let plan: Plan
      switch RandomProblems.solve(p, "lime") {
      case .success(let found): plan = found
      case .failure(.infeasible(let why)):
        #expect(!sourceSuffices, "seed \(seed): the source alone could run it, yet lime says: \(why)")
        #expect(!why.isEmpty)
        return
      case .failure(let other):
        Issue.record("seed \(seed): lime failed with \(other), not a proven infeasibility")
        return
      }
      // Chunks tile the layers in order.
      #expect(plan.stages.first?.firstLayer == 0 && plan.stages.last?.endLayer == n)
      for (a, b) in zip(plan.stages, plan.stages.dropFirst()) {
        #expect(a.endLayer == b.firstLayer && a.device != b.device || m == 1)
      }
      // Resident weights + KV + staging fit every device.
      for d in p.devices {
        let mine = plan.stages.filter { $0.device == d.name }
        let layers = mine.flatMap { Array($0.layers) }
        let offloaded = Set(mine.flatMap(\.offloadedLayers))
        let kv = layers.reduce(0.0) { $0 + p.layers[$1].memoryBytes - p.layers[$1].weightBytes! }
        let resident = layers.filter { !offloaded.contains($0) }.reduce(0.0) { $0 + p.layers[$1].weightBytes! }
        let staging = 2 * (offloaded.map { p.layers[$0].weightBytes! }.max() ?? 0)
        #expect(kv + resident + staging <= d.memoryBytes + 1e-9, "seed \(seed): \(d.name) over memory")
      }
    }
  }
}
