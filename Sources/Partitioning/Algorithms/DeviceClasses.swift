/// Devices grouped into classes of interchangeable ones: same memory, same per-layer times, same links to
/// every device outside the class (both directions), and one common link between any two members. Swapping
/// two members of a class maps every plan to one of equal value, so the dynamic programmes count how many
/// members of each class are used instead of which — EdgeShard's testbed (12 identical AGX Orin, 2 Orin NX,
/// one server) has 13·3·2 = 78 count vectors instead of 2¹⁵ subsets.
///
/// The source is always a class of its own. Grouping is greedy (sound, not always maximal).
struct DeviceClasses {
  var members: [[Int]]
  var classOf: [Int]
  var sourceClass: Int

  init(_ p: IndexedProblem, useSymmetry: Bool = true) {
    var members: [[Int]] = [[p.sourceIndex]]
    var intra: [(bw: Double, lat: Double)?] = [nil]
    for d in 0..<p.deviceCount where d != p.sourceIndex {
      var placed = false
      if useSymmetry {
        for c in 1..<members.count where Self.canJoin(d, members[c], intra: intra[c], p) {
          if members[c].count == 1 { intra[c] = (p.bandwidth[members[c][0]][d], p.latency[members[c][0]][d]) }
          members[c].append(d)
          placed = true
          break
        }
      }
      if !placed {
        members.append([d])
        intra.append(nil)
      }
    }
    self.members = members
    var classOf = [Int](repeating: 0, count: p.deviceCount)
    for (c, ms) in members.enumerated() { for d in ms { classOf[d] = c } }
    self.classOf = classOf
    sourceClass = 0
  }

  private static func canJoin(_ d: Int, _ cls: [Int], intra: (bw: Double, lat: Double)?, _ p: IndexedProblem) -> Bool {
    let r = cls[0]
    if p.memory[d] != p.memory[r] || p.timePrefix[d] != p.timePrefix[r] { return false }
    if p.problem.devices[d].storageBytesPerS != p.problem.devices[r].storageBytesPerS { return false }
    let inClass = Set(cls)
    for x in 0..<p.deviceCount where x != d && !inClass.contains(x) {
      if p.bandwidth[d][x] != p.bandwidth[r][x] || p.latency[d][x] != p.latency[r][x] { return false }
      if p.bandwidth[x][d] != p.bandwidth[x][r] || p.latency[x][d] != p.latency[x][r] { return false }
    }
    let common = intra ?? (p.bandwidth[r][d], p.latency[r][d])
    for m in cls {
      if p.bandwidth[m][d] != common.bw || p.latency[m][d] != common.lat { return false }
      if p.bandwidth[d][m] != common.bw || p.latency[d][m] != common.lat { return false }
    }
    return true
  }

  var count: Int { members.count }
  var capacities: [Int] { members.map(\.count) }
}
