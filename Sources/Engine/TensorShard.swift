/// One member's part of a tensor-parallel group's decoder blocks: whole KV heads (with the query heads that use
/// them, and their columns of the output projection) and a range of FFN columns (rows of the gate and up
/// projections, columns of the down projection). The members' shards partition the heads and the columns.
public struct TensorShard: Hashable, Sendable {
  public var kvHeads: Range<Int>
  public var ffnColumns: Range<Int>

  public init(kvHeads: Range<Int>, ffnColumns: Range<Int>) {
    self.kvHeads = kvHeads
    self.ffnColumns = ffnColumns
  }

  /// Member `i`'s shard of a group whose members hold `kvHeads[j]` heads and `ffnColumns[j]` columns, in member
  /// order (each member's range follows the previous member's).
  public static func member(_ i: Int, kvHeads: [Int], ffnColumns: [Int]) -> TensorShard {
    let h0 = kvHeads.prefix(i).reduce(0, +)
    let c0 = ffnColumns.prefix(i).reduce(0, +)
    return TensorShard(kvHeads: h0..<(h0 + kvHeads[i]), ffnColumns: c0..<(c0 + ffnColumns[i]))
  }
}

/// How the members of a tensor-parallel group exchange activations while they run their shards of the same
/// blocks: the first member's hidden states to every member before the first block, and after each attention
/// and each FFN the sum of every member's partial result, added in member order (member 0's, plus member 1's,
/// …) so that every member holds the same bits and a run is reproducible.
public protocol GroupExchange {
  associatedtype Failure: Error
  /// Replaces `values` with the first member's (the first member's own are sent, not changed).
  func broadcast(_ values: inout [Float]) throws(Failure)
  /// Replaces `values` with the members' sum, in member order.
  func allReduce(_ values: inout [Float]) throws(Failure)
}

/// The exchange of a stage that is not shared: nothing to do.
public struct Unshared: GroupExchange {
  public init() {}
  public func broadcast(_ values: inout [Float]) {}
  public func allReduce(_ values: inout [Float]) {}
}
