import EdgeLabCore
public import Pipeline

/// Offloading baselines for models that do not fit: a partition that does not plan for offloading, and what
/// does not fit a device read from its storage when a computation needs it — no interleaving, no read ahead,
/// one staging slot — as llama.cpp's memory-mapped weights behave when the file is larger than memory (pages are
/// faulted in on use). These are what LIME is compared against.
///
/// - `even-ondemand`: near-equal contiguous layer counts over all devices (source first), as `even`.
/// - `edgeshard-ondemand`: EdgeShard's dynamic programme (the latency or throughput form, by the experiment's
///   objective) solved as if each device's memory were scaled up by one common factor just large enough for the
///   model to fit (so layers go ∝ memory where memory binds, and by speed otherwise), then run with the devices'
///   real memory.
///
/// Residency on each device follows the same rule as LIME's (the embedding and the head pinned, then layers in
/// order while memory lasts), so the comparison isolates LIME's interleaving, prefetching and allocation.
public struct EvenOnDemand: Partitioner {
  public static let name = "even-ondemand"
  public static let summary = "even split; layers that do not fit are read from storage on demand (no prefetch)"
  public init(parameters: inout Parameters) throws(PartitionError) {}

  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    let order = [p.sourceIndex] + (0..<p.deviceCount).filter { $0 != p.sourceIndex }
    let spans = EvenSplit.evenSpans(layers: p.layerCount, devices: Array(order.prefix(p.layerCount)))
    return try OnDemandLoading.plan(spans, p, algorithm: Self.name)
  }
}

public struct EdgeShardOnDemand: Partitioner {
  public static let name = "edgeshard-ondemand"
  public static let summary =
    "EdgeShard's DP with memory scaled until the model fits; what does not fit is read on demand (no prefetch)"
  let latency: EdgeShardLatency
  let throughput: EdgeShardThroughput

  public init(parameters: inout Parameters) throws(PartitionError) {
    latency = try EdgeShardLatency(parameters: &parameters)
    // The baseline LIME is compared against: EdgeShard's objective as the paper states it (a full pipeline).
    throughput = try EdgeShardThroughput(parameters: &parameters, countsInFlight: false, name: Self.name)
  }

  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    let need = p.memoryPrefix.last!
    let offered = p.memory.reduce(0, +)
    var relaxed = p.problem
    if need > offered && offered > 0 {
      let factor = need / offered * 1.01
      for i in relaxed.devices.indices { relaxed.devices[i].memoryBytes *= factor }
    }
    let q = try IndexedProblem(relaxed)
    let planned = p.problem.objective == .latency ? try latency.partition(q) : try throughput.partition(q)
    var spans: [StandardSemantics.Span] = []
    for s in planned.stages {
      guard let d = p.index(of: s.device) else { throw .invalidProblem(["plan device '\(s.device)' is unknown"]) }
      spans.append(.init(device: d, first: s.firstLayer, end: s.endLayer))
    }
    return try OnDemandLoading.plan(spans, p, algorithm: Self.name)
  }
}

/// Residency and the predicted value of a fixed partition whose devices read what does not fit on demand.
enum OnDemandLoading {
  static func plan(_ spans: [StandardSemantics.Span], _ p: IndexedProblem, algorithm: String) throws(PartitionError)
    -> Plan
  {
    let model = LimeCostModel(p, prefetchDepth: 1, steadyTokens: 3, offload: true, prefetch: false)
    let chunks = spans.map { LimeCostModel.Chunk(device: $0.device, first: $0.first, end: $0.end) }
    let (cost, offloaded) = model.evaluate(chunks)
    guard cost.feasible else { throw .infeasible(model.diagnose(ring: spans.map(\.device))) }
    return model.plan(.init(chunks: chunks, offloaded: offloaded, cost: cost), algorithm: algorithm)
  }
}
