import EdgeLabCore
import Partitioning
import Pipeline
import TestSupport
import Testing

@Suite("EdgeShard and LIME")
struct AlgorithmTests {
  /// The published recurrence D(i, j) = min_k D(i−1, k) + t(i, j) + O/B ignores memory and would put all four
  /// layers on the fast device d1; its memory holds two, so the exact DP must use both devices.
  @Test func latencyDPRespectsMemoryWhereThePublishedRecurrenceWouldNot() throws {
    var p = Problems.uniform(layers: 4, memory: [10, 2, 10], time: [0.1, 0.01, 0.1], bandwidth: 1e6, latency: 0)
    p.devices[1].memoryBytes = 2
    let plan = try Partitioners.solve(p, algorithm: "edgeshard-latency")
    #expect(plan.exact)
    // Layer 0 on the source, then the fast device takes two layers, the rest elsewhere.
    #expect(plan.stages.map(\.device).contains("d1"))
    let d1 = try #require(plan.stages.first { $0.device == "d1" })
    #expect(d1.endLayer - d1.firstLayer == 2)
  }

  @Test func throughputDPBalancesStages() throws {
    // Three identical devices, 6 equal layers, fast links: the bottleneck is two layers' compute.
    var p = Problems.uniform(layers: 6, memory: [100, 100, 100], time: [0.01, 0.01, 0.01], bandwidth: 1e9, latency: 0)
    p.objective = .throughput
    let plan = try Partitioners.solve(p, algorithm: "edgeshard-throughput")
    #expect(isClose(plan.valueSeconds, 0.02, rtol: 1e-6))
    #expect(plan.stages.count == 3)
    #expect(plan.microBatches >= 3)
  }

  @Test func infeasibleMessagesNameTheConstraint() {
    let big = Problems.uniform(layers: 4, memory: [2, 1], time: [0.1, 0.1], layerBytes: 1)
    for a in ["edgeshard-latency", "edgeshard-throughput", "brute-force"] {
      #expect(throws: PartitionError.infeasible("the model needs 4.0 B; the devices offer 3.0 B")) {
        try Partitioners.solve(big, algorithm: a)
      }
    }
    var unlinked = Problems.uniform(layers: 4, memory: [2, 3], time: [0.1, 0.1])
    unlinked.links.removeAll { $0.from == "d1" }
    unlinked.returnToSource = true
    #expect(
      throws: PartitionError.infeasible(
        "the model does not fit the source alone, and no device has a link back to it to return the output (no link from d1 to d0)"
      )
    ) {
      try Partitioners.solve(unlinked, algorithm: "edgeshard-latency")
    }
  }

  /// 16 devices of slightly different memory are 16 classes, far beyond exact search: the beam used to keep
  /// only plans of many short stages (cheapest bottleneck so far) that ran out of devices, and reported this
  /// feasible problem as infeasible.
  @Test func theHeuristicFindsPlansForLargeFeasibleProblems() throws {
    let memory = (0..<16).map { 4.0e9 + 1e7 * Double($0) }
    for objective in [Objective.latency, .throughput] {
      let p = Problems.uniform(
        layers: 64, memory: memory, time: memory.map { _ in 0.01 }, layerBytes: 0.3e9,
        objective: objective)
      let plan = try Partitioners.solve(
        p, algorithm: objective == .latency ? "edgeshard-latency" : "edgeshard-throughput")
      #expect(!plan.exact && plan.notes.first?.contains("heuristic") == true)
      let ip = try IndexedProblem(p)
      #expect(StandardSemantics.violations(StandardSemantics.spans(of: plan, ip)!, ip).isEmpty)
      // Never worse than the naive even split over the same devices.
      let even = try Partitioners.solve(p, algorithm: "even")
      #expect(
        plan.valueSeconds <= even.valueSeconds * (1 + 1e-9),
        "\(objective): \(plan.valueSeconds) vs even \(even.valueSeconds)")
    }
  }

  /// Beyond exact search, a problem that a simple check proves infeasible is still reported as infeasible.
  @Test func theHeuristicStillReportsProvenInfeasibility() {
    let memory = (0..<16).map { 1.0e9 + 1e7 * Double($0) }
    let p = Problems.uniform(
      layers: 64, memory: memory, time: memory.map { _ in 0.01 }, layerBytes: 0.3e9, objective: .throughput)
    #expect {
      try Partitioners.solve(p, algorithm: "edgeshard-throughput")
    } throws: { error in
      guard case PartitionError.infeasible(let why) = error else { return false }
      return why.hasPrefix("the model needs")
    }
  }

  @Test func bruteForceRefusesHugeProblemsWithoutCrashing() {
    let p = Testbeds.edgeShard(blocks: 80)
    #expect {
      try Partitioners.solve(p, algorithm: "brute-force")
    } throws: { error in
      guard case PartitionError.badParameter(_, let why) = error else { return false }
      return why.contains("candidate plans") && why.contains("e26")
    }
  }

  /// EdgeShard's testbed: 12 AGX Orin, 2 Orin NX, one server; an 80-layer model. Exact via class counting.
  @Test func edgeShardTestbedSolvesExactly() throws {
    let p = Testbeds.edgeShard(blocks: 80)
    for a in ["edgeshard-latency", "edgeshard-throughput"] {
      let plan = try Partitioners.solve(p, algorithm: a)
      #expect(plan.exact && plan.notes.isEmpty, "\(a): \(plan.notes)")
      let ip = try IndexedProblem(p)
      #expect(StandardSemantics.violations(StandardSemantics.spans(of: plan, ip)!, ip).isEmpty)
    }
  }

  @Test func tooManyDistinctDevicesFallBackAndSaySo() throws {
    var p = Problems.uniform(
      layers: 12, memory: Array(repeating: 6, count: 9), time: (0..<9).map { 0.01 + 0.001 * Double($0) })
    p.objective = .latency
    let plan = try Partitioners.solve(p, algorithm: "edgeshard-latency", parameters: ["max_states": 1000])
    #expect(!plan.exact)
    #expect(plan.notes.first?.contains("heuristic") == true)
    let exact = try Partitioners.solve(p, algorithm: "edgeshard-latency")
    #expect(exact.exact && plan.valueSeconds >= exact.valueSeconds * (1 - 1e-12))
  }

  @Test func limeOffloadsWhenTheModelDoesNotFit() throws {
    // 8 layers of 1 GB weights on two 3 GB devices: 8 GB > 6 GB, so every standard algorithm is infeasible.
    var p = Problems.uniform(
      layers: 8, memory: [3e9, 3e9], time: [0.01, 0.01], layerBytes: 1e9, bandwidth: 1e8, latency: 0.001)
    for i in p.devices.indices { p.devices[i].storageBytesPerS = 2e9 }
    #expect(throws: PartitionError.self) { try Partitioners.solve(p, algorithm: "edgeshard-latency") }
    let plan = try Partitioners.solve(p, algorithm: "lime")
    #expect(plan.valueModel == .timeline)
    #expect(plan.residency?.devices.map(\.device) == ["d0", "d1"])
    let offloaded = plan.stages.flatMap(\.offloadedLayers)
    #expect(!offloaded.isEmpty)
    // Loads of 1 GB at 2 GB/s take 0.5 s each; per token at least the non-hidden part shows up.
    #expect(plan.valueSeconds > 0.08)
    #expect(plan.valueSeconds.isFinite)
  }

  @Test func limeWithRoomToSpareIsAStandardPlan() throws {
    var p = Problems.uniform(layers: 6, memory: [100, 100], time: [0.01, 0.02], bandwidth: 1e9, latency: 0)
    for i in p.devices.indices { p.devices[i].storageBytesPerS = 1e9 }
    let plan = try Partitioners.solve(p, algorithm: "lime")
    #expect(plan.isStandard)
    #expect(plan.notes.contains { $0.hasPrefix("standard semantics value") })
  }

  @Test func limeAdaptsResidencyToKVCache() throws {
    var p = Problems.uniform(layers: 8, memory: [5e9, 5e9], time: [0.01, 0.01], layerBytes: 1e9, bandwidth: 1e8)
    for i in p.devices.indices { p.devices[i].storageBytesPerS = 2e9 }
    for i in p.layers.indices { p.layers[i].weightBytes = 0.9e9 }  // 0.1 GB of KV reserve per layer
    let plan = try Partitioners.solve(p, algorithm: "lime")
    // The plan carries the rule as data; backends apply it without knowing the algorithm.
    let policy = try #require(plan.residency?.device("d0"))
    #expect(policy.adaptive && policy.stagingSlots == 2)
    let roomy = try #require(policy.residency(kvBytes: 0)?.resident)
    let tight = try #require(policy.residency(kvBytes: 2e9)?.resident)
    #expect(tight.count < roomy.count)
    #expect(tight.isSubset(of: roomy))
    #expect(policy.residency(kvBytes: 4.9e9) == nil)
    // Faster links change nothing worth re-planning for here.
    #expect(try Lime().replan(plan, for: p) == nil)
  }
}

/// Problems shaped like the papers' testbeds.
enum Testbeds {
  /// EdgeShard: 12× AGX Orin (29 GB budget), 2× Orin NX (14 GB), one RTX 3090 server (23 GB), Llama-2-70B-like
  /// layers in FP32 (about 3.4 GB per block) on a 1 Gbit/s network with a 50 Mbit/s uplink to the server.
  static func edgeShard(blocks: Int) -> PartitionProblem {
    // Declared in a scrambled order, so nothing relies on identical devices being adjacent.
    var rng = SeededRandom(seed: 1)
    let names = ((0..<12).map { "agx\($0)" } + ["nx0", "nx1", "server"]).shuffled(using: &rng)
    let memory: [String: Double] = Dictionary(
      uniqueKeysWithValues: names.map { n in
        (n, n.hasPrefix("agx") ? 29e9 : n.hasPrefix("nx") ? 14e9 : 23e9)
      })
    let perBlock: [String: Double] = Dictionary(
      uniqueKeysWithValues: names.map { n in
        (n, n.hasPrefix("agx") ? 0.0175 : n.hasPrefix("nx") ? 0.035 : 0.0038)
      })
    var layers = [
      PartitionProblem.Layer(
        name: "embed", memoryBytes: 1.05e9, outputBytes: 32768, timeS: perBlock.mapValues { $0 * 0.01 })
    ]
    for i in 0..<blocks {
      layers.append(.init(name: "block\(i)", memoryBytes: 3.44e9, outputBytes: 32768, timeS: perBlock))
    }
    layers.append(.init(name: "head", memoryBytes: 1.05e9, outputBytes: 4, timeS: perBlock.mapValues { $0 * 0.3 }))
    var links: [PartitionProblem.Link] = []
    for a in names {
      for b in names where a != b {
        let wan = a == "server" || b == "server"
        links.append(
          .init(from: a, to: b, bandwidthBytesPerS: wan ? 50e6 / 8 : 1e9 / 8, latencyS: wan ? 0.005 : 0.0005))
      }
    }
    return PartitionProblem(
      objective: .latency, source: "agx0", returnToSource: true,
      devices: names.map { .init(name: $0, memoryBytes: memory[$0]!) }, layers: layers, links: links)
  }
}
