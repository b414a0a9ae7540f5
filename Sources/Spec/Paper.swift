public import EdgeLabCore

/// A number a paper published, stated next to the experiment that reproduces it: after a run the lab prints
/// the paper's value, its own, and their ratio (`edgelab run`, `edgelab show`), and keeps the comparison in the
/// results file's `paper` table.
///
/// A number is either absolute (`metric` of the runs labelled `algorithm`) or a comparison (`relative_to`: the
/// speed-up of `algorithm` over that baseline at the same sweep point — baseline ÷ algorithm for times, algorithm
/// ÷ baseline for throughput; "50% lower latency" is a speed-up of 2). `at` pins sweep values by label (as `show`
/// prints them, e.g. `["bandwidth": "50Mbit/s"]`); where several points match, `best` takes the one the paper's
/// wording selects ("up to …": the largest), otherwise the mean. A published range is `value`…`high`.
public struct PaperNumber: Codable, Hashable, Sendable {
  public enum Metric: String, Codable, Hashable, Sendable, CaseIterable {
    /// Mean time per output token, seconds.
    case tpot = "tpot_mean"
    /// Median time to first token, seconds.
    case ttft = "ttft_p50"
    /// Output tokens per second.
    case throughput
    /// Mean end-to-end request latency, seconds.
    case endToEnd = "e2e_mean"

    public var higherIsBetter: Bool { self == .throughput }
  }

  /// What the paper says, in a few words, with where (e.g. "EdgeShard 7B latency (Fig. 7)").
  public var claim: String
  public var metric: Metric
  /// The runs' label (the algorithm's name, or its `label`).
  public var algorithm: String
  /// The baseline's label for a comparison; nil for an absolute number.
  public var relativeTo: String?
  /// Sweep values by label that select the runs.
  public var at: [String: String]
  /// The paper's value (seconds, tokens/s, or a speed-up), and the top of a published range.
  public var value: Double
  public var high: Double?
  /// Over several matching points: the best (largest speed-up, shortest time, highest throughput) or the mean.
  public var best: Bool

  public init(
    _ claim: String, metric: Metric, algorithm: String, relativeTo: String? = nil, at: [String: String] = [:],
    value: Double, high: Double? = nil, best: Bool = false
  ) {
    self.claim = claim
    self.metric = metric
    self.algorithm = algorithm
    self.relativeTo = relativeTo
    self.at = at
    self.value = value
    self.high = high
    self.best = best
  }

  enum CodingKeys: String, CodingKey {
    case claim, metric, algorithm
    case relativeTo = "relative_to"
    case at, value, high, best
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    claim = try c.decode(String.self, forKey: .claim)
    metric = try c.decode(Metric.self, forKey: .metric)
    algorithm = try c.decode(String.self, forKey: .algorithm)
    relativeTo = try c.decodeIfPresent(String.self, forKey: .relativeTo)
    at = try c.decodeIfPresent([String: String].self, forKey: .at) ?? [:]
    value = try c.decode(Double.self, forKey: .value)
    high = try c.decodeIfPresent(Double.self, forKey: .high)
    best = try c.decodeIfPresent(Bool.self, forKey: .best) ?? false
  }

  /// The lab's value over the paper's: 1 inside a published range, else against its nearer end.
  public func ratio(lab: Double) -> Double {
    if let high, lab >= value && lab <= high { return 1 }
    if let high, lab > high { return lab / high }
    return lab / value
  }

  /// Problems with the number itself: the field (under `field`) and what is wrong.
  public func problems(field: String) -> [(field: String, message: String)] {
    var out: [(String, String)] = []
    if !(value > 0 && value.isFinite) { out.append((field + ".value", "must be a finite number > 0 (it is \(value))")) }
    if let high, !(high >= value && high.isFinite) {
      out.append((field + ".high", "must be a finite number ≥ value (it is \(high))"))
    }
    if claim.isEmpty { out.append((field + ".claim", "must say what the paper claims")) }
    return out
  }
}
