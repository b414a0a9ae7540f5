public import Partitioning  // Partitioner, IndexedProblem, Plan: the public API in docs/partitioning.md

/// Fills devices in order of speed (total decode time of the model), each with as many layers as fit.
public struct FastestFirst: Partitioner {
  public static let name = "fastest-first"
  public static let summary = "fill the fastest devices first, as many layers as fit"
  let maxDevices: Int

  public init(parameters: inout Parameters) throws(PartitionError) {
    maxDevices = try parameters.int("max_devices", default: Int.max)  // parameters are read by name
    if maxDevices < 1 { throw .badParameter(algorithm: Self.name, "max_devices must be at least 1") }
  }

  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    let others = (0..<p.deviceCount).filter { $0 != p.sourceIndex }
      .sorted { p.compute($0, 0, p.layerCount) < p.compute($1, 0, p.layerCount) }
    let order = Array(([p.sourceIndex] + others).prefix(maxDevices))
    var spans: [StandardSemantics.Span] = []
    var first = 0
    for d in order where first < p.layerCount {
      var end = first
      while end < p.layerCount && p.memory(first, end + 1) <= p.memory[d] { end += 1 }
      if end > first { spans.append(.init(device: d, first: first, end: end)) }
      first = end
    }
    if first < p.layerCount { throw .infeasible(Infeasibility.diagnose(p, devices: order)) }
    try requireValid(spans, p, what: Self.name)  // names the broken rule, e.g. a missing link
    return StandardSemantics.plan(spans, p, algorithm: Self.name, exact: false)
  }
}
