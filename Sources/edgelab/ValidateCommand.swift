import ArgumentParser
import Catalog
import CostModel
import DSL
import EdgeLabCore
import Evaluation
import Experiments
import Foundation
import Profiling
import Results
import Runner
import Runtime
import Spec
import Synchronization
import Validation

struct ValidateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "validate",
    abstract:
      "Check the simulator against real runs: predict each validation case from a host profile, run it, compare.",
    discussion: """
      Cases (experiments/validation.swift): plain worker processes with 1–3 stages, closed-loop and Poisson \
      arrivals, batched decode, a plan with offloaded layers; as root also emulated clusters at 10 Mbit/s – \
      1 Gbit/s. Writes the results file (both runs of every case and a 'validation' table), the table as \
      markdown (into --doc between its markers) and prints it. Without --profile, measures this host first. \
      Before each case its model's layer table, the message costs and the shared memory bandwidth are measured \
      again in a fresh process. A plain case's workers then time their own layers before and after the workload \
      (execution.calibrate_workers), and the case is predicted from that profile with each set of worker speeds \
      (calibration.worker_speeds); an emulated case is predicted from profiles measured just before and just \
      after its real run. The prediction is the mean of the two, their spread beside it. Each case runs \
      --repetitions times (2) and its row compares the mean of the real runs with the mean of their \
      predictions, each run's own error beside it (--once: the first profile serves every case).
      """)
  @Option(help: "A host profile (edgelab profile); measured into the work directory when omitted.") var profile: String?
  @Option(help: "Results file.") var out = "results/validate.h5"
  @Option(
    help: "Markdown file whose table (between '<!-- validation:begin -->' and '<!-- validation:end -->') is replaced.")
  var doc: String?
  @Option(help: "Where each case's own results go.") var work = "build/validate"
  @Option(
    name: .customLong("case"), help: "Run only these cases (repeatable; names from experiments/validation.swift).")
  var cases: [String] = []
  @Flag(help: "No progress output from the runs.") var quiet = false
  @Flag(
    help:
      "Measure no profile again: the first serves every case (plain cases still take their workers' speeds).")
  var once = false
  @Option(help: "Runs of each case; a row compares their means.") var repetitions = 2
  /// Internal: re-measure --profile for the one --case into this file and exit (how each case's profiles are
  /// measured, in a process of their own).
  @Option(help: .hidden) var remeasureInto: String?

  /// The profile with a table for every case's model that it lacks (a real model's shape and storage type, in
  /// its arithmetic; a case whose checkpoint is absent is skipped later, so it needs none), written beside the
  /// cases' results; the path unchanged when nothing was missing.
  static func withEveryCaseModel(
    _ path: String, cases: [Experiment], work: String, log: @escaping @Sendable (String) -> Void
  ) throws -> String {
    var (profile, _) = try ProfileLibrary.read(path, field: "--profile")
    var added = false
    for e in cases {
      let m = e.spec.model
      guard let name = m.preset, let preset = ModelPreset.named(name) else { continue }
      if let c = m.checkpoint, !FileManager.default.fileExists(atPath: c) { continue }
      if profile.model(preset.config, m.precision) != nil { continue }
      profile = try tableProfiler(preset, log: log).adding(
        preset, precision: m.precision, arithmetic: m.arithmetic, to: profile)
      added = true
    }
    guard added else { return path }
    return try write(profile, to: work + "/profile-with-case-models.json")
  }

  /// What measures a model's table here: the validation model's as `edgelab profile` does; real models' prompts
  /// are short here, so fewer, shorter points keep their measurement to minutes.
  static func tableProfiler(_ preset: ModelPreset, log: @escaping @Sendable (String) -> Void) -> Profiler {
    var options = Profiler.Options()
    if preset.name != ModelPreset.small.name {
      options.prefillTokens = [1, 4, 16, 32, 64]
      options.decodeContexts = [16, 64, 128]
      options.repetitions = 3
    }
    return Profiler(options: options, log: log)
  }

  /// The profile at `path` with what `e`'s prediction reads from this host measured again: its model's layer
  /// table, the message costs and how workers share the memory bandwidth. The single worker's decode bandwidth
  /// is kept (an emulated case's dilation was planned with it).
  static func remeasured(
    _ path: String, for e: Experiment, to out: String, log: @escaping @Sendable (String) -> Void
  ) throws -> String {
    var (profile, _) = try ProfileLibrary.read(path, field: "--profile")
    profile.message = try Profiler(log: { _ in }).measureMessages()
    profile.sharedDecodeBandwidth = try Profiler(log: { _ in }).measureSharedBandwidth()
    let m = e.spec.model
    if let name = m.preset, let preset = ModelPreset.named(name) {
      profile = try tableProfiler(preset, log: { _ in }).adding(
        preset, precision: m.precision, arithmetic: m.arithmetic, to: profile)
    }
    profile.host.measuredAt = Profiler.timestamp()
    return try write(profile, to: out)
  }

  static func write(_ profile: HostProfile, to out: String) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try FileManager.default.createDirectory(
      atPath: URL(fileURLWithPath: out).deletingLastPathComponent().path, withIntermediateDirectories: true)
    try encoder.encode(profile).write(to: URL(fileURLWithPath: out), options: .atomic)
    return out
  }

  func run() throws {
    guard (1...10).contains(repetitions) else {
      throw fail("--repetitions \(repetitions): give a number of runs of each case in 1...10", code: Exit.badInput)
    }
    if let into = remeasureInto {
      guard let base = profile, cases.count == 1 else {
        throw fail("--remeasure-into needs --profile and one --case", code: Exit.badInput)
      }
      guard let e = ValidationCases.named(cases[0]) ?? ValidationCases.named("validate-" + cases[0]) else {
        throw fail("no validation case '\(cases[0])'", code: Exit.badInput)
      }
      _ = try Self.remeasured(base, for: e, to: into, log: { _ in })
      return
    }
    var selected = ValidationCases.all
    if !cases.isEmpty {
      selected = try cases.map { n in
        guard let e = ValidationCases.named(n) ?? ValidationCases.named("validate-" + n) else {
          throw fail(
            "no validation case '\(n)'; cases: \(ValidationCases.all.map(\.spec.name).joined(separator: ", "))",
            code: Exit.badInput)
        }
        return e
      }
    }
    let log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data("validate: \($0)\n".utf8)) }
    var profilePath: String
    if let profile {
      profilePath = profile
    } else {
      profilePath = work + "/profile.json"
      log("measuring this host (edgelab profile --out \(profilePath))")
      _ = try Self.write(Profiler(log: log).profile(name: "validate", models: [.small]), to: profilePath)
    }
    profilePath = try Self.withEveryCaseModel(profilePath, cases: selected, work: work, log: log)
    let (hostProfile, hash) = try ProfileLibrary.read(profilePath, field: "--profile")
    log("profile \(profilePath) (\(hash)): decode read \(hostProfile.decodeBandwidth)")
    Interrupt.install()
    let runner = ExperimentRunner(
      backends: Backends.all(quiet: quiet), progress: quiet ? SilentProgress() : StderrProgress())
    var validation = Validation(
      runner: runner, profile: profilePath, hostBandwidth: hostProfile.decodeBandwidth, workDirectory: work,
      canEmulate: geteuid() == 0, environment: EnvironmentFacts.provenance, stop: { Interrupt.isRequested }, log: log)
    validation.hostPrefillFlops = hostProfile.prefillFlops
    validation.repetitions = repetitions
    validation.taskEvaluator = ModelEvaluator(threads: 1)
    validation.promptEncoder = ModelPromptEncoder()
    if !once {
      let count = Counter()
      let work = self.work
      // Each in a fresh process: a process that measures keeps the speed it landed on (docs/validation.md), and
      // the workers each run in their own.
      validation.remeasure = { path, e in
        let out = work + "/profile-\(count.next()).json"
        log("re-measuring the profile for \(e.spec.name)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Backends.executable)
        p.arguments = ["validate", "--remeasure-into", out, "--profile", path, "--case", e.spec.name]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
          throw ValidationCommandError(
            "re-measuring the profile for \(e.spec.name) failed (status \(p.terminationStatus))")
        }
        return out
      }
    }
    let report = try validation.run(selected)
    try ResultsStore.write(report.file, to: out)
    let table = Validation.markdown(report)
    print(table)
    print("wrote \(out)")
    let profiles =
      once
      ? "profile \(profilePath) (\(hash))"
      : "profile \(profilePath) (\(hash)) for the emulation's bandwidth, each case's own measured before it (and after it for emulated cases; \(work)/profile-N.json), plain cases with their workers' speeds"
    if let doc { try Self.replaceTable(in: doc, with: table, profile: profiles) }
    let failed = report.skipped.filter { $0.1.hasPrefix("failed") }
    if !failed.isEmpty {
      throw fail("\(failed.count) case(s) failed: \(failed.map(\.0).joined(separator: ", "))", code: Exit.failure)
    }
  }

  struct ValidationCommandError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
  }

  /// Numbers the re-measured profiles.
  final class Counter: Sendable {
    let value = Mutex(0)
    func next() -> Int {
      value.withLock {
        $0 += 1
        return $0
      }
    }
  }

  static let begin = "<!-- validation:begin -->"
  static let end = "<!-- validation:end -->"

  /// Replaces the text between the markers of `path` with the table (the rest of the page is prose).
  static func replaceTable(in path: String, with table: String, profile: String) throws {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8),
      let b = text.range(of: begin), let e = text.range(of: end), b.upperBound <= e.lowerBound
    else {
      throw fail("\(path) has no '\(begin)' … '\(end)' markers to put the table between", code: Exit.badInput)
    }
    let stamp = "Measured \(Provenance.timestamp()) on \(Provenance.host()), \(profile).\n\n"
    let updated = text[..<b.upperBound] + "\n" + stamp + table + text[e.lowerBound...]
    try String(updated).write(toFile: path, atomically: true, encoding: .utf8)
    FileHandle.standardError.write(Data("validate: updated the table in \(path)\n".utf8))
  }
}
