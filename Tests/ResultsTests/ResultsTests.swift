import EdgeLabCore
import Foundation
import Metrics
import Pipeline
import TestSupport
import Testing

@testable import Results

enum Fixtures {
  static func record(_ index: Int, status: RunStatus = .complete) -> RunRecord {
    var requests: [RequestRecord] = []
    for i in 0..<3 {
      let t = Double(i)
      let times: [Double] = [t + 0.5, t + 1.0, t + 1.5]
      requests.append(
        RequestRecord(
          id: i, arrival: t, firstToken: times[0], completion: times[2], promptTokens: 32,
          outputTokens: 3, tokenTimes: times))
    }
    let outcome = RunOutcome(
      status: status, message: status == .complete ? nil : "why not", requests: status == .complete ? requests : [],
      links: [LinkRecord(from: "a", to: "b", bytes: 1234, messages: 7, busySeconds: 0.25, mechanism: "simulated")],
      devices: [
        DeviceRecord(
          name: "a", peakMemoryBytes: 8e9, computeSeconds: 1, transferSeconds: 0.5, loadStallSeconds: 0,
          idleSeconds: 2)
      ],
      stages: [
        StageRecord(
          index: 0, device: "a", firstLayer: 0, endLayer: 4, offloadedLayers: 1, computeSeconds: 1, microBatches: 9)
      ],
      wallSeconds: 0.01, facts: ["lossless": .number(1), "note": .string("ünïcode ✓")])
    let plan = Plan(
      algorithm: "even", objective: .latency,
      stages: [
        .init(device: "a", firstLayer: 0, endLayer: 4, offloadedLayers: [3]),
        .init(device: "b", firstLayer: 4, endLayer: 8),
      ],
      valueSeconds: 0.125, exact: false, explanation: "2 stages; bottleneck: stage on a, 50% of step time",
      notes: ["a note"])
    return RunRecord(
      index: index, point: index / 2, algorithm: "even", label: "even label", repetition: index % 2,
      seed: UInt64.max - 3, key: "k\(index)",
      parameters: [
        RunParameter(label: "bandwidth", path: "network.link.bandwidth", value: "10Mbit/s"),
        RunParameter(label: "requests", path: "workload.requests", value: 4),
      ],
      plan: status == .complete ? plan : nil, outcome: outcome)
  }

  static func file(runs: Int) -> ResultsFile {
    ResultsFile(
      info: FileInfo(
        experiment: "test", specJSON: #"{"name":"test"}"#, toolkitVersion: "0.1.0", gitCommit: "abc",
        gitDirty: true, gitDiff: "diff --git a b", host: "h", startedAt: "2026-01-01T00:00:00Z",
        finishedAt: "2026-01-01T00:01:00Z", seed: 7, backend: "simulated", runsTotal: runs, complete: true),
      runs: (0..<runs).map { record($0, status: $0 == 1 ? .infeasible : .complete) })
  }
}

@Suite("HDF5 results")
struct ResultsTests {
  @Test func writeThenReadBackIsIdentical() throws {
    let dir = temporaryDirectory()
    let path = dir + "/r.h5"
    let original = Fixtures.file(runs: 3)
    try ResultsStore.write(original, to: path)
    let back = try ResultsStore.read(path)
    #expect(back.info == original.info)
    #expect(back.runs.count == 3)
    for (a, b) in zip(back.runs, original.runs) {
      #expect(a == b)
    }
  }

  @Test func summaryTableHasNumericSweepColumns() throws {
    let path = temporaryDirectory() + "/r.h5"
    try ResultsStore.write(Fixtures.file(runs: 2), to: path)
    let tree = try ResultsStore.readTree(path)
    let summary = try #require(tree.table("summary"))
    #expect(summary.rowCount == 2)
    #expect(summary.column("bandwidth_mbit_s")?.double(0) == 10)
    #expect(summary.column("requests")?.double(0) == 4)
    #expect(summary.column("param.bandwidth")?.text(0) == "\"10Mbit/s\"")
    #expect(summary.column("status")?.text(1) == "infeasible")
    #expect(summary.column("tpot_mean_s")?.double(0) == 0.5)
    #expect(tree.groups["runs"]?.groups["run0000"]?.table("requests")?.rowCount == 3)
  }

  @Test func aFailedWriteLeavesTheOldFileAndNoTemporary() throws {
    let dir = temporaryDirectory()
    let path = dir + "/r.h5"
    try ResultsStore.write(Fixtures.file(runs: 1), to: path)
    let before = try Data(contentsOf: URL(fileURLWithPath: path))
    // A table whose columns differ in length fails inside HDF5 writing, after the file was created.
    let bad = Group(tables: [Table(name: "broken", columns: [.double("a", [1, 2]), .double("b", [1])])])
    #expect(throws: HDF5Error.self) { try ResultsStore.writeTree(bad, to: path) }
    #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["r.h5"])
  }

  @Test func nonHDF5FilesAreRejectedWithTheirPath() throws {
    let path = temporaryDirectory() + "/not.h5"
    try "hello".write(toFile: path, atomically: true, encoding: .utf8)
    do {
      _ = try ResultsStore.read(path)
      Issue.record("read a text file as results")
    } catch {
      #expect("\(error)".contains(path))
    }
    #expect(throws: ResultsError.self) { try ResultsStore.read(path + ".missing") }
  }

  @Test func exportWritesTidyTables() throws {
    let dir = temporaryDirectory()
    let written = try Exporter.export(Fixtures.file(runs: 4), to: dir)
    #expect(
      written.map { URL(fileURLWithPath: $0).lastPathComponent } == [
        "runs.tsv", "labels.txt", "labels-with-data.txt", "labels-without-data.txt", "even_label.tsv", "requests.tsv",
      ])
    let runs = try String(contentsOfFile: dir + "/runs.tsv", encoding: .utf8).split(separator: "\n")
    #expect(runs.count == 5)
    #expect(
      runs[0].hasPrefix("run\tindex\tpoint\talgorithm\tlabel\trepetition\tstatus\tparam.bandwidth\tbandwidth_mbit_s"))
    // Averaged over the two repetitions of each point.
    let agg = try String(contentsOfFile: dir + "/even_label.tsv", encoding: .utf8).split(separator: "\n")
    #expect(agg.count == 3)
    let header = agg[0].split(separator: "\t").map(String.init)
    let row1 = agg[1].split(separator: "\t").map(String.init)
    #expect(row1[header.firstIndex(of: "n")!] == "2")
    // Point 0 has one complete run (tpot 0.5) and one infeasible (nan): the mean skips the nan.
    #expect(row1[header.firstIndex(of: "tpot_mean_s")!] == "0.5")
  }

  @Test func percentilesInterpolateLinearly() {
    let d = RunSummary.Distribution([4, 1, 3, 2])
    #expect(d.p50 == 2.5 && d.max == 4 && d.mean == 2.5)
    #expect(isClose(d.p90, 3.7))
    #expect(RunSummary.Distribution([]).p50.isNaN)
  }
}

@Suite("Timelines, extra tables and service levels")
struct TimelineTests {
  static let events: [TimelineEvent] = [
    TimelineEvent(.compute, device: "a", stage: 0, batch: 0, start: 0, end: 0.002),
    TimelineEvent(.transfer, device: "a", peer: "b\"q", stage: 0, batch: 0, start: 0.002, end: 0.0031),
    TimelineEvent(.load, device: "b\"q", stage: 1, batch: 0, layer: 5, start: 0.0031, end: 0.004),
    TimelineEvent(.compute, device: "b\"q", stage: 1, batch: 0, start: 0.004, end: 0.006),
  ]

  @Test func eventsAndExtraTablesSurviveTheFile() throws {
    var file = Fixtures.file(runs: 1)
    file.runs[0].outcome.events = Self.events
    file.tables = [Table(name: "validation", columns: [.string("case", ["x"]), .double("error_pct", [1.5])])]
    let dir = temporaryDirectory()
    try ResultsStore.write(file, to: dir + "/r.h5")
    let back = try ResultsStore.read(dir + "/r.h5")
    #expect(back.runs[0].outcome.events == Self.events)
    #expect(back.tables.map(\.name) == ["validation"])
    let written = try Exporter.export(back, to: dir + "/x")
    #expect(written.contains(dir + "/x/validation.tsv"))
    #expect(try String(contentsOfFile: dir + "/x/validation.tsv", encoding: .utf8) == "case\terror_pct\nx\t1.5\n")
  }

  @Test func aTimelineBecomesTraceEventJSON() throws {
    let text = ChromeTrace.json(Self.events, title: "t")
    let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
    let events = try #require(object?["traceEvents"] as? [[String: Any]])
    let spans = events.filter { $0["ph"] as? String == "X" }
    #expect(spans.count == 4)
    // Microseconds; the load of layer 5 on its own track.
    let load = try #require(spans.first { $0["cat"] as? String == "load" })
    #expect(load["ts"] as? Double == 3100 && load["dur"] as? Double == 900 && load["tid"] as? Int == 1)
    let names = events.filter { $0["name"] as? String == "process_name" }.compactMap {
      ($0["args"] as? [String: Any])?["name"] as? String
    }
    #expect(names == ["a", "b\"q"])
  }

  @Test func goodputCountsTheRequestsWithinTheServiceLevel() {
    // Three requests: TTFT 0.5 s each, TPOT 0.5 s each, over a makespan of 3.5 s.
    var outcome = Fixtures.record(0).outcome
    #expect(RunSummary(outcome).sloAttainment.isNaN)
    outcome.facts["slo_ttft_s"] = .number(0.6)
    outcome.facts["slo_tpot_s"] = .number(0.5)
    var s = RunSummary(outcome)
    #expect(s.sloAttainment == 1 && isClose(s.goodputRequestsPerSecond, 3 / 3.5))
    outcome.facts["slo_tpot_s"] = .number(0.4)
    s = RunSummary(outcome)
    #expect(s.sloAttainment == 0 && s.goodputTokensPerSecond == 0)
    // Arrivals at 0, 1 and 2 s asked for 9 tokens: 4.5 tokens/s offered.
    #expect(isClose(s.offeredLoadTokensPerSecond, 4.5))
  }
}
