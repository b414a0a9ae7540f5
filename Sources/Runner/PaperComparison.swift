import EdgeLabCore
public import Metrics
public import Results
public import Spec

/// A paper's published numbers next to the lab's, from the runs of one results file (see `PaperNumber`).
public enum PaperComparison {
  public struct Row: Hashable, Sendable {
    public var number: PaperNumber
    /// The lab's value in the paper's unit; nil when no completed run matches.
    public var lab: Double?
    /// Why there is no value.
    public var missing: String?

    /// The lab's value ÷ the paper's (1 inside a published range).
    public var ratio: Double? { lab.map { number.ratio(lab: $0) } }
  }

  public static func rows(_ numbers: [PaperNumber], runs: [RunRecord]) -> [Row] {
    numbers.map { n in
      let chosen = runs.filter { matches($0, n) }
      var byPoint: [Int: (alg: [Double], base: [Double])] = [:]
      for r in chosen where r.outcome.status == .complete {
        let v = value(r.summary, n.metric)
        guard v.isFinite else { continue }
        if r.label == n.algorithm { byPoint[r.point, default: ([], [])].alg.append(v) }
        if r.label == n.relativeTo { byPoint[r.point, default: ([], [])].base.append(v) }
      }
      var values: [Double] = []
      for (_, p) in byPoint.sorted(by: { $0.key < $1.key }) where !p.alg.isEmpty {
        let a = mean(p.alg)
        if n.relativeTo != nil {
          guard !p.base.isEmpty else { continue }
          let b = mean(p.base)
          values.append(n.metric.higherIsBetter ? a / b : b / a)
        } else {
          values.append(a)
        }
      }
      guard !values.isEmpty else {
        let why =
          chosen.isEmpty
          ? "no run matches"
          : "no completed run of \(n.algorithm)\(n.relativeTo.map { " with one of \($0) at the same point" } ?? "")"
        return Row(number: n, lab: nil, missing: why)
      }
      let lab: Double
      if n.best {
        let higher = n.relativeTo != nil || n.metric.higherIsBetter
        lab = higher ? values.max()! : values.min()!
      } else {
        lab = mean(values)
      }
      return Row(number: n, lab: lab, missing: nil)
    }
  }

  static func matches(_ r: RunRecord, _ n: PaperNumber) -> Bool {
    guard r.label == n.algorithm || r.label == n.relativeTo else { return false }
    for (label, wanted) in n.at {
      guard let p = r.parameters.first(where: { $0.label == label }) else { return false }
      if (p.value.stringValue ?? p.value.description) != wanted { return false }
    }
    return true
  }

  static func mean(_ v: [Double]) -> Double { v.reduce(0, +) / Double(v.count) }

  public static func value(_ s: RunSummary, _ m: PaperNumber.Metric) -> Double {
    switch m {
    case .tpot: s.tpot.mean
    case .ttft: s.ttft.p50
    case .throughput: s.throughputTokensPerSecond
    case .endToEnd: s.endToEnd.mean
    }
  }

  /// A value as the paper states it: times in ms, throughput in tokens/s, speed-ups as ×.
  public static func format(_ v: Double, _ n: PaperNumber) -> String {
    if n.relativeTo != nil { return String(format: v, digits: 2) + "×" }
    switch n.metric {
    case .throughput: return String(format: v, digits: 2) + " tok/s"
    default: return String(format: v * 1e3, digits: 1) + " ms"
    }
  }

  /// The paper's value (or range) as stated.
  public static func paperText(_ n: PaperNumber) -> String {
    n.high.map { format(n.value, n) + "–" + format($0, n) } ?? format(n.value, n)
  }

  /// A row as text: claim, paper, lab, lab ÷ paper, and within 25% or not.
  public static func cells(_ r: Row) -> [String] {
    let lab = r.lab.map { format($0, r.number) } ?? "– (\(r.missing ?? ""))"
    let ratio = r.ratio.map { String(format: $0, digits: 2) } ?? "–"
    let ok = r.ratio.map { abs($0 - 1) <= 0.25 ? "yes" : "no" } ?? "–"
    return [r.number.claim, paperText(r.number), lab, ratio, ok]
  }

  /// Markdown rows: claim, paper, lab, lab ÷ paper, and within 25% or not.
  public static func markdown(_ rows: [Row]) -> String {
    var out = ["| claim | paper | lab | lab ÷ paper | within 25% |", "|---|---:|---:|---:|:---:|"]
    for r in rows { out.append("| " + cells(r).joined(separator: " | ") + " |") }
    return out.joined(separator: "\n")
  }

  /// The comparison as a results table (`paper`; exported as paper.tsv).
  public static func table(_ rows: [Row]) -> Table {
    Table(
      name: "paper",
      columns: [
        .string("claim", rows.map(\.number.claim)),
        .string(
          "metric",
          rows.map { $0.number.relativeTo == nil ? $0.number.metric.rawValue : "speedup_" + $0.number.metric.rawValue }),
        .string("algorithm", rows.map(\.number.algorithm)),
        .string("relative_to", rows.map { $0.number.relativeTo ?? "" }),
        .double("paper", rows.map(\.number.value)),
        .double("paper_high", rows.map { $0.number.high ?? $0.number.value }),
        .double("lab", rows.map { $0.lab ?? .nan }),
        .double("ratio", rows.map { $0.ratio ?? .nan }),
      ])
  }
}
