public import ArgumentParser
import BuildInfo
import Collaboration
import CostModel
import DSL
import EdgeLabCore
import Engine
import Evaluation
import Execution
import Experiments
import Foundation
import Metrics
import Partitioning
import Pipeline
import Report
import Results
import Runner
import Runtime
import Spec
import UserAlgorithms

/// Exit codes, documented in the README ("Exit codes"): one per `FailureClass`.
enum Exit {
  /// Some runs (cases, boards) failed; the output names them.
  static let failure = FailureClass.runsFailed.exitCode
  /// The partition problem has no feasible plan.
  static let infeasible = FailureClass.infeasible.exitCode
  /// The experiment, a flag or a setting cannot be run as given.
  static let badInput = FailureClass.specRefused.exitCode
  /// An input file is missing, unreadable or corrupt.
  static let inputCorrupt = FailureClass.inputCorrupt.exitCode
  /// Writing an output failed.
  static let ioFailed = FailureClass.ioFailed.exitCode
  /// Stopped by Ctrl-C or SIGTERM (what finished is saved or removed).
  static let interrupted = FailureClass.interrupted.exitCode
}

/// A command's failure as data, printed once by `EdgeLab.main`: a sentence on standard error, or with
/// `--json-errors` one JSON object (`ReportableError.report`) as the last line of standard error.
struct CommandFailure: Error, ReportableError {
  var failureClass: FailureClass
  var code: String
  var message: String
  var details: [String: JSONValue]
  var description: String { message }

  /// A typed error of a library, with an optional sentence after its own (what to do next).
  init(_ error: any ReportableError, then advice: String? = nil) {
    failureClass = error.failureClass
    code = error.code
    message = error.description + (advice.map { "; " + $0 } ?? "")
    details = error.details
  }

  init(_ failureClass: FailureClass, code: String, _ message: String, details: [String: JSONValue] = [:]) {
    self.failureClass = failureClass
    self.code = code
    self.message = message
    self.details = details
  }

  /// What `EdgeLab.main` prints: the sentence, or the JSON object.
  func render(json: Bool) -> String {
    guard json else { return "error: " + message }
    return (try? JSONCoding.compactString(report)) ?? #"{"class":"internal","code":"unprintable"}"#
  }
}

/// The failure of a command for an exit status; the class follows from the status (`Exit`).
func fail(_ message: String, code: Int32) -> CommandFailure {
  let failureClass = FailureClass.allCases.first { $0.exitCode == code } ?? .internalError
  return CommandFailure(failureClass, code: failureClass.rawValue, message)
}

/// The failure of a command for a typed error of a library.
func fail(_ error: any ReportableError, then advice: String? = nil) -> CommandFailure {
  CommandFailure(error, then: advice)
}

/// Commands whose failures can be printed as JSON (`--json-errors`).
protocol ReportsErrors {
  var errorOutput: ErrorOutput { get }
}

struct ErrorOutput: ParsableArguments {
  @Flag(
    help:
      "On failure, print one JSON object as the last line of standard error: class, code, exit_code, message, details (README, \"Exit codes\")."
  )
  var jsonErrors = false
}

@main
struct EdgeLab: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "edgelab",
    abstract: "A reproducible lab for splitting Llama-family models across edge devices.",
    version: BuildIdentity.current,
    subcommands: [
      List.self, Run.self, SpecCommand.self, Show.self, Export.self, Partition.self, Algorithms.self, Problem.self,
      Generate.self, Bench.self, WorkerCommand.self, EmulationCommand.self, BLASCommand.self, ProfileCommand.self,
      Trace.self, ValidateCommand.self, BoardsCommand.self, SweepCommand.self, MergeCommand.self,
      ProbeCommand.self, ReportCommand.self,
    ])

  /// Before any work: the best OpenBLAS kernels this CPU has (starting again with them once, if OpenBLAS chose
  /// worse ones), and a product checked against a plain loop.
  static func main() {
    BLASSelection.reexecIfNeeded()
    Allocator.keepFreedMemory()
    guard BLASCore.verify() else {
      FileHandle.standardError.write(
        Data(
          "error: OpenBLAS (core \(BLASCore.current)) computes a small matrix product wrongly on this machine; set OPENBLAS_CORETYPE to a core this CPU supports (e.g. Haswell) and try again\n"
            .utf8))
      Foundation.exit(FailureClass.internalError.exitCode)
    }
    var command: any ParsableCommand
    do { command = try parseAsRoot() } catch { exit(withError: error) }
    let json = (command as? any ReportsErrors)?.errorOutput.jsonErrors ?? false
    if Kernels.isaRequestInvalid {
      report(
        CommandFailure(
          .specRefused, code: "kernel_isa",
          "EDGELAB_KERNEL_ISA=\(ProcessInfo.processInfo.environment["EDGELAB_KERNEL_ISA"] ?? "") is not an instruction set the kernels have; set it to avx512, avx2 or portable (x86), neon-dotprod, neon or portable (aarch64) — a lesser one than the CPU's is used as asked, a greater one as the CPU allows — or unset it"
        ), json: json)
    }
    if Kernels.llamaCppSIMDRequestInvalid {
      report(
        CommandFailure(
          .specRefused, code: "llamacpp_simd",
          "EDGELAB_LLAMACPP_SIMD=\(ProcessInfo.processInfo.environment["EDGELAB_LLAMACPP_SIMD"] ?? "") names no llama.cpp build the llama.cpp arithmetic reproduces; set it to avx512bf16, avx512 or avx2, or unset it (this CPU's)"
        ), json: json)
    }
    do {
      try command.run()
    } catch let failure as CommandFailure {
      report(failure, json: json)
    } catch let error as any ReportableError {
      report(CommandFailure(error), json: json)
    } catch let error where String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
      // Help, --version, usage and validation errors, and exit codes: ArgumentParser prints and exits.
      exit(withError: error)
    } catch {
      // An error without a class is a bug: the same exit code with or without --json-errors.
      report(CommandFailure(.internalError, code: "internal", "\(error)"), json: json)
    }
    Foundation.exit(0)
  }

  static func report(_ failure: CommandFailure, json: Bool) -> Never {
    FileHandle.standardError.write(Data((failure.render(json: json) + "\n").utf8))
    Foundation.exit(failure.failureClass.exitCode)
  }
}

/// The environment facts every results file records (what the numbers were computed with).
enum EnvironmentFacts {
  static var provenance: [String: String] {
    var facts = [
      "blas_core": BLASCore.current, "blas_config": BLASCore.config, "kernel_isa": Kernels.isa,
      "llamacpp_simd": Kernels.llamaCppBuild,
    ]
    if let replaced = BLASSelection.replaced { facts["blas_core_replaced"] = replaced }
    return facts
  }
}

struct BLASCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "blas", abstract: "The OpenBLAS kernels this process runs, and why (CPU flags, OpenBLAS's own choice)."
  )
  @Flag(help: "Print only the core's name (for OPENBLAS_CORETYPE).") var core = false

  func run() throws {
    if core {
      print(BLASCore.current)
      return
    }
    let env = ProcessInfo.processInfo.environment
    let replaced = BLASSelection.replaced.map { " (chosen by edgelab over \($0), the best kernels this CPU has)" } ?? ""
    let forced = env[BLASSelection.override].map { " (forced by \(BLASSelection.override)=\($0))" } ?? ""
    print("core: \(BLASCore.current)" + replaced + forced)
    print("config: \(BLASCore.config)")
    print("kernels (decode): \(Kernels.isa)")
    let flags = BLASCore.cpuFlags()
    print(
      "cpu flags: "
        + ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16", "avx512fp16"].filter(
          flags.contains
        ).joined(separator: " "))
  }
}

/// A results file, or the command's failure naming it (missing and corrupt files are input errors).
func readResults(_ path: String) throws -> ResultsFile {
  do { return try ResultsStore.read(path) } catch let e as any ReportableError { throw fail(e) } catch {
    throw CommandFailure(.inputCorrupt, code: "results_corrupt", "\(path): \(error)", details: ["path": .string(path)])
  }
}

/// Loads an experiment by catalog name or from a JSON spec file; a model given only as a checkpoint gets its
/// shapes from the checkpoint's config.json (read here, at the edge, so the stored spec says what ran).
func loadSpec(name: String?, file: String?) throws -> ExperimentSpec {
  var spec = try loadSpecAsWritten(name: name, file: file)
  if let dir = spec.model.checkpoint, spec.model.preset == nil, spec.model.config == nil {
    do { spec.model.config = try Checkpoint(directory: dir).config } catch {
      throw fail(
        error, then: "model.checkpoint names it; give a Hugging Face checkpoint directory (config.json + *.safetensors)"
      )
    }
    if spec.model.name == nil { spec.model.name = URL(fileURLWithPath: dir).lastPathComponent }
  }
  return spec
}

func loadSpecAsWritten(name: String?, file: String?) throws -> ExperimentSpec {
  if let file {
    guard
      let data = file == "-"
        ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: file)
    else {
      throw CommandFailure(
        .inputCorrupt, code: "spec_file_unreadable", "cannot read spec file '\(file)'", details: ["path": .string(file)]
      )
    }
    do { return try ExperimentSpec.load(json: data, source: file) } catch { throw fail(error) }
  }
  guard let name else { throw fail("give an experiment name or --spec FILE.json", code: Exit.badInput) }
  guard let e = ExperimentCatalog.named(name) else {
    let known = ExperimentCatalog.all.map(\.spec.name).joined(separator: ", ")
    throw CommandFailure(
      .specRefused, code: "no_such_experiment", "no experiment named '\(name)'; known: \(known) (see `edgelab list`)",
      details: ["name": .string(name)])
  }
  return e.spec
}

struct List: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "List the experiments with one-line descriptions.")
  func run() throws {
    let registry = try Lab.partitioners()
    var t = TextTable(header: ["NAME", "BACKEND", "RUNS", "DESCRIPTION"], rightAligned: [2])
    for e in ExperimentCatalog.all {
      let runs = (try? ExperimentRunner.expand(e.spec, partitioners: registry).count).map(String.init) ?? "invalid"
      t.append([e.spec.name, e.spec.backend.rawValue, runs, e.spec.summary])
    }
    print(t.render())
  }
}

struct SpecCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "spec", abstract: "Print an experiment's JSON form (what `run --spec` reads).")
  @Argument(help: "Experiment name.") var name: String
  func run() throws {
    let spec = try loadSpec(name: name, file: nil)
    print(try JSONCoding.prettyString(spec))
  }
}

struct Run: ParsableCommand, ReportsErrors {
  static let configuration = CommandConfiguration(abstract: "Run an experiment and write its HDF5 results file.")
  @OptionGroup var errorOutput: ErrorOutput
  @Argument(help: "Experiment name (see `edgelab list`).") var name: String?
  @Option(help: "Run the experiment in this JSON spec file instead (- reads standard input).") var spec: String?
  @Option(help: "Results file (default: results/<name>.h5).") var out: String?
  @Option(help: "Override the experiment's seed.") var seed: UInt64?
  @Option(help: "Override the backend: simulated, loopback or boards.") var backend: BackendKind?
  @Option(help: "Override how loopback runs are emulated: auto, none, namespaces (root) or userspace.")
  var emulation: EmulationOptions.Mode?
  @Option(help: "The boards inventory (JSON) for --backend boards (overrides the experiment's).") var inventory: String?
  @Option(
    help:
      "Compute this many simulated runs at once (on as many cores; the same file as --jobs 1); real backends run one run at a time."
  )
  var jobs = 1
  @Flag(help: "Print the expanded runs and exit without running.") var dryRun = false
  @Flag(help: "Skip runs already in the results file (same spec).") var resume = false
  @Flag(help: "No progress output.") var quiet = false
  @Flag(
    help:
      "Record the text of untracked files in the results' provenance (64 KiB each; never .env, keys or certificates); by default only their names and sizes."
  )
  var recordUntracked = false

  func run() throws {
    let registry = try Lab.partitioners()
    // A shard of a planned sweep (`edgelab sweep plan`): its experiment, and only its runs.
    var shard: Sharding.ShardSpec?
    if let spec, spec != "-", let data = FileManager.default.contents(atPath: spec) {
      do { shard = try Sharding.shard(from: data, path: spec) } catch { throw fail(error) }
    }
    if let shard, !BuildIdentity.sameBuild(shard.toolkitVersion, Provenance.toolkitVersion) {
      throw fail(
        RunnerError.shardBuild(path: spec ?? "", planned: shard.toolkitVersion, this: Provenance.toolkitVersion))
    }
    var loaded = try shard.map { $0.spec } ?? loadSpec(name: name, file: spec)
    if let emulation { loaded.emulation.mode = emulation }
    var options = RunOptions(
      outputPath: out, seed: seed, backend: backend, resume: resume,
      stopRequested: { Interrupt.isRequested })
    options.recordUntrackedText = recordUntracked
    options.inventory = inventory
    options.promptEncoder = ModelPromptEncoder()
    options.taskEvaluator = ModelEvaluator(threads: min(4, ProcessInfo.processInfo.activeProcessorCount))
    if let shard {
      options.only = Set(shard.runs)
      options.provenance["shard"] = "\(shard.shard)/\(shard.shards)"
    }
    options.provenance = EnvironmentFacts.provenance
    let effective = ExperimentRunner.applying(options, to: loaded)
    if dryRun {
      let runs: [RunDescriptor]
      let routers = try Lab.routers()
      do { runs = try ExperimentRunner.expand(effective, partitioners: registry, routers: routers) } catch {
        throw fail(error)
      }
      var t = TextTable(header: ["RUN", "POINT", "ALGORITHM", "REP", "SEED", "PARAMETERS"], rightAligned: [0, 1, 3])
      for r in runs {
        t.append([
          String(r.index), String(r.point.index), r.algorithm.displayLabel, String(r.repetition), String(r.seed),
          r.point.settings.map { "\($0.label)=\($0.value.stringValue ?? $0.value.description)" }.joined(separator: " "),
        ])
      }
      print("\(effective.name): \(runs.count) runs on the \(effective.backend.rawValue) backend")
      print(t.render())
      return
    }
    if jobs < 1 { throw fail("--jobs must be at least 1", code: Exit.badInput) }
    if jobs > 1 {
      if effective.backend == .simulated {
        options.parallelRuns = jobs
      } else {
        FileHandle.standardError.write(
          Data("note: --jobs applies to simulated runs; \(effective.backend.rawValue) runs go one at a time\n".utf8))
      }
    }
    Interrupt.install()
    var runner = ExperimentRunner(
      backends: Backends.all(quiet: quiet), partitioners: registry,
      progress: quiet ? SilentProgress() : StderrProgress())
    runner.routers = try Lab.routers()
    do {
      let report = try runner.run(loaded, options: options)
      if !quiet {
        let counts = report.statusCounts.sorted { $0.key.rawValue < $1.key.rawValue }.map {
          "\($0.value) \($0.key.rawValue)"
        }
        print(
          "\(report.path): \(report.runsTotal) runs (\(counts.joined(separator: ", ")))"
            + (report.runsSkipped > 0 ? "; \(report.runsSkipped) resumed" : ""))
      }
      if !quiet, shard == nil, !loaded.paper.isEmpty, let results = try? ResultsStore.read(report.path) {
        print("")
        print(Show.paperComparison(results))
      }
      if !quiet, shard == nil, !loaded.strategies.isEmpty, let results = try? ResultsStore.read(report.path) {
        print("\nranking (means over the sweep; `edgelab report \(report.path)` writes it as a page):")
        print(Leaderboard(runs: results.runs).text())
      }
      if let failed = report.statusCounts[.failed], failed > 0 {
        throw CommandFailure(
          .runsFailed, code: "runs_failed", "\(failed) run(s) failed; see `edgelab show \(report.path)`",
          details: ["path": .string(report.path), "failed": .number(Double(failed))])
      }
    } catch let e as BackendError {
      switch e {
      case .interrupted, .fatal: throw fail(e, then: "what finished is saved (run again with --resume)")
      case .refused, .unavailable: throw fail(e)
      }
    }
  }
}

extension BackendKind: ExpressibleByArgument {}
extension EmulationOptions.Mode: ExpressibleByArgument {}

struct Show: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Summarise the runs of a results file.")
  @Argument(help: "An HDF5 results file.") var file: String
  func run() throws {
    let results: ResultsFile
    results = try readResults(file)
    let i = results.info
    print(
      "experiment \(i.experiment) · backend \(i.backend) · \(results.runs.count)/\(i.runsTotal) runs\(i.complete ? "" : " (incomplete)")"
    )
    print("started \(i.startedAt) · finished \(i.finishedAt) · seed \(i.seed)")
    print("edgelab \(i.toolkitVersion) · git \(i.gitCommit.prefix(12))\(i.gitDirty ? " (dirty)" : "") · \(i.host)")
    print("")
    var t = TextTable(
      header: ["RUN", "ALGORITHM", "PARAMETERS", "STATUS", "STAGES", "TTFT p50", "TPOT mean", "TOK/S", "NOTE"],
      rightAligned: [4, 5, 6, 7])
    for r in results.runs {
      let s = r.summary
      let note = r.outcome.status == .complete ? (r.plan?.explanation ?? "") : (r.outcome.message ?? "")
      t.append([
        r.groupName, r.label,
        r.parameters.map { "\($0.label)=\($0.value.stringValue ?? $0.value.description)" }.joined(separator: " "),
        r.outcome.status.rawValue, r.plan.map { String($0.stages.count) } ?? "-",
        s.ttft.p50.isNaN ? "-" : Seconds(s.ttft.p50).description,
        s.tpot.mean.isNaN ? "-" : Seconds(s.tpot.mean).description,
        s.throughputTokensPerSecond.isNaN ? "-" : String(format: s.throughputTokensPerSecond, digits: 2),
        note.count > 60 ? String(note.prefix(57)) + "..." : note,
      ])
    }
    print(t.render())
    let comparison = Show.paperComparison(results)
    if !comparison.isEmpty {
      print("")
      print(comparison)
    }
  }

  /// The paper's numbers of the file's experiment against the lab's (empty when the spec states none).
  static func paperComparison(_ results: ResultsFile) -> String {
    let rows = ReportCommand.paperRows(results)
    return rows.isEmpty ? "" : "paper's numbers against the lab's:\n" + PaperComparison.markdown(rows)
  }
}

struct Export: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Write tidy TSV tables of a results file (for gnuplot).")
  @Argument(help: "An HDF5 results file.") var file: String
  @Option(help: "Output directory (default: build/plot-data/<experiment>, the name made safe for a path).") var dir:
    String?
  func run() throws {
    let results: ResultsFile
    results = try readResults(file)
    // The experiment's name comes from the file: it names a directory only once made safe (no '/', no '..').
    let target = dir ?? "build/plot-data/\(Exporter.safeDirectoryName(results.info.experiment))"
    for path in try Exporter.export(results, to: target) { print(path) }
  }
}

struct Algorithms: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "List the partition algorithms: the lab's own and yours (the algorithms/ folder).")
  func run() throws {
    let registry = try Lab.partitioners()
    var t = TextTable(header: ["NAME", "FROM", "DESCRIPTION"])
    for a in registry.types { t.append([a.name, registry.origin(of: a.name)?.rawValue ?? "", a.summary]) }
    print(t.render())
  }
}

/// What this build of the lab is made of: its own algorithms and the researcher's, composed once here.
enum Lab {
  /// The lab's partition algorithms and those of the algorithms/ folder (`UserAlgorithms`).
  ///
  /// - Throws: a bad-input exit when a user algorithm takes a name already registered.
  static func partitioners() throws -> PartitionerRegistry {
    do { return try PartitionerRegistry.standard.addingUser(UserAlgorithms.partitioners) } catch {
      throw fail(error, then: "algorithms/Registry.swift lists it")
    }
  }

  /// The lab's routers and those of the algorithms/ folder.
  static func routers() throws -> RouterRegistry {
    do { return try RouterRegistry.standard.adding(UserAlgorithms.routers) } catch {
      throw fail(error, then: "algorithms/Registry.swift lists it")
    }
  }
}

struct Partition: ParsableCommand, ReportsErrors {
  static let configuration = CommandConfiguration(abstract: "Solve a partition problem (JSON) with one algorithm.")
  @OptionGroup var errorOutput: ErrorOutput
  @Option(help: "Partition problem JSON file.") var problem: String
  @Option(help: "Algorithm name (see `edgelab algorithms`).") var algorithm: String
  @Option(name: .customLong("param"), help: "Algorithm parameter NAME=VALUE (JSON value or plain string); repeatable.")
  var params: [String] = []
  @Flag(help: "Print the plan as JSON.") var json = false

  func run() throws {
    guard let data = FileManager.default.contents(atPath: problem) else {
      throw fail("cannot read problem file '\(problem)'", code: Exit.inputCorrupt)
    }
    let p: PartitionProblem
    do { p = try JSONCoding.decoder.decode(PartitionProblem.self, from: data) } catch {
      throw fail("\(problem): \(JSONCoding.explain(error, in: data))", code: Exit.inputCorrupt)
    }
    var parameters: [String: JSONValue] = [:]
    for kv in params {
      guard let eq = kv.firstIndex(of: "=") else {
        throw fail("--param takes NAME=VALUE (got '\(kv)')", code: Exit.badInput)
      }
      let key = String(kv[..<eq])
      let raw = String(kv[kv.index(after: eq)...])
      parameters[key] = (try? JSONCoding.decoder.decode(JSONValue.self, from: Data(raw.utf8))) ?? .string(raw)
    }
    let plan: Plan
    let started = MonotonicClock.now()
    let registry = try Lab.partitioners()
    do { plan = try registry.solve(p, algorithm: algorithm, parameters: parameters) } catch { throw fail(error) }
    let elapsed = MonotonicClock.now() - started
    if json {
      print(try JSONCoding.compactString(plan))
    } else {
      print(
        "\(plan.algorithm) · \(plan.objective.rawValue) · \(Seconds(plan.valueSeconds))\(plan.valueModel == .standard ? "" : " (\(plan.valueModel.rawValue) model)")\(plan.exact ? " · optimal" : "") · solved in \(Seconds(elapsed))"
      )
      print(plan.explanation)
      var t = TextTable(header: ["STAGE", "DEVICE", "LAYERS", "OFFLOADED"], rightAligned: [0])
      for (i, s) in plan.stages.enumerated() {
        t.append([
          String(i), s.device, "\(s.firstLayer)..<\(s.endLayer)",
          s.offloadedLayers.isEmpty ? "" : s.offloadedLayers.map(String.init).joined(separator: ","),
        ])
      }
      print(t.render())
      for n in plan.notes { print("note: \(n)") }
    }
  }
}

struct Problem: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print the partition problem (JSON) of an experiment's sweep point.")
  @Argument(help: "Experiment name.") var name: String?
  @Option(help: "A JSON spec file instead of a name (- reads standard input).") var spec: String?
  @Option(help: "Sweep point index (see `run --dry-run`).") var point = 0
  @Option(help: "Objective: latency or throughput (default: the experiment's).") var objective: Objective?

  func run() throws {
    let spec = try loadSpec(name: name, file: self.spec)
    let points: [SweepPoint]
    let known = Set(try Lab.partitioners().names)
    do { points = try spec.expandPoints(knownAlgorithms: known) } catch {
      throw fail(error.description, code: Exit.badInput)
    }
    guard points.indices.contains(point) else {
      throw fail("point \(point) is out of range (0..<\(points.count))", code: Exit.badInput)
    }
    let x = points[point].experiment
    let problem = ProblemBuilder(timeModel: try ProfileLibrary().timeModel(for: x))
      .problem(for: x, objective: objective ?? x.spec.objective)
    print(try JSONCoding.prettyString(problem))
  }
}

extension Objective: ExpressibleByArgument {}

struct Trace: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write a run's timeline as Chrome/Perfetto trace JSON (runs with execution.record_events).")
  @Argument(help: "An HDF5 results file.") var file: String
  @Option(name: .customLong("run"), help: "The run: its index (0, 1, …) or group name (run0003).") var which: String
  @Option(help: "Where to write the trace (stdout when omitted).") var out: String?

  func run() throws {
    let results: ResultsFile
    results = try readResults(file)
    guard
      let r = results.runs.first(where: { $0.groupName == which || String($0.index) == which })
    else {
      throw fail(
        "\(file) has no run '\(which)'; its runs are \(results.runs.map(\.groupName).prefix(8).joined(separator: ", "))"
          + (results.runs.count > 8 ? ", …" : ""), code: Exit.badInput)
    }
    guard let events = r.outcome.events else {
      throw fail(
        "\(r.groupName) of \(file) recorded no timeline; run the experiment with execution.record_events (Execution(ExecutionOptions(recordEvents: true)) in Swift)",
        code: Exit.badInput)
    }
    let json = ChromeTrace.json(events, title: "\(results.info.experiment) \(r.groupName) \(r.label)")
    if let out {
      let temporary = out + ".partial-\(getpid())"
      try Data(json.utf8).write(to: URL(fileURLWithPath: temporary))
      guard rename(temporary, out) == 0 else {
        unlink(temporary)
        throw fail("cannot write \(out): \(String(cString: strerror(errno)))", code: Exit.ioFailed)
      }
      FileHandle.standardError.write(Data("wrote \(out): \(events.count) events (open it in ui.perfetto.dev)\n".utf8))
    } else {
      print(json, terminator: "")
    }
  }
}
