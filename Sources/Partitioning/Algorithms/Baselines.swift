import EdgeLabCore
public import Pipeline

/// The naive even split: contiguous, near-equal layer counts over all devices in declared order, source first.
/// The first `layers mod devices` stages get one layer more. Infeasible when a share does not fit its device
/// or two consecutive devices have no link (the naive split does not adapt).
public struct EvenSplit: Partitioner {
  public static let name = "even"
  public static let summary = "naive even split: near-equal contiguous layer counts over all devices, source first"
  public init(parameters: inout Parameters) throws(PartitionError) {}

  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    let order = [p.sourceIndex] + (0..<p.deviceCount).filter { $0 != p.sourceIndex }
    let spans = Self.evenSpans(layers: p.layerCount, devices: Array(order.prefix(p.layerCount)))
    try requireValid(spans, p, what: "the even split")
    return StandardSemantics.plan(spans, p, algorithm: Self.name, exact: false)
  }

  /// Near-equal contiguous spans of `layers` over `devices` in order.
  static func evenSpans(layers: Int, devices: [Int]) -> [StandardSemantics.Span] {
    let n = devices.count
    var spans: [StandardSemantics.Span] = []
    var first = 0
    for (s, d) in devices.enumerated() {
      let size = layers / n + (s < layers % n ? 1 : 0)
      spans.append(.init(device: d, first: first, end: first + size))
      first += size
    }
    return spans
  }
}

/// Edge-Solo (EdgeShard's baseline): the whole model on the source device.
public struct EdgeSolo: Partitioner {
  public static let name = "edge-solo"
  public static let summary = "EdgeShard baseline: the whole model on the source device"
  public init(parameters: inout Parameters) throws(PartitionError) {}

  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    let spans = [StandardSemantics.Span(device: p.sourceIndex, first: 0, end: p.layerCount)]
    let need = p.memoryPrefix.last!
    if need > p.memory[p.sourceIndex] {
      throw .infeasible(
        "the model needs \(Bytes(need)); the source \(p.name(p.sourceIndex)) offers \(Bytes(p.memory[p.sourceIndex]))")
    }
    try requireValid(spans, p, what: "edge-solo")
    return StandardSemantics.plan(spans, p, algorithm: Self.name, exact: true)
  }
}

/// Picks EdgeShard's "cloud" device: the `cloud` parameter, else the device marked `server`, else the
/// non-source device with the most memory (ties: the fastest on the whole model, then declaration order).
func cloudDevice(_ p: IndexedProblem, named: String?, algorithm: String) throws(PartitionError) -> Int {
  if let named {
    guard let d = p.index(of: named) else {
      throw .badParameter(algorithm: algorithm, "cloud device '\(named)' is not in the problem")
    }
    guard d != p.sourceIndex else {
      throw .badParameter(algorithm: algorithm, "the cloud device must differ from the source")
    }
    return d
  }
  let others = (0..<p.deviceCount).filter { $0 != p.sourceIndex }
  if let server = others.first(where: { p.problem.devices[$0].server == true }) { return server }
  guard
    let best = others.max(by: { a, b in
      if p.memory[a] != p.memory[b] { return p.memory[a] < p.memory[b] }
      return p.compute(a, 0, p.layerCount) > p.compute(b, 0, p.layerCount)
    })
  else { throw .infeasible("cloud-edge needs a second device besides the source") }
  return best
}

/// Cloud-edge even split (EdgeShard baseline): the source and the cloud device, half the layers each.
public struct CloudEdgeEven: Partitioner {
  public static let name = "cloud-edge-even"
  public static let summary = "EdgeShard baseline: source + cloud device, layers split in half"
  let cloud: String?
  public init(parameters: inout Parameters) throws(PartitionError) { cloud = try parameters.string("cloud") }

  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    let c = try cloudDevice(p, named: cloud, algorithm: Self.name)
    let spans = EvenSplit.evenSpans(
      layers: p.layerCount, devices: p.layerCount > 1 ? [p.sourceIndex, c] : [p.sourceIndex])
    try requireValid(spans, p, what: "the cloud-edge even split")
    return StandardSemantics.plan(spans, p, algorithm: Self.name, exact: false)
  }
}

/// Cloud-edge optimised split (EdgeShard baseline): the best single cut between the source (layers 0..<k) and
/// the cloud device (k..<N) under the objective; k = N (all on the source) is allowed.
public struct CloudEdgeOptimal: Partitioner {
  public static let name = "cloud-edge-opt"
  public static let summary = "EdgeShard baseline: source + cloud device, best single split point"
  let cloud: String?
  public init(parameters: inout Parameters) throws(PartitionError) { cloud = try parameters.string("cloud") }

  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    let c = try cloudDevice(p, named: cloud, algorithm: Self.name)
    var best: (Double, [StandardSemantics.Span])?
    for k in 1...p.layerCount {
      let spans: [StandardSemantics.Span] =
        k == p.layerCount
        ? [.init(device: p.sourceIndex, first: 0, end: k)]
        : [.init(device: p.sourceIndex, first: 0, end: k), .init(device: c, first: k, end: p.layerCount)]
      guard StandardSemantics.violations(spans, p).isEmpty else { continue }
      let v = StandardSemantics.evaluate(spans, p).value(p.problem.objective)
      if best == nil || v < best!.0 { best = (v, spans) }
    }
    guard let best else { throw .infeasible(Infeasibility.diagnose(p, devices: [p.sourceIndex, c])) }
    return StandardSemantics.plan(best.1, p, algorithm: Self.name, exact: false)
  }
}

/// Throws `.infeasible` naming the first broken rule, phrased for a fixed (non-searching) algorithm.
///
/// - Parameters:
///   - spans: the plan's stages in order.
///   - what: the algorithm's name, which starts the message.
/// - Throws: `PartitionError.infeasible` with the first rule the spans break (memory, a missing link, a gap).
public func requireValid(_ spans: [StandardSemantics.Span], _ p: IndexedProblem, what: String) throws(PartitionError) {
  let v = StandardSemantics.violations(spans, p)
  if let first = v.first { throw .infeasible("\(what): \(first)") }
}
