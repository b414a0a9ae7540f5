public import EdgeLabCore
public import Results
public import Spec

/// Why the runner (expanding, resuming, reading profiles, planning and merging sweeps) stopped, as data.
public enum RunnerError: Error, CustomStringConvertible, ReportableError {
  /// The experiment is invalid (every issue names its field).
  case spec(SpecError)
  /// A run index (a shard's, or `RunOptions.only`) that the experiment does not have.
  case noSuchRun(Int, count: Int)
  /// A host profile the experiment names (`field`) cannot be used.
  case profile(field: String, path: String, ProfileProblem)
  /// `--resume`: the results file cannot be read.
  case cannotResume(ResultsError)
  /// `--resume`: the results file holds another spec's runs.
  case resumeSpecDiffers(path: String)
  /// `--resume`: the results file was written by another build (its runs and this build's would mix).
  case resumeBuildDiffers(path: String, theirs: String, ours: String)
  /// `sweep plan --shards N` with N < 1.
  case shardCount(Int)
  /// A shard spec that cannot be read.
  case shardSpec(path: String, reason: String)
  /// A shard planned by another build than this one.
  case shardBuild(path: String, planned: String, this: String)
  /// A sweep manifest that is missing or cannot be read.
  case manifest(path: String, reason: String)
  /// Shard results that cannot be merged.
  case merge(MergeProblem)
  /// An experiment with `collaboration` run without a way to measure its models (the command line gives one).
  case noEvaluator(experiment: String)
  /// A bug in the runner.
  case internalError(String)

  /// What is wrong with a profile file.
  public enum ProfileProblem: Sendable, Equatable {
    case missing
    case tooLarge(bytes: Int, limit: Int)
    case unreadable
    case notAProfile(String)
    case invalid([String])
  }

  /// Why shards cannot be merged into one file.
  public enum MergeProblem: Sendable, Equatable {
    case noFiles
    case unreadable(path: String, reason: String)
    /// A shard ran another spec than the manifest's.
    case otherSpec(path: String, experiment: String, specHash: String)
    /// Shards (or the plan) come from different builds: each file's build, and the planning build.
    case mixedBuilds(builds: [String: String], planned: String)
    /// Runs present in more than one file ("run0003 (…) in a.h5 and b.h5").
    case duplicates([String])
    /// A run the manifest does not have.
    case stray(String)
    /// Runs no file has, and the shards that should have them.
    case missing(runs: [String], shards: [Int])
  }

  public var description: String {
    switch self {
    case .spec(let e): e.description
    case .noSuchRun(let i, let count):
      "run \(i) is not one of the experiment's \(count) runs (0…\(count - 1))"
    case .profile(let field, let path, let problem):
      switch problem {
      case .missing: "\(field): no profile at '\(path)' (measure one with: edgelab profile --out \(path))"
      case .tooLarge(let bytes, let limit): "\(field): '\(path)' is \(bytes) bytes, more than a profile's \(limit)"
      case .unreadable: "\(field): cannot read '\(path)'"
      case .notAProfile(let why): "\(field): '\(path)' is not a profile: \(why)"
      case .invalid(let problems): "\(field): '\(path)': " + problems.joined(separator: "; ")
      }
    case .cannotResume(let e):
      "cannot resume from \(e); run without --resume (the file is moved to the archive) or write elsewhere with --out"
    case .resumeSpecDiffers(let path):
      "\(path) was produced by a different spec (or --seed/--backend/--emulation override); repeat the same overrides, run without --resume, or with --out to write elsewhere"
    case .resumeBuildDiffers(let path, let theirs, let ours):
      "\(path) was written by edgelab \(theirs), this is \(ours): resuming would mix two programs' runs in one file; run without --resume (the file is moved to the archive), with --out to write elsewhere, or with the build that wrote it"
    case .shardCount(let n): "--shards must be at least 1 (it is \(n))"
    case .shardSpec(let path, let reason): "\(path): shard spec: \(reason)"
    case .shardBuild(let path, let planned, let this):
      "\(path): planned by edgelab \(planned); this is edgelab \(this): run every shard with the build that planned the sweep (on boards: edgelab boards deploy), or plan it again"
    case .manifest(let path, let reason): "\(path): \(reason)"
    case .merge(let problem):
      switch problem {
      case .noFiles: "merge: give the shards' results files"
      case .unreadable(let path, let reason): "merge: \(path): \(reason)"
      case .otherSpec(let path, let experiment, let hash):
        "merge: \(path) ran another spec than the manifest's (\(experiment), \(hash)); plan and run the shards again"
      case .mixedBuilds(let builds, let planned):
        "merge: the shards come from different builds ("
          + builds.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
          + "; planned by \(planned)); run every shard with one build, or merge with --allow-mixed-builds (the file then records each shard's build)"
      case .duplicates(let d):
        "merge: runs present more than once: \(d.joined(separator: "; ")); give each shard's file once"
      case .stray(let name): "merge: \(name) is not a run of the manifest"
      case .missing(let runs, let shards):
        "merge: \(runs.count) run(s) missing: \(runs.prefix(20).joined(separator: ", "))\(runs.count > 20 ? ", …" : "") (shards \(shards.map(String.init).joined(separator: ", "))); run those shards (again) and merge, or merge with --allow-partial"
      }
    case .noEvaluator(let name):
      "experiment '\(name)' measures its edge and target models on its questions before running; run it with `edgelab run`, which can run the models"
    case .internalError(let why): "internal error: \(why)"
    }
  }

  public var failureClass: FailureClass {
    switch self {
    case .spec, .noSuchRun, .resumeSpecDiffers, .shardCount, .noEvaluator: .specRefused
    case .profile, .shardSpec, .manifest, .shardBuild, .resumeBuildDiffers: .inputCorrupt
    case .cannotResume(let e): e.failureClass
    case .merge(.noFiles): .specRefused
    case .merge: .inputCorrupt
    case .internalError: .internalError
    }
  }

  public var code: String {
    switch self {
    case .spec: "spec_invalid"
    case .noSuchRun: "no_such_run"
    case .profile: "profile_unusable"
    case .cannotResume: "cannot_resume"
    case .resumeSpecDiffers: "resume_spec_differs"
    case .resumeBuildDiffers: "resume_build_differs"
    case .shardCount: "shard_count"
    case .shardSpec: "shard_spec_unreadable"
    case .shardBuild: "shard_build_mismatch"
    case .manifest: "manifest_unreadable"
    case .merge(let p):
      switch p {
      case .noFiles: "merge_no_files"
      case .unreadable: "merge_unreadable"
      case .otherSpec: "merge_other_spec"
      case .mixedBuilds: "mixed_builds"
      case .duplicates: "merge_duplicate_runs"
      case .stray: "merge_stray_run"
      case .missing: "merge_missing_runs"
      }
    case .noEvaluator: "no_evaluator"
    case .internalError: "internal"
    }
  }

  public var details: [String: JSONValue] {
    switch self {
    case .spec(let e): e.details
    case .noSuchRun(let i, let count): ["run": .number(Double(i)), "runs": .number(Double(count))]
    case .profile(let field, let path, _): ["field": .string(field), "path": .string(path)]
    case .cannotResume(let e): e.details
    case .resumeSpecDiffers(let path): ["path": .string(path)]
    case .resumeBuildDiffers(let path, let theirs, let ours):
      ["path": .string(path), "theirs": .string(theirs), "ours": .string(ours)]
    case .shardCount(let n): ["shards": .number(Double(n))]
    case .shardSpec(let path, _): ["path": .string(path)]
    case .shardBuild(let path, let planned, let this):
      ["path": .string(path), "theirs": .string(planned), "ours": .string(this)]
    case .manifest(let path, _): ["path": .string(path)]
    case .merge(let p):
      switch p {
      case .noFiles: [:]
      case .unreadable(let path, _): ["path": .string(path)]
      case .otherSpec(let path, let experiment, let hash):
        ["path": .string(path), "experiment": .string(experiment), "spec_hash": .string(hash)]
      case .mixedBuilds(let builds, let planned):
        ["builds": .object(builds.mapValues(JSONValue.string)), "planned": .string(planned)]
      case .duplicates(let d): ["duplicates": .array(d.map(JSONValue.string))]
      case .stray(let name): ["run": .string(name)]
      case .missing(let runs, let shards):
        ["runs": .array(runs.map(JSONValue.string)), "shards": .array(shards.map { .number(Double($0)) })]
      }
    case .noEvaluator(let name): ["experiment": .string(name)]
    case .internalError: [:]
    }
  }
}
