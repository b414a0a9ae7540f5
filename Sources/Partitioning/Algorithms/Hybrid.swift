import EdgeLabCore
public import Pipeline

/// Pipeline stages whose stages may be tensor-parallel groups: the joint choice of devices, stage boundaries,
/// groups, their collective and their shares, exact under memory, for latency or throughput. It extends
/// EdgeShard's dynamic programme (`EdgeShardLatency`) from one device per stage to a group per stage, so pure
/// pipelines (groups of one) and pure tensor parallelism (one group) are both in its search space.
///
/// The recurrence: g(j, S, f) = the best value of layers 0..<j placed on the device set S with the last stage's
/// group led by f; g(j, S ∪ G, f′) = min over earlier (i, S, f) and groups G disjoint from S led by f′ ∈ G of
/// g(i, S, f) ⊕ transfer(f→f′ after layer i − 1) ⊕ stage(G, f′, i..<j), where ⊕ is + (latency) or max
/// (throughput) and the stage fits every member's memory (`GroupSemantics`). A group's members after its leader
/// keep the problem's device order (the ring's order), its collective is the faster of ring and star, and its
/// shares are `GroupShares.fitted`: sized to the members' block times — optimal for the group when the decoder
/// blocks cost alike, as a model's blocks do — and bounded by each member's memory where they would not fit.
/// The plan is exact over that space; brute force over every plan of the space checks it in the tests.
///
/// - Complexity: O(N² · 3^M · M²) for N layers and M devices: exact up to about 9 devices (`max_work`,
///   default 2·10⁹ transitions); larger problems are refused by name.
public struct Hybrid: Partitioner {
  public static let name = "hybrid"
  public static let summary =
    "pipeline stages that may be tensor-parallel groups: devices, boundaries, groups and shares, exact (latency or throughput)"
  let maxWork: Double
  let maxGroup: Int

  public init(parameters: inout Parameters) throws(PartitionError) {
    maxWork = try parameters.double("max_work", default: 2e9)
    maxGroup = try parameters.int("max_group", default: 64)
    if maxGroup < 1 { throw .badParameter(algorithm: Self.name, "max_group must be ≥ 1") }
  }

  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    let m = p.deviceCount
    let n = p.layerCount
    guard m <= 20 else {
      throw .badParameter(
        algorithm: Self.name, "the exact search is over subsets of at most 20 devices; the problem has \(m)")
    }
    var threeM = 1.0
    for _ in 0..<m { threeM *= 3 }
    let work = Double(n) * Double(n) / 2 * threeM * Double(m) * Double(m) / 4
    if work > maxWork {
      throw .badParameter(
        algorithm: Self.name,
        "the exact search over \(m) devices and \(n) layers takes about \(String(scientific: work, digits: 2)) transitions, more than max_work \(String(scientific: maxWork, digits: 2)); declare fewer devices or raise max_work"
      )
    }
    let groups = GroupTable(p, maxGroup: p.problem.shape == nil ? 1 : maxGroup)
    let combineSum = p.problem.objective == .latency
    @inline(__always) func join(_ a: Double, _ b: Double) -> Double { combineSum ? a + b : max(a, b) }

    let subsets = 1 << m
    @inline(__always) func at(_ j: Int, _ s: Int, _ f: Int) -> Int { (j * subsets + s) * m + f }
    var value = [Double](repeating: .infinity, count: (n + 1) * subsets * m)
    var parentI = [Int16](repeating: -1, count: value.count)
    var parentS = [Int32](repeating: -1, count: value.count)
    var parentF = [Int8](repeating: -1, count: value.count)

    /// Extends from (i, used, leader) with every group and end layer.
    func extend(from i: Int, used: Int, leader: Int?, base: Double) {
      let free = (subsets - 1) & ~used
      var g = free
      while g > 0 {
        defer { g = (g - 1) & free }
        guard groups.valid(g) else { continue }
        for f in groups.members(g) {
          if leader == nil && f != p.sourceIndex { continue }
          if leader == nil && g & (1 << p.sourceIndex) == 0 { continue }
          let t = leader.map { p.transfer($0, f, afterLayer: i - 1) } ?? 0
          if !t.isFinite { continue }
          let entry = join(base, t)
          var j = i + 1
          while j <= n {
            guard let c = groups.stageSeconds(g, leader: f, i, j) else { break }
            let v = join(entry, c)
            let idx = at(j, used | g, f)
            if v < value[idx] {
              value[idx] = v
              parentI[idx] = Int16(i)
              parentS[idx] = Int32(used)
              parentF[idx] = Int8(leader ?? -1)
            }
            j += 1
          }
        }
      }
    }
    extend(from: 0, used: 0, leader: nil, base: 0)
    for i in 1..<max(n, 1) {
      for s in 1..<subsets {
        for f in 0..<m where s & (1 << f) != 0 {
          let v = value[at(i, s, f)]
          if v.isFinite { extend(from: i, used: s, leader: f, base: v) }
        }
      }
    }
    var best: (v: Double, s: Int, f: Int)?
    for s in 1..<subsets {
      for f in 0..<m where s & (1 << f) != 0 {
        let v = value[at(n, s, f)]
        guard v.isFinite else { continue }
        let total = join(v, p.returnTransfer(from: f))
        if total.isFinite && (best == nil || total < best!.v) { best = (total, s, f) }
      }
    }
    guard let best else {
      if let proof = Infeasibility.proven(p) { throw .infeasible(proof) }
      throw .infeasible(
        "no plan of pipeline stages and tensor-parallel groups fits the devices' memory along linked devices")
    }
    var spans: [GroupSemantics.Span] = []
    var (j, s, f) = (n, best.s, best.f)
    while j > 0 {
      let idx = at(j, s, f)
      let i = Int(parentI[idx])
      let prev = Int(parentS[idx])
      spans.append(groups.span(s & ~prev, leader: f, i, j))
      (j, s, f) = (i, prev, Int(parentF[idx]))
    }
    spans.reverse()
    return GroupSemantics.plan(spans, p, algorithm: Self.name, exact: true)
  }
}

/// What a stage costs on each candidate group: its members in order, shares, collective and per-layer time
/// prefixes, computed once per subset of devices.
struct GroupTable {
  let p: IndexedProblem
  private var order: [[Int]]
  private var heads: [[Int]]
  private var columns: [[Int]]
  private var blockPrefix: [[Double]]
  private var isValid: [Bool]
  /// Per device: prefix sums of its time and memory on the layers outside the decoder blocks.
  private let restTime: [[Double]]
  private let restMemory: [Double]
  private let blockMemory: [Double]
  /// Per subset and leader: the faster collective and its per-token all-reduce seconds.
  private var reduce: [[(TensorGroup.Collective, Double)]]
  /// Per subset and leader: the leader's sending of the stage's input to the members.
  private var broadcast: [[Double]]

  init(_ p: IndexedProblem, maxGroup: Int) {
    self.p = p
    let m = p.deviceCount
    let n = p.layerCount
    let subsets = 1 << m
    let shape = p.problem.shape
    func block(_ l: Int) -> Bool { shape.map { GroupSemantics.isBlock(l, $0) } ?? false }
    var rm = [0.0]
    var bm = [0.0]
    for l in 0..<n {
      rm.append(rm.last! + (block(l) ? 0 : p.memory(l, l + 1)))
      bm.append(bm.last! + (block(l) ? p.memory(l, l + 1) : 0))
    }
    restMemory = rm
    blockMemory = bm
    restTime = (0..<m).map { d in
      var t = [0.0]
      for l in 0..<n { t.append(t.last! + (block(l) ? 0 : p.compute(d, l, l + 1))) }
      return t
    }
    order = Array(repeating: [], count: subsets)
    heads = Array(repeating: [], count: subsets)
    columns = Array(repeating: [], count: subsets)
    blockPrefix = Array(repeating: [], count: subsets)
    isValid = Array(repeating: false, count: subsets)
    reduce = Array(repeating: [], count: subsets)
    broadcast = Array(repeating: [], count: subsets)
    for g in 1..<subsets {
      let members = (0..<m).filter { g & (1 << $0) != 0 }
      order[g] = members
      if members.count == 1 {
        isValid[g] = true
        continue
      }
      guard let shape, members.count <= maxGroup, members.count <= shape.kvHeads,
        let sized = GroupShares.sized(
          blockSeconds: members.map { p.compute($0, shape.firstBlock, shape.endBlock) }, shape: shape)
      else { continue }
      heads[g] = sized.kvHeads
      columns[g] = sized.ffnColumns
      let tg = TensorGroup(members: [], kvHeads: sized.kvHeads, ffnColumns: sized.ffnColumns)
      var prefix = [0.0]
      for l in 0..<n {
        let t =
          block(l)
          ? tg.blockSeconds(
            members.map { p.compute($0, l, l + 1) }, attention: shape.attentionParameters, ffn: shape.ffnParameters)
          : 0
        prefix.append(prefix.last! + t)
      }
      blockPrefix[g] = prefix
      reduce[g] = members.map { f in
        let ordered = [f] + members.filter { $0 != f }
        let ring = GroupSemantics.allReduceSeconds(ordered, .ring, p, shape: shape)
        let star = GroupSemantics.allReduceSeconds(ordered, .star, p, shape: shape)
        return star < ring ? (.star, star) : (.ring, ring)
      }
      broadcast[g] = members.map { f in
        GroupSemantics.broadcastSeconds([f] + members.filter { $0 != f }, p, shape: shape)
      }
      isValid[g] = true
    }
  }

  func valid(_ g: Int) -> Bool { isValid[g] }
  func members(_ g: Int) -> [Int] { order[g] }

  /// The shares of group g (members in device order) led by f on layers i..<j (`GroupShares.fitted`), and
  /// whether they are the ones sized without memory bounds (whose block times are precomputed).
  private func shares(_ g: Int, leader f: Int, _ i: Int, _ j: Int) -> (kvHeads: [Int], ffnColumns: [Int], free: Bool)? {
    let ms = order[g]
    let shape = p.problem.shape!
    let blocks = blockMemory[j] - blockMemory[i]
    let rest = restMemory[j] - restMemory[i]
    let tg = TensorGroup(members: [], kvHeads: heads[g], ffnColumns: columns[g])
    if ms.indices.allSatisfy({
      tg.share($0, attention: shape.attentionParameters, ffn: shape.ffnParameters) * blocks
        <= p.memory[ms[$0]] - (ms[$0] == f ? rest : 0)
    }) {
      return (heads[g], columns[g], true)
    }
    guard let s = GroupShares.fitted(ms, leader: f, first: i, end: j, p, unbounded: (heads[g], columns[g])) else {
      return nil
    }
    return (s.kvHeads, s.ffnColumns, false)
  }

  /// Seconds of layers i..<j on group g led by f, collectives included; nil when no shares fit the members'
  /// memory or a time or link is missing (a longer range does not fit either).
  func stageSeconds(_ g: Int, leader f: Int, _ i: Int, _ j: Int) -> Double? {
    let ms = order[g]
    if ms.count == 1 {
      guard p.memory(i, j) <= p.memory[f] else { return nil }
      let c = p.compute(f, i, j)
      return c.isFinite ? c : nil
    }
    let shape = p.problem.shape!
    guard let s = shares(g, leader: f, i, j) else { return nil }
    var blockTime = blockPrefix[g][j] - blockPrefix[g][i]
    if !s.free {
      let tg = TensorGroup(members: [], kvHeads: s.kvHeads, ffnColumns: s.ffnColumns)
      blockTime = 0
      for l in max(i, shape.firstBlock)..<max(min(j, shape.endBlock), max(i, shape.firstBlock)) {
        blockTime += tg.blockSeconds(
          ms.map { p.compute($0, l, l + 1) }, attention: shape.attentionParameters, ffn: shape.ffnParameters)
      }
    }
    let k = ms.firstIndex(of: f)!
    let blockCount = (max(i, shape.firstBlock)..<max(min(j, shape.endBlock), max(i, shape.firstBlock))).count
    let t =
      restTime[f][j] - restTime[f][i] + blockTime
      + (blockCount > 0 ? broadcast[g][k] : 0) + Double(blockCount * TensorGroup.allReducesPerBlock) * reduce[g][k].1
    return t.isFinite ? t : nil
  }

  /// The span for group g led by f over layers i..<j: the leader first, the rest in device order.
  func span(_ g: Int, leader f: Int, _ i: Int, _ j: Int) -> GroupSemantics.Span {
    let ms = order[g]
    guard ms.count > 1, let s = shares(g, leader: f, i, j) else {
      return GroupSemantics.Span(device: f, first: i, end: j)
    }
    let k = ms.firstIndex(of: f)!
    let idx = [k] + ms.indices.filter { $0 != k }
    return GroupSemantics.Span(
      members: idx.map { ms[$0] }, kvHeads: idx.map { s.kvHeads[$0] }, ffnColumns: idx.map { s.ffnColumns[$0] },
      collective: reduce[g][k].0, first: i, end: j)
  }
}
