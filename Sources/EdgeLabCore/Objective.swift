/// What the pipeline is optimised for.
public enum Objective: String, Codable, Hashable, Sendable, CaseIterable {
  /// One request at a time: total compute plus all transfers per token.
  case latency
  /// Many requests pipelined: the slowest stage or transfer.
  case throughput
}
