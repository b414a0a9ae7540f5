import EdgeLabCore
import Pipeline
import TestSupport
import Testing

@testable import Partitioning

/// Random small problems with a model shape (an embedding, decoder blocks that cost alike on each device, a
/// head), heterogeneous devices and links, some infeasible.
enum RandomGroupProblems {
  static func make(seed: Int, blocks: Int, devices m: Int, objective: Objective) -> PartitionProblem {
    var g = SeededRandom(seed: UInt64(seed))
    func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * g.nextUnit() }
    let names = (0..<m).map { "d\($0)" }
    let speed = names.map { _ in uniform(0.5, 3) }
    let blockWork = uniform(0.005, 0.02)
    let n = blocks + 2
    let memory = (0..<n).map { l in l == 0 || l == n - 1 ? Double(1 + g.next() % 3) : Double(2 + g.next() % 4) }
    let total = memory.reduce(0, +)
    let layers = (0..<n).map { l in
      let work = l == 0 || l == n - 1 ? uniform(0.001, 0.01) : blockWork
      return PartitionProblem.Layer(
        name: "L\(l)", memoryBytes: memory[l], outputBytes: uniform(10, 2000).rounded(),
        timeS: Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, work * speed[$0]) }))
    }
    var links: [PartitionProblem.Link] = []
    for a in 0..<m {
      for b in 0..<m where a != b && g.nextUnit() < 0.9 {
        links.append(
          .init(
            from: names[a], to: names[b], bandwidthBytesPerS: uniform(1000, 100_000).rounded(),
            latencyS: uniform(0, 0.002)))
      }
    }
    var p = PartitionProblem(
      objective: objective, source: "d0", returnToSource: g.nextUnit() < 0.5,
      devices: names.map { .init(name: $0, memoryBytes: (total * uniform(0.2, 0.8)).rounded()) }, layers: layers,
      links: links)
    p.shape = PartitionProblem.ModelShape(
      hiddenSize: 100 + Int(g.next() % 400), kvHeads: 4, ffnColumns: 6, attentionParameters: uniform(0.5, 2),
      ffnParameters: uniform(1, 4), firstBlock: 1, endBlock: n - 1, wireBytesPerValue: 2)
    return p
  }

  /// Every plan of hybrid's space, valued by `GroupSemantics`: every sequence of disjoint device groups (the
  /// first holding and led by the source, each later one led by any member, the rest in device order, shares by
  /// `GroupShares.fitted`, ring or star), every composition of the layers. The best value, or nil.
  static func bruteForce(_ p: IndexedProblem) -> Double? {
    let m = p.deviceCount
    let n = p.layerCount
    var best: Double?
    var chosen: [(members: [Int], collective: TensorGroup.Collective)] = []
    func groupsOf(_ free: [Int], leaderMustBe: Int?) -> [[Int]] {
      var out: [[Int]] = []
      for mask in 1..<(1 << free.count) {
        let set = free.indices.filter { mask & (1 << $0) != 0 }.map { free[$0] }
        for leader in set where leaderMustBe == nil || leader == leaderMustBe {
          out.append([leader] + set.filter { $0 != leader }.sorted())
        }
      }
      return out
    }
    func spans(_ cuts: [Int]) -> [GroupSemantics.Span]? {
      var out: [GroupSemantics.Span] = []
      var first = 0
      for (s, g) in chosen.enumerated() {
        let end = s < chosen.count - 1 ? cuts[s] : n
        if g.members.count == 1 {
          out.append(.init(device: g.members[0], first: first, end: end))
        } else {
          let ascending = g.members.sorted()
          guard let shape = p.problem.shape, g.members.count <= shape.kvHeads,
            let sized = GroupShares.fitted(ascending, leader: g.members[0], first: first, end: end, p)
          else { return nil }
          let at = g.members.map { ascending.firstIndex(of: $0)! }
          out.append(
            .init(
              members: g.members, kvHeads: at.map { sized.kvHeads[$0] }, ffnColumns: at.map { sized.ffnColumns[$0] },
              collective: g.collective, first: first, end: end))
        }
        first = end
      }
      return out
    }
    func tryCuts() {
      let l = chosen.count
      guard l <= n else { return }
      var cuts = Array(1..<l)
      while true {
        if let s = spans(cuts), GroupSemantics.violations(s, p).isEmpty {
          let v = GroupSemantics.evaluate(s, p).value(p.problem.objective)
          if v.isFinite && (best == nil || v < best!) { best = v }
        }
        var k = l - 2
        while k >= 0 && cuts[k] == n - (l - 1 - k) { k -= 1 }
        if k < 0 { return }
        cuts[k] += 1
        for t in (k + 1)..<(l - 1) { cuts[t] = cuts[t - 1] + 1 }
      }
    }
    func extend(_ used: Set<Int>) {
      let free = (0..<m).filter { !used.contains($0) }
      for g in groupsOf(free, leaderMustBe: chosen.isEmpty ? p.sourceIndex : nil) {
        if chosen.isEmpty && !g.contains(p.sourceIndex) { continue }
        for c in g.count > 1 ? TensorGroup.Collective.allCases : [.ring] {
          chosen.append((g, c))
          tryCuts()
          extend(used.union(g))
          chosen.removeLast()
        }
      }
    }
    extend([])
    return best
  }
}

@Suite("Hybrid pipeline and tensor parallelism, Galaxy's shares")
struct HybridTests {
  @Test func minMaxSharesAreOptimal() throws {
    var g = SeededRandom(seed: 11)
    for _ in 0..<300 {
      let n = 1 + Int(g.next() % 4)
      let units = n + Int(g.next() % 9)
      let perUnit = (0..<n).map { _ in 0.1 + 3 * g.nextUnit() }
      let shares = try #require(GroupShares.minMax(units: units, perUnit: perUnit))
      #expect(shares.reduce(0, +) == units && shares.allSatisfy { $0 >= 1 })
      let value = zip(shares, perUnit).map { Double($0) * $1 }.max()!
      // Every composition of the units into n positive parts.
      var best = Double.infinity
      func compose(_ left: Int, _ i: Int, _ worst: Double) {
        if i == n - 1 {
          best = min(best, max(worst, Double(left) * perUnit[i]))
          return
        }
        if left - (n - 1 - i) < 1 { return }
        for c in 1...(left - (n - 1 - i)) { compose(left - c, i + 1, max(worst, Double(c) * perUnit[i])) }
      }
      compose(units, 0, 0)
      #expect(abs(value - best) <= 1e-12 * best, "units \(units), perUnit \(perUnit): \(shares)")
    }
    #expect(GroupShares.minMax(units: 2, perUnit: [1, 1, 1]) == nil)
    #expect(GroupShares.minMax(units: 8, perUnit: [1, .infinity]) == nil)
  }

  @Test(arguments: [Objective.latency, .throughput])
  func hybridEqualsBruteForceOnSmallProblems(objective: Objective) throws {
    var checked = 0
    var grouped = 0
    for seed in 0..<60 {
      let m = 2 + seed % 3
      let blocks = 1 + seed % 3
      let problem = RandomGroupProblems.make(seed: seed, blocks: blocks, devices: m, objective: objective)
      let p = try IndexedProblem(problem)
      let exhaustive = RandomGroupProblems.bruteForce(p)
      let result = Result { () throws(PartitionError) -> Plan in try Partitioners.solve(problem, algorithm: "hybrid") }
      switch (result, exhaustive) {
      case (.success(let plan), .some(let best)):
        #expect(
          abs(plan.valueSeconds - best) <= 1e-9 * max(best, 1e-9), "seed \(seed): \(plan.valueSeconds) vs \(best)")
        let spans = try #require(GroupSemantics.spans(of: plan, p))
        #expect(GroupSemantics.violations(spans, p).isEmpty, "seed \(seed)")
        #expect(plan.exact)
        if plan.hasGroups { grouped += 1 }
        checked += 1
      case (.failure, .none): break
      case (.success(let plan), .none): Issue.record("seed \(seed): hybrid found \(plan.stages), brute force nothing")
      case (.failure(let e), .some(let best)): Issue.record("seed \(seed): hybrid failed (\(e)), brute force \(best)")
      }
    }
    // The generator is meant to exercise groups and pipelines both: most problems solvable, some grouped.
    #expect(checked >= 30 && grouped >= (objective == .latency ? 5 : 1), "checked \(checked), grouped \(grouped)")
  }

  @Test(arguments: [Objective.latency, .throughput])
  func hybridIsNeverWorseThanEdgeShard(objective: Objective) throws {
    let edgeshard = objective == .latency ? "edgeshard-latency" : "edgeshard-throughput"
    for seed in 100..<130 {
      let problem = RandomGroupProblems.make(seed: seed, blocks: 3, devices: 4, objective: objective)
      guard let pipeline = try? Partitioners.solve(problem, algorithm: edgeshard) else { continue }
      let hybrid = try Partitioners.solve(problem, algorithm: "hybrid")
      #expect(hybrid.valueSeconds <= pipeline.valueSeconds * (1 + 1e-12), "seed \(seed)")
    }
  }

  /// Two fast devices on a fast link cannot hold the model (the second holds three layers' worth); a slow third device on a slow link can hold the
  /// rest. A group of the fast pair for most blocks, then the third as a pipeline stage, beats the pipeline
  /// (no sharing) and one group of three (every block's all-reduces over the slow link).
  @Test func hybridBeatsPipelineAndTensorParallelism() throws {
    var p = Problems.uniform(layers: 10, memory: [6, 3, 6], time: [0.04, 0.04, 0.06], bandwidth: 1e9, latency: 0.0001)
    for i in p.links.indices where p.links[i].from == "d2" || p.links[i].to == "d2" {
      p.links[i].bandwidthBytesPerS = 1e6
      p.links[i].latencyS = 0.005
    }
    p.shape = PartitionProblem.ModelShape(
      hiddenSize: 1000, kvHeads: 4, ffnColumns: 64, attentionParameters: 1, ffnParameters: 2, firstBlock: 1,
      endBlock: 9, wireBytesPerValue: 2)
    let hybrid = try Partitioners.solve(p, algorithm: "hybrid")
    let pipeline = try Partitioners.solve(p, algorithm: "edgeshard-latency")
    let tp = try Partitioners.solve(p, algorithm: "galaxy")
    #expect(tp.stages[0].group?.members.count == 3)
    #expect(hybrid.stages.count == 2 && hybrid.stages[0].group?.members == ["d0", "d1"])
    #expect(hybrid.stages[1].device == "d2" && hybrid.stages[1].group == nil)
    #expect(hybrid.valueSeconds < pipeline.valueSeconds && hybrid.valueSeconds < tp.valueSeconds)
  }

  @Test func galaxySizesSharesToSpeed() throws {
    // d1 is three times as fast as the source: it takes three of four KV heads and three quarters of the columns.
    var p = Problems.uniform(layers: 6, memory: [100, 100], time: [0.03, 0.01], bandwidth: 1e9, latency: 0.00001)
    p.shape = PartitionProblem.ModelShape(
      hiddenSize: 100, kvHeads: 4, ffnColumns: 64, attentionParameters: 1, ffnParameters: 2, firstBlock: 1,
      endBlock: 5, wireBytesPerValue: 2)
    let plan = try Partitioners.solve(p, algorithm: "galaxy")
    let g = try #require(plan.stages.first?.group)
    #expect(g.members == ["d0", "d1"] && g.kvHeads == [1, 3] && g.ffnColumns == [16, 48])
    let even = try Partitioners.solve(p, algorithm: "tp")
    #expect(plan.valueSeconds < even.valueSeconds)
    // Quantized weights: the columns are shared in whole 32-value blocks (96 columns: one block and two).
    var blocks = p
    blocks.shape?.ffnColumns = 96
    blocks.shape?.ffnColumnQuantum = 32
    #expect(try Partitioners.solve(blocks, algorithm: "galaxy").stages.first?.group?.ffnColumns == [32, 64])
    blocks.shape?.ffnColumnQuantum = nil
    #expect(try Partitioners.solve(blocks, algorithm: "galaxy").stages.first?.group?.ffnColumns == [24, 72])
    // Where the link is too slow to share, one device.
    var slow = p
    for i in slow.links.indices { slow.links[i].latencyS = 1 }
    #expect(try Partitioners.solve(slow, algorithm: "galaxy").stages.first?.group == nil)
  }
}
