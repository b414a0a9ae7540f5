/// Devices that share the layers of one pipeline stage (tensor parallelism): each member computes its share of
/// every decoder block's attention heads (whole KV heads, with the query heads that use them) and FFN columns,
/// and after the attention and after the FFN the members' partial sums are joined by an all-reduce. The first
/// member is the stage's device: activations arrive there and leave from there, and it runs the embedding and
/// the head when the stage holds them.
///
/// The cost of a collective (`allReduceSeconds`) is the one model the partition algorithms and the simulator
/// share: a ring all-reduce is 2(n − 1) steps, each a message of 1/n of the values over every member's link at
/// once; a star (TPI-LLM's) sends every partial sum to the first member and the sum back, two steps whose bytes
/// all cross the first member's interface.
public struct TensorGroup: Codable, Hashable, Sendable {
  public enum Collective: String, Codable, Hashable, Sendable, CaseIterable {
    case ring
    case star
  }

  public var members: [String]
  /// KV heads of each member, in member order (they sum to the model's).
  public var kvHeads: [Int]
  /// FFN (intermediate) columns of each member (they sum to the model's).
  public var ffnColumns: [Int]
  public var collective: Collective
  /// Bytes per activation value on the wire (4 FP32, 2 FP16, 34/32 for 8-bit blocks).
  public var wireBytesPerValue: Double

  public init(
    members: [String], kvHeads: [Int], ffnColumns: [Int], collective: Collective = .ring,
    wireBytesPerValue: Double = 4
  ) {
    self.members = members
    self.kvHeads = kvHeads
    self.ffnColumns = ffnColumns
    self.collective = collective
    self.wireBytesPerValue = wireBytesPerValue
  }

  enum CodingKeys: String, CodingKey {
    case members, collective
    case kvHeads = "kv_heads"
    case ffnColumns = "ffn_columns"
    case wireBytesPerValue = "wire_bytes_per_value"
  }

  /// Even shares of a model's KV heads and FFN columns over `members`; nil when they do not divide evenly.
  public static func even(
    _ members: [String], kvHeads: Int, ffnColumns: Int, collective: Collective = .ring,
    wireBytesPerValue: Double = 4
  ) -> TensorGroup? {
    let n = members.count
    guard n >= 1, kvHeads % n == 0, ffnColumns % n == 0 else { return nil }
    return TensorGroup(
      members: members, kvHeads: Array(repeating: kvHeads / n, count: n),
      ffnColumns: Array(repeating: ffnColumns / n, count: n), collective: collective,
      wireBytesPerValue: wireBytesPerValue)
  }

  /// Everything wrong with the group for a stage on `device` of a model with `kvHeads` KV heads and
  /// `ffnColumns` FFN columns, each naming the field.
  public func problems(device: String, kvHeads totalHeads: Int, ffnColumns totalColumns: Int) -> [String] {
    var p: [String] = []
    if members.count < 2 { p.append("members: a group has at least two devices") }
    if Set(members).count != members.count { p.append("members: a device appears twice") }
    if members.first != device { p.append("members: the first member must be the stage's device '\(device)'") }
    if kvHeads.count != members.count || ffnColumns.count != members.count {
      p.append("kv_heads and ffn_columns: one share per member (\(members.count))")
      return p
    }
    if kvHeads.contains(where: { $0 < 1 }) || kvHeads.reduce(0, +) != totalHeads {
      p.append(
        "kv_heads \(kvHeads): every member needs at least one whole KV head, and the shares must sum to the model's \(totalHeads)"
      )
    }
    if ffnColumns.contains(where: { $0 < 1 }) || ffnColumns.reduce(0, +) != totalColumns {
      p.append(
        "ffn_columns \(ffnColumns): every member needs at least one column, and the shares must sum to the model's \(totalColumns)"
      )
    }
    if !(wireBytesPerValue > 0 && wireBytesPerValue.isFinite) { p.append("wire_bytes_per_value must be positive") }
    return p
  }

  /// Member `i`'s fraction of a decoder block's work: its heads' share of the attention and its columns' share
  /// of the FFN, weighted by the parameters of each (`attention` and `ffn`, in any unit).
  public func share(_ i: Int, attention: Double, ffn: Double) -> Double {
    let heads = Double(kvHeads[i]) / Double(max(1, kvHeads.reduce(0, +)))
    let columns = Double(ffnColumns[i]) / Double(max(1, ffnColumns.reduce(0, +)))
    let total = attention + ffn
    return total > 0 ? (attention * heads + ffn * columns) / total : heads
  }

  /// Member `i`'s fraction of the KV heads (and so of a block's KV cache).
  public func headShare(_ i: Int) -> Double { Double(kvHeads[i]) / Double(max(1, kvHeads.reduce(0, +))) }

  /// Seconds of a decoder block's computation when member `i` alone would take `memberSeconds[i]` for the whole
  /// block: the attention and the FFN each wait for their slowest member (the all-reduce between them is a
  /// barrier), with `attention` and `ffn` (parameters, in any unit) weighing the two parts. A member's part takes
  /// its share of the whole × `ratio(member, share)` (narrower matrices run less efficiently; 1 where not
  /// measured). The collectives are not included.
  public func blockSeconds(
    _ memberSeconds: [Double], attention: Double, ffn: Double,
    ratio: (_ member: Int, _ share: Double) -> Double = { _, _ in 1 }
  ) -> Double {
    let total = attention + ffn
    let a = total > 0 ? attention / total : 1
    let heads = Double(max(1, kvHeads.reduce(0, +)))
    let columns = Double(max(1, ffnColumns.reduce(0, +)))
    var slowestAttention = 0.0
    var slowestFFN = 0.0
    for (i, t) in memberSeconds.enumerated() {
      let sa = Double(kvHeads[i]) / heads
      let sf = Double(ffnColumns[i]) / columns
      slowestAttention = max(slowestAttention, a * sa * t * ratio(i, sa))
      slowestFFN = max(slowestFFN, (1 - a) * sf * t * ratio(i, sf))
    }
    return slowestAttention + slowestFFN
  }

  /// Seconds of one all-reduce of `bytes` among `members` members over links of `latency` seconds and
  /// `bandwidth` bytes/s (the group's slowest).
  public static func allReduceSeconds(
    _ collective: Collective, members n: Int, bytes: Double, latency: Double, bandwidth: Double
  ) -> Double {
    guard n > 1 else { return 0 }
    let m = Double(n)
    switch collective {
    case .ring: return 2 * (m - 1) * (latency + bytes / m / bandwidth)
    case .star: return 2 * latency + 2 * (m - 1) * bytes / bandwidth
    }
  }

  /// The directed links a collective among `members` uses: each member to the next around a ring, or the first
  /// member to every other and back in a star. Its slowest link times every step.
  public static func links<Member>(_ members: [Member], _ collective: Collective) -> [(Member, Member)] {
    let n = members.count
    guard n > 1 else { return [] }
    switch collective {
    case .ring: return (0..<n).map { (members[$0], members[($0 + 1) % n]) }
    case .star: return members.dropFirst().flatMap { [(members[0], $0), ($0, members[0])] }
    }
  }

  /// All-reduces per decoder block: after the attention and after the FFN.
  public static let allReducesPerBlock = 2
}
