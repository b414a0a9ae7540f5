import Foundation
import Metrics

/// Tidy TSV exports of a results file, for gnuplot and spreadsheets.
///
/// Files written into the output directory:
/// - `runs.tsv`: the summary table, one row per run (all columns of `/summary`);
/// - `<label>.tsv`: per algorithm label, one row per sweep point in sweep order, numeric columns averaged over
///   repetitions, plus `<metric>_min`/`<metric>_max` for the headline metrics and `n` (repetitions averaged);
/// - `labels.txt`: the labels in the experiment's order (one per line; file names use `safeName`);
/// - `labels-with-data.txt`: those of them with at least one complete run, and `labels-without-data.txt` the
///   others (no feasible plan anywhere, or every run failed), so figures can leave them out of the legend and
///   say so;
/// - `requests.tsv`: every request of every run, with the run's identity and sweep values.
///
/// Missing values are written as `nan` (gnuplot: `set datafile missing "nan"`).
public enum Exporter {
  public static let headlineMetrics = ["ttft_mean_s", "tpot_mean_s", "e2e_mean_s", "throughput_tokens_per_s"]

  /// A label as a file name: anything but letters, digits, '.', '_' and '-' becomes '_'.
  public static func safeName(_ label: String) -> String {
    String(label.map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" })
  }

  /// A name from a file's attributes as one directory name: `safeName`, and never empty, "." or "..".
  public static func safeDirectoryName(_ name: String) -> String {
    let s = safeName(name)
    return s.isEmpty || s.allSatisfy({ $0 == "." }) ? "experiment" : s
  }

  public static func export(_ file: ResultsFile, to directory: String) throws -> [String] {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    var written: [String] = []
    func put(_ name: String, _ text: String) throws {
      let path = directory + "/" + name
      try text.write(toFile: path, atomically: true, encoding: .utf8)
      written.append(path)
    }
    let summary = Schema.summaryTable(file.runs)
    try put("runs.tsv", tsv(summary))
    var labels: [String] = []
    for r in file.runs where !labels.contains(r.label) { labels.append(r.label) }
    try put("labels.txt", labels.map { safeName($0) + "\n" }.joined())
    let withData = labels.filter { l in file.runs.contains { $0.label == l && $0.outcome.status == .complete } }
    try put("labels-with-data.txt", withData.map { safeName($0) + "\n" }.joined())
    try put("labels-without-data.txt", labels.filter { !withData.contains($0) }.map { safeName($0) + "\n" }.joined())
    for label in labels {
      try put(safeName(label) + ".tsv", tsv(aggregate(summary, label: label)))
    }
    try put("requests.tsv", tsv(requestsTable(file.runs)))
    for t in file.tables { try put(safeName(t.name) + ".tsv", tsv(t)) }
    return written
  }

  public static func tsv(_ t: Table) -> String {
    var lines = [t.columns.map(\.name).joined(separator: "\t")]
    for r in 0..<t.rowCount {
      lines.append(
        t.columns.map { $0.text(r).replacingOccurrences(of: "\t", with: " ").replacingOccurrences(of: "\n", with: " ") }
          .joined(separator: "\t"))
    }
    return lines.joined(separator: "\n") + "\n"
  }

  /// Rows of one label averaged over repetitions, per sweep point.
  static func aggregate(_ summary: Table, label: String) -> Table {
    guard let labels = summary.column("label"), let points = summary.column("point") else { return summary }
    let rows = (0..<summary.rowCount).filter { labels.text($0) == label }
    var byPoint: [Int: [Int]] = [:]
    var order: [Int] = []
    for r in rows {
      let p = Int(points.double(r) ?? 0)
      if byPoint[p] == nil { order.append(p) }
      byPoint[p, default: []].append(r)
    }
    var columns: [Column] = []
    for c in summary.columns {
      switch c {
      case .string(let name, let v):
        columns.append(.string(name, order.map { v[byPoint[$0]![0]] }))
      case .int(let name, let v) where ["index", "point", "repetition"].contains(name):
        columns.append(.int(name, order.map { v[byPoint[$0]![0]] }))
      default:
        let name = c.name
        columns.append(.double(name, order.map { p in mean(byPoint[p]!.map { c.double($0) ?? .nan }) }))
        if headlineMetrics.contains(name) {
          columns.append(
            .double(
              name + "_min",
              order.map { p in byPoint[p]!.compactMap { c.double($0) }.filter { !$0.isNaN }.min() ?? .nan }))
          columns.append(
            .double(
              name + "_max",
              order.map { p in byPoint[p]!.compactMap { c.double($0) }.filter { !$0.isNaN }.max() ?? .nan }))
        }
      }
    }
    columns.append(.int("n", order.map { Int64(byPoint[$0]!.count) }))
    return Table(name: label, columns: columns)
  }

  static func mean(_ v: [Double]) -> Double {
    let ok = v.filter { !$0.isNaN }
    return ok.isEmpty ? .nan : ok.reduce(0, +) / Double(ok.count)
  }

  static func requestsTable(_ runs: [RunRecord]) -> Table {
    var run: [String] = []
    var label: [String] = []
    var point: [Int64] = []
    var rep: [Int64] = []
    var params: [String] = []
    var id: [Int64] = []
    var arrival: [Double] = []
    var first: [Double] = []
    var done: [Double] = []
    var prompt: [Int64] = []
    var output: [Int64] = []
    var ttft: [Double] = []
    var tpot: [Double] = []
    for r in runs {
      let p = r.parameters.map { "\($0.label)=\($0.value)" }.joined(separator: ";")
      for q in r.outcome.requests {
        run.append(r.groupName)
        label.append(r.label)
        point.append(Int64(r.point))
        rep.append(Int64(r.repetition))
        params.append(p)
        id.append(Int64(q.id))
        arrival.append(q.arrival)
        first.append(q.firstToken ?? .nan)
        done.append(q.completion ?? .nan)
        prompt.append(Int64(q.promptTokens))
        output.append(Int64(q.outputTokens))
        ttft.append(q.ttft ?? .nan)
        tpot.append(q.tpot ?? .nan)
      }
    }
    return Table(
      name: "requests",
      columns: [
        .string("run", run), .string("label", label), .int("point", point), .int("repetition", rep),
        .string("params", params),
        .int("id", id), .double("arrival_s", arrival), .double("first_token_s", first), .double("completion_s", done),
        .int("prompt_tokens", prompt), .int("output_tokens", output), .double("ttft_s", ttft), .double("tpot_s", tpot),
      ])
  }
}
