import DSL
import EdgeLabCore
import Execution
import Experiments
import Metrics
import Results
import Runner
import Simulator
import TestSupport
import Testing

@Suite("Paper numbers, per-device calibration and named sweep values")
struct ReproductionTests {
  /// Llama-2-7B FP32 on one AGX Orin and a server: Edge-Solo against the cloud-edge split over two bandwidths.
  static func twoDevices(_ extra: [ExperimentPart] = []) -> ExperimentSpec {
    Experiment("paper-test", "paper numbers") {
      Model(.llama2_7B)
      Device("agx", .agxOrin32GB).source()
      Device("server", .rtx3090Server, usableMemory: .GB(24))
      Network(bandwidth: .mbit(100))
      Workload(requests: 2, prompt: 16, output: 8)
      Algorithm("edge-solo")
      Algorithm("cloud-edge-opt")
      Execution(ExecutionOptions(planMemory: .weightsOnly))
      Sweep(.linkBandwidth, [.mbit(1), .mbit(1000)], label: "bandwidth")
      extra
    }.spec
  }

  func run(_ spec: ExperimentSpec) throws -> ResultsFile {
    let path = temporaryDirectory() + "/out.h5"
    _ = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
      spec, options: RunOptions(outputPath: path))
    return try ResultsStore.read(path)
  }

  @Test func comparisonsTakeTheRunsAtTheNamedPointsAndTheBestWhereAsked() throws {
    let spec = Self.twoDevices([
      Paper("solo", .tpot, of: "edge-solo", at: ["bandwidth": "1Gbit/s"], value: 0.1),
      Paper("speed-up, best", .tpot, of: "cloud-edge-opt", over: "edge-solo", value: 1, upTo: 100, best: true),
      Paper(
        "speed-up at 1 Mbit/s", .tpot, of: "cloud-edge-opt", over: "edge-solo", at: ["bandwidth": "1Mbit/s"], value: 2),
      Paper("nothing there", .tpot, of: "edge-solo", at: ["bandwidth": "5Mbit/s"], value: 1),
    ])
    let file = try run(spec)
    let rows = PaperComparison.rows(spec.paper, runs: file.runs)
    func tpot(_ label: String, _ bw: String) -> Double {
      file.runs.first { $0.label == label && $0.parameters[0].value == .string(bw) }!.summary.tpot.mean
    }
    #expect(rows[0].lab == tpot("edge-solo", "1Gbit/s"))
    #expect(isClose(rows[0].ratio!, tpot("edge-solo", "1Gbit/s") / 0.1))
    let fast = tpot("edge-solo", "1Gbit/s") / tpot("cloud-edge-opt", "1Gbit/s")
    let slow = tpot("edge-solo", "1Mbit/s") / tpot("cloud-edge-opt", "1Mbit/s")
    #expect(fast > slow)
    #expect(rows[1].lab == fast)
    // Inside the published range: the ratio is 1.
    #expect(rows[1].ratio == 1)
    #expect(rows[2].lab == slow)
    #expect(rows[3].lab == nil && rows[3].missing == "no run matches")
    // The results file keeps the comparison as its `paper` table.
    let table = try #require(file.tables.first { $0.name == "paper" })
    #expect(table.rowCount == 4)
    #expect(PaperComparison.markdown(rows).contains("| solo | 100.0 ms |"))
  }

  @Test func aDeviceGroupsOwnCalibrationChangesOnlyItsDevices() throws {
    var slowServer = Self.twoDevices()
    slowServer.calibration.devices = ["server": DeviceCalibration(memoryEfficiency: 0.1)]
    let base = try run(Self.twoDevices())
    let slow = try run(slowServer)
    func tpot(_ f: ResultsFile, _ label: String) -> Double {
      f.runs.first { $0.label == label && $0.parameters[0].value == .string("1Gbit/s") }!.summary.tpot.mean
    }
    #expect(tpot(slow, "edge-solo") == tpot(base, "edge-solo"))
    #expect(tpot(slow, "cloud-edge-opt") > tpot(base, "cloud-edge-opt"))
    #expect(slow.info.extra["cost_model"]?.contains("server: memory efficiency 0.1") == true)
  }

  @Test func badCalibrationsAndPaperNumbersAreNamed() {
    var spec = Self.twoDevices([Paper("x", .tpot, of: "lime", value: -1)])
    spec.calibration.devices = ["gpu": DeviceCalibration(computeEfficiency: 2)]
    let fields = spec.problems().map(\.field)
    #expect(fields.contains("calibration.devices.gpu"))
    #expect(fields.contains("calibration.devices.gpu.compute_efficiency"))
    #expect(fields.contains("paper[0].value"))
    #expect(fields.contains("paper[0]"))
  }

  @Test func namedSweepValuesAreRecordedByName() throws {
    var spec = Self.twoDevices()
    spec.sweeps = [
      SweepAxis(
        path: "workload.arrival",
        values: [
          try JSONValue(encoding: ArrivalProcess.poisson(rate: 0.01)),
          try JSONValue(encoding: ArrivalProcess.closedLoop()),
        ],
        label: "arrival", names: ["sporadic", "closed"])
    ]
    let file = try run(spec)
    #expect(Set(file.runs.map { $0.parameters[0].value }) == [.string("sporadic"), .string("closed")])
    spec.sweeps[0].names = ["one"]
    #expect(spec.problems().map(\.field).contains("sweeps[0].names"))
  }
}
