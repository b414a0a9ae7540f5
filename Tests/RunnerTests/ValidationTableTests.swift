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
    #expect(text.contains("during the case in every attempt: validate-b."))
    #expect(text.contains("Not compared: validate-c: needs root."))
    // One profile for every case: no spread column.
    let once = Validation.markdown(
      rows: [.init(caseName: "validate-a", metric: "TPOT mean", predicted: 10, measured: 10)], skipped: [])
    #expect(!once.contains("spread"))
  }
}
