import BuildInfo
import EdgeLabCore
import Foundation
import Metrics
import Results
import Runner
import Runtime
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Runs the `edgelab` binary; (status, stdout + stderr).
@discardableResult
func edgelab(_ args: [String], environment: [String: String] = [:]) -> (status: Int32, out: String) {
  command([Binary.path] + args, environment: environment)
}

@discardableResult
func command(_ args: [String], environment: [String: String] = [:]) -> (status: Int32, out: String) {
  runCommand(args, environment: environment)
}

/// The `--json-errors` object in a command's output (its last line that is one).
func failure(_ out: String) -> [String: Any]? {
  for line in out.split(separator: "\n").reversed() where line.hasPrefix("{\"class\"") {
    return (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
  }
  return nil
}

/// Two results files hold the same runs with the same numbers (provenance and wall times aside).
func sameRuns(_ a: ResultsFile, _ b: ResultsFile) -> Bool {
  guard a.runs.count == b.runs.count, a.info.specJSON == b.info.specJSON else { return false }
  for (x, y) in zip(a.runs, b.runs) {
    var u = x.outcome
    var v = y.outcome
    u.wallSeconds = 0
    v.wallSeconds = 0
    guard x.index == y.index, x.key == y.key, x.label == y.label, x.seed == y.seed, x.plan == y.plan, u == v else {
      return false
    }
  }
  return a.tables == b.tables
}

/// A small simulated sweep: 2 algorithms × 3 bandwidths × 2 repetitions = 12 runs.
let smallSweep = """
  {"name": "sweep-test", "model": {"preset": "llama-3.2-1b", "precision": "fp32"},
   "devices": [{"name": "nano", "preset": "jetson-orin-nano-8gb", "count": 2}],
   "network": {"link": {"bandwidth": "100Mbit/s", "latency": "1ms"}},
   "workload": {"requests": 4, "prompt_tokens": 16, "output_tokens": 8},
   "algorithms": [{"name": "even"}, {"name": "edgeshard-latency"}],
   "sweeps": [{"path": "network.link.bandwidth", "values": ["10Mbit/s", "100Mbit/s", "1Gbit/s"], "label": "bandwidth"}],
   "repetitions": 2, "seed": 7}
  """

@Suite("Sweeps in shards: plan, run, merge, --jobs", .serialized)
struct ShardingTests {
  @Test func shardsMergeIntoTheSingleProcessFileAndMissingOrDuplicatedRunsAreNamed() throws {
    let dir = temporaryDirectory("edgelab-sweep")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try smallSweep.write(toFile: dir + "/spec.json", atomically: true, encoding: .utf8)
    #expect(edgelab(["run", "--spec", dir + "/spec.json", "--out", dir + "/single.h5", "--quiet"]).status == 0)
    let plan = edgelab(["sweep", "plan", "--spec", dir + "/spec.json", "--shards", "3", "--dir", dir + "/s"])
    #expect(plan.status == 0, "\(plan.out)")
    for k in [0, 2] {
      let r = edgelab(["run", "--spec", dir + "/s/shard-\(k).json", "--out", dir + "/s/shard-\(k).h5", "--quiet"])
      #expect(r.status == 0, "\(r.out)")
    }
    // Shard 1 has not run: the merge names its runs.
    let partial = edgelab([
      "merge", dir + "/s/shard-0.h5", dir + "/s/shard-2.h5", "--out", dir + "/merged.h5", "--json-errors",
    ])
    #expect(partial.status == 66)
    let manifest = try Sharding.readManifest(dir + "/s/manifest.json")
    let ofShard1 = manifest.runNames[manifest.shards[1].runs[0]]
    let missing = failure(partial.out)
    #expect(missing?["code"] as? String == "merge_missing_runs", "\(partial.out)")
    let details = missing?["details"] as? [String: Any]
    #expect((details?["runs"] as? [String])?.contains(ofShard1) == true && details?["shards"] as? [Int] == [1])
    #expect(!FileManager.default.fileExists(atPath: dir + "/merged.h5"))
    let allowed = edgelab([
      "merge", dir + "/s/shard-0.h5", dir + "/s/shard-2.h5", "--out", dir + "/partial.h5", "--allow-partial",
    ])
    #expect(allowed.status == 0, "\(allowed.out)")
    let p = try ResultsStore.read(dir + "/partial.h5")
    #expect(!p.info.complete && p.info.extra["missing_runs"]?.contains(ofShard1) == true)
    // The same shard twice: named.
    let twice = edgelab([
      "merge", dir + "/s/shard-0.h5", dir + "/s/shard-0.h5", "--out", dir + "/merged.h5", "--json-errors",
    ])
    #expect(twice.status == 66 && failure(twice.out)?["code"] as? String == "merge_duplicate_runs", "\(twice.out)")
    // All three: the single-process file, run for run.
    #expect(edgelab(["run", "--spec", dir + "/s/shard-1.json", "--out", dir + "/s/shard-1.h5", "--quiet"]).status == 0)
    let merged = edgelab(["merge"] + (0..<3).map { dir + "/s/shard-\($0).h5" } + ["--out", dir + "/merged.h5"])
    #expect(merged.status == 0, "\(merged.out)")
    let m = try ResultsStore.read(dir + "/merged.h5")
    let single = try ResultsStore.read(dir + "/single.h5")
    #expect(m.info.complete && m.info.runsTotal == 12)
    #expect(sameRuns(m, single))
    #expect(m.info.extra["shards"]?.contains("shard-1.h5") == true)
  }

  @Test func aShardOfAnotherSpecIsRefused() throws {
    let dir = temporaryDirectory("edgelab-sweep")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try smallSweep.write(toFile: dir + "/spec.json", atomically: true, encoding: .utf8)
    #expect(edgelab(["sweep", "plan", "--spec", dir + "/spec.json", "--shards", "2", "--dir", dir + "/s"]).status == 0)
    try smallSweep.replacingOccurrences(of: "\"seed\": 7", with: "\"seed\": 8").write(
      toFile: dir + "/other.json", atomically: true, encoding: .utf8)
    #expect(edgelab(["run", "--spec", dir + "/other.json", "--out", dir + "/s/other.h5", "--quiet"]).status == 0)
    let r = edgelab(["merge", dir + "/s/other.h5", "--out", dir + "/m.h5", "--json-errors"])
    #expect(r.status == 66 && failure(r.out)?["code"] as? String == "merge_other_spec", "\(r.out)")
  }

  /// Shards run by two builds: a shard refuses to run under another build than the one that planned it; merging
  /// files of two builds is refused, and with --allow-mixed-builds accepted, recording each shard's build.
  @Test func shardsOfTwoBuildsAreRefusedUnlessAllowed() throws {
    let dir = temporaryDirectory("edgelab-sweep")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let other = try OtherBuild.make(in: dir)
    try smallSweep.write(toFile: dir + "/spec.json", atomically: true, encoding: .utf8)
    #expect(edgelab(["sweep", "plan", "--spec", dir + "/spec.json", "--shards", "2", "--dir", dir + "/s"]).status == 0)
    // The other build refuses a shard this build planned, naming both builds.
    let refused = command([
      other, "run", "--spec", dir + "/s/shard-1.json", "--out", dir + "/s/shard-1.h5", "--quiet", "--json-errors",
    ])
    let why = failure(refused.out)
    #expect(refused.status == 66 && why?["code"] as? String == "shard_build_mismatch", "\(refused.out)")
    let named = why?["details"] as? [String: String]
    #expect(named?["ours"] == OtherBuild.identity && named?["theirs"] == BuildIdentity.current, "\(refused.out)")
    // Shard 1 run by the other build (planned again by it, the same spec): the merge sees two builds.
    #expect(
      command([other, "sweep", "plan", "--spec", dir + "/spec.json", "--shards", "2", "--dir", dir + "/o"]).status == 0)
    #expect(
      command([other, "run", "--spec", dir + "/o/shard-1.json", "--out", dir + "/s/shard-1.h5", "--quiet"]).status == 0)
    #expect(edgelab(["run", "--spec", dir + "/s/shard-0.json", "--out", dir + "/s/shard-0.h5", "--quiet"]).status == 0)
    let shards = [dir + "/s/shard-0.h5", dir + "/s/shard-1.h5"]
    let mixed = edgelab(["merge"] + shards + ["--out", dir + "/m.h5", "--json-errors"])
    #expect(mixed.status == 66 && failure(mixed.out)?["code"] as? String == "mixed_builds", "\(mixed.out)")
    let builds = (failure(mixed.out)?["details"] as? [String: Any])?["builds"] as? [String: String]
    #expect(builds == [shards[0]: BuildIdentity.current, shards[1]: OtherBuild.identity])
    #expect(!FileManager.default.fileExists(atPath: dir + "/m.h5"))
    let allowed = edgelab(["merge"] + shards + ["--out", dir + "/m.h5", "--allow-mixed-builds"])
    #expect(allowed.status == 0, "\(allowed.out)")
    let m = try ResultsStore.read(dir + "/m.h5")
    #expect(m.info.complete && m.runs.count == 12)
    #expect(
      m.info.toolkitVersion.contains(BuildIdentity.current) && m.info.toolkitVersion.contains(OtherBuild.identity))
    let recorded = try JSONDecoder().decode(
      [String: String].self, from: Data((m.info.extra["shard_builds"] ?? "").utf8))
    #expect(recorded == [shards[0]: BuildIdentity.current, shards[1]: OtherBuild.identity])
  }

  /// `--resume` keeps the runs of a file only when this build wrote it: another build's would mix two programs.
  @Test func resumingAFileOfAnotherBuildIsRefused() throws {
    let dir = temporaryDirectory("edgelab-sweep")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try smallSweep.write(toFile: dir + "/spec.json", atomically: true, encoding: .utf8)
    #expect(edgelab(["run", "--spec", dir + "/spec.json", "--out", dir + "/r.h5", "--quiet"]).status == 0)
    let other = try OtherBuild.make(in: dir)
    let r = command([
      other, "run", "--spec", dir + "/spec.json", "--out", dir + "/r.h5", "--resume", "--quiet", "--json-errors",
    ])
    #expect(r.status == 66 && failure(r.out)?["code"] as? String == "resume_build_differs", "\(r.out)")
    #expect(try ResultsStore.read(dir + "/r.h5").info.toolkitVersion == BuildIdentity.current)
  }

  @Test func jobsTwoGivesTheSameFileAsJobsOne() throws {
    let dir = temporaryDirectory("edgelab-sweep")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    #expect(edgelab(["run", "edgeshard-7b", "--out", dir + "/one.h5", "--quiet"]).status == 0)
    let two = edgelab(["run", "edgeshard-7b", "--out", dir + "/two.h5", "--jobs", "2", "--quiet"])
    #expect(two.status == 0, "\(two.out)")
    #expect(sameRuns(try ResultsStore.read(dir + "/one.h5"), try ResultsStore.read(dir + "/two.h5")))
    // The shards' working directory is gone.
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".jobs") }.isEmpty)
  }
}

/// A one-node Slurm on this machine: munged, slurmctld and slurmd with a generated munge key and slurm.conf
/// (their own ports, sockets and state under a temporary directory), started and stopped here.
final class LocalSlurm: @unchecked Sendable {
  static var available: Bool {
    geteuid() == 0
      && ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch"].allSatisfy {
        FileManager.default.isExecutableFile(atPath: $0)
      }
  }

  let directory: String
  /// Started with `ChildProcess` (its own waiter per process): Foundation's `Process` reaps its children on one
  /// thread, which blocks in `wait4` on a long-lived daemon and then never reaps the short commands after it.
  var daemons: [ChildProcess] = []
  var environment: [String: String] { ["SLURM_CONF": directory + "/slurm.conf"] }

  init() throws {
    var template = Array("/tmp/edgelab-slurm-XXXXXX".utf8CString)
    directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    chmod(directory, 0o755)
    do { try start() } catch {
      stop()
      throw error
    }
  }

  func start() throws {
    let d = directory
    for sub in ["state", "spool"] {
      try FileManager.default.createDirectory(atPath: d + "/" + sub, withIntermediateDirectories: true)
    }
    var key = [UInt8](repeating: 0, count: 1024)
    for i in key.indices { key[i] = UInt8.random(in: 0...255) }
    _ = FileManager.default.createFile(
      atPath: d + "/munge.key", contents: Data(key), attributes: [.posixPermissions: 0o600])
    let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
    let cpus = ProcessInfo.processInfo.activeProcessorCount
    let base = 20000 + Int(getpid() % 20000)
    let conf = """
      ClusterName=edgelabtest
      SlurmctldHost=\(host)
      AuthType=auth/munge
      AuthInfo=socket=\(d)/munge.sock
      CredType=cred/munge
      SlurmUser=root
      SlurmdUser=root
      SlurmctldPort=\(base)
      SlurmdPort=\(base + 1)
      StateSaveLocation=\(d)/state
      SlurmdSpoolDir=\(d)/spool
      SlurmctldPidFile=\(d)/slurmctld.pid
      SlurmdPidFile=\(d)/slurmd.pid
      SlurmctldLogFile=\(d)/slurmctld.log
      SlurmdLogFile=\(d)/slurmd.log
      ProctrackType=proctrack/linuxproc
      TaskPlugin=task/none
      SelectType=select/cons_tres
      SelectTypeParameters=CR_Core
      ReturnToService=2
      MpiDefault=none
      JobCompType=jobcomp/none
      AccountingStorageType=accounting_storage/none
      NodeName=\(host) CPUs=\(cpus) State=UNKNOWN
      PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP

      """
    try conf.write(toFile: d + "/slurm.conf", atomically: true, encoding: .utf8)
    try launch([
      "/usr/sbin/munged", "-F", "-f", "--key-file=\(d)/munge.key", "--socket=\(d)/munge.sock",
      "--pid-file=\(d)/munged.pid", "--log-file=\(d)/munged.log", "--seed-file=\(d)/munged.seed",
    ])
    try launch(["/usr/sbin/slurmctld", "-D", "-f", d + "/slurm.conf"])
    try launch(["/usr/sbin/slurmd", "-D", "-f", d + "/slurm.conf"])
    // The node is up when a one-task job runs to completion (srun blocks until then).
    var up = false
    for _ in 0..<30 where !up {
      up = command(["srun", "--immediate=10", "true"], environment: environment).status == 0
    }
    if !up { throw SlurmNotUp(log: d + "/slurmctld.log") }
  }

  func launch(_ args: [String]) throws {
    let name = URL(fileURLWithPath: args[0]).lastPathComponent
    daemons.append(
      try ChildProcess(
        closingInheritedFiles(args), logPath: directory + "/\(name).out", environment: environment))
  }

  /// Blocks until job `id` (every task) has left the queue: a job that depends on it runs only then.
  func waitFor(_ id: String) {
    command(["srun", "--dependency=afterany:\(id)", "true"], environment: environment)
  }

  func stop() {
    for p in daemons.reversed() { p.stop(grace: 5) }
    try? FileManager.default.removeItem(atPath: directory)
  }
}

struct SlurmNotUp: Error, CustomStringConvertible {
  var log: String
  var description: String { "the local Slurm did not come up; see \(log)" }
}

@Suite("Sweeps on Slurm", .serialized, .enabled(if: LocalSlurm.available, "needs root and slurm-wlm + munge"))
struct SlurmTests {
  @Test func aJobArrayRunsTheShardsAndACancelledTaskCanBeResubmitted() throws {
    let slurm = try LocalSlurm()
    defer { slurm.stop() }
    let dir = temporaryDirectory("edgelab-sweep")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try smallSweep.write(toFile: dir + "/spec.json", atomically: true, encoding: .utf8)
    #expect(edgelab(["run", "--spec", dir + "/spec.json", "--out", dir + "/single.h5", "--quiet"]).status == 0)
    let single = try ResultsStore.read(dir + "/single.h5")

    // Submitted, followed and merged by edgelab.
    let submitted = edgelab(
      [
        "sweep", "slurm", "--spec", dir + "/spec.json", "--shards", "3", "--dir", dir + "/a", "--out",
        dir + "/array.h5", "--submit",
      ], environment: slurm.environment)
    #expect(submitted.status == 0, "\(submitted.out)")
    #expect(sameRuns(try ResultsStore.read(dir + "/array.h5"), single))

    // Held, one task cancelled, released: the merge names the cancelled task's runs.
    #expect(
      edgelab(["sweep", "slurm", "--spec", dir + "/spec.json", "--shards", "3", "--dir", dir + "/b"]).status == 0)
    let held = command(["sbatch", "--parsable", "--hold", dir + "/b/sweep.sbatch"], environment: slurm.environment)
    let job = held.out.trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(held.status == 0 && !job.isEmpty, "\(held.out)")
    #expect(command(["scancel", "\(job)_1"], environment: slurm.environment).status == 0)
    #expect(command(["scontrol", "release", job], environment: slurm.environment).status == 0)
    slurm.waitFor(job)
    let shards = (0..<3).map { dir + "/b/shard-\($0).h5" }
    let present = shards.filter { FileManager.default.fileExists(atPath: $0) }
    #expect(present.count == 2)
    let partial = edgelab(["merge"] + present + ["--out", dir + "/b.h5"])
    #expect(
      partial.status != 0 && partial.out.contains("missing") && partial.out.contains("shards 1"), "\(partial.out)")
    // Resubmitting just that task completes the sweep.
    let again = command(
      ["sbatch", "--parsable", "--wait", "--array=1", dir + "/b/sweep.sbatch"], environment: slurm.environment)
    #expect(again.status == 0, "\(again.out)")
    let merged = edgelab(["merge"] + shards + ["--out", dir + "/b.h5"])
    #expect(merged.status == 0, "\(merged.out)")
    #expect(sameRuns(try ResultsStore.read(dir + "/b.h5"), single))
  }
}
