public import EdgeLabCore
public import Pipeline

/// The semantics every algorithm is judged by, so their values are comparable.
///
/// A stage is a contiguous layer range on one device; each device holds at most one stage; stage 0 starts at
/// layer 0 on the source; a stage's layers fit its device's memory. The transfer into a stage on j from a
/// stage on k that ended at layer i−1 costs `output_bytes(i−1) / bandwidth(k→j) + latency(k→j)`. With
/// `return_to_source`, the last layer's output also travels back to the source (free if already there).
/// **Latency** is total compute plus all transfers; **throughput** is the largest of every stage's compute,
/// every transfer and the return transfer (the pipeline's bottleneck step) — with C requests in flight
/// (`requests_in_flight`), the larger of that and latency / C: C micro-batches circulating through a pipeline
/// whose round trip is the latency deliver C per round trip, and never more than one per bottleneck step.
public struct StandardEvaluation: Sendable, Equatable {
  public struct Item: Sendable, Equatable {
    public var label: String
    public var seconds: Double
    public var isTransfer: Bool
  }
  /// Stage computes and transfers in pipeline order (the return transfer last).
  public var items: [Item]
  public var latency: Double
  public var bottleneck: Double

  public func value(_ objective: Objective) -> Double { objective == .latency ? latency : bottleneck }

  /// Seconds per token with `inFlight` requests in the pipeline: max(latency / C, bottleneck); the bottleneck
  /// for nil (a full pipeline).
  public func cycle(inFlight: Double?) -> Double {
    guard let c = inFlight else { return bottleneck }
    return Swift.max(latency / c, bottleneck)
  }

  /// The value of `objective`, throughput counting the requests in flight.
  public func value(_ objective: Objective, inFlight: Double?) -> Double {
    objective == .latency ? latency : cycle(inFlight: inFlight)
  }

  /// "3 stages; bottleneck: link agx0→nx1, 41% of step time".
  public func explanation(stageCount: Int) -> String {
    guard let worst = items.max(by: { $0.seconds < $1.seconds }), latency > 0, latency.isFinite else {
      return "\(stageCount) stage\(stageCount == 1 ? "" : "s")"
    }
    let share = Int((100 * worst.seconds / latency).rounded())
    return "\(stageCount) stage\(stageCount == 1 ? "" : "s"); bottleneck: \(worst.label), \(share)% of step time"
  }
}

public enum StandardSemantics {
  /// A stage as device index and half-open layer range.
  public struct Span: Hashable, Sendable {
    public var device: Int
    public var first: Int
    public var end: Int
    public init(device: Int, first: Int, end: Int) {
      self.device = device
      self.first = first
      self.end = end
    }
  }

  /// Evaluates stages under the standard semantics (∞ for a missing link). Sums in pipeline order, the same
  /// order the dynamic programmes accumulate in.
  public static func evaluate(_ spans: [Span], _ p: IndexedProblem) -> StandardEvaluation {
    var items: [StandardEvaluation.Item] = []
    var latency = 0.0
    var bottleneck = 0.0
    for (s, span) in spans.enumerated() {
      if s > 0 {
        let prev = spans[s - 1]
        let t = p.transfer(prev.device, span.device, afterLayer: span.first - 1)
        items.append(.init(label: "link \(p.name(prev.device))→\(p.name(span.device))", seconds: t, isTransfer: true))
        latency += t
        bottleneck = max(bottleneck, t)
      }
      let c = p.compute(span.device, span.first, span.end)
      items.append(.init(label: "stage on \(p.name(span.device))", seconds: c, isTransfer: false))
      latency += c
      bottleneck = max(bottleneck, c)
    }
    if let last = spans.last, p.problem.returnToSource, last.device != p.sourceIndex {
      let r = p.returnTransfer(from: last.device)
      items.append(
        .init(label: "link \(p.name(last.device))→\(p.name(p.sourceIndex)) (return)", seconds: r, isTransfer: true))
      latency += r
      bottleneck = max(bottleneck, r)
    }
    return StandardEvaluation(items: items, latency: latency, bottleneck: bottleneck)
  }

  /// Every way `spans` breaks the standard rules, as sentences; empty for a valid plan.
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
      if !seen.insert(span.device).inserted { v.append("device \(p.name(span.device)) holds more than one stage") }
      if span.first >= span.end { v.append("stage \(s) on \(p.name(span.device)) is empty") }
      if s > 0 && span.first != spans[s - 1].end { v.append("stage \(s) does not start where stage \(s - 1) ends") }
      let m = p.memory(span.first, span.end)
      if m > p.memory[span.device] {
        v.append("stage \(s) needs \(Bytes(m)) on \(p.name(span.device)), which offers \(Bytes(p.memory[span.device]))")
      }
      if !p.compute(span.device, span.first, span.end).isFinite {
        v.append("\(p.name(span.device)) has no time for some layer of stage \(s)")
      }
      if s > 0 && !p.hasLink(spans[s - 1].device, span.device) {
        v.append("no link from \(p.name(spans[s - 1].device)) to \(p.name(span.device))")
      }
    }
    if p.problem.returnToSource, let last = spans.last, last.device != p.sourceIndex,
      !p.hasLink(last.device, p.sourceIndex)
    {
      v.append("no link from \(p.name(last.device)) to \(p.name(p.sourceIndex))")
    }
    return v
  }

  /// A plan for `spans` with its value and explanation under the standard semantics.
  /// A throughput plan's value counts the problem's requests in flight, whatever the algorithm optimised.
  public static func plan(_ spans: [Span], _ p: IndexedProblem, algorithm: String, exact: Bool, notes: [String] = [])
    -> Plan
  {
    let e = evaluate(spans, p)
    let objective = p.problem.objective
    return Plan(
      algorithm: algorithm, objective: objective,
      stages: spans.map { Plan.Stage(device: p.name($0.device), firstLayer: $0.first, endLayer: $0.end) },
      microBatches: objective == .throughput
        ? max(1, spans.count + (p.problem.returnToSource && spans.last?.device != p.sourceIndex ? 1 : 0)) : 1,
      valueSeconds: e.value(objective, inFlight: p.problem.requestsInFlight), exact: exact,
      explanation: e.explanation(stageCount: spans.count), notes: notes)
  }

  /// The plan's stages as spans (nil if a device name is unknown).
  public static func spans(of plan: Plan, _ p: IndexedProblem) -> [Span]? {
    var out: [Span] = []
    for s in plan.stages {
      guard let d = p.index(of: s.device) else { return nil }
      out.append(Span(device: d, first: s.firstLayer, end: s.endLayer))
    }
    return out
  }
}

/// Names the constraint that makes a problem (restricted to some devices) infeasible.
public enum Infeasibility {
  public static func diagnose(_ p: IndexedProblem, devices allowed: [Int]? = nil) -> String {
    proven(p, devices: allowed) ?? unproven(p, devices: allowed)
  }

  /// What most likely binds when no simple check proves infeasibility (a search found no plan).
  public static func unproven(_ p: IndexedProblem, devices allowed: [Int]? = nil) -> String {
    let devs = allowed ?? Array(0..<p.deviceCount)
    if devs.contains(where: { d in (0..<p.layerCount).contains { !p.compute(d, $0, $0 + 1).isFinite } }) {
      return
        "some devices have no compute time for some layers, and no plan runs every layer on a device that has a time for it within memory"
    }
    return "no assignment of contiguous layer ranges, one per device, fits the devices' memory along a linked path"
  }

  /// A constraint that no plan can meet, when one of the simple checks finds it (memory in total, the source,
  /// the largest layer, reachability, the return link, a layer no device can compute); nil when infeasibility
  /// would need a search to prove.
  public static func proven(_ p: IndexedProblem, devices allowed: [Int]? = nil) -> String? {
    let devs = allowed ?? Array(0..<p.deviceCount)
    let need = p.memoryPrefix.last!
    let offer = devs.reduce(0.0) { $0 + p.memory[$1] }
    if need > offer { return "the model needs \(Bytes(need)); the devices offer \(Bytes(offer))" }
    if p.problem.layers[0].memoryBytes > p.memory[p.sourceIndex] {
      return
        "the source \(p.name(p.sourceIndex)) offers \(Bytes(p.memory[p.sourceIndex])) but layer \(p.problem.layers[0].name) needs \(Bytes(p.problem.layers[0].memoryBytes))"
    }
    if let biggest = p.problem.layers.indices.max(by: {
      p.problem.layers[$0].memoryBytes < p.problem.layers[$1].memoryBytes
    }),
      let roomiest = devs.max(by: { p.memory[$0] < p.memory[$1] }),
      p.problem.layers[biggest].memoryBytes > p.memory[roomiest]
    {
      return
        "layer \(p.problem.layers[biggest].name) needs \(Bytes(p.problem.layers[biggest].memoryBytes)); the largest device (\(p.name(roomiest))) offers \(Bytes(p.memory[roomiest]))"
    }
    // Reachability from the source over links between allowed devices.
    var reached: Set<Int> = [p.sourceIndex]
    var frontier = [p.sourceIndex]
    while let k = frontier.popLast() {
      for j in devs where !reached.contains(j) && p.hasLink(k, j) {
        reached.insert(j)
        frontier.append(j)
      }
    }
    let reachOffer = reached.reduce(0.0) { $0 + p.memory[$1] }
    if need > reachOffer {
      let cut = devs.filter { !reached.contains($0) }.map(p.name)
      return
        "the model needs \(Bytes(need)) but the devices reachable from the source offer \(Bytes(reachOffer)); no link from \(p.name(p.sourceIndex)) (or the devices it reaches) to \(cut.joined(separator: ", "))"
    }
    if p.problem.returnToSource {
      let back = devs.filter { $0 != p.sourceIndex && p.hasLink($0, p.sourceIndex) }
      if back.isEmpty && need > p.memory[p.sourceIndex] {
        let others = devs.filter { $0 != p.sourceIndex }.map(p.name)
        return
          "the model does not fit the source alone, and no device has a link back to it to return the output (no link from \(others.isEmpty ? "any device" : others.joined(separator: ", ")) to \(p.name(p.sourceIndex)))"
      }
    }
    return uncomputable(p, devices: devs)
  }

  /// "layer L has no compute time on any device" for the first layer none of `devices` has a time for.
  public static func uncomputable(_ p: IndexedProblem, devices: [Int]) -> String? {
    guard let l = (0..<p.layerCount).first(where: { l in !devices.contains { p.compute($0, l, l + 1).isFinite } })
    else {
      return nil
    }
    return "layer \(p.problem.layers[l].name) has no compute time on any device"
  }
}
