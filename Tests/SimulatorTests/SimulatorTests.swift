import CostModel
import DSL
import Metrics
import Pipeline
import TestSupport
import Testing

@testable import Simulator

@Suite("Simulator")
struct SimulatorTests {
  static func experiment(
    devices: Int, requests: Int = 1, concurrency: Int = 1, jitter: Seconds = .zero,
    arrival: ArrivalProcess? = nil
  ) throws -> ResolvedExperiment {
    try Experiment("sim") {
      Model(.llama2_7B)
      Device("agx", .agxOrin32GB)
      if devices > 1 { Device("nx", .orinNX16GB) }
      Network(bandwidth: .mbit(100), latency: .ms(2), jitter: jitter)
      Workload(requests: requests, prompt: 8, output: 3, arrival: arrival ?? .closedLoop(concurrency: concurrency))
      Algorithm("even")
    }.spec.resolve()
  }

  static func run(_ x: ResolvedExperiment, stages: [Plan.Stage], seed: UInt64 = 1) -> RunOutcome {
    let plan = Plan(
      algorithm: "test", objective: .latency, stages: stages, microBatches: stages.count, valueSeconds: 0, exact: false)
    let requests = x.spec.workload.materialize(seed: seed, vocabularySize: x.model.vocabSize)
    return Simulator.run(
      SimulationInput(
        experiment: x, plan: plan, requests: requests,
        timeModel: RooflineModel(calibration: x.spec.calibration), seed: seed))
  }

  @Test func oneDeviceTokenTimesAreTheSumOfLayerTimes() throws {
    let x = try Self.experiment(devices: 1)
    let out = Self.run(x, stages: [.init(device: "agx", firstLayer: 0, endLayer: 34)])
    #expect(out.status == .complete)
    let model = RooflineModel(calibration: x.spec.calibration)
    let layers = ModelLayers(config: x.model, precision: .fp32)
    let agx = x.devices[0].profile
    func step(_ start: Double, _ w: Work) -> Double {
      layers.layers.reduce(start) { $0 + model.time($1, on: agx, work: w, precision: .fp32).value }
    }
    let t1 = step(0, .prefill(tokens: 8))
    let t2 = step(t1, .decode(contexts: [8]))
    let t3 = step(t2, .decode(contexts: [9]))
    let r = try #require(out.requests.first)
    #expect(r.tokenTimes.count == 3)
    #expect(isClose(r.tokenTimes[0], t1) && isClose(r.tokenTimes[1], t2) && isClose(r.tokenTimes[2], t3))
    #expect(r.ttft == r.tokenTimes[0] && r.completion == r.tokenTimes[2])
    #expect(out.links.isEmpty)
  }

  @Test func twoStagesAddTransfersAndTheReturn() throws {
    let x = try Self.experiment(devices: 2)
    let out = Self.run(
      x, stages: [.init(device: "agx", firstLayer: 0, endLayer: 17), .init(device: "nx", firstLayer: 17, endLayer: 34)])
    let model = RooflineModel(calibration: x.spec.calibration)
    let layers = ModelLayers(config: x.model, precision: .fp32)
    let (agx, nx) = (x.devices[0].profile, x.devices[1].profile)
    let r = try #require(out.requests.first)
    // Second token: decode at context 8 on both stages, 16 KB forward, 4 B back, 2 ms latency each way.
    let s0 = layers.layers[0..<17].reduce(0.0) {
      $0 + model.time($1, on: agx, work: .decode(contexts: [8]), precision: .fp32).value
    }
    let s1 = layers.layers[17..<34].reduce(0.0) {
      $0 + model.time($1, on: nx, work: .decode(contexts: [8]), precision: .fp32).value
    }
    let forward = Simulation.wireBytes(payload: 16384) * 8 / 1e8 + 0.002
    let back = Simulation.wireBytes(payload: 4) * 8 / 1e8 + 0.002
    #expect(isClose(r.tokenTimes[1] - r.tokenTimes[0], s0 + forward + s1 + back, rtol: 1e-9))
    let link = try #require(out.links.first { $0.from == "agx" && $0.to == "nx" })
    // Prefill sends 8 tokens' activations, each decode one.
    #expect(link.bytes == 16384 * 8 + 16384 * 2 && link.messages == 3)
    #expect(out.stages.map(\.microBatches) == [3, 3])
  }

  @Test func concurrentRequestsArePipelined() throws {
    let stages: [Plan.Stage] = [
      .init(device: "agx", firstLayer: 0, endLayer: 17), .init(device: "nx", firstLayer: 17, endLayer: 34),
    ]
    let one = Self.run(try Self.experiment(devices: 2, requests: 4, concurrency: 1), stages: stages)
    let four = Self.run(try Self.experiment(devices: 2, requests: 4, concurrency: 4), stages: stages)
    let s1 = RunSummary(one)
    let s4 = RunSummary(four)
    #expect(s1.requestsCompleted == 4 && s4.requestsCompleted == 4)
    #expect(s4.makespanSeconds < 0.75 * s1.makespanSeconds)
    #expect(s4.throughputTokensPerSecond > 1.3 * s1.throughputTokensPerSecond)
  }

  @Test func sameSeedSameTraceEvenWithJitter() throws {
    let x = try Self.experiment(devices: 2, requests: 6, jitter: .ms(3), arrival: .poisson(rate: 2))
    let stages: [Plan.Stage] = [
      .init(device: "agx", firstLayer: 0, endLayer: 20), .init(device: "nx", firstLayer: 20, endLayer: 34),
    ]
    let a = Self.run(x, stages: stages, seed: 5)
    let b = Self.run(x, stages: stages, seed: 5)
    let c = Self.run(x, stages: stages, seed: 6)
    #expect(a == b)
    #expect(a.requests.map(\.tokenTimes) != c.requests.map(\.tokenTimes))
  }

  @Test func bandwidthTraceIsIntegrated() throws {
    let trace = BandwidthTrace(points: [
      .init(at: .zero, bandwidth: .mbit(8)), .init(at: Seconds(1), bandwidth: .mbit(16)),
    ])
    let link = ResolvedLink(from: "a", to: "b", spec: LinkSpec(bandwidth: .mbit(8)), trace: trace)
    // 2 MB from t = 0.5: 0.5 MB in the first half second at 1 MB/s, the remaining 1.5 MB at 2 MB/s.
    #expect(isClose(Simulation.transmitTime(bytes: 2e6, start: 0.5, link: link), 0.5 + 0.75))
    #expect(isClose(Simulation.transmitTime(bytes: 2e6, start: 2, link: link), 1))
  }
}
