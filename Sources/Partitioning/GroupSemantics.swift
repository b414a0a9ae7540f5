public import EdgeLabCore
public import Pipeline

/// The semantics of plans whose stages may be shared by tensor-parallel groups, extending `StandardSemantics`
/// (a one-device stage costs exactly what it costs there).
///
/// A group stage runs its layers outside the decoder blocks (embedding, head) on its first member, which sends the
/// hidden state entering the first block to every member (`broadcastSeconds`). Each decoder block costs its attention, as slow as the slowest member's share of the KV heads, plus its FFN, as slow as the
/// slowest member's share of the columns (`TensorGroup.blockSeconds`; a member's whole-block time is the
/// problem's time for that layer on it), plus two all-reduces of the hidden state (`allReduceSeconds` over the
/// group's slowest link among those its collective uses). Member i holds its share of the blocks' memory (its
/// heads' part of the attention and its columns' part of the FFN, weighed by parameters) and the first member
/// also the layers outside the blocks. Transfers between stages run first member to first member.
public enum GroupSemantics {
  /// A stage as a group of device indices (the first receives and sends the activations), their shares, the
  /// collective and a half-open layer range. One member and no shares: a standard stage.
  public struct Span: Hashable, Sendable {
    public var members: [Int]
    public var kvHeads: [Int]
    public var ffnColumns: [Int]
    public var collective: TensorGroup.Collective
    public var first: Int
    public var end: Int
    public var device: Int { members[0] }

    public init(
      members: [Int], kvHeads: [Int], ffnColumns: [Int], collective: TensorGroup.Collective = .ring, first: Int,
      end: Int
    ) {
      self.members = members
      self.kvHeads = kvHeads
      self.ffnColumns = ffnColumns
      self.collective = collective
      self.first = first
      self.end = end
    }

    /// A one-device stage.
    public init(device: Int, first: Int, end: Int) {
      self.init(members: [device], kvHeads: [], ffnColumns: [], first: first, end: end)
    }

    func group(_ p: IndexedProblem, wireBytesPerValue: Double) -> TensorGroup? {
      members.count < 2
        ? nil
        : TensorGroup(
          members: members.map(p.name), kvHeads: kvHeads, ffnColumns: ffnColumns, collective: collective,
          wireBytesPerValue: wireBytesPerValue)
    }
  }

  /// Seconds of one all-reduce of a token's hidden state among `members` with `collective` (∞ without a link
  /// the collective needs, 0 for one member).
  public static func allReduceSeconds(
    _ members: [Int], _ collective: TensorGroup.Collective, _ p: IndexedProblem, shape: PartitionProblem.ModelShape
  ) -> Double {
    guard members.count > 1 else { return 0 }
    var latency = 0.0
    var bandwidth = Double.infinity
    for (a, b) in TensorGroup.links(members, collective) {
      guard p.hasLink(a, b) else { return .infinity }
      latency = max(latency, p.exchangeLatency[a][b])
      bandwidth = min(bandwidth, p.bandwidth[a][b])
    }
    return TensorGroup.allReduceSeconds(
      collective, members: members.count, bytes: Double(shape.hiddenSize) * shape.wireBytesPerValue,
      latency: latency, bandwidth: bandwidth)
  }

  /// Seconds of the leader sending a token's hidden state to every member before the stage's first block (one
  /// message per member, one after the other; ∞ without a link, 0 for one member).
  public static func broadcastSeconds(_ members: [Int], _ p: IndexedProblem, shape: PartitionProblem.ModelShape)
    -> Double
  {
    guard members.count > 1 else { return 0 }
    var latency = 0.0
    var bandwidth = Double.infinity
    for b in members.dropFirst() {
      guard p.hasLink(members[0], b) else { return .infinity }
      latency = max(latency, p.latency[members[0]][b])
      bandwidth = min(bandwidth, p.bandwidth[members[0]][b])
    }
    return latency + Double(members.count - 1) * Double(shape.hiddenSize) * shape.wireBytesPerValue / bandwidth
  }

  /// Whether layer `l` of the problem is a decoder block that a group shares.
  @inline(__always) static func isBlock(_ l: Int, _ shape: PartitionProblem.ModelShape) -> Bool {
    l >= shape.firstBlock && l < shape.endBlock
  }

  /// The compute seconds of a stage, collectives included.
  public static func stageSeconds(_ s: Span, _ p: IndexedProblem) -> Double {
    guard s.members.count > 1, let shape = p.problem.shape else { return p.compute(s.device, s.first, s.end) }
    let g = TensorGroup(members: [], kvHeads: s.kvHeads, ffnColumns: s.ffnColumns)
    let reduce = allReduceSeconds(s.members, s.collective, p, shape: shape)
    let hasBlocks = (s.first..<s.end).contains { isBlock($0, shape) }
    var t = hasBlocks ? broadcastSeconds(s.members, p, shape: shape) : 0
    for l in s.first..<s.end {
      if isBlock(l, shape) {
        let whole = s.members.map { p.compute($0, l, l + 1) }
        t +=
          g.blockSeconds(whole, attention: shape.attentionParameters, ffn: shape.ffnParameters)
          + Double(TensorGroup.allReducesPerBlock) * reduce
      } else {
        t += p.compute(s.device, l, l + 1)
      }
    }
    return t
  }

  /// Member `i`'s share of a block's memory: its heads' part of the attention and its columns' part of the FFN.
  public static func memoryShare(_ s: Span, _ i: Int, _ shape: PartitionProblem.ModelShape) -> Double {
    guard s.members.count > 1 else { return 1 }
    return TensorGroup(members: [], kvHeads: s.kvHeads, ffnColumns: s.ffnColumns)
      .share(i, attention: shape.attentionParameters, ffn: shape.ffnParameters)
  }

  /// Bytes member `i` of the stage holds.
  public static func memberBytes(_ s: Span, _ i: Int, _ p: IndexedProblem) -> Double {
    guard s.members.count > 1, let shape = p.problem.shape else { return p.memory(s.first, s.end) }
    let lo = min(max(s.first, shape.firstBlock), s.end)
    let hi = max(min(s.end, shape.endBlock), lo)
    let blocks = p.memory(lo, hi)
    let rest = p.memory(s.first, s.end) - blocks
    return memoryShare(s, i, shape) * blocks + (i == 0 ? rest : 0)
  }

  /// Evaluates a plan's stages: computes (collectives included) and transfers in pipeline order, the latency
  /// their sum and the bottleneck their largest, as `StandardSemantics.evaluate`.
  public static func evaluate(_ spans: [Span], _ p: IndexedProblem) -> StandardEvaluation {
    var items: [StandardEvaluation.Item] = []
    var latency = 0.0
    var bottleneck = 0.0
    func add(_ label: String, _ t: Double, transfer: Bool) {
      items.append(.init(label: label, seconds: t, isTransfer: transfer))
      latency += t
      bottleneck = max(bottleneck, t)
    }
    for (s, span) in spans.enumerated() {
      if s > 0 {
        let prev = spans[s - 1]
        add(
          "link \(p.name(prev.device))→\(p.name(span.device))",
          p.transfer(prev.device, span.device, afterLayer: span.first - 1), transfer: true)
      }
      let label =
        span.members.count > 1
        ? "stage on \(span.members.map(p.name).joined(separator: "+"))" : "stage on \(p.name(span.device))"
      add(label, stageSeconds(span, p), transfer: false)
    }
    if let last = spans.last, p.problem.returnToSource, last.device != p.sourceIndex {
      add(
        "link \(p.name(last.device))→\(p.name(p.sourceIndex)) (return)", p.returnTransfer(from: last.device),
        transfer: true)
    }
    return StandardEvaluation(items: items, latency: latency, bottleneck: bottleneck)
  }

  /// Every way the stages break the rules, as sentences: the standard rules with a group's members in place of
  /// its device (each device in one stage, each member's part within its memory), and shares that sum to the
  /// model's heads and columns.
  public static func violations(_ spans: [Span], _ p: IndexedProblem) -> [String] {
    var v: [String] = []
    guard let first = spans.first else { return ["the plan has no stages"] }
    if first.device != p.sourceIndex {
      v.append("stage 0 runs on \(p.name(first.device)), not on the source \(p.name(p.sourceIndex))")
    }
    if first.first != 0 { v.append("stage 0 starts at layer \(first.first), not 0") }
    if spans.last!.end != p.layerCount {
      v.append("the last stage ends at layer \(spans.last!.end), not \(p.layerCount)")
    }
    var seen = Set<Int>()
    for (s, span) in spans.enumerated() {
      if span.first >= span.end { v.append("stage \(s) is empty") }
      if s > 0 && span.first != spans[s - 1].end { v.append("stage \(s) does not start where stage \(s - 1) ends") }
      if s > 0 && !p.hasLink(spans[s - 1].device, span.device) {
        v.append("no link from \(p.name(spans[s - 1].device)) to \(p.name(span.device))")
      }
      if span.members.count > 1 {
        guard let shape = p.problem.shape else {
          v.append("stage \(s) is shared by a group but the problem has no model shape")
          continue
        }
        let issues = TensorGroup(members: span.members.map(p.name), kvHeads: span.kvHeads, ffnColumns: span.ffnColumns)
          .problems(device: p.name(span.device), kvHeads: shape.kvHeads, ffnColumns: shape.ffnColumns)
        if !issues.isEmpty {
          v += issues.map { "stage \(s): \($0)" }
          continue
        }
        if !allReduceSeconds(span.members, span.collective, p, shape: shape).isFinite {
          v.append("stage \(s): a link its \(span.collective.rawValue) all-reduce needs is missing")
        }
      }
      for (i, d) in span.members.enumerated() {
        if !seen.insert(d).inserted { v.append("device \(p.name(d)) holds more than one stage") }
        let need = memberBytes(span, i, p)
        if need > p.memory[d] {
          v.append("stage \(s) needs \(Bytes(need)) on \(p.name(d)), which offers \(Bytes(p.memory[d]))")
        }
        if !p.compute(d, span.first, span.end).isFinite {
          v.append("\(p.name(d)) has no time for some layer of stage \(s)")
        }
      }
    }
    if p.problem.returnToSource, let last = spans.last, last.device != p.sourceIndex,
      !p.hasLink(last.device, p.sourceIndex)
    {
      v.append("no link from \(p.name(last.device)) to \(p.name(p.sourceIndex))")
    }
    return v
  }

  /// A plan for the stages with its value and explanation.
  public static func plan(_ spans: [Span], _ p: IndexedProblem, algorithm: String, exact: Bool, notes: [String] = [])
    -> Plan
  {
    let e = evaluate(spans, p)
    let objective = p.problem.objective
    let wire = p.problem.shape?.wireBytesPerValue ?? 4
    let grouped = spans.filter { $0.members.count > 1 }.count
    var explanation = e.explanation(stageCount: spans.count)
    if grouped > 0 {
      explanation += "; \(grouped) tensor-parallel group\(grouped == 1 ? "" : "s")"
    }
    return Plan(
      algorithm: algorithm, objective: objective,
      stages: spans.map {
        Plan.Stage(
          device: p.name($0.device), firstLayer: $0.first, endLayer: $0.end, group: $0.group(p, wireBytesPerValue: wire)
        )
      },
      microBatches: objective == .throughput
        ? max(1, spans.count + (p.problem.returnToSource && spans.last?.device != p.sourceIndex ? 1 : 0)) : 1,
      valueSeconds: e.value(objective), exact: exact, explanation: explanation, notes: notes)
  }

  /// A plan's stages as spans (nil where a device name is unknown).
  public static func spans(of plan: Plan, _ p: IndexedProblem) -> [Span]? {
    var out: [Span] = []
    for s in plan.stages {
      guard let members = Optional(s.devices.compactMap(p.index(of:))), members.count == s.devices.count else {
        return nil
      }
      out.append(
        Span(
          members: members, kvHeads: s.group?.kvHeads ?? [], ffnColumns: s.group?.ffnColumns ?? [],
          collective: s.group?.collective ?? .ring, first: s.firstLayer, end: s.endLayer))
    }
    return out
  }
}

/// Shares of a group sized to its members' speeds: the whole KV heads and the FFN columns given so that the
/// slowest member's attention, and separately its FFN, take as little time as whole units allow.
public enum GroupShares {
  /// The fewest-seconds split of `units` whole units (at least one each, at most `most[i]`) among members whose
  /// time per unit is `perUnit[i]`: minimises the largest `count[i] × perUnit[i]`. Nil when a member's time is
  /// not finite and positive, or the bounds leave no split.
  ///
  /// Water-filling within the bounds gives a level no integer split can beat; each member takes the whole units
  /// below it, and the few units left go one at a time to the member whose time grows least (a unit given that
  /// way never raises the largest time above the optimum, so the result is optimal).
  public static func minMax(units: Int, perUnit: [Double], most: [Int]? = nil) -> [Int]? {
    let n = perUnit.count
    let caps = most ?? Array(repeating: units, count: n)
    guard n >= 1, caps.count == n, units >= n, perUnit.allSatisfy({ $0 > 0 && $0.isFinite }),
      caps.allSatisfy({ $0 >= 1 }), caps.reduce(0, { $0 + min($1, units) }) >= units
    else { return nil }
    // The continuous level: each member holds level / perUnit units, clamped to [1, cap]; bisection finds the
    // level where they sum to `units`.
    func held(_ level: Double) -> Double {
      (0..<n).reduce(0.0) { $0 + min(Double(caps[$1]), max(1, level / perUnit[$1])) }
    }
    var low = 0.0
    var high = Double(units) * (perUnit.max() ?? 1)
    for _ in 0..<200 where high - low > high * 1e-15 {
      let mid = (low + high) / 2
      if held(mid) < Double(units) { low = mid } else { high = mid }
    }
    var count = (0..<n).map { i in min(caps[i], max(1, Int((low / perUnit[i]).rounded(.down)))) }
    var left = units - count.reduce(0, +)
    // Rounding can leave the sum over where a level sits exactly on a whole unit: take back from the slowest
    // (the greedy below then refills optimally).
    while left < 0 {
      let i = (0..<n).filter { count[$0] > 1 }.max {
        Double(count[$0]) * perUnit[$0] < Double(count[$1]) * perUnit[$1]
      }!
      count[i] -= 1
      left += 1
    }
    while left > 0 {
      var best = -1
      for i in 0..<n where count[i] < caps[i] {
        if best < 0 || Double(count[i] + 1) * perUnit[i] < Double(count[best] + 1) * perUnit[best] { best = i }
      }
      count[best] += 1
      left -= 1
    }
    return count
  }

  /// Heads and columns for members whose whole-block times are `blockSeconds` (in member order), each member's
  /// fraction of the heads and of the columns at most `fraction[i]` where given (its memory's limit); columns in
  /// whole `columnQuantum`s.
  public static func sized(
    blockSeconds: [Double], shape: PartitionProblem.ModelShape, fraction: [Double]? = nil
  ) -> (kvHeads: [Int], ffnColumns: [Int])? {
    let total = shape.attentionParameters + shape.ffnParameters
    let a = total > 0 ? shape.attentionParameters / total : 1
    func caps(_ units: Int) -> [Int]? {
      fraction.map { $0.map { f in f >= 1 ? units : Int((max(0, f) * Double(units)).rounded(.down)) } }
    }
    // Columns are shared in whole quanta (the weights' quantization blocks).
    let q = shape.columnQuantum
    let quanta = shape.ffnColumns / q
    guard
      let heads = minMax(
        units: shape.kvHeads, perUnit: blockSeconds.map { a * $0 / Double(shape.kvHeads) }, most: caps(shape.kvHeads)),
      let columns = minMax(
        units: quanta, perUnit: blockSeconds.map { max(1 - a, 1e-12) * $0 / Double(quanta) }, most: caps(quanta))
    else { return nil }
    return (heads, columns.map { $0 * q })
  }

  /// The shares a group uses for layers `first..<end` (members in device order, `leader` among them): sized to
  /// the members' speeds over the model's blocks, and where those shares do not fit a member's memory, sized
  /// again with each member's fraction of the heads and of the columns bounded by what its memory holds. Nil
  /// when no split fits.
  public static func fitted(
    _ members: [Int], leader: Int, first: Int, end: Int, _ p: IndexedProblem,
    unbounded: (kvHeads: [Int], ffnColumns: [Int])? = nil
  ) -> (kvHeads: [Int], ffnColumns: [Int])? {
    guard let shape = p.problem.shape else { return nil }
    let times = members.map { p.compute($0, shape.firstBlock, shape.endBlock) }
    let lo = min(max(first, shape.firstBlock), end)
    let hi = max(min(end, shape.endBlock), lo)
    let blocks = p.memory(lo, hi)
    let rest = p.memory(first, end) - blocks
    let free = members.map { p.memory[$0] - ($0 == leader ? rest : 0) }
    func fits(_ s: (kvHeads: [Int], ffnColumns: [Int])) -> Bool {
      let g = TensorGroup(members: [], kvHeads: s.kvHeads, ffnColumns: s.ffnColumns)
      return members.indices.allSatisfy {
        g.share($0, attention: shape.attentionParameters, ffn: shape.ffnParameters) * blocks <= free[$0]
      }
    }
    if let s = unbounded ?? sized(blockSeconds: times, shape: shape), fits(s) { return s }
    guard blocks > 0, free.allSatisfy({ $0 > 0 }) else { return nil }
    guard let s = sized(blockSeconds: times, shape: shape, fraction: free.map { $0 / blocks }), fits(s) else {
      return nil
    }
    return s
  }
}
