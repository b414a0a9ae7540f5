import DSL
import Execution
import Experiments
import Foundation
import Metrics
import Results
import Runner
import Simulator
import TestSupport
import Testing

@Suite("Runner")
struct RunnerTests {
  static func small(name: String = "runner-test", requests: Int = 2) -> ExperimentSpec {
    Experiment(name, "small") {
      Model(.llama2_7B)
      Device("nx", .orinNX16GB).source()
      Device("agx", .agxOrin32GB)
      Network(bandwidth: .mbit(100))
      Workload(requests: requests, prompt: 16, output: 8)
      Algorithm("even")
      Algorithm("edge-solo")
      Sweep(.linkBandwidth, [.mbit(10), .mbit(1000)], label: "bandwidth")
      Repetitions(2)
    }.spec
  }

  @Test func runsEverythingAndWritesTheFile() throws {
    let path = temporaryDirectory() + "/out.h5"
    let report = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
      Self.small(), options: RunOptions(outputPath: path))
    #expect(report.runsTotal == 8 && report.runsExecuted == 8)
    // Edge-solo does not fit the 14 GB Orin NX source: recorded as infeasible, with the binding constraint.
    #expect(report.statusCounts == [.complete: 4, .infeasible: 4])
    let file = try ResultsStore.read(path)
    #expect(file.info.complete && file.info.runsTotal == 8 && file.info.experiment == "runner-test")
    #expect(file.info.toolkitVersion == Provenance.toolkitVersion)
    let solo = try #require(file.runs.first { $0.label == "edge-solo" })
    #expect(solo.outcome.status == .infeasible)
    #expect(solo.outcome.message?.contains("the source nx offers 14.0 GB") == true)
    let even = file.runs.filter { $0.label == "even" }
    #expect(even.allSatisfy { $0.summary.requestsCompleted == 2 })
    // The slower link is slower.
    let slow = even.first { $0.parameters[0].value == "10Mbit/s" }!.summary.tpot.mean
    let fast = even.first { $0.parameters[0].value == "1Gbit/s" }!.summary.tpot.mean
    #expect(slow > fast)
    // The spec in the file is the spec that ran.
    let stored = try JSONCoding.decoder.decode(ExperimentSpec.self, from: Data(file.info.specJSON.utf8))
    #expect(stored == Self.small())
  }

  @Test func resumeSkipsFinishedRunsAndRefusesAnotherSpec() throws {
    let path = temporaryDirectory() + "/out.h5"
    _ = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
      Self.small(), options: RunOptions(outputPath: path))
    let again = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
      Self.small(), options: RunOptions(outputPath: path, resume: true))
    #expect(again.runsExecuted == 0 && again.runsSkipped == 8)
    #expect(try ResultsStore.read(path).runs.count == 8)
    #expect(throws: RunnerError.self) {
      try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
        Self.small(requests: 3), options: RunOptions(outputPath: path, resume: true))
    }
  }

  @Test func anOlderFileIsKeptNotOverwritten() throws {
    let dir = temporaryDirectory()
    let path = dir + "/out.h5"
    _ = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
      Self.small(), options: RunOptions(outputPath: path, seed: 1))
    let report = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
      Self.small(), options: RunOptions(outputPath: path, seed: 2))
    let archived = try #require(report.archivedPrevious)
    #expect(archived.hasPrefix(dir + "/archive/out-"))
    #expect(try ResultsStore.read(archived).info.seed == 1)
    #expect(try ResultsStore.read(path).info.seed == 2)
  }

  /// A stop request (Ctrl-C) ends the sweep after the run in progress, saves what finished, and a stop before
  /// anything was written leaves the previous results file where it was.
  @Test func aStopRequestSavesWhatFinishedAndKeepsThePreviousFile() throws {
    final class Polls: @unchecked Sendable {
      let lock = NSLock()
      var count = 0
      func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        count += 1
        return count
      }
    }
    let dir = temporaryDirectory()
    let path = dir + "/out.h5"
    _ = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
      Self.small(), options: RunOptions(outputPath: path, seed: 1))
    // Stopped before the first run: nothing new is written, the previous file stays in place.
    #expect(throws: BackendError.self) {
      try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
        Self.small(), options: RunOptions(outputPath: path, seed: 2, stopRequested: { true }))
    }
    #expect(try ResultsStore.read(path).info.seed == 1)
    #expect(!FileManager.default.fileExists(atPath: dir + "/archive"))
    // Stopped after the first run (the runner polls before each run; the simulator polls within one).
    let polls = Polls()
    do {
      _ = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
        Self.small(), options: RunOptions(outputPath: path, seed: 3, stopRequested: { polls.next() > 1 }))
      Issue.record("the sweep did not stop")
    } catch let e as BackendError {
      guard case .interrupted = e else {
        Issue.record("\(e)")
        return
      }
    }
    let file = try ResultsStore.read(path)
    #expect(file.info.seed == 3 && !file.info.complete)
    #expect(file.runs.count == 1 && file.runs[0].outcome.status == .complete)
    #expect(
      try ResultsStore.read(
        try #require(
          FileManager.default.contentsOfDirectory(atPath: dir + "/archive").first.map { dir + "/archive/" + $0 })
      ).info.seed == 1)
  }

  /// A resumed sweep that stops keeps every run of the previous file, also those after the stop point.
  @Test func aStoppedResumeKeepsTheRunsItHadNotReachedYet() throws {
    final class Polls: @unchecked Sendable {
      let lock = NSLock()
      var count = 0
      func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        count += 1
        return count
      }
    }
    let path = temporaryDirectory() + "/out.h5"
    _ = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
      Self.small(), options: RunOptions(outputPath: path))
    // Mark the first two runs failed, so that --resume redoes them and keeps the six after.
    var file = try ResultsStore.read(path)
    #expect(file.runs.count == 8)
    for i in 0..<2 { file.runs[i].outcome.status = .failed }
    try ResultsStore.write(file, to: path)
    let polls = Polls()
    do {
      _ = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
        Self.small(), options: RunOptions(outputPath: path, resume: true, stopRequested: { polls.next() > 1 }))
      Issue.record("the sweep did not stop")
    } catch let e as BackendError {
      guard case .interrupted = e else {
        Issue.record("\(e)")
        return
      }
    }
    let after = try ResultsStore.read(path)
    #expect(!after.info.complete)
    #expect(after.runs.map(\.index) == [0] + Array(2..<8), "\(after.runs.map(\.index))")
  }

  @Test func backendsThatAreNotBuiltSaySo() {
    var spec = Self.small()
    spec.backend = .boards
    do {
      _ = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
        spec, options: RunOptions(outputPath: temporaryDirectory() + "/x.h5"))
      Issue.record("ran on a missing backend")
    } catch BackendError.unavailable(let kind, _) {
      #expect(kind == .boards)
    } catch {
      Issue.record("expected the boards backend to be unavailable, got \(error)")
    }
  }

  @Test func quickstartRunsEndToEnd() throws {
    let path = temporaryDirectory() + "/quickstart.h5"
    let spec = try #require(ExperimentCatalog.named("quickstart")).spec
    let report = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
      spec, options: RunOptions(outputPath: path))
    #expect(report.statusCounts[.complete] == report.runsTotal)
    let file = try ResultsStore.read(path)
    // Edge-Solo's time per token does not depend on the network; the even split's falls with bandwidth.
    let solo = file.runs.filter { $0.label == "edge-solo" }.map(\.summary.tpot.mean)
    #expect(Set(solo).count == 1)
    let even = file.runs.filter { $0.label == "even" }.map(\.summary.tpot.mean)
    #expect(even == even.sorted(by: >))
    // Every algorithm the figure shows ran at every bandwidth, and EdgeShard's latency plan (which may choose
    // the source alone) is never slower per token than Edge-Solo or the even split.
    #expect(Set(file.runs.map(\.label)) == ["even", "edge-solo", "edgeshard-latency", "edgeshard-throughput", "lime"])
    let latency = file.runs.filter { $0.label == "edgeshard-latency" }.map(\.summary.tpot.mean)
    #expect(latency.count == solo.count && latency.count == 10)
    for (i, t) in latency.enumerated() { #expect(t <= min(solo[i], even[i]) * (1 + 1e-9), "bandwidth point \(i)") }
  }
}
