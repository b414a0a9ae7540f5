import EdgeLabCore
public import Pipeline

/// Galaxy's heterogeneity-aware tensor parallelism (Ye et al., "Galaxy: A Resource-Efficient Collaborative
/// Edge AI System for In-situ Transformer Inference", INFOCOM 2024): one stage holding every layer, shared by the
/// source and the fastest other devices, each member's KV heads and FFN columns sized to its measured speed
/// (`GroupShares.fitted`: the slowest member's attention and FFN as short as whole heads and columns allow, within
/// each member's memory), a
/// ring all-reduce after the attention and after the FFN. It tries every count of members (fastest first) and
/// keeps the best plan that fits memory. Galaxy's sequence parallelism and its overlap of communication with
/// computation are not modelled: the all-reduces are counted in full.
public struct Galaxy: Partitioner {
  public static let name = "galaxy"
  public static let summary =
    "Galaxy: every block split over the source and the fastest devices, shares sized to each device's speed (ring all-reduce)"
  let devices: Int?

  public init(parameters: inout Parameters) throws(PartitionError) {
    let n = try parameters.int("devices", default: 0)
    if n < 0 { throw .badParameter(algorithm: Self.name, "devices must be ≥ 1 (or 0 for the best count)") }
    devices = n == 0 ? nil : n
  }

  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    guard let shape = p.problem.shape else {
      throw .infeasible("the problem has no model shape; tensor parallelism needs the heads and FFN columns")
    }
    let blockTime = (0..<p.deviceCount).map { p.compute($0, shape.firstBlock, shape.endBlock) }
    let others = (0..<p.deviceCount).filter { $0 != p.sourceIndex && blockTime[$0].isFinite }
      .sorted { (blockTime[$0], $0) < (blockTime[$1], $1) }
    let order = [p.sourceIndex] + others
    if let devices, devices > order.count {
      throw .infeasible("devices \(devices): the problem has \(order.count) devices that can run the blocks")
    }
    let counts = devices.map { [$0] } ?? Array(1...min(order.count, shape.kvHeads))
    var best: (value: Double, span: GroupSemantics.Span)?
    var reasons: [String] = []
    for k in counts {
      let members = Array(order.prefix(k))
      var span = GroupSemantics.Span(device: p.sourceIndex, first: 0, end: p.layerCount)
      if k > 1 {
        guard k <= shape.kvHeads,
          let sized = GroupShares.fitted(members, leader: p.sourceIndex, first: 0, end: p.layerCount, p)
        else {
          reasons.append(
            "\(k) devices: no shares of the model's \(shape.kvHeads) KV heads and \(shape.ffnColumns) columns fit their memory"
          )
          continue
        }
        span = GroupSemantics.Span(
          members: members, kvHeads: sized.kvHeads, ffnColumns: sized.ffnColumns, collective: .ring, first: 0,
          end: p.layerCount)
      }
      let problems = GroupSemantics.violations([span], p)
      if !problems.isEmpty {
        reasons.append("\(k) device\(k == 1 ? "" : "s"): " + problems.joined(separator: "; "))
        continue
      }
      let v = GroupSemantics.evaluate([span], p).value(p.problem.objective)
      if best == nil || v < best!.value { best = (v, span) }
    }
    guard let best else { throw .infeasible(reasons.joined(separator: "; ")) }
    var plan = GroupSemantics.plan([best.span], p, algorithm: Self.name, exact: false)
    let k = best.span.members.count
    plan.explanation =
      k > 1
      ? "\(k) devices share every block, heads \(best.span.kvHeads) and columns \(best.span.ffnColumns) sized to their speed"
      : "one device: sharing the blocks would not be faster"
    return plan
  }
}
