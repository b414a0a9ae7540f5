import EdgeLabCore
import Metrics
import Results
import Spec
import Testing
import Validation

@Suite("The validation table")
struct ValidationTableTests {
  @Test func aCaseIsPredictedByTheMeanOfTheProfilesAroundItsRunWithTheirSpread() {
    let r = Validation.Row.bracketed(
      caseName: "validate-x", metric: "TPOT mean", before: 10, after: 12, measured: 11.5, planner: 9)
    #expect(r.predicted == 11 && r.measured == 11.5 && r.planner == 9)
    #expect(abs((r.spread ?? 0) - 1.0 / 11) < 1e-12)
    #expect(abs(r.error - (11 / 11.5 - 1)) < 1e-12)
    // With one profile: its prediction, no spread.
    let once = Validation.Row.bracketed(
      caseName: "validate-x", metric: "TPOT mean", before: 10, after: nil, measured: 11.5, planner: nil)
    #expect(once.predicted == 10 && once.spread == nil)
  }

  /// A plain case's predictions take the speeds its real run recorded, before or after the workload, for each
  /// device that recorded both ratios.
  @Test func workerSpeedsAreReadBackFromARunsFacts() {
    var facts: [String: JSONValue] = [:]
    for (device, after, decode, prefill) in [("h0", false, 1.1, 0.9), ("h0", true, 1.2, 1.0), ("h1", false, 0.8, 1.3)] {
      let names = WorkerSpeed.factNames(device: device, after: after)
      facts[names.decode] = .number(decode)
      facts[names.prefill] = .number(prefill)
    }
    // h2 recorded a decode ratio only.
    facts[WorkerSpeed.factNames(device: "h2", after: false).decode] = .number(1)
    let devices = ["h0", "h1", "h2"].map {
      DeviceRecord(
        name: $0, peakMemoryBytes: 0, computeSeconds: 0, transferSeconds: 0, loadStallSeconds: 0, idleSeconds: 0)
    }
    let run = RunRecord(
      index: 0, point: 0, algorithm: "even", label: "", repetition: 0, seed: 0, key: "", parameters: [], plan: nil,
      outcome: RunOutcome(status: .complete, devices: devices, facts: facts))
    #expect(
      Validation.workerSpeeds(run, after: false)
        == ["h0": WorkerSpeed(decode: 1.1, prefill: 0.9), "h1": WorkerSpeed(decode: 0.8, prefill: 1.3)])
    #expect(Validation.workerSpeeds(run, after: true) == ["h0": WorkerSpeed(decode: 1.2, prefill: 1.0)])
  }

  @Test func theTablePrintsEachRowsSpreadAndFlagsDrift() {
    let rows = [
      Validation.Row.bracketed(
        caseName: "validate-a", metric: "TPOT mean", before: 10, after: 10.2, measured: 10, planner: nil),
      Validation.Row.bracketed(
        caseName: "validate-b", metric: "TTFT p50", before: 10, after: 12, measured: 9.5, planner: nil),
    ]
    let text = Validation.markdown(rows: rows, skipped: [("validate-c", "needs root")])
    #expect(text.contains("| spread |"))
    #expect(text.contains("| a | TPOT mean (ms) | 10.00 | 10.10 | +1.0% | ±1.0% |"), "\(text)")
    // b: 11 predicted against 9.5 (+15.8%, outside), its profiles ±9.1% apart (drift).
    #expect(text.contains("| +15.8% ** | ±9.1% † |"), "\(text)")
    #expect(text.contains("1 of 2 rows within 10%; outside (**): validate-b TTFT p50."))
    #expect(text.contains("during the case: validate-b."))
    #expect(text.contains("Not compared: validate-c: needs root."))
    // One profile for every case: no spread column.
    let once = Validation.markdown(
      rows: [.init(caseName: "validate-a", metric: "TPOT mean", predicted: 10, measured: 10)], skipped: [])
    #expect(!once.contains("spread"))
  }

  /// A case run twice: its row is the mean measured against the mean predicted, the mean spread, and each run's
  /// own error is printed beside it.
  @Test func aRepeatedCaseComparesItsMeansAndPrintsEachRun() throws {
    let first = Validation.Row.bracketed(
      caseName: "validate-a", metric: "TPOT mean", before: 10, after: 10.4, measured: 11, planner: 9)
    let second = Validation.Row.bracketed(
      caseName: "validate-a", metric: "TPOT mean", before: 9, after: 9.2, measured: 9.5, planner: 9)
    let row = try #require(Validation.Row.combined([first, second]))
    #expect(abs(row.predicted - (10.2 + 9.1) / 2) < 1e-12 && abs(row.measured - 10.25) < 1e-12)
    #expect(abs((row.spread ?? 0) - ((first.spread ?? 0) + (second.spread ?? 0)) / 2) < 1e-12)
    #expect(row.runErrors == [first.error, second.error] && row.planner == 9)
    #expect(Validation.Row.combined([first]) == first && Validation.Row.combined([]) == nil)
    let text = Validation.markdown(rows: [row], skipped: [])
    // 9.65 against 10.25: −5.9%; the runs −7.3% and −4.2%.
    let line = "| a | TPOT mean (ms) | 10.25 | 9.65 | -5.9% | -7.3% -4.2% | ±1.5% | 9.00 |"
    #expect(text.contains(line), "\(text)")
    #expect(
      text.contains("Each case ran 2 times") && text.contains("Taken one run at a time, 2 of 2 rows were within 10%."))
  }
}
