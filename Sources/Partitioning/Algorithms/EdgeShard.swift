public import EdgeLabCore
public import Pipeline

/// EdgeShard's joint device selection and partition for the **latency** objective (Zhang et al., "EdgeShard:
/// Efficient LLM Inference via Collaborative Edge Computing", arXiv 2405.14371), made exact under memory.
///
/// The paper's recurrence D(i, j) = min_k D(i−1, k) + t(i, j) + O(i−1)/B(k, j) keeps no record of which devices
/// are used or how full they are, so it can reuse a device or overfill one. This version's state is
/// (layers placed i, devices used, last device): g(i, S, k) = min over the previous stage of
/// g(i', S∖{k}, k') + transfer(k'→k after layer i'−1) + compute(k, i'..<i), with the stage i'..<i fitting k's
/// memory, so each device holds one contiguous stage and the optimum is exact. Interchangeable devices are
/// counted rather than enumerated (see `DeviceClasses`).
///
/// - Complexity: O(N² · Π(nᵢ+1) · K²) for N layers and K device classes of sizes nᵢ (O(N²·2^M·M²) with M
///   distinct devices). Above `max_states` states or about `max_work` transitions (default 2·10⁹, a few
///   seconds) it falls back to a beam search over the same recurrence (`beam` partial plans per layer
///   boundary; not guaranteed optimal; the plan says so).
public struct EdgeShardLatency: Partitioner {
  public static let name = "edgeshard-latency"
  public static let summary = "EdgeShard DP, latency objective: joint device selection + partition, exact under memory"
  public static var objective: Objective? { .latency }
  let search: SubsetSearch

  public init(parameters: inout Parameters) throws(PartitionError) {
    search = try SubsetSearch(parameters: &parameters, combine: .sum, algorithm: Self.name)
  }

  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    var q = p
    q = try q.with(objective: .latency)
    return try search.solve(q, algorithm: Self.name)
  }
}

/// EdgeShard's DP for the **throughput** objective (pipeline parallelism), for the workload's requests in
/// flight: C micro-batches circulating through a pipeline deliver min(C / latency, 1 / bottleneck) tokens per
/// second, so with few in flight a deep pipeline is latency-bound and a shorter one wins. It minimises
/// max(latency / C, bottleneck) exactly: the least latency among plans whose every component (stage compute,
/// transfer, return) is at most τ, Λ(τ), falls as τ grows, so max(Λ(τ) / C, τ) is least where Λ(τ) / C meets τ;
/// a binary search over the components' possible values finds that τ with O(log) runs of the latency DP
/// restricted to components ≤ τ (`SubsetSearch`). Without `requests_in_flight` (a full pipeline) it is the
/// paper's objective: g(i, S, k) = the smallest possible bottleneck for layers 0..<i placed on device set S with
/// the last stage on k, minimising the largest stage compute or transfer (and the return to the source).
/// `edgeshard-throughput-paper` always plans for a full pipeline. Exact; interchangeable devices are counted.
///
/// - Complexity: as `EdgeShardLatency`, times log₂ of the number of distinct component values with C.
///
/// `prefill` chooses what a stage's cost counts:
/// - `weighted` (default): each request's whole work per generated token — a stage's decode time plus its
///   prefill of the mean prompt spread over the mean output length, and a link's decode activation plus the
///   prompt's activations spread likewise. With few output tokens per prompt, or a slow link that every prompt's
///   prefill must cross, this keeps the plan from paying for prefill it did not count.
/// - `ignored`: decode steps only (the paper's form). Used too when the problem carries no workload lengths.
public struct EdgeShardThroughput: Partitioner {
  public static let name = "edgeshard-throughput"
  public static let summary =
    "EdgeShard DP, throughput objective for the workload's requests in flight: max(latency / C, bottleneck), exact"
  public static var objective: Objective? { .throughput }
  let search: SubsetSearch
  let weighsPrefill: Bool
  /// Whether the problem's `requests_in_flight` is counted (false: the paper's full pipeline).
  let countsInFlight: Bool
  let name: String

  public init(parameters: inout Parameters) throws(PartitionError) {
    try self.init(parameters: &parameters, countsInFlight: true, name: Self.name)
  }

  init(parameters: inout Parameters, countsInFlight: Bool, name: String) throws(PartitionError) {
    self.countsInFlight = countsInFlight
    self.name = name
    search = try SubsetSearch(parameters: &parameters, combine: .max, algorithm: name)
    switch try parameters.string("prefill") ?? "weighted" {
    case "weighted": weighsPrefill = true
    case "ignored": weighsPrefill = false
    case let other:
      throw .badParameter(algorithm: name, "parameter 'prefill' must be 'weighted' or 'ignored' (it is '\(other)')")
    }
  }

  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    let q = try p.with(objective: .throughput)
    let inFlight = countsInFlight ? q.problem.requestsInFlight : nil
    if weighsPrefill, var weighted = Self.perTokenWithPrefill(q.problem) {
      weighted.requestsInFlight = inFlight
      let plan = try search.solve(try IndexedProblem(weighted), algorithm: name, inFlight: inFlight)
      // The plan is valued with the problem's own (decode) times, as every backend runs it; the notes say how
      // it was chosen, and it is exact when the search was for that objective.
      let spans = try plan.stages.map { s throws(PartitionError) -> StandardSemantics.Span in
        guard let d = q.index(of: s.device) else { throw .invalidProblem(["plan device '\(s.device)' is unknown"]) }
        return .init(device: d, first: s.firstLayer, end: s.endLayer)
      }
      var out = StandardSemantics.plan(spans, q, algorithm: name, exact: plan.exact)
      out.notes.append(
        "chosen with prefill weighted: \(plan.valueSeconds) s per token (bottleneck of decode + prefill / output length"
          + (inFlight.map { ", or latency / \(String(format: $0, digits: 1)) requests in flight" } ?? "") + ")")
      return out
    }
    return try search.solve(q, algorithm: name, inFlight: inFlight)
  }

  /// The problem with each layer's time and output size per generated token of a mean request: decode plus the
  /// mean prompt's prefill ÷ mean output length. Nil without workload lengths or prefill times.
  static func perTokenWithPrefill(_ problem: PartitionProblem) -> PartitionProblem? {
    guard let prompt = problem.promptTokens, let output = problem.outputTokens, output >= 1 else { return nil }
    var q = problem
    for i in q.layers.indices {
      guard let prefill = q.layers[i].prefillTimeS else { return nil }
      for (d, t) in q.layers[i].timeS { q.layers[i].timeS[d] = t + (prefill[d] ?? .infinity) / output }
      q.layers[i].outputBytes *= 1 + prompt / output
    }
    return q
  }
}

/// EdgeShard's throughput objective as the paper states it: the pipeline's bottleneck, as if it were always full
/// (enough micro-batches to keep every stage busy), whatever the workload keeps in flight.
public struct EdgeShardThroughputPaper: Partitioner {
  public static let name = "edgeshard-throughput-paper"
  public static let summary =
    "EdgeShard DP, the paper's throughput objective: minimise the bottleneck of a full pipeline"
  public static var objective: Objective? { .throughput }
  let inner: EdgeShardThroughput

  public init(parameters: inout Parameters) throws(PartitionError) {
    inner = try EdgeShardThroughput(parameters: &parameters, countsInFlight: false, name: Self.name)
  }

  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan { try inner.partition(p) }
}

extension IndexedProblem {
  /// The same problem with another objective.
  func with(objective: Objective) throws(PartitionError) -> IndexedProblem {
    if problem.objective == objective { return self }
    var copy = problem
    copy.objective = objective
    return try IndexedProblem(copy)
  }
}

/// The dynamic programme over (layers placed, device-class counts, last class) shared by both objectives.
struct SubsetSearch: Sendable {
  enum Combine: Sendable { case sum, max }
  var combine: Combine
  let maxStates: Int
  /// Budget of DP transitions (states × classes × stage lengths) for the exact search.
  let maxWork: Double
  let beam: Int
  let useSymmetry: Bool

  init(parameters: inout Parameters, combine: Combine, algorithm: String) throws(PartitionError) {
    self.combine = combine
    maxStates = try parameters.int("max_states", default: 40_000_000)
    maxWork = try parameters.double("max_work", default: 2e9)
    beam = try parameters.int("beam", default: 256)
    useSymmetry = try parameters.bool("symmetry", default: true)
    if maxStates < 1 || beam < 1 { throw .badParameter(algorithm: algorithm, "max_states and beam must be ≥ 1") }
  }

  @inline(__always) func join(_ a: Double, _ b: Double, _ c: Double) -> Double {
    combine == .sum ? a + b + c : Swift.max(a, Swift.max(b, c))
  }
  @inline(__always) func join(_ a: Double, _ b: Double) -> Double { combine == .sum ? a + b : Swift.max(a, b) }

  /// The best plan for the problem's objective; with `inFlight` (throughput only), the least
  /// max(latency / inFlight, bottleneck).
  func solve(_ p: IndexedProblem, algorithm: String, inFlight: Double? = nil) throws(PartitionError) -> Plan {
    let classes = DeviceClasses(p, useSymmetry: useSymmetry)
    var product = 1
    var overflow = false
    for n in classes.capacities {
      let (r, o) = product.multipliedReportingOverflow(by: n + 1)
      if o {
        overflow = true
        break
      }
      product = r
    }
    let states =
      overflow
      ? Int.max
      : (p.layerCount + 1).multipliedReportingOverflow(by: product).partialValue
        .multipliedReportingOverflow(by: classes.count).partialValue
    // Transitions: every state tries every class and every stage length that fits (bounded by memory).
    let longest =
      (0..<p.deviceCount).map { d -> Int in
        var j = 0
        while j < p.layerCount && p.memory(0, j + 1) <= p.memory[d] { j += 1 }
        return max(j, 1)
      }.max() ?? 1
    var work = overflow ? .infinity : Double(states) * Double(classes.count) * Double(min(longest, p.layerCount))
    // With requests in flight the latency DP runs once per step of a binary search over the components' values
    // (at most about 2 + log₂ of layers² × devices + transfers).
    if inFlight != nil {
      let values =
        Double(p.layerCount) * Double(p.layerCount + 1) / 2 * Double(classes.count + 1)
        + Double(classes.count * classes.count * p.layerCount)
      let count = Int(min(max(2, values), 1e18))
      work *= Double(2 + Int.bitWidth - count.leadingZeroBitCount)
    }
    if !overflow && states <= maxStates && work <= maxWork {
      let found =
        inFlight.map { thresholdSearch(p, classes, countStates: product, inFlight: $0) }
        ?? exact(p, classes, countStates: product)
      guard let spans = found else { throw .infeasible(Infeasibility.diagnose(p)) }
      return StandardSemantics.plan(spans, p, algorithm: algorithm, exact: true)
    }
    let size =
      "exact search needs \(overflow ? "more than 2⁶³" : String(states)) states and about \(String(format: work, digits: 0)) transitions (limits: max_states \(maxStates), max_work \(String(format: maxWork, digits: 0)))"
    // The beam ranks partial plans by their value so far, which is myopic (for the bottleneck it favours
    // short early stages); balanced splits and a greedy fill are candidates too, and the best valid plan wins.
    let objective = p.problem.objective
    var candidates: [(spans: [StandardSemantics.Span], how: String)] = []
    if let spans = beamSearch(p, classes) {
      candidates.append((spans, "beam search over the same recurrence with \(beam) partial plans per layer boundary"))
    }
    if inFlight != nil {
      var latency = self
      latency.combine = .sum
      if let spans = latency.beamSearch(p, classes) {
        candidates.append((spans, "beam search for the least latency with \(beam) partial plans per layer boundary"))
      }
    }
    candidates += balanced(p).map { ($0, "a balanced contiguous split (best over device counts and orders)") }
    if let spans = greedy(p) { candidates.append((spans, "a greedy fill (devices by memory, largest first)")) }
    let valued = candidates.filter { StandardSemantics.violations($0.spans, p).isEmpty }
      .map { (c: $0, v: StandardSemantics.evaluate($0.spans, p).value(objective, inFlight: inFlight)) }
    if let best = valued.min(by: { $0.v < $1.v }) {
      return StandardSemantics.plan(
        best.c.spans, p, algorithm: algorithm, exact: false,
        notes: [
          "heuristic: \(size); best of beam search, balanced splits and a greedy fill: \(best.c.how); not guaranteed optimal"
        ])
    }
    if let proof = Infeasibility.proven(p) { throw .infeasible(proof) }
    throw .noPlanFound(
      "\(Infeasibility.unproven(p)) (not proven: \(size); beam search, balanced splits and a greedy fill found no valid plan)"
    )
  }

  /// Representative devices for a transition from class a to class b (two distinct members when a == b).
  private func pair(_ a: Int, _ b: Int, _ classes: DeviceClasses) -> (Int, Int) {
    a == b ? (classes.members[a][0], classes.members[a][1]) : (classes.members[a][0], classes.members[b][0])
  }

  /// The least max(latency / c, bottleneck), exactly: Λ(τ), the least latency among plans whose every component
  /// is at most τ, does not grow with τ, so the least max(Λ(τ) / c, τ) lies where Λ(τ) / c falls to τ. A binary
  /// search over every value a component can take finds the first τ with Λ(τ) / c ≤ τ; the optimum is that
  /// τ's plan or the previous τ's (whose value is Λ / c), whichever is better.
  private func thresholdSearch(
    _ p: IndexedProblem, _ classes: DeviceClasses, countStates: Int, inFlight c: Double
  ) -> [StandardSemantics.Span]? {
    var latency = self
    latency.combine = .sum
    let n = p.layerCount
    let src = p.sourceIndex
    let reps = classes.members.map { $0[0] }
    let stageDevices = Set(reps + [src])
    var values: [Double] = []
    for d in stageDevices {
      for i in 0..<n {
        for j in (i + 1)...n {
          if p.memory(i, j) > p.memory[d] { break }
          let t = p.compute(d, i, j)
          if !t.isFinite { break }
          values.append(t)
        }
      }
      let r = p.returnTransfer(from: d)
      if r.isFinite { values.append(r) }
    }
    for a in 0..<classes.count {
      for b in 0..<classes.count where a != b || classes.members[a].count > 1 {
        let (from, to) = pair(a, b, classes)
        for i in 0..<max(0, n - 1) {
          let t = p.transfer(from, to, afterLayer: i)
          if t.isFinite { values.append(t) }
        }
      }
    }
    let thresholds = Array(Set(values)).sorted()
    guard !thresholds.isEmpty else { return nil }
    var memo: [Int: (spans: [StandardSemantics.Span], latency: Double)?] = [:]
    func best(under k: Int) -> (spans: [StandardSemantics.Span], latency: Double)? {
      if let m = memo[k] { return m }
      let r = latency.exact(p, classes, countStates: countStates, cap: thresholds[k]).map {
        ($0, StandardSemantics.evaluate($0, p).latency)
      }
      memo[k] = r
      return r
    }
    // The first threshold whose least latency over c is within it (the predicate only turns true as τ grows).
    var lo = 0
    var hi = thresholds.count
    while lo < hi {
      let mid = (lo + hi) / 2
      if let b = best(under: mid), b.latency / c <= thresholds[mid] { hi = mid } else { lo = mid + 1 }
    }
    let candidates = [lo - 1, lo].filter { thresholds.indices.contains($0) }.compactMap { best(under: $0)?.spans }
    return candidates.min {
      StandardSemantics.evaluate($0, p).cycle(inFlight: c) < StandardSemantics.evaluate($1, p).cycle(inFlight: c)
    }
  }

  /// Exact DP over count vectors, every stage compute, transfer and return at most `cap`. Returns spans of the
  /// optimal plan, or nil if infeasible.
  private func exact(
    _ p: IndexedProblem, _ classes: DeviceClasses, countStates: Int, cap: Double = .infinity
  ) -> [StandardSemantics.Span]? {
    let n = p.layerCount
    let kc = classes.count
    let caps = classes.capacities
    var stride = [Int](repeating: 1, count: kc)
    for c in 1..<max(kc, 1) { stride[c] = stride[c - 1] * (caps[c - 1] + 1) }
    let s = countStates
    @inline(__always) func at(_ i: Int, _ c: Int, _ k: Int) -> Int { (i * s + c) * kc + k }
    var value = [Double](repeating: .infinity, count: (n + 1) * s * kc)
    var parentI = [Int32](repeating: -1, count: value.count)
    var parentK = [Int16](repeating: -1, count: value.count)
    let reps = classes.members.map { $0[0] }
    let src = p.sourceIndex
    let srcState = stride[classes.sourceClass]

    // Stage 0 on the source: layers 0..<j.
    for j in 1...n {
      if p.memory(0, j) > p.memory[src] { break }
      let c = p.compute(src, 0, j)
      if !c.isFinite || c > cap { break }
      value[at(j, srcState, classes.sourceClass)] = c
    }
    // Decode a count-vector index into counts, once per vector.
    var counts = [[Int]](repeating: [], count: s)
    for c in 0..<s {
      counts[c] = (0..<kc).map { k in (c / stride[k]) % (caps[k] + 1) }
    }
    for i in 1..<n {
      for c in 0..<s {
        let cnt = counts[c]
        for k in 0..<kc {
          let v = value[at(i, c, k)]
          if !v.isFinite { continue }
          for k2 in 0..<kc where cnt[k2] < caps[k2] {
            let (from, to) = pair(k, k2, classes)
            let t = p.transfer(from, to, afterLayer: i - 1)
            if !t.isFinite || t > cap { continue }
            let dev = reps[k2]
            let c2 = c + stride[k2]
            let budget = p.memory[dev]
            var j = i + 1
            while j <= n {
              if p.memory(i, j) > budget { break }
              let comp = p.compute(dev, i, j)
              if !comp.isFinite || comp > cap { break }
              let nv = join(v, t, comp)
              let idx = at(j, c2, k2)
              if nv < value[idx] {
                value[idx] = nv
                parentI[idx] = Int32(i)
                parentK[idx] = Int16(k)
              }
              j += 1
            }
          }
        }
      }
    }
    // Best final state, with the return to the source.
    var best = Double.infinity
    var bestState: (Int, Int)?
    for c in 0..<s {
      for k in 0..<kc {
        let v = value[at(n, c, k)]
        if !v.isFinite { continue }
        let last = k == classes.sourceClass ? src : reps[k]
        let r = p.returnTransfer(from: last)
        if !r.isFinite || r > cap { continue }
        let total = join(v, r)
        if total < best {
          best = total
          bestState = (c, k)
        }
      }
    }
    guard var (c, k) = bestState else { return nil }
    var stagesRev: [(cls: Int, first: Int, end: Int)] = []
    var end = n
    while true {
      let idx = at(end, c, k)
      let first = Int(parentI[idx])
      if first < 0 {
        stagesRev.append((k, 0, end))
        break
      }
      stagesRev.append((k, first, end))
      let prevK = Int(parentK[idx])
      c -= stride[k]
      k = prevK
      end = first
    }
    return assignMembers(stagesRev.reversed(), classes)
  }

  /// Maps class-level stages to concrete devices: each class's members in order of use.
  private func assignMembers(_ stages: some Sequence<(cls: Int, first: Int, end: Int)>, _ classes: DeviceClasses)
    -> [StandardSemantics.Span]
  {
    var used = [Int](repeating: 0, count: classes.count)
    return stages.map { st in
      let d = classes.members[st.cls][used[st.cls]]
      used[st.cls] += 1
      return StandardSemantics.Span(device: d, first: st.first, end: st.end)
    }
  }

  /// Contiguous splits with layer counts proportional to each device's speed, or equal, over the first k devices of two
  /// orders (declared; fastest first), source always first, for every k: cheap candidates that balance stages,
  /// which a bottleneck-ranked beam tends to miss.
  func balanced(_ p: IndexedProblem) -> [[StandardSemantics.Span]] {
    let n = p.layerCount
    let others = (0..<p.deviceCount).filter { $0 != p.sourceIndex }
    let speed = (0..<p.deviceCount).map { d -> Double in
      let t = p.compute(d, 0, n)
      return t.isFinite && t > 0 ? 1 / t : 0
    }
    let orders = [others, others.sorted { (-speed[$0], $0) < (-speed[$1], $1) }]
    var out: [[StandardSemantics.Span]] = []
    for order in orders {
      let devices = [p.sourceIndex] + order.filter { speed[$0] > 0 }
      for k in 1...max(1, min(devices.count, n)) {
        let chosen = Array(devices.prefix(k))
        // Shares by speed, and equal shares (the even split).
        for weight in [{ (d: Int) in speed[d] }, { (_: Int) in 1.0 }] {
          let total = chosen.reduce(0.0) { $0 + weight($1) }
          guard total > 0 else { continue }
          var spans: [StandardSemantics.Span] = []
          var first = 0
          var share = 0.0
          for (i, d) in chosen.enumerated() {
            share += weight(d) / total
            let end =
              i == chosen.count - 1
              ? n : min(n - (chosen.count - 1 - i), max(first + 1, Int((share * Double(n)).rounded())))
            spans.append(.init(device: d, first: first, end: end))
            first = end
          }
          out.append(spans)
        }
      }
    }
    return out
  }

  /// Last resort for instances too large for the exact DP when the beam finds nothing: the source first, then
  /// the other devices by memory (largest first), each taking as many layers as fit, skipping devices that
  /// cannot be reached from the previous stage.
  func greedy(_ p: IndexedProblem) -> [StandardSemantics.Span]? {
    let n = p.layerCount
    let others = (0..<p.deviceCount).filter { $0 != p.sourceIndex }.sorted { (-p.memory[$0], $0) < (-p.memory[$1], $1) }
    var spans: [StandardSemantics.Span] = []
    var first = 0
    for d in [p.sourceIndex] + others where first < n {
      if let last = spans.last, !p.transfer(last.device, d, afterLayer: first - 1).isFinite { continue }
      var end = first
      while end < n && p.memory(first, end + 1) <= p.memory[d] && p.compute(d, first, end + 1).isFinite { end += 1 }
      if end == first {
        if spans.isEmpty { return nil }  // stage 0 must be on the source
        continue
      }
      spans.append(.init(device: d, first: first, end: end))
      first = end
    }
    guard first == n, let last = spans.last, p.returnTransfer(from: last.device).isFinite else { return nil }
    return StandardSemantics.violations(spans, p).isEmpty ? spans : nil
  }

  /// Beam search over the same recurrence for instances too large for the exact DP: at each layer boundary
  /// keep the `beam` best partial plans, one per (class counts, last class) state, with back-pointers.
  /// Class counts are packed into 64 bits (⌈log₂(n+1)⌉ bits per class of n devices; at most 64 devices).
  private func beamSearch(_ p: IndexedProblem, _ classes: DeviceClasses) -> [StandardSemantics.Span]? {
    struct Node {
      var counts: UInt64
      var last: Int32
      var parent: Int32  // index into `nodes`, −1 for the first stage
      var first: Int32
      var end: Int32
      var value: Double
    }
    struct Key: Hashable {
      var counts: UInt64
      var last: Int32
    }
    let n = p.layerCount
    let caps = classes.capacities
    var shift = [UInt64](repeating: 0, count: classes.count)
    var bits = 0
    for (c, cap) in caps.enumerated() {
      shift[c] = UInt64(bits)
      bits += max(1, Int.bitWidth - (cap).leadingZeroBitCount)
    }
    guard bits <= 64 else { return nil }
    func count(_ packed: UInt64, _ c: Int) -> Int {
      let width = max(1, Int.bitWidth - caps[c].leadingZeroBitCount)
      return Int((packed >> shift[c]) & ((1 << UInt64(width)) - 1))
    }
    let reps = classes.members.map { $0[0] }
    let src = p.sourceIndex
    var nodes: [Node] = []
    var frontier = [[Key: Int32]](repeating: [:], count: n + 1)
    // A partial plan whose remaining layers cannot fit the unused devices' memory is dead: dropping it keeps
    // the beam from filling up with plans of many short stages that run out of devices (the throughput
    // objective favours them).
    let tail = (0...n).map { i in i < n ? p.memory(i, n) : 0 }
    func canFinish(_ counts: UInt64, after end: Int) -> Bool {
      if end == n { return true }
      var free = 0.0
      for c in 0..<classes.count { free += Double(caps[c] - count(counts, c)) * p.memory[reps[c]] }
      return free >= tail[end]
    }
    func offer(_ node: Node) {
      if !canFinish(node.counts, after: Int(node.end)) { return }
      let key = Key(counts: node.counts, last: node.last)
      if let existing = frontier[Int(node.end)][key], nodes[Int(existing)].value <= node.value { return }
      nodes.append(node)
      frontier[Int(node.end)][key] = Int32(nodes.count - 1)
    }
    let start = UInt64(1) << shift[classes.sourceClass]
    for j in 1...n {
      if p.memory(0, j) > p.memory[src] { break }
      let c = p.compute(src, 0, j)
      if !c.isFinite { break }
      offer(Node(counts: start, last: Int32(classes.sourceClass), parent: -1, first: 0, end: Int32(j), value: c))
    }
    var best: (value: Double, node: Int)?
    for i in 1...n {
      let kept = frontier[i].values.map(Int.init).sorted { (nodes[$0].value, $0) < (nodes[$1].value, $1) }.prefix(beam)
      frontier[i] = [:]
      if i == n {
        for id in kept {
          let q = nodes[id]
          let last = Int(q.last) == classes.sourceClass ? src : reps[Int(q.last)]
          let total = join(q.value, p.returnTransfer(from: last))
          if total.isFinite && (best == nil || total < best!.value) { best = (total, id) }
        }
        break
      }
      for id in kept {
        let q = nodes[id]
        for k2 in 0..<classes.count where count(q.counts, k2) < caps[k2] {
          let (from, to) = pair(Int(q.last), k2, classes)
          let t = p.transfer(from, to, afterLayer: i - 1)
          if !t.isFinite { continue }
          let dev = reps[k2]
          let c2 = q.counts + (UInt64(1) << shift[k2])
          var j = i + 1
          while j <= n {
            if p.memory(i, j) > p.memory[dev] { break }
            let comp = p.compute(dev, i, j)
            if !comp.isFinite { break }
            offer(
              Node(
                counts: c2, last: Int32(k2), parent: Int32(id), first: Int32(i), end: Int32(j),
                value: join(q.value, t, comp)))
            j += 1
          }
        }
      }
    }
    guard let best else { return nil }
    var stages: [(cls: Int, first: Int, end: Int)] = []
    var id = best.node
    while id >= 0 {
      stages.append((Int(nodes[id].last), Int(nodes[id].first), Int(nodes[id].end)))
      id = Int(nodes[id].parent)
    }
    return assignMembers(stages.reversed(), classes)
  }
}
