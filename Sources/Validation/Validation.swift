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
    /// How far the predictions from the profiles measured just before and just after the real run lie from
    /// their mean (`predicted`), relative to it: the host's drift during the case (the mean over its runs); nil
    /// with one profile.
    public var spread: Double?
    /// Each run's own error (predicted / measured − 1), where the case ran more than once.
    public var runErrors: [Double] = []
    /// predicted / measured − 1.
    public var error: Double { predicted / measured - 1 }

    public init(
      caseName: String, metric: String, predicted: Double, measured: Double, planner: Double? = nil,
      spread: Double? = nil
    ) {
      self.caseName = caseName
      self.metric = metric
      self.predicted = predicted
      self.measured = measured
      self.planner = planner
      self.spread = spread
    }

    /// A case's row from the real run and the predictions before and after it (after: nil with one profile).
    public static func bracketed(
      caseName: String, metric: String, before: Double, after: Double?, measured: Double, planner: Double?
    ) -> Row {
      guard let after else {
        return Row(caseName: caseName, metric: metric, predicted: before, measured: measured, planner: planner)
      }
      let mean = (before + after) / 2
      return Row(
        caseName: caseName, metric: metric, predicted: mean, measured: measured, planner: planner,
        spread: mean > 0 ? abs(after - before) / 2 / mean : 0)
    }

    /// A case's row over several runs of it (each a `bracketed` row): the mean measured against the mean
    /// predicted, the mean spread, and each run's own error.
    public static func combined(_ runs: [Row]) -> Row? {
      guard var row = runs.first else { return nil }
      guard runs.count > 1 else { return row }
      let n = Double(runs.count)
      row.predicted = runs.reduce(0) { $0 + $1.predicted } / n
      row.measured = runs.reduce(0) { $0 + $1.measured } / n
      let spreads = runs.compactMap(\.spread)
      row.spread = spreads.count == runs.count ? spreads.reduce(0, +) / n : nil
      row.runErrors = runs.map(\.error)
      return row
    }
  }

  /// Rows whose predictions from before and after the real runs lie further than this from their mean (a
  /// `spread` above it) are flagged: the host drifted during the case.
  public static let driftLimit = 0.05

  public struct Report: Sendable {
    public var rows: [Row]
    public var skipped: [(String, String)]
    public var file: ResultsFile
  }

  public var runner: ExperimentRunner
  public var profile: String
  /// Host decode bandwidth of the profile: the emulated cases' dilation plan uses it, as the prediction does.
  public var hostBandwidth: Bandwidth
  /// Its prefill compute rate (`prefill_flops`), which the plan's cores per device read too; measured when nil.
  public var hostPrefillFlops: FlopRate?
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
  /// Re-measures what a case's prediction reads from the host (its model's layer table, the message costs) into
  /// a new profile written beside the cases, from the profile at the given path; its path. With it, every case is
  /// predicted from profiles measured just before and just after its real run (the mean, and the spread
  /// beside it); without it, the one profile predicts every case.
  public var remeasure: (@Sendable (_ profile: String, _ case: Experiment) throws -> String)?
  /// Runs of each case: its row compares the mean of the real runs' metrics with the mean of their predictions,
  /// so that the host's drift within one run (±5–10% per worker here) weighs 1 / `repetitions`.
  public var repetitions = 2

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

  /// The case as run here: the profile path filled in, and emulated cases' host rates set to the profile's.
  public func prepared(_ e: Experiment, profile: String? = nil) -> ExperimentSpec {
    var s = e.spec
    s.calibration.profile = profile ?? self.profile
    if s.emulation.mode == .namespaces {
      s.emulation.hostBandwidth = hostBandwidth
      s.emulation.hostPrefillFlops = hostPrefillFlops
    }
    return s
  }

  /// One attempt at a case: its runs (the real one, the prediction before it and, when re-measuring, after it).
  struct Attempt {
    var real: RunRecord
    var before: RunRecord
    var after: RunRecord?
    var specJSON: String
    var profiles: (before: String, after: String?)
    /// Which workers' speeds each prediction took (`calibratedAttempt`): "before", "after", or "" for none.
    var speeds: (before: String, after: String) = ("", "")
    /// Predicted with its workers' speeds: no profile is measured after it.
    var calibrated = false

    func rows(_ name: String) -> [Row] {
      Validation.metrics.map { metric in
        Row.bracketed(
          caseName: name, metric: metric.name, before: metric.value(before.summary),
          after: after.map { metric.value($0.summary) }, measured: metric.value(real.summary),
          planner: metric.name == "TPOT mean" ? before.plan.map { $0.valueSeconds * 1e3 } : nil)
      }
    }
  }

  /// Runs `spec` on the backends named; the results file's runs.
  func execute(_ spec: ExperimentSpec, backends: [String], path: String) throws -> (ResultsFile, [RunRecord]) {
    var spec = spec
    for k in spec.sweeps.indices where spec.sweeps[k].path == "backend" {
      spec.sweeps[k].values = backends.map { .string($0) }
    }
    var options = RunOptions(outputPath: path, archiveDirectory: workDirectory + "/archive", stopRequested: stop)
    options.provenance = environment
    options.taskEvaluator = taskEvaluator
    options.promptEncoder = promptEncoder
    _ = try runner.run(spec, options: options)
    let file = try ResultsStore.read(path)
    let runs = backends.map { b in file.runs.first { $0.parameters.first?.value.stringValue == b } }
    guard runs.allSatisfy({ $0 != nil }) else {
      throw ValidationError("\(spec.name): the results hold no \(backends.joined(separator: " and ")) runs")
    }
    if let r = runs.compactMap({ $0 }).first(where: { $0.outcome.status != .complete }) {
      throw ValidationError(
        "the \(r.parameters.first?.value.description ?? "") run ended \(r.outcome.status.rawValue): "
          + (r.outcome.message ?? ""))
    }
    return (file, runs.compactMap { $0 })
  }

  /// Whether a case's prediction takes its workers' own speed: cases whose devices are this host (not paced to
  /// an emulated device). Each worker times its layers once loaded and again after the workload
  /// (`execution.calibrate_workers`), and the case is predicted twice, with each set of speeds
  /// (`calibration.worker_speeds`): a process keeps the speed it lands on, which a profile measured in another
  /// process does not see.
  public static func calibratesWorkers(_ e: Experiment) -> Bool {
    e.spec.emulation.mode == .none && e.spec.calibration.profileScaling == .host
  }

  /// The workers' speeds a real run recorded (`WorkerSpeed.factNames`; `after`: those measured after the
  /// workload), for the devices that recorded both ratios.
  public static func workerSpeeds(_ r: RunRecord, after: Bool) -> [String: WorkerSpeed] {
    var out: [String: WorkerSpeed] = [:]
    let numbers = r.outcome.facts.compactMapValues { v -> Double? in
      guard case .number(let x) = v else { return nil }
      return x
    }
    for device in r.outcome.devices.map(\.name) {
      out[device] = WorkerSpeed(device: device, after: after, facts: numbers)
    }
    return out
  }

  /// A case whose workers calibrate: the real run, then the simulator's predictions from the profile with the
  /// workers' speeds before and after the workload (one prediction when the run has no speeds after it; the
  /// profile alone when no worker recorded a speed).
  func calibratedAttempt(_ e: Experiment, profile: String, path: String) throws -> Attempt {
    let name = e.spec.name
    var spec = prepared(e, profile: profile)
    spec.execution.calibrateWorkers = true
    let (file, real) = try execute(spec, backends: ["loopback"], path: path)
    var predictions: [RunRecord] = []
    var labels: [String] = []
    for (after, suffix) in [(false, "-before"), (true, "-after")] {
      let speeds = Self.workerSpeeds(real[0], after: after)
      if speeds.isEmpty {
        if after { break }
        log("\(name): no worker recorded its speed; the profile alone predicts it")
      }
      var p = prepared(e, profile: profile)
      p.calibration.workerSpeeds = speeds
      predictions.append(
        try execute(p, backends: ["simulated"], path: workDirectory + "/\(name)\(suffix).h5").1[0])
      labels.append(speeds.isEmpty ? "" : after ? "after" : "before")
      if !speeds.isEmpty {
        log(
          "\(name): workers \(after ? "after" : "before") the workload: "
            + speeds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.summary)" }.joined(separator: "; "))
      }
    }
    var a = Attempt(
      real: real[0], before: predictions[0], after: predictions.count > 1 ? predictions[1] : nil,
      specJSON: file.info.specJSON, profiles: (profile, predictions.count > 1 ? profile : nil))
    a.speeds = (labels[0], labels.count > 1 ? labels[1] : "")
    a.calibrated = true
    return a
  }

  public func run(_ cases: [Experiment]) throws -> Report {
    try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
    var rows: [Row] = []
    var skipped: [(String, String)] = []
    var runs: [RunRecord] = []
    var specs: [String] = []
    // The latest profile, and the model whose table it measured last (nil: none re-measured yet).
    var latest = profile
    var freshFor: ModelChoice?
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
      var done: [Attempt] = []
      var failure: (any Error)?
      for attempt in 1...max(1, repetitions) {
        do {
          if attempt > 1 { log("\(name): run \(attempt) of \(repetitions)") }
          if let remeasure, freshFor != e.spec.model {
            latest = try remeasure(latest, e)
            freshFor = e.spec.model
          }
          let path = workDirectory + "/\(name).h5"
          var a: Attempt
          if Self.calibratesWorkers(e) {
            a = try calibratedAttempt(e, profile: latest, path: path)
            // No profile is measured after it: the next case (or attempt) measures one before it.
            freshFor = nil
          } else {
            let (file, pair) = try execute(
              prepared(e, profile: latest), backends: ["simulated", "loopback"], path: path)
            a = Attempt(
              real: pair[1], before: pair[0], after: nil, specJSON: file.info.specJSON, profiles: (latest, nil))
          }
          if let remeasure, !a.calibrated {
            latest = try remeasure(latest, e)
            let after = try execute(
              prepared(e, profile: latest), backends: ["simulated"], path: workDirectory + "/\(name)-after.h5")
            a.after = after.1[0]
            a.profiles.after = latest
          }
          done.append(a)
        } catch {
          if stop() { throw error }
          failure = error
          break
        }
      }
      guard let first = done.first else {
        // A case that cannot run is reported, and the others still run.
        let why = failure.map { "\($0)" } ?? "no attempt ran"
        log("\(name) failed: \(why)")
        skipped.append((name, "failed: \(why)"))
        continue
      }
      if let failure { log("\(name): run \(done.count + 1) failed (\(failure)); the row is of the runs before it") }
      specs.append(first.specJSON)
      let each = done.map { $0.rows(name) }
      rows += each[0].indices.compactMap { i in Row.combined(each.map { $0[i] }) }
      for (repetition, a) in done.enumerated() {
        let labelled: [(RunRecord, String, String)] =
          [(a.before, URL(fileURLWithPath: a.profiles.before).lastPathComponent, a.speeds.before), (a.real, "", "")]
          + (a.after.map { [($0, URL(fileURLWithPath: a.profiles.after ?? "").lastPathComponent, a.speeds.after)] }
            ?? [])
        for (var r, profileName, speeds) in labelled {
          r.repetition = repetition
          r.index = runs.count
          r.parameters.insert(RunParameter(label: "case", path: "case", value: .string(name)), at: 0)
          r.parameters.append(RunParameter(label: "profile", path: "calibration.profile", value: .string(profileName)))
          // Which of the real run's worker speeds the prediction took (empty: none).
          r.parameters.append(
            RunParameter(label: "worker_speeds", path: "calibration.worker_speeds", value: .string(speeds)))
          runs.append(r)
        }
      }
    }
    let table = Table(
      name: "validation",
      columns: [
        .string("case", rows.map(\.caseName)), .string("metric", rows.map(\.metric)),
        .double("predicted", rows.map(\.predicted)), .double("measured", rows.map(\.measured)),
        .double("error_pct", rows.map { $0.error * 100 }), .double("planner", rows.map { $0.planner ?? .nan }),
        .double("spread_pct", rows.map { ($0.spread ?? .nan) * 100 }),
        .string(
          "run_errors_pct",
          rows.map { $0.runErrors.map { String(format: $0 * 100, digits: 1) }.joined(separator: " ") }),
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
  public static func markdown(_ report: Report) -> String { markdown(rows: report.rows, skipped: report.skipped) }

  public static func markdown(rows: [Row], skipped: [(String, String)]) -> String {
    let bracketed = rows.contains { $0.spread != nil }
    let repeated = rows.contains { $0.runErrors.count > 1 }
    let header =
      ["case", "metric", "measured", "predicted", "error"] + (repeated ? ["each run"] : [])
      + (bracketed ? ["spread"] : []) + ["planner's value"]
    var t = TextTable(header: header, rightAligned: Set(2..<header.count))
    func percent(_ x: Double) -> String { (x >= 0 ? "+" : "") + String(format: x * 100, digits: 1) + "%" }
    for r in rows {
      let unit = metrics.first { $0.name == r.metric }?.unit ?? ""
      var cells: [String] = [
        r.caseName.replacingOccurrences(of: "validate-", with: ""), r.metric + " (\(unit))",
        String(format: r.measured, digits: 2), String(format: r.predicted, digits: 2),
        percent(r.error) + (abs(r.error) > 0.10 ? " **" : ""),
      ]
      if repeated { cells.append(r.runErrors.map(percent).joined(separator: " ")) }
      if bracketed {
        let flag = (r.spread ?? 0) > driftLimit ? " †" : ""
        cells.append(r.spread.map { "±" + String(format: $0 * 100, digits: 1) + "%" + flag } ?? "")
      }
      cells.append(r.planner.map { String(format: $0, digits: 2) } ?? "")
      t.append(cells)
    }
    var out = t.markdown()
    let outside = rows.filter { abs($0.error) > 0.10 }
    out += "\n\(rows.count - outside.count) of \(rows.count) rows within 10%"
    if !outside.isEmpty {
      out += "; outside (**): " + outside.map { "\($0.caseName) \($0.metric)" }.joined(separator: ", ")
    }
    out += ".\n"
    if repeated {
      let runs = rows.map(\.runErrors.count).max() ?? 1
      out +=
        "\nEach case ran \(runs) times; a row compares the mean of its real runs with the mean of their "
        + "predictions, each run's own error beside it."
      let single = rows.flatMap(\.runErrors)
      let within = single.filter { abs($0) <= 0.10 }.count
      out += " Taken one run at a time, \(within) of \(single.count) rows were within 10%.\n"
    }
    if bracketed {
      let spreads = rows.compactMap(\.spread).sorted()
      out +=
        "\nEach case is predicted twice — a plain case with its workers' speeds timed before and after the workload, "
        + "an emulated one from profiles measured just before and just after its real run — and by their mean; "
        + "the spread is how far the two predictions lie from it (median ±"
        + String(format: (spreads.isEmpty ? 0 : spreads[spreads.count / 2]) * 100, digits: 1) + "%)."
      let drifted = rows.filter { ($0.spread ?? 0) > driftLimit }
      if !drifted.isEmpty {
        out +=
          " † the host drifted by more than ±\(Int(driftLimit * 100))% during the case: "
          + Set(drifted.map(\.caseName)).sorted().joined(separator: ", ") + "."
      }
      out += "\n"
    }
    for (name, why) in skipped { out += "\nNot compared: \(name): \(why).\n" }
    return out
  }
}

/// A validation case that could not be compared.
public struct ValidationError: Error, CustomStringConvertible {
  public var description: String
  init(_ description: String) { self.description = description }
}
