import EdgeLabCore
public import Metrics
public import Results

/// The strategies (and algorithms) of one results file ranked per metric, as the edge–cloud benchmarks rank
/// them: each label's value is the mean over its completed runs (every sweep point and repetition), and each
/// metric ranks the labels that have a value (competition ranking: ties share a rank, the next rank skips).
public struct Leaderboard: Hashable, Sendable {
  /// A metric of the board, with the direction that is better.
  public enum Metric: String, CaseIterable, Hashable, Sendable {
    case accuracy
    case edgeRatio = "edge_ratio"
    case ttft = "ttft_p50"
    case tpot = "tpot_mean"
    case endToEnd = "e2e_mean"
    case throughput
    case bytesToCloud = "bytes_to_cloud"
    case acceptanceRate = "acceptance_rate"
    case tokensPerVerification = "tokens_per_verification"

    public var title: String {
      switch self {
      case .accuracy: "accuracy"
      case .edgeRatio: "edge ratio"
      case .ttft: "TTFT p50"
      case .tpot: "TPOT mean"
      case .endToEnd: "end-to-end mean"
      case .throughput: "throughput"
      case .bytesToCloud: "bytes to cloud"
      case .acceptanceRate: "acceptance rate"
      case .tokensPerVerification: "tokens / verification"
      }
    }

    /// Accuracy, throughput and the share answered on the edge are better high; times and traffic low. The
    /// speculation metrics describe a draft rather than rank it, but more accepted tokens is the better draft.
    public var higherIsBetter: Bool {
      switch self {
      case .accuracy, .edgeRatio, .throughput, .acceptanceRate, .tokensPerVerification: true
      case .ttft, .tpot, .endToEnd, .bytesToCloud: false
      }
    }

    public func value(_ s: RunSummary) -> Double {
      switch self {
      case .accuracy: s.collaboration.accuracy
      case .edgeRatio: s.collaboration.edgeRatio
      case .ttft: s.ttft.p50
      case .tpot: s.tpot.mean
      case .endToEnd: s.endToEnd.mean
      case .throughput: s.throughputTokensPerSecond
      case .bytesToCloud: s.collaboration.bytesToCloud
      case .acceptanceRate: s.collaboration.acceptanceRate
      case .tokensPerVerification: s.collaboration.tokensPerVerification
      }
    }

    /// The value with its unit, for tables.
    public func format(_ v: Double) -> String {
      guard v.isFinite else { return "-" }
      switch self {
      case .accuracy, .edgeRatio, .acceptanceRate: return String(format: v * 100, digits: 1) + "%"
      case .ttft, .tpot, .endToEnd:
        return v < 1 ? String(format: v * 1e3, digits: 1) + " ms" : String(format: v, digits: 3) + " s"
      case .throughput: return String(format: v, digits: 2) + " tok/s"
      case .bytesToCloud:
        if v >= 1e6 { return String(format: v / 1e6, digits: 2) + " MB" }
        return v >= 1e3 ? String(format: v / 1e3, digits: 1) + " kB" : String(format: v, digits: 0) + " B"
      case .tokensPerVerification: return String(format: v, digits: 2)
      }
    }
  }

  public struct Entry: Hashable, Sendable {
    public var label: String
    /// Completed runs that the means are over.
    public var runs: Int
    public var values: [Metric: Double]
    public var ranks: [Metric: Int]
  }

  /// Labels in the order of the board: by accuracy, then end-to-end latency, then name.
  public var entries: [Entry]
  /// The metrics that at least one label has a value for, in `Metric.allCases` order.
  public var metrics: [Metric]

  public init(runs: [RunRecord]) {
    var order: [String] = []
    var summaries: [String: [RunSummary]] = [:]
    for r in runs {
      if summaries[r.label] == nil {
        order.append(r.label)
        summaries[r.label] = []
      }
      if r.outcome.status == .complete { summaries[r.label]!.append(r.summary) }
    }
    var entries = order.map { label -> Entry in
      let s = summaries[label]!
      var values: [Metric: Double] = [:]
      for m in Metric.allCases {
        let finite = s.map { m.value($0) }.filter(\.isFinite)
        values[m] = finite.isEmpty ? .nan : finite.reduce(0, +) / Double(finite.count)
      }
      return Entry(label: label, runs: s.count, values: values, ranks: [:])
    }
    let metrics = Metric.allCases.filter { m in entries.contains { $0.values[m]!.isFinite } }
    for m in metrics {
      let ranks = Leaderboard.ranks(entries.map { $0.values[m]! }, higherIsBetter: m.higherIsBetter)
      for i in entries.indices { entries[i].ranks[m] = ranks[i] }
    }
    entries.sort { a, b in
      let (x, y) = (a.values[.accuracy]!, b.values[.accuracy]!)
      if x.isFinite != y.isFinite { return x.isFinite }
      if x.isFinite, x != y { return x > y }
      let (u, v) = (a.values[.endToEnd]!, b.values[.endToEnd]!)
      if u.isFinite != v.isFinite { return u.isFinite }
      if u.isFinite, u != v { return u < v }
      return a.label < b.label
    }
    self.entries = entries
    self.metrics = metrics
  }

  /// Competition ranks (1, 2, 2, 4) of the finite values; NaN and infinities get none.
  public static func ranks(_ values: [Double], higherIsBetter: Bool) -> [Int?] {
    values.map { v in
      guard v.isFinite else { return nil }
      // Values within a relative 1e-9 tie: sums of the same times in another order differ in the last bits.
      let slack = 1e-9 * max(abs(v), 1e-300)
      return 1 + values.filter { $0.isFinite && (higherIsBetter ? $0 > v + slack : $0 < v - slack) }.count
    }
  }

  /// The best label for one metric at each sweep point (its parameters, as "label=value" pairs), from the
  /// mean over repetitions; points where no label has a value are left out.
  public static func winners(runs: [RunRecord], metric: Metric) -> [(point: String, label: String, value: Double)] {
    var points: [Int] = []
    var names: [Int: String] = [:]
    var values: [Int: [String: [Double]]] = [:]
    var labels: [String] = []
    for r in runs where r.outcome.status == .complete {
      let v = metric.value(r.summary)
      guard v.isFinite else { continue }
      if names[r.point] == nil {
        points.append(r.point)
        names[r.point] = r.parameters.map { "\($0.label)=\($0.value.stringValue ?? $0.value.description)" }
          .joined(separator: " ")
      }
      if !labels.contains(r.label) { labels.append(r.label) }
      values[r.point, default: [:]][r.label, default: []].append(v)
    }
    return points.sorted().compactMap { p in
      let means = labels.compactMap { l in values[p]?[l].map { (l, $0.reduce(0, +) / Double($0.count)) } }
      let best = means.min { a, b in metric.higherIsBetter ? a.1 > b.1 : a.1 < b.1 }
      return best.map { (names[p]!, $0.0, $0.1) }
    }
  }
}

extension Leaderboard {
  /// The board as a plain-text table: one row per label, each cell its value and rank ("20.8% #1").
  public func text() -> String {
    let titles: [String] = metrics.map { m in m.title.uppercased() + (m.higherIsBetter ? " ↑" : " ↓") }
    var t = TextTable(header: ["STRATEGY / ALGORITHM", "RUNS"] + titles, rightAligned: Set(1...(metrics.count + 1)))
    for e in entries {
      var row: [String] = [e.label, String(e.runs)]
      for m in metrics {
        let v = e.values[m] ?? .nan
        let rank: String = e.ranks[m].map { " #" + String($0) } ?? ""
        row.append(v.isFinite ? m.format(v) + rank : "-")
      }
      t.append(row)
    }
    return t.render()
  }
}
