import EdgeLabCore

/// Summary statistics of a run, as stored in the results file and plotted.
///
/// Percentiles use linear interpolation between closest ranks (NumPy's default), over completed requests.
public struct RunSummary: Hashable, Sendable, Codable {
  public var requestsCompleted: Int
  public var requestsTotal: Int
  public var outputTokens: Int
  /// First arrival to last completion.
  public var makespanSeconds: Double
  /// Output tokens per second over the makespan (NaN when no token was produced, e.g. an infeasible run).
  public var throughputTokensPerSecond: Double
  public var ttft: Distribution
  public var tpot: Distribution
  public var endToEnd: Distribution
  public var bytesOnLinks: Double
  public var peakMemoryBytes: Double
  /// Output tokens the workload asked for per second of its arrival span (first to last arrival): the offered
  /// load. NaN when every request arrived at once (a closed loop's are released by completions).
  public var offeredLoadTokensPerSecond: Double
  /// With a service level (the run's facts `slo_ttft_s`, `slo_tpot_s`): the fraction of all requests that
  /// completed within it, and those requests (and their output tokens) per second of the makespan.
  public var sloAttainment: Double
  public var goodputRequestsPerSecond: Double
  public var goodputTokensPerSecond: Double
  /// Accuracy, edge ratio, tokens and bytes on each side, speculation's acceptance (NaN without queries).
  public var collaboration: CollaborationSummary

  public struct Distribution: Hashable, Sendable, Codable {
    public var mean: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var max: Double
    public static let empty = Distribution(mean: .nan, p50: .nan, p90: .nan, p99: .nan, max: .nan)

    public init(mean: Double, p50: Double, p90: Double, p99: Double, max: Double) {
      self.mean = mean
      self.p50 = p50
      self.p90 = p90
      self.p99 = p99
      self.max = max
    }

    public init(_ values: [Double]) {
      guard !values.isEmpty else {
        self = .empty
        return
      }
      let s = values.sorted()
      mean = s.reduce(0, +) / Double(s.count)
      p50 = Self.percentile(s, 50)
      p90 = Self.percentile(s, 90)
      p99 = Self.percentile(s, 99)
      max = s.last!
    }

    /// Linear interpolation between closest ranks of sorted values (NumPy's "linear" method).
    public static func percentile(_ sorted: [Double], _ q: Double) -> Double {
      guard !sorted.isEmpty else { return .nan }
      let pos = q / 100 * Double(sorted.count - 1)
      let lo = Int(pos.rounded(.down))
      let hi = Swift.min(lo + 1, sorted.count - 1)
      return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - Double(lo))
    }
  }

  public init(_ outcome: RunOutcome) {
    collaboration = CollaborationSummary(outcome.queries)
    let done = outcome.requests.filter(\.isComplete)
    requestsCompleted = done.count
    requestsTotal = outcome.requests.count
    outputTokens = outcome.requests.reduce(0) { $0 + $1.tokenTimes.count }
    let start = outcome.requests.map(\.arrival).min() ?? 0
    let end = outcome.requests.compactMap { $0.completion ?? $0.tokenTimes.last }.max() ?? start
    makespanSeconds = end - start
    throughputTokensPerSecond = makespanSeconds > 0 && outputTokens > 0 ? Double(outputTokens) / makespanSeconds : .nan
    ttft = Distribution(done.compactMap(\.ttft))
    tpot = Distribution(done.compactMap(\.tpot))
    endToEnd = Distribution(done.compactMap(\.endToEnd))
    bytesOnLinks = outcome.links.reduce(0) { $0 + $1.bytes }
    peakMemoryBytes = outcome.devices.map(\.peakMemoryBytes).max() ?? 0
    let arrivals = outcome.requests.map(\.arrival).filter(\.isFinite)
    let span = (arrivals.max() ?? 0) - (arrivals.min() ?? 0)
    let asked = outcome.requests.reduce(0) { $0 + $1.outputTokens }
    offeredLoadTokensPerSecond = span > 0 ? Double(asked) / span : .nan
    func bound(_ k: String) -> Double? {
      guard case .number(let v)? = outcome.facts[k] else { return nil }
      return v
    }
    let ttftBound = bound("slo_ttft_s")
    let tpotBound = bound("slo_tpot_s")
    if ttftBound == nil && tpotBound == nil {
      (sloAttainment, goodputRequestsPerSecond, goodputTokensPerSecond) = (.nan, .nan, .nan)
    } else {
      let good = done.filter { r in
        (ttftBound.map { b in (r.ttft ?? .infinity) <= b } ?? true)
          && (tpotBound.map { b in r.tokenTimes.count < 2 || (r.tpot ?? .infinity) <= b } ?? true)
      }
      sloAttainment = requestsTotal > 0 ? Double(good.count) / Double(requestsTotal) : .nan
      goodputRequestsPerSecond = makespanSeconds > 0 ? Double(good.count) / makespanSeconds : .nan
      goodputTokensPerSecond =
        makespanSeconds > 0 ? Double(good.reduce(0) { $0 + $1.tokenTimes.count }) / makespanSeconds : .nan
    }
  }

  /// Flat (name, value) pairs with units in the names, for attributes and exports.
  public var scalars: [(String, Double)] {
    var out: [(String, Double)] = [
      ("requests_completed", Double(requestsCompleted)), ("requests_total", Double(requestsTotal)),
      ("output_tokens", Double(outputTokens)), ("makespan_s", makespanSeconds),
      ("throughput_tokens_per_s", throughputTokensPerSecond),
    ]
    for (name, d) in [("ttft", ttft), ("tpot", tpot), ("e2e", endToEnd)] {
      out += [
        ("\(name)_mean_s", d.mean), ("\(name)_p50_s", d.p50), ("\(name)_p90_s", d.p90),
        ("\(name)_p99_s", d.p99), ("\(name)_max_s", d.max),
      ]
    }
    out += [
      ("bytes_on_links", bytesOnLinks), ("peak_memory_bytes", peakMemoryBytes),
      ("offered_load_tokens_per_s", offeredLoadTokensPerSecond), ("slo_attainment", sloAttainment),
      ("goodput_requests_per_s", goodputRequestsPerSecond), ("goodput_tokens_per_s", goodputTokensPerSecond),
    ]
    return out + collaboration.scalars
  }
}
