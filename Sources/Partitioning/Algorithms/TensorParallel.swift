import EdgeLabCore
public import Pipeline

/// distributed-llama's tensor parallelism: one stage holding every layer, its decoder blocks shared evenly by
/// 2^n devices (the source first, then the others in declared order); every block's attention heads and FFN
/// columns divide among them and two all-reduces per block join the partial sums (a ring). `devices` sets n's
/// count (default: the most devices, a power of two, that divide the KV heads and FFN columns evenly).
public struct TensorParallel: Partitioner {
  public static let name = "tp"
  public static let summary =
    "distributed-llama: every block split evenly over 2^n devices (whole KV heads), ring all-reduce after attention and FFN"
  let devices: Int?
  public init(parameters: inout Parameters) throws(PartitionError) {
    let n = try parameters.int("devices", default: 0)
    devices = n == 0 ? nil : n
  }
  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    try TensorParallelPlanner(algorithm: Self.name, collective: .ring, devices: devices).plan(p)
  }
}

/// TPI-LLM's variant: the same even split, joined by a star all-reduce (every partial sum to the source and
/// the sum back: two latency steps, where a ring takes 2(n − 1)), which wins where link latency dominates.
public struct TensorParallelStar: Partitioner {
  public static let name = "tp-star"
  public static let summary =
    "TPI-LLM: every block split evenly over 2^n devices, star all-reduce through the source (latency-bound links)"
  let devices: Int?
  public init(parameters: inout Parameters) throws(PartitionError) {
    let n = try parameters.int("devices", default: 0)
    devices = n == 0 ? nil : n
  }
  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    try TensorParallelPlanner(algorithm: Self.name, collective: .star, devices: devices).plan(p)
  }
}

/// The even tensor-parallel plan, valued by `GroupSemantics` (decode, batch 1).
struct TensorParallelPlanner {
  let algorithm: String
  let collective: TensorGroup.Collective
  let devices: Int?

  func plan(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    guard let shape = p.problem.shape else {
      throw .infeasible("the problem has no model shape; tensor parallelism needs the heads and FFN columns")
    }
    let order = [p.sourceIndex] + (0..<p.deviceCount).filter { $0 != p.sourceIndex }
    // Every member's columns a whole number of the weights' quantization blocks.
    func divides(_ n: Int) -> Bool { shape.kvHeads % n == 0 && (shape.ffnColumns / shape.columnQuantum) % n == 0 }
    let n: Int
    if let devices {
      guard devices >= 1, devices & (devices - 1) == 0 else {
        throw .badParameter(algorithm: algorithm, "devices must be a power of two (1, 2, 4, …), not \(devices)")
      }
      guard devices <= order.count else {
        throw .infeasible("devices \(devices): the problem has \(order.count)")
      }
      guard divides(devices) else {
        throw .infeasible(
          "\(devices) devices do not divide the model's \(shape.kvHeads) KV heads and \(shape.ffnColumns) FFN columns evenly"
        )
      }
      n = devices
    } else {
      var m = 1
      while m * 2 <= order.count && divides(m * 2) { m *= 2 }
      n = m
    }
    let members = Array(order.prefix(n))
    let group = TensorGroup.even(
      members.map(p.name), kvHeads: shape.kvHeads, ffnColumns: shape.ffnColumns, collective: collective)!
    let span = GroupSemantics.Span(
      members: members, kvHeads: group.kvHeads, ffnColumns: group.ffnColumns, collective: collective, first: 0,
      end: p.layerCount)
    let problems = GroupSemantics.violations([span], p)
    if !problems.isEmpty { throw .infeasible(problems.joined(separator: "; ")) }
    var plan = GroupSemantics.plan([span], p, algorithm: algorithm, exact: false)
    let network =
      Double((shape.firstBlock..<shape.endBlock).count * TensorGroup.allReducesPerBlock)
      * GroupSemantics.allReduceSeconds(members, collective, p, shape: shape)
    let percent = plan.valueSeconds > 0 ? Int((network / plan.valueSeconds * 100).rounded()) : 0
    plan.explanation =
      n > 1
      ? "\(n) devices share every block (\(collective.rawValue) all-reduce); the network \(percent)% of a token"
      : "one device: nothing to share"
    return plan
  }
}
