import ArgumentParser
import EdgeLabCore
import Emulation
import Execution
import Foundation
import Results
import Runner
import Spec

#if canImport(Glibc)
import Glibc
#endif

struct SweepCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sweep",
    abstract: "Cut an experiment's sweep into shards that run anywhere (other processes, a Slurm job array).",
    subcommands: [PlanShards.self, SlurmArray.self])

  struct PlanShards: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "plan",
      abstract:
        "Write N shard specs (DIR/shard-K.json; run each with `edgelab run --spec DIR/shard-K.json --out DIR/shard-K.h5`) and DIR/manifest.json."
    )
    @Argument(help: "Experiment name (see `edgelab list`).") var name: String?
    @Option(help: "The experiment as a JSON spec file instead.") var spec: String?
    @Option(help: "Number of shards.") var shards = 2
    @Option(help: "Where the shard specs and the manifest go.") var dir: String

    func run() throws {
      let loaded = try loadSpec(name: name, file: spec)
      let m: Sharding.Manifest
      do { m = try Sharding.plan(loaded, shards: shards, directory: dir, partitioners: try Lab.partitioners()) } catch {
        throw (error as? any ReportableError).map { fail($0) } ?? fail("\(error)", code: Exit.ioFailed)
      }
      print(
        "\(dir): \(m.shards.count) shards of \(m.runsTotal) runs (\(m.shards.map { String($0.runs.count) }.joined(separator: ", ")))"
      )
    }
  }

  struct SlurmArray: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "slurm",
      abstract:
        "Plan N shards and write an sbatch script running them as a job array (--submit: submit, follow with squeue, merge)."
    )
    @Argument(help: "Experiment name (see `edgelab list`).") var name: String?
    @Option(help: "The experiment as a JSON spec file instead.") var spec: String?
    @Option(help: "Number of shards (array tasks).") var shards = 4
    @Option(help: "Slurm partition.") var partition: String?
    @Option(help: "Time limit per task (Slurm's format, e.g. 1:00:00).") var time: String?
    @Option(help: "Where the shards, the script, logs and results go (default build/sweeps/NAME).") var dir: String?
    @Option(help: "The merged results file (default results/NAME.h5).") var out: String?
    @Flag(help: "Submit the array, follow it, and merge when every task has finished.") var submit = false

    func run() throws {
      let loaded = try loadSpec(name: name, file: spec)
      let directory = absolute(dir ?? "build/sweeps/\(loaded.name)")
      let m: Sharding.Manifest
      do {
        m = try Sharding.plan(
          loaded, shards: shards, directory: directory, partitioners: try Lab.partitioners())
      } catch {
        throw (error as? any ReportableError).map { fail($0) } ?? fail("\(error)", code: Exit.ioFailed)
      }
      let script = directory + "/sweep.sbatch"
      var lines = [
        "#!/bin/bash", "#SBATCH --job-name=edgelab-\(loaded.name)", "#SBATCH --array=0-\(m.shards.count - 1)",
        "#SBATCH --output=\(directory)/slurm-%A_%a.out", "#SBATCH --chdir=\(FileManager.default.currentDirectoryPath)",
        "#SBATCH --ntasks=1", "#SBATCH --cpus-per-task=1",
      ]
      if let partition { lines.append("#SBATCH --partition=\(partition)") }
      if let time { lines.append("#SBATCH --time=\(time)") }
      lines += [
        "# One shard per array task; the results are merged with:",
        "#   edgelab merge \(directory)/shard-*.h5 --out \(out ?? "results/\(loaded.name).h5")",
        "exec \(RemoteShell.quote(Backends.executable)) run --spec \(RemoteShell.quote(directory))/shard-${SLURM_ARRAY_TASK_ID}.json"
          + " --out \(RemoteShell.quote(directory))/shard-${SLURM_ARRAY_TASK_ID}.h5 --quiet",
      ]
      do {
        try (lines.joined(separator: "\n") + "\n").write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
      } catch { throw fail("cannot write \(script): \(error)", code: Exit.ioFailed) }
      print("\(script): \(m.shards.count) array tasks over \(m.runsTotal) runs; submit with: sbatch \(script)")
      guard submit else { return }
      try follow(script: script, manifest: m, directory: directory, output: out ?? "results/\(loaded.name).h5")
    }

    func follow(script: String, manifest m: Sharding.Manifest, directory: String, output: String) throws {
      let submitted = Shell.capture(["sbatch", "--parsable", script])
      guard submitted.status == 0,
        let job = submitted.out.split(separator: ";").first.map(String.init)?
          .trimmingCharacters(in: .whitespacesAndNewlines), !job.isEmpty
      else { throw fail("sbatch failed: \(submitted.err)\(submitted.out)", code: Exit.failure) }
      print("submitted job array \(job)")
      var last = ""
      while true {
        let q = Shell.capture(["squeue", "-h", "-j", job, "-o", "%i %T"])
        if q.status != 0 && !q.err.contains("Invalid job id") {
          throw fail("squeue failed: \(q.err)", code: Exit.failure)
        }
        let states = q.out.split(separator: "\n").map { $0.split(separator: " ").last.map(String.init) ?? "" }
        if states.isEmpty { break }
        let summary = Dictionary(grouping: states, by: { $0 }).map { "\($1.count) \($0.lowercased())" }.sorted()
          .joined(separator: ", ")
        if summary != last {
          print("job \(job): \(summary)")
          last = summary
        }
        Thread.sleep(forTimeInterval: 2)
      }
      // A task failed, was cancelled or never ran when its shard's results are missing or incomplete.
      let failed = m.shards.filter { e in
        guard let f = try? ResultsStore.read(directory + "/" + e.results) else { return true }
        return !f.info.complete
      }.map(\.shard)
      if !failed.isEmpty {
        let list = failed.map(String.init).joined(separator: ",")
        throw fail(
          "array tasks \(list) of job \(job) did not finish (see \(directory)/slurm-\(job)_*.out); resubmit just those with: sbatch --array=\(list) \(script), then: edgelab merge \(directory)/shard-*.h5 --out \(output)",
          code: Exit.failure)
      }
      let files = m.shards.map { directory + "/" + $0.results }
      do {
        let r = try Sharding.merge(files, manifest: m, output: output)
        print("\(r.path): \(r.runs) runs merged from \(files.count) shards")
      } catch let e as any ReportableError { throw fail(e) }
    }
  }
}

struct MergeCommand: ParsableCommand, ReportsErrors {
  static let configuration = CommandConfiguration(
    commandName: "merge",
    abstract:
      "Merge shard results into one results file: every run of the manifest exactly once, one spec, one build."
  )
  @OptionGroup var errorOutput: ErrorOutput
  @Argument(help: "The shards' results files.") var files: [String]
  @Option(help: "The merged results file.") var out: String
  @Option(help: "The sweep's manifest (default: manifest.json beside the first file).") var manifest: String?
  @Flag(help: "Write the file even with runs missing (marked incomplete, the missing runs named).") var allowPartial =
    false
  @Flag(
    help:
      "Merge shards written by different builds (the file then records each shard's build in shard_builds, and its toolkit_version lists them all)."
  )
  var allowMixedBuilds = false

  func run() throws {
    guard let first = files.first else { throw fail(RunnerError.merge(.noFiles)) }
    let path = manifest ?? URL(fileURLWithPath: first).deletingLastPathComponent().path + "/manifest.json"
    let m: Sharding.Manifest
    do { m = try Sharding.readManifest(path) } catch { throw fail(error) }
    do {
      let r = try Sharding.merge(
        files, manifest: m, output: out, allowPartial: allowPartial, allowMixedBuilds: allowMixedBuilds)
      print(
        "\(r.path): \(r.runs) of \(m.runsTotal) runs from \(files.count) files"
          + (r.missing.isEmpty ? "" : "; incomplete, \(r.missing.count) missing (named in the file's missing_runs)"))
    } catch let e as any ReportableError { throw fail(e) }
  }
}

func absolute(_ path: String) -> String {
  path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}
