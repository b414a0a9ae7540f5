public import Partitioning

/// An example of a researcher's own group plan: the source shares every decoder block with the device it
/// reaches fastest (the lowest one-way latency, then the widest link), each holding heads and columns sized to
/// its speed within its memory, joined by a star all-reduce. One file here and one line in Registry.swift; the
/// lab's `GroupSemantics` values and checks the plan as it does `galaxy`'s and `hybrid`'s.
public struct NearestPair: Partitioner {
  public static let name = "nearest-pair"
  public static let summary = "the source and its nearest device share every block, shares sized to speed (example)"

  public init(parameters: inout Parameters) throws(PartitionError) {}

  public func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    let s = p.sourceIndex
    let peers = (0..<p.deviceCount).filter { $0 != s && p.hasLink(s, $0) && p.hasLink($0, s) }
    guard
      let peer = peers.min(by: { (p.latency[s][$0], -p.bandwidth[s][$0]) < (p.latency[s][$1], -p.bandwidth[s][$1]) })
    else { throw .infeasible("the source has no device it can exchange partial sums with") }
    let members = [s, peer]
    guard let shares = GroupShares.fitted(members.sorted(), leader: s, first: 0, end: p.layerCount, p) else {
      throw .infeasible("no shares of the blocks fit \(p.name(s)) and \(p.name(peer))")
    }
    // `fitted` sizes the members in device order; the plan lists the source first.
    let order = members.map { members.sorted().firstIndex(of: $0)! }
    let span = GroupSemantics.Span(
      members: members, kvHeads: order.map { shares.kvHeads[$0] }, ffnColumns: order.map { shares.ffnColumns[$0] },
      collective: .star, first: 0, end: p.layerCount)
    let problems = GroupSemantics.violations([span], p)
    if !problems.isEmpty { throw .infeasible(problems.joined(separator: "; ")) }
    return GroupSemantics.plan([span], p, algorithm: Self.name, exact: false)
  }
}
