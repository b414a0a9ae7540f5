import BuildInfo
import Catalog
public import Collaboration
import CostModel
public import EdgeLabCore
public import Execution
import Foundation
public import Metrics
public import Partitioning
public import Pipeline
import Results
public import Spec

/// How to run an experiment.
/// Text ↔ tokens for a workload's real prompts, with the model's tokenizer. The command line provides it (the
/// runner knows no tokenizer); without one, a workload with `prompts` fails with a message.
public protocol PromptEncoder: Sendable {
  /// Token ids of each prompt (with `chat`, as a user turn in the model's chat template).
  func encode(_ prompts: [String], chat: Bool, experiment: ResolvedExperiment) throws -> [[Int32]]
  /// Text of generated tokens; nil when the model has no tokenizer.
  func decode(_ ids: [Int32], experiment: ResolvedExperiment) -> String?
}

public struct RunOptions: Sendable {
  /// The results file; `results/<experiment>.h5` when nil.
  public var outputPath: String?
  public var seed: UInt64?
  public var backend: BackendKind?
  /// Skip runs already in the results file (same spec, same run keys).
  public var resume: Bool
  /// Where an existing results file is moved before a fresh run (kept, never overwritten).
  public var archiveDirectory: String?
  /// Seconds between checkpoints of the results file during a sweep.
  public var checkpointInterval: Double
  /// Polled between runs: true stops the sweep (Ctrl-C), saving what finished. Backends that run long (loopback)
  /// also stop within a run.
  public var stopRequested: @Sendable () -> Bool
  /// Record the text of untracked files in the provenance (by default only their names and sizes).
  public var recordUntrackedText = false
  /// Facts about the environment for the results file's root attributes (e.g. the BLAS kernels in use).
  public var provenance: [String: String] = [:]
  /// The boards inventory for the boards backend (overrides the experiment's `inventory`).
  public var inventory: String?
  /// Run only these runs (indices in the experiment's run order): one shard of a sweep (`Sharding`).
  public var only: Set<Int>?
  /// Simulated runs computed at once on this many threads (results recorded in run order, identical to one at a
  /// time). Runs on real backends always go one at a time: they measure time.
  public var parallelRuns = 1
  /// Tokenizes the prompts of workloads that name a prompt file, and decodes what real runs generate (printed).
  public var promptEncoder: (any PromptEncoder)?
  /// Measures the edge and target models on the questions of experiments with `collaboration`.
  public var taskEvaluator: (any TaskEvaluator)?

  public init(
    outputPath: String? = nil, seed: UInt64? = nil, backend: BackendKind? = nil, resume: Bool = false,
    archiveDirectory: String? = nil, checkpointInterval: Double = 2,
    stopRequested: @escaping @Sendable () -> Bool = { false }
  ) {
    self.stopRequested = stopRequested
    self.outputPath = outputPath
    self.seed = seed
    self.backend = backend
    self.resume = resume
    self.archiveDirectory = archiveDirectory
    self.checkpointInterval = checkpointInterval
  }
}

/// What a finished (or stopped) invocation produced.
public struct RunReport: Sendable {
  public var path: String
  public var runsTotal: Int
  public var runsExecuted: Int
  public var runsSkipped: Int
  public var statusCounts: [RunStatus: Int]
  public var archivedPrevious: String?
}

/// Errors of the runner that a user must act on.

/// A backend error that stops the sweep, with what the stopped run finished.
struct StopSweep: Error {
  var record: RunRecord?
  var error: BackendError
}

/// Runs experiments: expands sweeps, builds each run's partition problem, partitions, executes on a backend,
/// and keeps the results file up to date (atomically) as runs finish. It composes what it is given: the
/// backends (the CLI wires the simulator, the loopback runtime, …) and the partition algorithms.
public struct ExperimentRunner: Sendable {
  public var backends: [BackendKind: any ExecutionBackend]
  public var partitioners: PartitionerRegistry
  /// The routers strategies may name.
  public var routers: RouterRegistry = .standard
  public var progress: any ProgressSink
  /// Host profiles the experiments name, read once.
  public var profiles = ProfileLibrary()
  /// Workload prompts, tokenized once.
  let promptCache = PromptCache()
  /// Both models measured on an experiment's questions, once per model, edge model and task set.
  let evaluations = EvaluationCache()

  public init(
    backends: [BackendKind: any ExecutionBackend], partitioners: PartitionerRegistry = .standard,
    progress: any ProgressSink = SilentProgress()
  ) {
    self.backends = backends
    self.partitioners = partitioners
    self.progress = progress
  }

  /// The spec with command-line overrides applied.
  public static func applying(_ options: RunOptions, to spec: ExperimentSpec) -> ExperimentSpec {
    var s = spec
    if let seed = options.seed { s.seed = seed }
    if let b = options.backend { s.backend = b }
    if let i = options.inventory { s.inventory = i }
    return s
  }

  /// Every run of the experiment, after checking that every algorithm accepts its parameters (an unknown or
  /// bad parameter is an error in the spec, found before anything runs, not a failed run).
  public static func expand(
    _ spec: ExperimentSpec, partitioners: PartitionerRegistry = .standard, routers: RouterRegistry = .standard
  ) throws(SpecError) -> [RunDescriptor] {
    let runs = try spec.expand(knownAlgorithms: Set(partitioners.names))
    var issues: [SpecError.Issue] = []
    var checkedRouters: Set<RouterChoice> = []
    for run in runs {
      guard let s = run.strategy, let r = s.route?.router, checkedRouters.insert(r).inserted else { continue }
      do { _ = try routers.make(r.name, parameters: r.parameters) } catch {
        issues.append(.init(field: "strategies[\(s.name)].route.router", message: error.description))
      }
    }
    var checked: Set<AlgorithmChoice> = []
    for run in runs where checked.insert(run.algorithm).inserted {
      do { _ = try partitioners.make(run.algorithm.name, parameters: run.algorithm.parameters) } catch {
        issues.append(
          .init(field: "algorithms[\(run.algorithmIndex)] (\(run.algorithm.displayLabel))", message: error.description))
      }
    }
    if !issues.isEmpty { throw SpecError(issues: issues) }
    return runs
  }

  /// The objective of a run: the algorithm's own (if it always optimises one), the choice's, or the spec's.
  public static func objective(for run: RunDescriptor, partitioners: PartitionerRegistry = .standard) -> Objective {
    partitioners.objective(
      for: run.algorithm.name, otherwise: run.algorithm.objective ?? run.point.experiment.spec.objective)
  }

  public static func describe(_ run: RunDescriptor) -> String {
    var parts = [run.algorithm.displayLabel]
    parts += run.point.settings.map { "\($0.label)=\($0.value.stringValue ?? $0.value.description)" }
    if run.point.experiment.spec.repetitions > 1 { parts.append("rep \(run.repetition)") }
    return parts.joined(separator: " ")
  }

  /// Plans one run: its problem and the algorithm's plan (or why there is none).
  public static func plan(
    _ run: RunDescriptor, builder: ProblemBuilder,
    partitioners: PartitionerRegistry = .standard
  ) -> (PartitionProblem, Result<Plan, PartitionError>) {
    let problem = builder.problem(for: run.point.experiment, objective: objective(for: run, partitioners: partitioners))
    do {
      return (
        problem,
        .success(try partitioners.solve(problem, algorithm: run.algorithm.name, parameters: run.algorithm.parameters))
      )
    } catch {
      return (problem, .failure(error))
    }
  }

  public func run(_ original: ExperimentSpec, options: RunOptions = RunOptions()) throws -> RunReport {
    let spec = Self.applying(options, to: original)
    var runs: [RunDescriptor]
    do { runs = try Self.expand(spec, partitioners: partitioners, routers: routers) } catch {
      throw RunnerError.spec(error)
    }
    if let only = options.only {
      if let bad = only.first(where: { $0 < 0 || $0 >= runs.count }) {
        throw RunnerError.noSuchRun(bad, count: runs.count)
      }
      runs = runs.filter { only.contains($0.index) }
    }
    // Every backend the sweep needs must exist (a sweep may vary `backend` to compare them run for run).
    for kind in Set(runs.map(\.point.experiment.spec.backend)) where backends[kind] == nil {
      throw BackendError.unavailable(
        kind,
        "this runner has no '\(kind.rawValue)' backend; it has "
          + backends.keys.map { "'\($0.rawValue)'" }.sorted().joined(separator: " and "))
    }
    evaluations.evaluator = options.taskEvaluator
    // Both models are measured on the questions before any run (once per model, edge model and task set).
    for point in Set(runs.map(\.point.index)).sorted() {
      guard let x = runs.first(where: { $0.point.index == point })?.point.experiment,
        x.spec.collaboration?.tasks != nil
      else { continue }
      _ = try evaluation(x, evaluator: options.taskEvaluator)
    }
    // Every profile the sweep names is read and checked before anything runs; the file records which produced
    // the numbers (each run records its own, as a sweep may vary the calibration).
    var costModels: [String] = []
    for point in Set(runs.map(\.point.index)).sorted() {
      guard let x = runs.first(where: { $0.point.index == point })?.point.experiment else { continue }
      let model = try profiles.timeModel(for: x).provenance
      if !costModels.contains(model) { costModels.append(model) }
    }
    var provenance = options.provenance
    provenance["cost_model"] = costModels.joined(separator: " | ")
    let path = options.outputPath ?? "results/\(spec.name).h5"
    // One writer per results file, for the whole invocation.
    let lock = try ResultsStore.lock(path)
    defer { withExtendedLifetime(lock) {} }
    let specJSON = try JSONCoding.compactString(spec)

    // Resume: keep runs of the same spec whose keys match; otherwise keep the old file aside.
    var kept: [String: RunRecord] = [:]
    var archived: String?
    if FileManager.default.fileExists(atPath: path) {
      if options.resume {
        let old: ResultsFile
        do { old = try ResultsStore.read(path) } catch let e as ResultsError {
          throw RunnerError.cannotResume(e)
        }
        guard old.info.specJSON == specJSON else { throw RunnerError.resumeSpecDiffers(path: path) }
        guard BuildIdentity.sameBuild(old.info.toolkitVersion, Provenance.toolkitVersion) else {
          throw RunnerError.resumeBuildDiffers(
            path: path, theirs: old.info.toolkitVersion, ours: Provenance.toolkitVersion)
        }
        for r in old.runs where r.outcome.status == .complete || r.outcome.status == .infeasible { kept[r.key] = r }
      }
    }
    // A fresh run keeps the previous file aside, but only when the new one is first written: a run stopped
    // before that leaves the previous file where it was.
    var mustArchive = !options.resume && FileManager.default.fileExists(atPath: path)

    let git = Provenance.git(untrackedText: options.recordUntrackedText)
    var info = FileInfo(
      experiment: spec.name, specJSON: specJSON, toolkitVersion: Provenance.toolkitVersion, gitCommit: git.commit,
      gitDirty: git.dirty, gitDiff: git.diff, host: Provenance.host(), startedAt: Provenance.timestamp(),
      finishedAt: "",
      seed: spec.seed, backend: spec.backend.rawValue, runsTotal: runs.count, complete: false, extra: provenance
    )
    var records: [RunRecord] = []
    var counts: [RunStatus: Int] = [:]
    var executed = 0
    let skipped = runs.filter { kept[$0.key] != nil }.count
    progress.started(total: runs.count, skipped: skipped)
    var lastCheckpoint = MonotonicClock.now()
    var done = skipped

    func save(complete: Bool) throws {
      if mustArchive {
        archived = try archive(path, directory: options.archiveDirectory)
        if let archived { progress.note("kept the previous \(path) as \(archived)") }
        mustArchive = false
      }
      info.finishedAt = Provenance.timestamp()
      info.complete = complete
      // Runs kept from the previous file that the loop has not reached yet are written too: a stop or a
      // checkpoint must not drop them (the spec is the same, so their indices still hold).
      let reached = Set(records.map(\.key))
      let all = records + kept.values.filter { !reached.contains($0.key) }
      let sorted = all.sorted { $0.index < $1.index }
      let tables = spec.paper.isEmpty ? [] : [PaperComparison.table(PaperComparison.rows(spec.paper, runs: sorted))]
      try ResultsStore.write(ResultsFile(info: info, runs: sorted, tables: tables), to: path)
    }

    // Simulated runs are pure functions of their descriptor: with `parallelRuns`, a batch is computed on several
    // threads ahead of the loop below, which records them in order as if each had just run.
    let parallel = max(1, options.parallelRuns)
    let allSimulated = runs.allSatisfy { $0.point.experiment.spec.backend == .simulated }
    var ahead: [Int: Result<RunRecord, any Error>] = [:]
    func computeAhead(from position: Int) {
      let batch = runs[position...].prefix(max(32, parallel * 16)).filter {
        kept[$0.key] == nil && ahead[$0.index] == nil
      }
      guard !batch.isEmpty else { return }
      let slots = ResultSlots(count: batch.count)
      DispatchQueue.concurrentPerform(iterations: batch.count) { i in
        let run = batch[batch.startIndex + i]
        slots.set(
          i,
          Result {
            try self.execute(
              run, backend: self.backends[.simulated]!, cancellation: Cancellation(options.stopRequested),
              encoder: options.promptEncoder)
          })
      }
      for (i, run) in batch.enumerated() { ahead[run.index] = slots.get(i) }
    }

    for (position, run) in runs.enumerated() {
      if parallel > 1 && allSimulated && ahead[run.index] == nil && kept[run.key] == nil && !options.stopRequested() {
        computeAhead(from: position)
      }
      if var old = kept[run.key] {
        old.index = run.index
        records.append(old)
        counts[old.outcome.status, default: 0] += 1
        continue
      }
      if options.stopRequested() {
        // Save what this invocation finished; if it finished nothing, the file on disk stays as it was.
        if executed > 0 { try save(complete: false) }
        throw BackendError.interrupted(partial: nil)
      }
      let started = MonotonicClock.now()
      let record: RunRecord
      do {
        if let computed = ahead.removeValue(forKey: run.index) {
          record = try computed.get()
        } else {
          record = try execute(
            run, backend: backends[run.point.experiment.spec.backend]!,
            cancellation: Cancellation(options.stopRequested), encoder: options.promptEncoder)
        }
        if let encoder = options.promptEncoder { reportText(record, run: run, encoder: encoder) }
      } catch let stop as StopSweep {
        // Save what finished, mark the file incomplete, and stop.
        if let partial = stop.record { records.append(partial) }
        // A run refused before it started, as the first of this invocation, leaves the file on disk as it was.
        if stop.record != nil || executed > 0 { try save(complete: false) }
        throw stop.error
      }
      records.append(record)
      counts[record.outcome.status, default: 0] += 1
      executed += 1
      done += 1
      progress.runFinished(
        done: done, total: runs.count, description: Self.describe(run),
        status: record.outcome.status.rawValue, runSeconds: MonotonicClock.now() - started)
      if MonotonicClock.now() - lastCheckpoint > options.checkpointInterval {
        try save(complete: false)
        lastCheckpoint = MonotonicClock.now()
      }
    }
    try save(complete: true)
    progress.finished()
    return RunReport(
      path: path, runsTotal: runs.count, runsExecuted: executed, runsSkipped: skipped,
      statusCounts: counts, archivedPrevious: archived)
  }

  /// The text each request of a real run generated, with its per-token times (progress notes).
  func reportText(_ record: RunRecord, run: RunDescriptor, encoder: any PromptEncoder) {
    let x = run.point.experiment
    guard x.spec.workload.prompts != nil, let generated = record.outcome.generated else { return }
    for r in record.outcome.requests.sorted(by: { $0.id < $1.id }) {
      guard let ids = generated[r.id], let text = encoder.decode(ids, experiment: x) else { continue }
      var times: [String] = []
      var last = r.arrival
      for t in r.tokenTimes {
        times.append(String(format: "%.1f", (t - last) * 1000))
        last = t
      }
      progress.note(
        "request \(r.id) (\(r.promptTokens) prompt tokens): \(text.debugDescription)\n  ms per token (the first from arrival): \(times.joined(separator: " "))"
      )
    }
  }

  /// The prompts of a workload that names a prompt file, tokenized — once per file, chat setting and model, for
  /// every run of the sweep.
  func promptTokens(_ x: ResolvedExperiment, encoder: (any PromptEncoder)?) throws(SpecError) -> [[Int32]]? {
    guard let file = x.spec.workload.prompts else { return nil }
    let key = "\(file.path)|\(file.format.rawValue)|\(file.chat)|\(x.spec.model.checkpoint ?? "")"
    if let cached = promptCache.get(key) { return cached }
    let ids = try tokenizePrompts(x, file: file, encoder: encoder)
    promptCache.set(key, ids)
    return ids
  }

  func tokenizePrompts(_ x: ResolvedExperiment, file: PromptFile, encoder: (any PromptEncoder)?) throws(SpecError)
    -> [[Int32]]
  {
    guard let encoder else {
      throw SpecError(
        field: "workload.prompts", "real prompts need the model's tokenizer; run the experiment with `edgelab run`")
    }
    let texts = try file.read()
    let ids: [[Int32]]
    do { ids = try encoder.encode(texts, chat: file.chat, experiment: x) } catch {
      throw SpecError(field: "workload.prompts", "\(error)")
    }
    let longestOutput = x.spec.workload.outputTokens.bounds.upperBound
    for (i, p) in ids.enumerated() {
      if p.isEmpty { throw SpecError(field: "workload.prompts", "prompt \(i + 1) of \(file.path) gives no tokens") }
      if let bad = p.first(where: { $0 < 0 || Int($0) >= x.model.vocabSize }) {
        throw SpecError(
          field: "workload.prompts", "prompt \(i + 1) has token \(bad), outside the model's \(x.model.vocabSize)")
      }
      if p.count + longestOutput > x.model.maxPositionEmbeddings {
        throw SpecError(
          field: "workload.prompts",
          "prompt \(i + 1) of \(file.path) has \(p.count) tokens; with \(longestOutput) output tokens it exceeds the model's \(x.model.maxPositionEmbeddings) positions"
        )
      }
    }
    return ids
  }

  func execute(
    _ run: RunDescriptor, backend: any ExecutionBackend, cancellation: Cancellation = .never,
    encoder: (any PromptEncoder)? = nil
  ) throws -> RunRecord {
    var run = run
    // Real prompts first: the plan is sized for their lengths.
    let prompts: [[Int32]]?
    do { prompts = try promptTokens(run.point.experiment, encoder: encoder) } catch {
      return makeRecord(run, plan: nil, outcome: RunOutcome(status: .failed, message: error.description))
    }
    if let prompts {
      let n = run.point.experiment.spec.workload.requests
      run.point.experiment.spec.workload.promptTokens = .choice((0..<n).map { prompts[$0 % prompts.count].count })
    }
    // Measured answers size the workload: one request per question.
    var evaluation: TaskEvaluation?
    if run.point.experiment.spec.collaboration?.tasks != nil {
      do {
        let e = try self.evaluation(run.point.experiment, evaluator: nil)
        evaluation = e
        Self.sizeWorkload(&run.point.experiment.spec.workload, for: e)
      } catch {
        return makeRecord(run, plan: nil, outcome: RunOutcome(status: .failed, message: "\(error)"))
      }
    }
    let x = run.point.experiment
    let builder = ProblemBuilder(timeModel: try profiles.timeModel(for: x))
    // A strategy's target model is placed on the devices other than the edge device.
    var planned = run
    if run.strategy != nil, let edge = x.spec.collaboration?.edge {
      planned.point.experiment = x.without(device: edge)
    }
    let (_, result) = Self.plan(planned, builder: builder, partitioners: partitioners)
    switch result {
    case .failure(let error):
      if case .infeasible(let why) = error { return makeRecord(run, plan: nil, outcome: .infeasible(why)) }
      return makeRecord(run, plan: nil, outcome: RunOutcome(status: .failed, message: error.description))
    case .success(let plan):
      var requests = x.spec.workload.materialize(
        seed: run.seed, vocabularySize: x.model.vocabSize, prompts: prompts)
      var collaboration: CollaborationJob?
      if let c = x.spec.collaboration, evaluation == nil, x.spec.backend == .simulated,
        let sp = run.strategy?.speculative, (sp.acceptanceRate ?? c.acceptanceRate) == nil
      {
        do { evaluation = try traceEvaluation(x, requests: requests) } catch {
          return makeRecord(run, plan: plan, outcome: RunOutcome(status: .failed, message: "\(error)"))
        }
      }
      if let c = x.spec.collaboration {
        let e =
          evaluation
          ?? TaskEvaluation.unmeasured(
            requests.map { ($0.id, $0.promptLength, $0.outputLength) },
            edgeModel: c.edgeModel.displayName, cloudModel: x.spec.model.displayName)
        if evaluation != nil { Self.assign(&requests, e) }
        evaluation = e
        do { collaboration = try collaborationJob(run, evaluation: e) } catch {
          return makeRecord(run, plan: plan, outcome: RunOutcome(status: .failed, message: "\(error)"))
        }
      }
      let job = RunJob(
        experiment: x, plan: plan, requests: requests, seed: run.seed, timeModel: builder.timeModel,
        label: Self.describe(run), cancellation: cancellation, collaboration: collaboration)
      do {
        var outcome = try backend.execute(job)
        if let evaluation, let c = collaboration {
          Self.recordCollaboration(&outcome, evaluation: evaluation, job: c, plan: plan)
        }
        outcome.facts["cost_model"] = .string(builder.timeModel.provenance)
        if let slo = x.spec.workload.slo {
          if let t = slo.ttft { outcome.facts["slo_ttft_s"] = .number(t.value) }
          if let t = slo.tpot { outcome.facts["slo_tpot_s"] = .number(t.value) }
        }
        return makeRecord(run, plan: plan, outcome: outcome)
      } catch let e as BackendError {
        var partial: RunOutcome?
        var why = "interrupted"
        switch e {
        case .fatal(let f, _, let p): (partial, why) = (p, f.description)
        case .interrupted(let p): partial = p
        case .unavailable, .refused: break
        }
        let record = partial.map { p -> RunRecord in
          var o = p
          o.status = .incomplete
          o.message = why
          return makeRecord(run, plan: plan, outcome: o)
        }
        throw StopSweep(record: record, error: e)
      } catch {
        return makeRecord(run, plan: plan, outcome: RunOutcome(status: .failed, message: "\(error)"))
      }
    }
  }

  func makeRecord(_ run: RunDescriptor, plan: Plan?, outcome: RunOutcome) -> RunRecord {
    RunRecord(
      index: run.index, point: run.point.index, algorithm: run.algorithm.name, label: run.algorithm.displayLabel,
      repetition: run.repetition, seed: run.seed, key: run.key,
      parameters: run.point.settings.map { RunParameter(label: $0.label, path: $0.path, value: $0.value) },
      plan: plan, outcome: outcome)
  }

  /// Moves an existing results file aside; returns its new path.
  func archive(_ path: String, directory: String?) throws -> String { try Self.archive(path, directory: directory) }

  /// Moves an existing results file into an `archive/` folder beside it (or `directory`), named by its start time.
  static func archive(_ path: String, directory: String?) throws -> String {
    let url = URL(fileURLWithPath: path)
    let dir = directory ?? url.deletingLastPathComponent().appendingPathComponent("archive").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    var stamp = "previous"
    if let old = try? ResultsStore.read(path), !old.info.startedAt.isEmpty {
      stamp = old.info.startedAt.replacingOccurrences(of: ":", with: "-")
    } else if let attrs = try? FileManager.default.attributesOfItem(atPath: path),
      let date = attrs[.modificationDate] as? Date
    {
      stamp = Provenance.timestamp(date).replacingOccurrences(of: ":", with: "-")
    }
    let base = url.deletingPathExtension().lastPathComponent
    var target = dir + "/\(base)-\(stamp).h5"
    var n = 1
    while FileManager.default.fileExists(atPath: target) {
      target = dir + "/\(base)-\(stamp)-\(n).h5"
      n += 1
    }
    try FileManager.default.moveItem(atPath: path, toPath: target)
    return target
  }
}

/// Results of a parallel batch, one slot per run, each written by one thread.
final class ResultSlots: @unchecked Sendable {
  private var slots: [Result<RunRecord, any Error>?]
  private let lock = NSLock()
  init(count: Int) { slots = Array(repeating: nil, count: count) }
  func set(_ i: Int, _ r: Result<RunRecord, any Error>) { lock.withLock { slots[i] = r } }
  func get(_ i: Int) -> Result<RunRecord, any Error> {
    lock.withLock { slots[i] ?? .failure(RunnerError.internalError("run \(i) of a parallel batch produced nothing")) }
  }
}

/// Tokenized prompt files by file, chat setting and model (shared by the threads of a parallel sweep).
final class PromptCache: @unchecked Sendable {
  private let lock = NSLock()
  private var entries: [String: [[Int32]]] = [:]
  func get(_ key: String) -> [[Int32]]? {
    lock.lock()
    defer { lock.unlock() }
    return entries[key]
  }
  func set(_ key: String, _ value: [[Int32]]) {
    lock.lock()
    defer { lock.unlock() }
    entries[key] = value
  }
}
