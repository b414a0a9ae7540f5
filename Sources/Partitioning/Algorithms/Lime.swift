import EdgeLabCore
public import Pipeline

/// LIME: interleaved pipeline parallelism with model offloading for memory-constrained heterogeneous devices
/// (Sun et al., "LIME: Lossless collaborative inference…", arXiv 2512.21835).
///
/// The paper publishes the mechanisms, not the schedule, the allocation algorithm or the adaptation rule, so
/// this is a design from those mechanisms; every assumption is a parameter:
///
/// - **Interleaving.** Devices form a ring (source first, then declared order). The layers are cut into
///   `M·v` contiguous chunks, chunk c on device c mod M, so each device holds `v` non-contiguous chunks and
///   activations cycle round the ring `v` times per token. Interleaving gives a device time between its chunks
///   (while the others compute and communicate) to load its next offloaded layers.
/// - **Offloading.** A device may be assigned more layers than fit its memory: non-resident layers are read
///   from storage (`storage_bytes_per_s`) into one of `prefetch_depth` layer-sized staging slots just before
///   use. Loads on a device are sequential, in order of use, and may start as soon as a slot is free, i.e.
///   overlapped with computation and communication anywhere in the ring. A device without storage bandwidth
///   keeps all its layers resident.
/// - **Residency.** Per device, the KV cache of all its layers stays resident; weights are made resident in
///   *chunk-head-first* order (the first layer of each chunk, then the second, …) while memory lasts, because a
///   chunk's first layer has no earlier compute on that device to hide its load behind.
/// - **Offloading-aware cost model.** Per-token decode latency from a timeline of `steady_tokens` consecutive
///   tokens of one request (the last token's latency is reported, so prefetching across token boundaries is in
///   steady state): each layer starts when its input is there and, if offloaded, its load has finished.
/// - **Offline allocation.** For v = 1…`max_interleave`: chunk sizes start by water-filling (shares ∝ device
///   speed, capped at what each device can hold resident; only what fits nowhere is offloaded) and are refined
///   by local search (move one layer from any chunk to any other while the cost model improves); the best v wins.
/// - **Online memory adaptation.** The plan carries each device's residency rule (`ResidencyPolicy`): the
///   simulator and the workers recompute residency with it as the KV cache grows or shrinks. `replan(_:for:)`
///   re-plans when bandwidth changes by more than `replan_threshold`.
///
/// - **Device selection.** With `prefixes` (default), rings of the first k devices (source first, declared
///   order) for every k are tried and the best kept, so that a fast source is not forced to hand work to slow
///   neighbours; `prefixes = false` always uses every device, as in the paper's testbed.
///
/// Parameters and why their defaults are what they are (none is published in the paper):
/// - `max_interleave` = 4: chunks per device tried (v = 1…4). Each extra chunk adds M hops per token; beyond
///   4 the added hops outweigh the load-hiding gained on the paper's device counts (2–4 Jetsons), and v stops
///   early anyway once nothing is offloaded.
/// - `prefetch_depth` = 2: layer-sized staging slots per device: one layer computing while the next loads
///   (double buffering). More slots cost a layer of memory each and help only when loads are bursty.
/// - `steady_tokens` = 3: tokens simulated by the cost model; the first token pays cold loads, the second may
///   still be catching up, the third is in steady state, which is what decoding many tokens sees.
/// - `offload` = true: allow assigning more layers than fit (the point of LIME); false keeps every layer resident.
/// - `replan_threshold` = 0.1: the online adapter re-plans when a link's bandwidth moves by more than 10%,
///   about the run-to-run noise of a shared Wi-Fi link; smaller thresholds re-plan on noise.
/// - `prefixes` = true: see Device selection.
///
/// For the throughput objective the value is the steady-state cycle time with many requests in flight: the
/// largest per-token busy time of any device (compute, or storage reads when they cannot be hidden) or link.
/// When the plan is expressible in the standard semantics (v = 1, nothing offloaded), the plan's notes also
/// give its standard value.
public struct Lime: Partitioner {
  public static let name = "lime"
  public static let summary =
    "LIME: interleaved pipeline + offloading, offloading-aware allocation, online memory adaptation"

  public let maxInterleave: Int
  public let prefetchDepth: Int
  public let steadyTokens: Int
  public let offload: Bool
  public let replanThreshold: Double
  public let prefixes: Bool

  public init(parameters: inout Parameters) throws(PartitionError) {
    maxInterleave = try parameters.int("max_interleave", default: 4)
    prefetchDepth = try parameters.int("prefetch_depth", default: 2)
    steadyTokens = try parameters.int("steady_tokens", default: 3)
    offload = try parameters.bool("offload", default: true)
    replanThreshold = try parameters.double("replan_threshold", default: 0.1)
    prefixes = try parameters.bool("prefixes", default: true)
    if maxInterleave < 1 || prefetchDepth < 1 || steadyTokens < 1 {
      throw .badParameter(algorithm: Self.name, "max_interleave, prefetch_depth and steady_tokens must be ≥ 1")
    }
  }

  public init(
    maxInterleave: Int = 4, prefetchDepth: Int = 2, steadyTokens: Int = 3, offload: Bool = true,
    replanThreshold: Double = 0.1, prefixes: Bool = true
  ) {
    self.maxInterleave = maxInterleave
    self.prefetchDepth = prefetchDepth
    self.steadyTokens = steadyTokens
    self.offload = offload
    self.replanThreshold = replanThreshold
    self.prefixes = prefixes
  }

  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    let model = LimeCostModel(p, prefetchDepth: prefetchDepth, steadyTokens: steadyTokens, offload: offload)
    let all = [p.sourceIndex] + (0..<p.deviceCount).filter { $0 != p.sourceIndex }
    let objective = p.problem.objective
    var best: LimeCostModel.Allocation?
    var why: String?
    for size in (prefixes ? 1 : all.count)...all.count {
      let ring = Array(all.prefix(size))
      // Ring order must be linked all the way round.
      if let (a, b) = zip(ring, ring.dropFirst() + [ring[0]]).first(where: { $0 != $1 && !p.hasLink($0, $1) }) {
        why = "lime's ring needs a link from \(p.name(a)) to \(p.name(b))"
        continue
      }
      var bestOfRing: LimeCostModel.Allocation?
      // One device has no ring to interleave over: its chunks would only hand activations to itself.
      for v in 1...(ring.count == 1 ? 1 : maxInterleave) where ring.count * v <= p.layerCount {
        let a = model.optimise(ring: ring, interleave: v)
        if a.cost.feasible, bestOfRing == nil || a.cost.value(objective) < bestOfRing!.cost.value(objective) {
          bestOfRing = a
        }
        // Interleaving only helps to hide loads: with nothing offloaded, more chunks only add hops.
        if let b = bestOfRing, !b.offloaded.contains(true) { break }
      }
      if let a = bestOfRing {
        if best == nil || a.cost.value(objective) < best!.cost.value(objective) { best = a }
      } else {
        why = model.diagnose(ring: ring)
      }
    }
    guard let best else { throw .infeasible(why ?? model.diagnose(ring: all)) }
    return model.plan(best, algorithm: Self.name)
  }
}

/// LIME's offloading-aware cost model and allocation search (see `Lime`).
public struct LimeCostModel: Sendable {
  let p: IndexedProblem
  public let prefetchDepth: Int
  let steadyTokens: Int
  let offload: Bool
  /// Whether offloaded layers are read ahead of use (LIME) or only when a computation needs one (on demand).
  let prefetch: Bool

  public init(
    _ p: IndexedProblem, prefetchDepth: Int = 2, steadyTokens: Int = 3, offload: Bool = true, prefetch: Bool = true
  ) {
    self.p = p
    self.prefetchDepth = prefetchDepth
    self.steadyTokens = steadyTokens
    self.offload = offload
    self.prefetch = prefetch
  }

  struct Chunk: Hashable {
    var device: Int
    var first: Int
    var end: Int
  }

  struct Cost {
    var feasible: Bool
    var latency: Double
    var cycle: Double
    var excessBytes: Double
    func value(_ o: Objective) -> Double { o == .latency ? latency : cycle }
    /// Infeasible allocations rank by how far over memory they are, so local search can walk out of them.
    func score(_ o: Objective) -> Double { feasible ? value(o) : 1e12 + excessBytes }
  }

  struct Allocation {
    var chunks: [Chunk]
    var offloaded: [Bool]
    var cost: Cost
  }

  func weight(_ layer: Int) -> Double { p.problem.layers[layer].weightBytes ?? p.problem.layers[layer].memoryBytes }
  func kv(_ layer: Int) -> Double { max(0, p.problem.layers[layer].memoryBytes - weight(layer)) }
  func storage(_ d: Int) -> Double? {
    guard offload, let s = p.problem.devices[d].storageBytesPerS, s > 0 else { return nil }
    return s
  }

  /// The embedding and the head: never offloaded (LIME offloads transformer layers; the engine reads only decoder
  /// blocks from storage).
  func pinned(_ layer: Int) -> Bool { layer == 0 || layer == p.layerCount - 1 }

  /// Layers of device `d` in priority order: its pinned layers, then chunk-head-first.
  func priority(_ chunks: [Chunk], device d: Int) -> [Int] {
    let mine = chunks.filter { $0.device == d }
    var out: [Int] = []
    var rank = 0
    while out.count < mine.reduce(0, { $0 + $1.end - $1.first }) {
      for c in mine where c.first + rank < c.end { out.append(c.first + rank) }
      rank += 1
    }
    return out.filter(pinned) + out.filter { !pinned($0) }
  }

  /// Device `d`'s residency rule for these chunks: chunk-head-first priority, its memory, its staging slots.
  func policy(_ chunks: [Chunk], device d: Int) -> ResidencyPolicy.Device {
    let layers = chunks.filter { $0.device == d }.flatMap { Array($0.first..<$0.end) }
    var policy = ResidencyPolicy.Device(
      device: p.name(d), layers: layers, weightBytes: layers.map(weight), budgetBytes: p.memory[d],
      priority: priority(chunks, device: d), stagingSlots: prefetchDepth, canOffload: storage(d) != nil)
    policy.pinned = layers.filter(pinned)
    policy.prefetch = prefetch
    return policy
  }

  /// Resident layers of device `d` given `kvBytes` of KV cache in memory: chunk-head-first while memory lasts
  /// (`ResidencyPolicy.Device.residency`, the rule the simulator and workers apply during the run). Nil when
  /// even the KV cache and staging slots do not fit.
  func residency(_ chunks: [Chunk], device d: Int, kvBytes: Double) -> Set<Int>? {
    let order = priority(chunks, device: d)
    guard
      let mask = ResidencyPolicy.Device.residentMask(
        priorityWeights: order.map(weight), budget: p.memory[d] - kvBytes,
        slots: prefetchDepth, canOffload: storage(d) != nil),
      !zip(order, mask).contains(where: { pinned($0) && !$1 })
    else { return nil }
    return Set(zip(order, mask).filter(\.1).map(\.0))
  }

  /// KV bytes the plan reserves on device d (from the problem's memory − weight per layer).
  func plannedKV(_ chunks: [Chunk], device d: Int) -> Double {
    chunks.filter { $0.device == d }.reduce(0.0) { acc, c in acc + (c.first..<c.end).reduce(0.0) { $0 + kv($1) } }
  }

  func evaluate(_ chunks: [Chunk]) -> (Cost, [Bool]) {
    var offloaded = [Bool](repeating: false, count: p.layerCount)
    var feasible = true
    var excess = 0.0
    for d in Set(chunks.map(\.device)) {
      let kvBytes = plannedKV(chunks, device: d)
      if let resident = residency(chunks, device: d, kvBytes: kvBytes) {
        for c in chunks where c.device == d {
          for l in c.first..<c.end where !resident.contains(l) { offloaded[l] = true }
        }
      } else {
        feasible = false
        let weights = chunks.filter { $0.device == d }.reduce(0.0) { a, c in
          a + (c.first..<c.end).reduce(0.0) { $0 + weight($1) }
        }
        let need =
          kvBytes
          + (storage(d) != nil
            ? Double(prefetchDepth)
              * (chunks.filter { $0.device == d }.flatMap { Array($0.first..<$0.end) }.map(weight).max() ?? 0)
            : weights)
        excess += max(need - p.memory[d], 1)
      }
    }
    for c in chunks where !p.compute(c.device, c.first, c.end).isFinite {
      feasible = false
      excess += 1e9
    }
    let (latency, cycle) = timeline(chunks, offloaded: offloaded)
    return (Cost(feasible: feasible, latency: latency, cycle: cycle, excessBytes: excess), offloaded)
  }

  /// Per-token latency (last of `steadyTokens` tokens) and the steady-state pipelined cycle time. Offloaded
  /// layers are read through each device's `OffloadTimeline` in virtual time, as the simulator and the workers
  /// read them.
  func timeline(_ chunks: [Chunk], offloaded: [Bool]) -> (latency: Double, cycle: Double) {
    var reads: [Int: VirtualOffloadTimeline] = [:]
    for d in Set(chunks.map(\.device)) {
      guard let bw = storage(d) else { continue }
      let order = chunks.filter { $0.device == d }.flatMap { Array($0.first..<$0.end) }.filter { offloaded[$0] }
      if order.isEmpty { continue }
      reads[d] = VirtualOffloadTimeline(
        order: order, slots: prefetchDepth, readSeconds: (0..<p.layerCount).map { weight($0) / bw },
        prefetch: prefetch)
    }
    var t = 0.0
    var lastLatency = 0.0
    for _ in 0..<steadyTokens {
      let start = t
      var finish = t
      for (ci, c) in chunks.enumerated() {
        var ready = finish
        if ci > 0 { ready += p.transfer(chunks[ci - 1].device, c.device, afterLayer: c.first - 1) }
        var prevEnd = ready
        for l in c.first..<c.end {
          let compute = p.compute(c.device, l, l + 1)
          if offloaded[l], var r = reads[c.device] {
            prevEnd = r.acquire(l, at: prevEnd) + compute
            r.release(l, at: prevEnd)
            reads[c.device] = r
          } else {
            prevEnd += compute
          }
        }
        finish = prevEnd
      }
      if let last = chunks.last { finish += p.returnTransfer(from: last.device) }
      lastLatency = finish - start
      t = finish
    }
    // Cycle: the busiest resource per token when many requests keep every device busy.
    var cycle = 0.0
    for d in Set(chunks.map(\.device)) {
      let mine = chunks.filter { $0.device == d }
      let compute = mine.reduce(0.0) { $0 + p.compute(d, $1.first, $1.end) }
      var loads = 0.0
      if let bw = storage(d) {
        for c in mine { for l in c.first..<c.end where offloaded[l] { loads += weight(l) / bw } }
      }
      cycle = max(cycle, max(compute, loads))
    }
    for (ci, c) in chunks.enumerated() where ci > 0 {
      cycle = max(cycle, p.transfer(chunks[ci - 1].device, c.device, afterLayer: c.first - 1))
    }
    if let last = chunks.last { cycle = max(cycle, p.returnTransfer(from: last.device)) }
    return (lastLatency, cycle)
  }

  /// Initial chunk sizes by water-filling: shares ∝ device speed, capped at what each device holds resident;
  /// what no device can hold resident is spread ∝ speed (and offloaded). Then local search: move one layer
  /// from any chunk to any other while the cost model improves.
  func optimise(ring: [Int], interleave v: Int) -> Allocation {
    let n = p.layerCount
    let count = ring.count * v
    let speeds = (0..<count).map { c -> Double in
      let d = ring[c % ring.count]
      let t = p.compute(d, 0, n)
      return t.isFinite && t > 0 ? 1 / t : 1e-9
    }
    let meanLayer = p.memoryPrefix[n] / Double(n)
    let capacity = (0..<count).map { c -> Double in
      max(1, (p.memory[ring[c % ring.count]] / Double(v) / max(meanLayer, 1e-12)).rounded(.down))
    }
    // Water-filling of real-valued shares.
    var share = [Double](repeating: 0, count: count)
    var open = Set(0..<count)
    var remaining = Double(n)
    while remaining > 1e-9 && !open.isEmpty {
      let total = open.reduce(0.0) { $0 + speeds[$1] }
      var clamped = false
      for c in open.sorted() {
        let want = remaining * speeds[c] / total
        if share[c] + want > capacity[c] {
          remaining -= capacity[c] - share[c]
          share[c] = capacity[c]
          open.remove(c)
          clamped = true
        }
      }
      if !clamped {
        for c in open { share[c] += remaining * speeds[c] / total }
        remaining = 0
      }
    }
    if remaining > 1e-9 {  // Not everything fits resident: spread the rest by speed.
      let total = speeds.reduce(0, +)
      for c in 0..<count { share[c] += remaining * speeds[c] / total }
    }
    // Integer sizes ≥ 1 by largest remainder.
    var sizes = share.map { max(1, Int($0.rounded(.down))) }
    while sizes.reduce(0, +) < n {
      let i = (0..<count).max { share[$0] - Double(sizes[$0]) < share[$1] - Double(sizes[$1]) }!
      sizes[i] += 1
    }
    while sizes.reduce(0, +) > n,
      let i = (0..<count).filter({ sizes[$0] > 1 }).max(by: {
        Double(sizes[$0]) - share[$0] < Double(sizes[$1]) - share[$1]
      })
    {
      sizes[i] -= 1
    }
    func chunks(_ sizes: [Int]) -> [Chunk] {
      var first = 0
      return sizes.enumerated().map { c, s in
        defer { first += s }
        return Chunk(device: ring[c % ring.count], first: first, end: first + s)
      }
    }
    let objective = p.problem.objective
    var current = sizes
    var (cost, offloaded) = evaluate(chunks(current))
    var rounds = 0
    while rounds < 2 * n {
      rounds += 1
      var bestMove: ([Int], Cost, [Bool])?
      for from in 0..<count where current[from] > 1 {
        for to in 0..<count where to != from {
          var s = current
          s[from] -= 1
          s[to] += 1
          let (c, o) = evaluate(chunks(s))
          if c.score(objective) < (bestMove?.1.score(objective) ?? cost.score(objective)) * (1 - 1e-12) {
            bestMove = (s, c, o)
          }
        }
      }
      guard let m = bestMove else { break }
      (current, cost, offloaded) = m
    }
    return Allocation(chunks: chunks(current), offloaded: offloaded, cost: cost)
  }

  func diagnose(ring: [Int]) -> String {
    // Every device of the ring computes some layers: one without a time for a layer cannot take part.
    if let why = Infeasibility.uncomputable(p, devices: ring) { return why }
    if let d = ring.first(where: { d in (0..<p.layerCount).contains { !p.compute(d, $0, $0 + 1).isFinite } }),
      let l = (0..<p.layerCount).first(where: { !p.compute(d, $0, $0 + 1).isFinite })
    {
      return
        "lime's ring (\(ring.map(p.name).joined(separator: " → "))) puts layers on every device, and \(p.name(d)) has no compute time for layer \(p.problem.layers[l].name)"
    }
    let noStorage = ring.filter { storage($0) == nil }
    let need = p.memoryPrefix.last!
    if noStorage.count == ring.count {
      return
        "the model needs \(Bytes(need)); the devices offer \(Bytes(ring.reduce(0.0) { $0 + p.memory[$1] })) and none can offload (no storage_bytes_per_s)"
    }
    let kvAll = (0..<p.layerCount).reduce(0.0) { $0 + kv($1) }
    return
      "even with offloading, the KV cache (\(Bytes(kvAll))) and staging slots (\(prefetchDepth) per device) do not fit the devices' memory"
  }

  func plan(_ a: Allocation, algorithm: String) -> Plan {
    let objective = p.problem.objective
    let stages = a.chunks.map { c in
      Plan.Stage(
        device: p.name(c.device), firstLayer: c.first, endLayer: c.end,
        offloadedLayers: (c.first..<c.end).filter { a.offloaded[$0] })
    }
    let devices = Set(a.chunks.map(\.device)).count
    let v = a.chunks.count / max(devices, 1)
    let offloadedCount = a.offloaded.filter { $0 }.count
    var notes = [
      "interleave \(v) (\(a.chunks.count) chunks on \(devices) devices); \(offloadedCount) of \(p.layerCount) layers offloaded; "
        + (prefetch ? "prefetch depth \(prefetchDepth)" : "read on demand")
    ]
    let spans = a.chunks.map { StandardSemantics.Span(device: $0.device, first: $0.first, end: $0.end) }
    var plan = Plan(
      algorithm: algorithm, objective: objective, stages: stages,
      microBatches: objective == .throughput ? devices : 1, valueSeconds: a.cost.value(objective),
      valueModel: .timeline, exact: false, explanation: "", notes: [],
      residency: ResidencyPolicy(devices: Set(a.chunks.map(\.device)).sorted().map { policy(a.chunks, device: $0) }))
    if plan.isStandard && StandardSemantics.violations(spans, p).isEmpty {
      let e = StandardSemantics.evaluate(spans, p)
      notes.append("standard semantics value: \(e.value(objective)) s")
      plan.explanation = e.explanation(stageCount: spans.count)
    } else {
      let loads = a.chunks.reduce(0.0) { acc, c in
        acc
          + (storage(c.device).map { bw in
            (c.first..<c.end).filter { a.offloaded[$0] }.reduce(0.0) { $0 + weight($1) / bw }
          } ?? 0)
      }
      plan.explanation =
        "\(a.chunks.count) chunks on \(devices) devices (interleave \(v)); \(offloadedCount) layers offloaded, \(String(format: loads * 1e3, digits: 1)) ms of storage reads per token, \(prefetch ? "overlapped" : "on demand")"
    }
    plan.notes = notes
    return plan
  }
}

extension Lime {
  /// A new plan if re-planning for `problem` (e.g. changed link bandwidths) lowers the predicted value of
  /// `current` by more than `replan_threshold`; nil to keep the current plan.
  public func replan(_ current: Plan, for problem: PartitionProblem) throws(PartitionError) -> Plan? {
    let p = try IndexedProblem(problem)
    let model = LimeCostModel(p, prefetchDepth: prefetchDepth, steadyTokens: steadyTokens, offload: offload)
    var chunks: [LimeCostModel.Chunk] = []
    for s in current.stages {
      guard let d = p.index(of: s.device) else {
        throw .invalidProblem(["plan device '\(s.device)' is not in the problem"])
      }
      chunks.append(.init(device: d, first: s.firstLayer, end: s.endLayer))
    }
    let (cost, _) = model.evaluate(chunks)
    let fresh = try partition(p)
    let currentValue = cost.feasible ? cost.value(p.problem.objective) : .infinity
    return fresh.valueSeconds < currentValue * (1 - replanThreshold) ? fresh : nil
  }
}
