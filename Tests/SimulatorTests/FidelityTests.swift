import Catalog
import CostModel
import DSL
import Execution
import Metrics
import Pipeline
import TestSupport
import Testing

@testable import Simulator

/// What the simulator keeps exact: conservation, determinism, memory, contention, against closed forms.
@Suite("Simulator fidelity")
struct FidelityTests {
  static func plan(_ stages: [Plan.Stage], microBatches: Int = 1) -> Plan {
    Plan(
      algorithm: "test", objective: .latency, stages: stages, microBatches: microBatches, valueSeconds: 0,
      exact: false)
  }

  static func run(
    _ x: ResolvedExperiment, _ plan: Plan, seed: UInt64 = 1, model: (any LayerTimeModel)? = nil
  ) -> RunOutcome {
    Simulator.run(
      SimulationInput(
        experiment: x, plan: plan, requests: x.spec.workload.materialize(seed: seed, vocabularySize: x.model.vocabSize),
        timeModel: model ?? RooflineModel(calibration: x.spec.calibration), seed: seed))
  }

  // MARK: Conservation and determinism

  @Test(arguments: [1, 2, 3, 4] as [UInt64])
  func everyRequestCompletesOnceWithItsOutputLength(seed: UInt64) throws {
    let x = try Experiment("conservation") {
      Model(.llama32_1B)
      Device("nano", .orinNano8GB, count: 3)
      Network(bandwidth: .mbit(50), latency: .ms(1), jitter: .ms(0.5))
      Workload(
        requests: 40, prompt: .uniform(min: 4, max: 64), output: .uniform(min: 1, max: 40),
        arrival: .poisson(rate: 20))
      Algorithm("even")
      Execution(ExecutionOptions(maxBatch: 4, microBatches: 3))
    }.spec.resolve()
    let out = Self.run(
      x,
      Self.plan(
        [
          .init(device: "nano0", firstLayer: 0, endLayer: 6), .init(device: "nano1", firstLayer: 6, endLayer: 12),
          .init(device: "nano2", firstLayer: 12, endLayer: 18),
        ], microBatches: 3), seed: seed)
    #expect(out.status == .complete)
    let plans = x.spec.workload.materialize(seed: seed, vocabularySize: x.model.vocabSize)
    #expect(out.requests.map(\.id) == plans.map(\.id))
    for (r, p) in zip(out.requests, plans) {
      #expect(r.tokenTimes.count == p.outputLength)
      #expect(r.completion == r.tokenTimes.last)
      #expect(zip(r.tokenTimes, r.tokenTimes.dropFirst()).allSatisfy { $0 < $1 })
      #expect(r.tokenTimes.first! > r.arrival)
    }
  }

  @Test func sameSeedGivesTheSameTimelineEventForEvent() throws {
    var spec = Experiment("determinism") {
      Model(.llama32_1B)
      Device("nano", .orinNano8GB, count: 2)
      Network(bandwidth: .mbit(20), latency: .ms(2), jitter: .ms(1))
      Workload(requests: 12, prompt: 16, output: 8, arrival: .poisson(rate: 5))
      Algorithm("even")
    }.spec
    spec.execution.recordEvents = true
    let x = try spec.resolve()
    let plan = Self.plan(
      [.init(device: "nano0", firstLayer: 0, endLayer: 9), .init(device: "nano1", firstLayer: 9, endLayer: 18)],
      microBatches: 2)
    let a = Self.run(x, plan, seed: 9)
    let b = Self.run(x, plan, seed: 9)
    #expect(a == b)
    let events = try #require(a.events)
    #expect(events.filter { $0.kind == .compute }.count == a.stages.reduce(0) { $0 + $1.microBatches })
    #expect(events.allSatisfy { $0.end >= $0.start })
    #expect(Self.run(x, plan, seed: 10).events != events)
  }

  // MARK: Closed forms

  @Test func twoStagesOverAKnownLinkTakeComputePlusWireBytesPlusLatency() throws {
    let x = try Experiment("two") {
      Model(.llama32_1B)
      Device("a", .orinNano8GB)
      Device("b", .orinNano8GB)
      Network(bandwidth: .mbit(10), latency: .ms(3))
      Workload(requests: 1, prompt: 8, output: 3)
      Algorithm("even")
    }.spec.resolve()
    let out = Self.run(
      x, Self.plan([.init(device: "a", firstLayer: 0, endLayer: 9), .init(device: "b", firstLayer: 9, endLayer: 18)]))
    let model = RooflineModel(calibration: x.spec.calibration)
    let layers = ModelLayers(config: x.model, precision: .fp32)
    let nano = x.devices[0].profile
    func compute(_ r: Range<Int>, _ w: Work) -> Double {
      layers.layers[r].reduce(0.0) { $0 + model.time($1, on: nano, work: w, precision: .fp32).value }
    }
    let hidden = Double(x.model.hiddenSize * 4)
    let rate = 10e6 / 8
    // Bytes on the wire: the frame (payload + 58) in 1448-byte segments with 66 bytes of headers each.
    #expect(Simulation.wireBytes(payload: hidden) == hidden + 58 + 66 * ((hidden + 58) / 1448).rounded(.up))
    let forward = Simulation.wireBytes(payload: hidden) / rate + 0.003
    let back = Simulation.wireBytes(payload: 4) / rate + 0.003
    let r = try #require(out.requests.first)
    let step = compute(0..<9, .decode(contexts: [8])) + forward + compute(9..<18, .decode(contexts: [8])) + back
    #expect(isClose(r.tokenTimes[1] - r.tokenTimes[0], step, rtol: 1e-9))
  }

  /// Three devices: a and b each send a message at the same moment, to c and to d, through one shared segment.
  func contention(segment: Bool) throws -> (Double, Double) {
    let x = try Experiment("segment") {
      Model(.llama32_1B)
      Device("a", .orinNano8GB)
      Device("b", .orinNano8GB)
      Device("c", .orinNano8GB)
      Device("d", .orinNano8GB)
      Network(bandwidth: .mbit(100), latency: .ms(1)) {
        if segment { Segment("router", from: ["a", "b"], to: ["c", "d"], bandwidth: .mbit(8)) }
      }
      Workload(requests: 1, prompt: 8, output: 1)
      Algorithm("even")
    }.spec.resolve()
    var sim = Simulation(
      SimulationInput(
        experiment: x, plan: Self.plan([.init(device: "a", firstLayer: 0, endLayer: 18)]), requests: [],
        timeModel: RooflineModel(), seed: 1))
    let first = sim.send(from: 0, to: 2, bytes: 10_000, stage: 0, batch: 0)
    let second = sim.send(from: 1, to: 3, bytes: 10_000, stage: 0, batch: 1)
    return (first, second)
  }

  @Test func aSharedSegmentServesTwoSendersOneAfterTheOther() throws {
    let wire = Simulation.wireBytes(payload: 10_000)
    let (a, b) = try contention(segment: true)
    // The segment (1 MB/s) is slower than the links: each message takes wire / 1 MB/s, the second after the first.
    #expect(isClose(a, wire / 1e6 + 0.001, rtol: 1e-12))
    #expect(isClose(b, 2 * wire / 1e6 + 0.001, rtol: 1e-12))
    // Without the segment each has its own path: both arrive together, at the link's rate.
    let (c, d) = try contention(segment: false)
    #expect(isClose(c, wire / 12.5e6 + 0.001, rtol: 1e-12) && c == d)
  }

  @Test func aDevicesInterfaceCarriesOneTransferAtATime() throws {
    let x = try Experiment("nic") {
      Model(.llama32_1B)
      Device("a", .orinNano8GB)
      Device("b", .orinNano8GB)
      Device("c", .orinNano8GB)
      Network(bandwidth: .mbit(8), latency: .zero)
      Workload(requests: 1, prompt: 8, output: 1)
      Algorithm("even")
    }.spec.resolve()
    var sim = Simulation(
      SimulationInput(
        experiment: x, plan: Self.plan([.init(device: "a", firstLayer: 0, endLayer: 18)]), requests: [],
        timeModel: RooflineModel(), seed: 1))
    let wire = Simulation.wireBytes(payload: 5000)
    #expect(isClose(sim.send(from: 0, to: 1, bytes: 5000, stage: 0, batch: 0), wire / 1e6))
    #expect(isClose(sim.send(from: 0, to: 2, bytes: 5000, stage: 0, batch: 1), 2 * wire / 1e6))
  }

  @Test func lossIsBoundedByTCPsSteadyStateRate() throws {
    func delivery(loss: Double) throws -> Double {
      let x = try Experiment("loss") {
        Model(.llama32_1B)
        Device("a", .orinNano8GB)
        Device("b", .orinNano8GB)
        Network(bandwidth: .gbit(1), latency: .ms(10), loss: loss)
        Workload(requests: 1, prompt: 8, output: 1)
        Algorithm("even")
      }.spec.resolve()
      var sim = Simulation(
        SimulationInput(
          experiment: x, plan: Self.plan([.init(device: "a", firstLayer: 0, endLayer: 18)]), requests: [],
          timeModel: RooflineModel(), seed: 1))
      return sim.send(from: 0, to: 1, bytes: 1e6, stage: 0, batch: 0)
    }
    let wire = Simulation.wireBytes(payload: 1e6)
    // 1% loss, 20 ms RTT: 1448 · √1.5 / (0.02 · 0.1) = 886.8 kB/s, far below 1 Gbit/s.
    let mathis = 1448 * (1.5).squareRoot() / (0.02 * 0.1)
    #expect(isClose(try delivery(loss: 0.01), wire / mathis + 0.01, rtol: 1e-12))
    #expect(isClose(try delivery(loss: 0), wire / 125e6 + 0.01, rtol: 1e-12))
  }

  // MARK: Memory

  /// Llama-3.2-1B FP32 on one device with room for the KV cache of about one request of 1024 + 1024 tokens.
  func memoryBound(_ admission: ExecutionOptions.MemoryAdmission) throws -> (ResolvedExperiment, RunOutcome) {
    let layers = ModelLayers(config: ModelPresetsForTests.llama1B, precision: .fp32)
    let kvPerToken = layers.layers.reduce(0.0) { $0 + $1.kvBytesPerToken.value }
    let usable = layers.totalWeightBytes.value + kvPerToken * 2048 * 1.5
    let x = try Experiment("memory") {
      Model(.llama32_1B)
      Device("a", .orinNano8GB, usableMemory: Bytes(usable))
      Workload(requests: 3, prompt: 1024, output: 1024, arrival: .bursty(burst: 3, every: Seconds(1000)))
      Algorithm("even")
      Execution(ExecutionOptions(maxBatch: 8, memoryAdmission: admission))
    }.spec.resolve()
    return (x, Self.run(x, Self.plan([.init(device: "a", firstLayer: 0, endLayer: 18)])))
  }

  @Test func requestsThatWouldNotFitWaitForAdmissionAndThePeakStaysWithinMemory() throws {
    let (x, out) = try memoryBound(.wait)
    #expect(out.status == .complete)
    let usable = x.devices[0].profile.usableMemory.value
    #expect(out.devices[0].peakMemoryBytes <= usable)
    // One at a time: each request's first token comes after the previous one completed.
    let r = out.requests
    #expect(r[1].firstToken! > r[0].completion! && r[2].firstToken! > r[1].completion!)
  }

  @Test func withAdmissionFailTheRunFailsNamingTheDeviceAndTheTime() throws {
    let (_, out) = try memoryBound(.fail)
    #expect(out.status == .failed)
    let message = try #require(out.message)
    #expect(message.contains("out of memory on device a at t = "))
  }

  @Test func aRequestThatCanNeverFitFailsTheRunByName() throws {
    let layers = ModelLayers(config: ModelPresetsForTests.llama1B, precision: .fp32)
    let x = try Experiment("never") {
      Model(.llama32_1B)
      Device("a", .orinNano8GB, usableMemory: Bytes(layers.totalWeightBytes.value + 1e6))
      Workload(requests: 1, prompt: 1024, output: 1024)
      Algorithm("even")
    }.spec.resolve()
    let out = Self.run(x, Self.plan([.init(device: "a", firstLayer: 0, endLayer: 18)]))
    #expect(out.status == .failed)
    #expect(out.message?.contains("out of memory on device a: request 0 can reach 2048 tokens") == true)
  }

  // MARK: The planner's additive model and the simulator part ways under batching

  @Test func batchedDecodeIsSlowerPerTokenThanThePlannersBatchOneValue() throws {
    let x = try Experiment("batched") {
      Model(.llama32_1B)
      Device("a", .agxOrin32GB)
      Workload(requests: 8, prompt: 16, output: 16, arrival: .saturation(inFlight: 8))
      Algorithm("even")
      Execution(ExecutionOptions(maxBatch: 8))
    }.spec.resolve()
    let out = Self.run(x, Self.plan([.init(device: "a", firstLayer: 0, endLayer: 18)]))
    #expect(out.status == .complete, "\(out.message ?? "")")
    let model = RooflineModel(calibration: x.spec.calibration)
    let layers = ModelLayers(config: x.model, precision: .fp32)
    let single = layers.layers.reduce(0.0) {
      $0 + model.time($1, on: x.devices[0].profile, work: .decode(contexts: [16]), precision: .fp32).value
    }
    // Eight requests decode together: each waits for the batch's step, longer than one request's.
    #expect(RunSummary(out).tpot.mean > single)
  }
}

enum ModelPresetsForTests {
  static let llama1B = ModelPreset.llama32_1B.config
}

/// A layer time model whose every layer takes 1 ms and whose messages cost 0.2 ms more when their receiver had
/// waited over 0.5 ms (nil, an unknown wait: 1 s, so that a caller that does not say shows).
struct WakingReceivers: LayerTimeModel {
  func time(_ layer: LayerCost, on device: DeviceProfile, work: Work, precision: Precision) -> Seconds {
    Seconds(0.001)
  }
  var provenance: String { "test" }
  func messageSeconds(from: String, to: String, bytes: Double, idle: Double?) -> Double {
    guard let idle else { return 1 }
    return idle > 0.0005 ? 0.0002 : 0
  }
}

@Suite("Waking a receiver")
struct WakeTests {
  static func interval(_ plan: Plan, _ model: any LayerTimeModel) throws -> Double {
    let x = try Experiment("wake") {
      Model(.small)
      Device("a", .orinNano8GB).source()
      Device("b", .orinNano8GB)
      Network(bandwidth: .gbit(100), latency: .zero)
      Workload(requests: 1, prompt: 8, output: 4, arrival: .closedLoop())
      Algorithm("even")
    }.spec.resolve()
    let out = FidelityTests.run(x, plan, model: model)
    let t = try #require(out.requests.first?.tokenTimes)
    return t[2] - t[1]
  }

  /// The same model without the wake-up: every message's fixed cost 0.
  struct NoWakeUp: LayerTimeModel {
    func time(_ layer: LayerCost, on device: DeviceProfile, work: Work, precision: Precision) -> Seconds {
      Seconds(0.001)
    }
    var provenance: String { "test" }
  }

  @Test func aPipelineHopsReceiverHasWaitedForItsPredecessorAndPaysTheWakeUp() throws {
    let plan = FidelityTests.plan([
      .init(device: "a", firstLayer: 0, endLayer: 5), .init(device: "b", firstLayer: 5, endLayer: 10),
    ])
    // Each stage computes 5 ms while the other waits: the hop to b and the token's return to a both wake.
    let extra = try Self.interval(plan, WakingReceivers()) - Self.interval(plan, NoWakeUp())
    #expect(isClose(extra, 0.0004, rtol: 1e-6))
  }

  @Test func aGroupsCollectivesReachReceiversThatHaveJustStartedWaiting() throws {
    let g = TensorGroup(members: ["a", "b"], kvHeads: [2, 2], ffnColumns: [768, 768], collective: .star)
    let plan = FidelityTests.plan([.init(device: "a", firstLayer: 0, endLayer: 10, group: g)])
    // Sixteen all-reduces per token pay nothing; only the leader's input to b, which waited through the head
    // (1 ms) since its last block, wakes it.
    let extra = try Self.interval(plan, WakingReceivers()) - Self.interval(plan, NoWakeUp())
    #expect(isClose(extra, 0.0002, rtol: 1e-6))
  }
}

/// Every layer 1 ms; every device on one machine, where each of k workers decoding at once takes 1 + (k − 1)/4
/// times as long (prefill unaffected).
struct SharingOneHost: LayerTimeModel {
  func time(_ layer: LayerCost, on device: DeviceProfile, work: Work, precision: Precision) -> Seconds {
    Seconds(0.001)
  }
  var provenance: String { "test" }
  func sharedHost(of name: String) -> String? { "h" }
  func sharedSlowdown(device name: String, workers: Int, work: Work) -> Double {
    guard case .decode = work else { return 1 }
    return 1 + Double(workers - 1) / 4
  }
}

@Suite("Workers sharing one host")
struct SharedHostTests {
  static func experiment(requests: Int, inFlight: Int) throws -> ResolvedExperiment {
    try Experiment("shared") {
      Model(.small)
      Device("a", .orinNano8GB).source()
      Device("b", .orinNano8GB)
      Network(bandwidth: .gbit(100), latency: .zero)
      Workload(requests: requests, prompt: 8, output: 8, arrival: .saturation(inFlight: inFlight))
      Algorithm("even")
    }.spec.resolve()
  }

  static func interval(_ x: ResolvedExperiment, _ plan: Plan, _ model: any LayerTimeModel) throws -> Double {
    let out = FidelityTests.run(x, plan, model: model)
    #expect(out.status == .complete, "\(out.message ?? "")")
    let t = try #require(out.requests.first?.tokenTimes)
    return t[2] - t[1]
  }

  @Test func aGroupsMembersDecodeAtOnceAndShareTheHost() throws {
    let x = try Self.experiment(requests: 1, inFlight: 1)
    let g = TensorGroup(members: ["a", "b"], kvHeads: [2, 2], ffnColumns: [768, 768], collective: .star)
    let plan = FidelityTests.plan([.init(device: "a", firstLayer: 0, endLayer: 10, group: g)])
    // Both members compute every shared block together (1.25× as long each); the embedding and the head are
    // the leader's alone (the exchanges carry a few kilobytes at 100 Gbit/s and cost nothing else here).
    // Eight blocks of which each member computes half (0.5 ms of 1 ms): 4 ms per step, 1 ms more shared.
    let apart = try Self.interval(x, plan, WakeTests.NoWakeUp())
    let extra = try Self.interval(x, plan, SharingOneHost()) - apart
    #expect(isClose(extra, 0.25 * 0.004, rtol: 1e-6), "\(extra) of \(apart)")
  }

  @Test func aPipelineAtBatchOneComputesOneStageAtATime() throws {
    let x = try Self.experiment(requests: 1, inFlight: 1)
    let plan = FidelityTests.plan([
      .init(device: "a", firstLayer: 0, endLayer: 5), .init(device: "b", firstLayer: 5, endLayer: 10),
    ])
    #expect(try Self.interval(x, plan, SharingOneHost()) == Self.interval(x, plan, WakeTests.NoWakeUp()))
  }

  @Test func stagesBusyAtOnceSlowEachOther() throws {
    let x = try Self.experiment(requests: 4, inFlight: 4)
    let plan = FidelityTests.plan(
      [.init(device: "a", firstLayer: 0, endLayer: 5), .init(device: "b", firstLayer: 5, endLayer: 10)],
      microBatches: 2)
    let shared = RunSummary(FidelityTests.run(x, plan, model: SharingOneHost()))
    let apart = RunSummary(FidelityTests.run(x, plan, model: WakeTests.NoWakeUp()))
    // Both stages hold micro-batches most of the time: decode steps overlap and take up to 1.25× as long.
    #expect(shared.tpot.mean > apart.tpot.mean * 1.05 && shared.tpot.mean <= apart.tpot.mean * 1.25 + 1e-9)
  }
}
