import BuildInfo
import EdgeLabCore
public import Foundation
public import Partitioning
import Results
public import Spec

/// A sweep cut into shards that run anywhere (other processes, Slurm array tasks) and are merged back into one
/// results file, the same as a single-process run's.
///
/// - `plan` writes `shard-K.json` (self-contained: the experiment's spec, its run indices, the spec's hash, the
///   toolkit version, the planning host's provenance) and `manifest.json` (every shard and its runs).
/// - `edgelab run --spec shard-K.json --out shard-K.h5` runs one shard (`ShardSpec`).
/// - `merge` checks that every run of the manifest is present exactly once and that all shards ran the same
///   spec with the same toolkit version, then writes one file whose provenance lists each shard's host, start and
///   end.
///
/// Sweep points go to shards round-robin (each with all its algorithms), so every shard gets a similar mix of
/// cheap and expensive algorithms.
public enum Sharding {
  public static let shardFormat = "edgelab-shard/1"
  public static let manifestFormat = "edgelab-sweep/1"

  /// One shard's file.
  public struct ShardSpec: Codable, Sendable {
    public var format: String
    public var shard: Int
    public var shards: Int
    public var runs: [Int]
    public var specHash: String
    public var toolkitVersion: String
    public var provenance: [String: String]
    public var spec: ExperimentSpec

    enum CodingKeys: String, CodingKey {
      case format, shard, shards, runs
      case specHash = "spec_hash"
      case toolkitVersion = "toolkit_version"
      case provenance, spec
    }
  }

  /// The sweep's manifest.
  public struct Manifest: Codable, Sendable {
    public struct Entry: Codable, Sendable {
      public var shard: Int
      public var spec: String
      public var results: String
      public var runs: [Int]
    }
    public var format: String
    public var experiment: String
    public var specHash: String
    public var toolkitVersion: String
    public var runsTotal: Int
    /// "run0007 (even, bandwidth=10Mbit/s)" by run index, for messages.
    public var runNames: [String]
    public var shards: [Entry]

    enum CodingKeys: String, CodingKey {
      case format, experiment
      case specHash = "spec_hash"
      case toolkitVersion = "toolkit_version"
      case runsTotal = "runs_total"
      case runNames = "run_names"
      case shards
    }
  }

  /// The content hash of the spec as results files record it (their `spec_json`).
  public static func hash(_ spec: ExperimentSpec) throws -> (json: String, hash: String) {
    let json = try JSONCoding.compactString(spec)
    return (json, FNV1a.label(Data(json.utf8)))
  }

  /// Expands the experiment and writes `count` shard specs and the manifest into `directory`.
  @discardableResult
  public static func plan(
    _ spec: ExperimentSpec, shards count: Int, directory: String, partitioners: PartitionerRegistry = .standard
  ) throws -> Manifest {
    let runs: [RunDescriptor]
    do { runs = try ExperimentRunner.expand(spec, partitioners: partitioners) } catch {
      throw RunnerError.spec(error)
    }
    guard count >= 1 else { throw RunnerError.shardCount(count) }
    let n = min(count, max(runs.count, 1))
    let (_, hash) = try hash(spec)
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    var entries: [Manifest.Entry] = []
    let git = Provenance.git(untrackedText: false)
    // Whole sweep points (with their repetition) go round-robin, so every shard gets every algorithm (whose
    // costs differ by orders of magnitude); runs go round-robin when there are fewer points than shards.
    let units = Array(Set(runs.map { [$0.point.index, $0.repetition] })).sorted { ($0[0], $0[1]) < ($1[0], $1[1]) }
    let unitOf = Dictionary(uniqueKeysWithValues: units.enumerated().map { ($1, $0) })
    func shardOf(_ r: RunDescriptor) -> Int {
      units.count >= n ? unitOf[[r.point.index, r.repetition]]! % n : r.index % n
    }
    for k in 0..<n {
      let mine = runs.filter { shardOf($0) == k }.map(\.index)
      let shard = ShardSpec(
        format: shardFormat, shard: k, shards: n, runs: mine, specHash: hash, toolkitVersion: Provenance.toolkitVersion,
        provenance: ["planned_on": Provenance.host(), "planned_at": Provenance.timestamp(), "git_commit": git.commit],
        spec: spec)
      let file = "shard-\(k).json"
      try write(shard, to: directory + "/" + file)
      entries.append(.init(shard: k, spec: file, results: "shard-\(k).h5", runs: mine))
    }
    let manifest = Manifest(
      format: manifestFormat, experiment: spec.name, specHash: hash, toolkitVersion: Provenance.toolkitVersion,
      runsTotal: runs.count,
      runNames: runs.map { "run\(String(format: "%04d", $0.index)) (\(ExperimentRunner.describe($0)))" },
      shards: entries)
    try write(manifest, to: directory + "/manifest.json")
    return manifest
  }

  static func write<T: Encodable>(_ value: T, to path: String) throws {
    let data = try JSONCoding.prettyEncoder.encode(value)
    try data.write(to: URL(fileURLWithPath: path), options: .atomic)
  }

  /// A shard spec, if `data` is one (nil for a plain experiment spec).
  public static func shard(from data: Data, path: String) throws(RunnerError) -> ShardSpec? {
    struct Probe: Decodable { var format: String? }
    guard (try? JSONCoding.decoder.decode(Probe.self, from: data))?.format == shardFormat else { return nil }
    do { return try JSONCoding.decoder.decode(ShardSpec.self, from: data) } catch {
      throw .shardSpec(path: path, reason: JSONCoding.explain(error))
    }
  }

  public static func readManifest(_ path: String) throws(RunnerError) -> Manifest {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw .manifest(path: path, reason: "no manifest here; give --manifest (written by `edgelab sweep plan`)")
    }
    do { return try JSONCoding.decoder.decode(Manifest.self, from: data) } catch {
      throw .manifest(path: path, reason: JSONCoding.explain(error))
    }
  }

  /// What a merge found.
  public struct MergeReport: Sendable {
    public var path: String
    public var runs: Int
    public var missing: [Int]
    public var complete: Bool
  }

  /// Merges shard results into `output`. Throws naming missing (unless `allowPartial`) or duplicated runs,
  /// shards that ran another spec, and shards of different builds (unless `allowMixedBuilds`: the merged file
  /// then records each shard's build in `shard_builds`, and its `toolkit_version` lists every build).
  @discardableResult
  public static func merge(
    _ files: [String], manifest: Manifest, output: String, allowPartial: Bool = false, allowMixedBuilds: Bool = false
  ) throws -> MergeReport {
    guard !files.isEmpty else { throw RunnerError.merge(.noFiles) }
    var shards: [(path: String, file: ResultsFile)] = []
    for f in files {
      do { shards.append((f, try ResultsStore.read(f))) } catch {
        throw RunnerError.merge(.unreadable(path: f, reason: "\(error)"))
      }
    }
    let first = shards[0].file.info
    for (path, s) in shards where FNV1a.label(Data(s.info.specJSON.utf8)) != manifest.specHash {
      throw RunnerError.merge(.otherSpec(path: path, experiment: manifest.experiment, specHash: manifest.specHash))
    }
    let builds = Dictionary(shards.map { ($0.path, $0.file.info.toolkitVersion) }, uniquingKeysWith: { a, _ in a })
    let mixed =
      Set(builds.values.map(BuildIdentity.code)).union([BuildIdentity.code(of: manifest.toolkitVersion)]).count > 1
    if mixed && !allowMixedBuilds {
      throw RunnerError.merge(.mixedBuilds(builds: builds, planned: manifest.toolkitVersion))
    }
    func name(_ i: Int) -> String { i < manifest.runNames.count ? manifest.runNames[i] : "run \(i)" }
    var byIndex: [Int: (RunRecord, String)] = [:]
    var duplicates: [String] = []
    for (path, s) in shards {
      for r in s.runs {
        if let (_, other) = byIndex[r.index] {
          duplicates.append("\(name(r.index)) in \(other) and \(path)")
        } else {
          byIndex[r.index] = (r, path)
        }
      }
    }
    if !duplicates.isEmpty { throw RunnerError.merge(.duplicates(duplicates)) }
    let expected = Set(manifest.shards.flatMap(\.runs))
    if let stray = byIndex.keys.sorted().first(where: { !expected.contains($0) }) {
      throw RunnerError.merge(.stray(name(stray)))
    }
    let missing = expected.subtracting(byIndex.keys).sorted()
    if !missing.isEmpty && !allowPartial {
      let shardsOf = Set(manifest.shards.filter { !Set($0.runs).isDisjoint(with: missing) }.map(\.shard)).sorted()
      throw RunnerError.merge(.missing(runs: missing.map(name), shards: shardsOf))
    }
    var info = first
    info.runsTotal = manifest.runsTotal
    info.startedAt = shards.map(\.file.info.startedAt).min() ?? first.startedAt
    info.finishedAt = shards.map(\.file.info.finishedAt).max() ?? first.finishedAt
    info.complete = missing.isEmpty && shards.allSatisfy { $0.file.info.complete }
    info.extra["shard"] = nil
    if mixed {
      // Every build that produced a run, so that a reader sees the file mixes programs.
      let distinct = Set(builds.values).sorted()
      info.toolkitVersion = "mixed: " + distinct.joined(separator: ", ")
      info.extra["shard_builds"] = (try? JSONCoding.compactString(builds)) ?? ""
      info.extra["planned_by_build"] = manifest.toolkitVersion
    }
    info.extra["shards"] =
      (try? JSONCoding.compactString(
        shards.map {
          [
            "file": $0.path, "host": $0.file.info.host, "started": $0.file.info.startedAt,
            "finished": $0.file.info.finishedAt, "shard": $0.file.info.extra["shard"] ?? "",
          ]
        })) ?? ""
    if !missing.isEmpty { info.extra["missing_runs"] = missing.map(name).joined(separator: ", ") }
    let runs = byIndex.values.map(\.0).sorted { $0.index < $1.index }
    var tables: [Table] = []
    if let data = info.specJSON.data(using: .utf8),
      let spec = try? JSONCoding.decoder.decode(ExperimentSpec.self, from: data),
      !spec.paper.isEmpty
    {
      tables.append(PaperComparison.table(PaperComparison.rows(spec.paper, runs: runs)))
    }
    let lock = try ResultsStore.lock(output)
    defer { withExtendedLifetime(lock) {} }
    if FileManager.default.fileExists(atPath: output) { _ = try ExperimentRunner.archive(output, directory: nil) }
    try ResultsStore.write(ResultsFile(info: info, runs: runs, tables: tables), to: output)
    return MergeReport(path: output, runs: runs.count, missing: missing, complete: info.complete)
  }
}
