public import DSL
public import EdgeLabCore
public import Execution
import Experiments
import Foundation
public import Metrics
import Pipeline
public import Results
public import Runner
public import Spec

/// The simulator against real runs: each case is predicted by the simulator from a host profile, then run for
/// real by the loopback backend, and every metric is compared (`edgelab validate`, `make validate`).
public struct Validation {
  /// One metric of one case: what the simulator predicted, what the real run measured, and what the planner's
  /// own cost model said (time per token of latency plans).
  public struct Row: Hashable, Sendable {
    public var caseName: String
    public var metric: String
    public var predicted: Double
    public var measured: Double
    public var planner: Double?
    /// predicted / measured − 1.
    public var error: Double { predicted / measured - 1 }
  }

  public struct Report: Sendable {
    public var rows: [Row]
    public var skipped: [(String, String)]
    public var file: ResultsFile
  }

  public var runner: ExperimentRunner
  public var profile: String
  /// Host decode bandwidth of the profile: the emulated cases' dilation plan uses it, as the prediction does.
  public var hostBandwidth: Bandwidth
  public var workDirectory: String
  public var canEmulate: Bool
  /// Facts for the results files' provenance (the BLAS kernels in use).
  public var environment: [String: String]
  public var stop: @Sendable () -> Bool
  public var log: @Sendable (String) -> Void
  /// Measures the draft's agreement for the speculative cases' predictions.
  public var taskEvaluator: (any TaskEvaluator)?
  /// Turns the real prompts of cases with a prompt file into tokens.
  public var promptEncoder: (any PromptEncoder)?

  public init(
    runner: ExperimentRunner, profile: String, hostBandwidth: Bandwidth, workDirectory: String, canEmulate: Bool,
    environment: [String: String] = [:], stop: @escaping @Sendable () -> Bool = { false },
    log: @escaping @Sendable (String) -> Void
  ) {
    self.environment = environment
    self.stop = stop
    self.runner = runner
    self.profile = profile
    self.hostBandwidth = hostBandwidth
    self.workDirectory = workDirectory
    self.canEmulate = canEmulate
    self.log = log
  }

  /// The metrics compared, each with how to read it from a run's summary.
  public static let metrics: [(name: String, unit: String, value: @Sendable (RunSummary) -> Double)] = [
    ("TTFT p50", "ms", { $0.ttft.p50 * 1e3 }),
    ("TPOT mean", "ms", { $0.tpot.mean * 1e3 }),
    ("throughput", "tok/s", { $0.throughputTokensPerSecond }),
  ]

  /// The case as run here: the profile path filled in, and emulated cases' host bandwidth set to the profile's.
  public func prepared(_ e: Experiment) -> ExperimentSpec {
    var s = e.spec
    s.calibration.profile = profile
    if s.emulation.mode == .namespaces { s.emulation.hostBandwidth = hostBandwidth }
    return s
  }

  public func run(_ cases: [Experiment]) throws -> Report {
    try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
    var rows: [Row] = []
    var skipped: [(String, String)] = []
    var runs: [RunRecord] = []
    var specs: [String] = []
    for e in cases {
      let name = e.spec.name
      if let model = e.spec.model.checkpoint, !FileManager.default.fileExists(atPath: model) {
        log("skipping \(name): no \(model) (make smollm2 fetches it)")
        skipped.append((name, "no \(model)"))
        continue
      }
      if ValidationCases.isEmulated(e) && !canEmulate {
        log("skipping \(name): emulated cases need root (network namespaces, tc, cgroups)")
        skipped.append((name, "needs root"))
        continue
      }
      log("\(name): \(e.spec.summary)")
      let spec = prepared(e)
      let path = workDirectory + "/\(name).h5"
      var options = RunOptions(outputPath: path, archiveDirectory: workDirectory + "/archive", stopRequested: stop)
      options.provenance = environment
      options.taskEvaluator = taskEvaluator
      options.promptEncoder = promptEncoder
      do {
        _ = try runner.run(spec, options: options)
      } catch {
        if stop() { throw error }
        // A case that cannot run is reported, and the others still run.
        log("\(name) failed: \(error)")
        skipped.append((name, "failed: \(error)"))
        continue
      }
      let file = try ResultsStore.read(path)
      specs.append(file.info.specJSON)
      guard
        let sim = file.runs.first(where: { $0.parameters.first?.value.stringValue == "simulated" }),
        let real = file.runs.first(where: { $0.parameters.first?.value.stringValue == "loopback" })
      else { throw ValidationError("\(name): the results hold no simulated and loopback pair") }
      if let r = [sim, real].first(where: { $0.outcome.status != .complete }) {
        let why =
          "the \(r.parameters.first?.value.description ?? "") run ended \(r.outcome.status.rawValue): "
          + (r.outcome.message ?? "")
        log("\(name): \(why)")
        skipped.append((name, "failed: " + why))
        continue
      }
      let (p, m) = (sim.summary, real.summary)
      for metric in Self.metrics {
        rows.append(
          Row(
            caseName: name, metric: metric.name, predicted: metric.value(p), measured: metric.value(m),
            planner: metric.name == "TPOT mean" ? sim.plan.map { $0.valueSeconds * 1e3 } : nil))
      }
      for var r in [sim, real] {
        r.index = runs.count
        r.parameters.insert(RunParameter(label: "case", path: "case", value: .string(name)), at: 0)
        runs.append(r)
      }
    }
    let table = Table(
      name: "validation",
      columns: [
        .string("case", rows.map(\.caseName)), .string("metric", rows.map(\.metric)),
        .double("predicted", rows.map(\.predicted)), .double("measured", rows.map(\.measured)),
        .double("error_pct", rows.map { $0.error * 100 }), .double("planner", rows.map { $0.planner ?? .nan }),
      ])
    let info = FileInfo(
      experiment: "validate", specJSON: "[" + specs.joined(separator: ",") + "]",
      toolkitVersion: Provenance.toolkitVersion, gitCommit: Provenance.git().commit, gitDirty: Provenance.git().dirty,
      gitDiff: "", host: Provenance.host(), startedAt: Provenance.timestamp(), finishedAt: Provenance.timestamp(),
      seed: 0, backend: "simulated+loopback", runsTotal: runs.count, complete: skipped.isEmpty,
      extra: environment.merging(["profile": profile]) { a, _ in a })
    return Report(rows: rows, skipped: skipped, file: ResultsFile(info: info, runs: runs, tables: [table]))
  }

  /// The table of docs/validation.md.
  public static func markdown(_ report: Report, cases: [Experiment]) -> String {
    var t = TextTable(
      header: ["case", "metric", "measured", "predicted", "error", "planner's value"], rightAligned: [2, 3, 4, 5])
    for r in report.rows {
      let unit = metrics.first { $0.name == r.metric }?.unit ?? ""
      t.append([
        r.caseName.replacingOccurrences(of: "validate-", with: ""), r.metric + " (\(unit))",
        String(format: r.measured, digits: 2), String(format: r.predicted, digits: 2),
        (r.error >= 0 ? "+" : "") + String(format: r.error * 100, digits: 1) + "%" + (abs(r.error) > 0.10 ? " **" : ""),
        r.planner.map { String(format: $0, digits: 2) } ?? "",
      ])
    }
    var out = t.markdown()
    let outside = report.rows.filter { abs($0.error) > 0.10 }
    out += "\n\(report.rows.count - outside.count) of \(report.rows.count) rows within 10%"
    if !outside.isEmpty {
      out += "; outside (**): " + outside.map { "\($0.caseName) \($0.metric)" }.joined(separator: ", ")
    }
    out += ".\n"
    for (name, why) in report.skipped { out += "\nNot compared: \(name): \(why).\n" }
    return out
  }
}

/// A validation case that could not be compared.
public struct ValidationError: Error, CustomStringConvertible {
  public var description: String
  init(_ description: String) { self.description = description }
}
