import Catalog
import CostModel
import DSL
import EdgeLabCore
import Engine
import Execution
import Foundation
import Metrics
import Partitioning
import Pipeline
import Results
import Runner
import TestSupport
import Testing
import Transport

@testable import Runtime
@testable import Simulator

/// A second offloading algorithm, written as a user would write one file under Partitioning/Algorithms: the
/// whole model on the source, every other decoder block read from storage before each use. Nothing else in
/// the lab knows it; both backends run its plans from the plan's data alone.
struct AlternateOffload: Partitioner {
  static let name = "alternate-offload"
  static let summary = "test: the whole model on the source, odd decoder blocks offloaded"

  init(parameters: inout Parameters) throws(PartitionError) {}

  func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    let n = p.layerCount
    let source = p.name(p.sourceIndex)
    let offloaded = (1..<(n - 1)).filter { $0 % 2 == 1 }
    let compute = p.compute(p.sourceIndex, 0, n)
    let reads = offloaded.reduce(0.0) { acc, l in
      acc + (p.problem.layers[l].weightBytes ?? 0) / (p.problem.devices[p.sourceIndex].storageBytesPerS ?? .infinity)
    }
    return Plan(
      algorithm: Self.name, objective: p.problem.objective,
      stages: [.init(device: source, firstLayer: 0, endLayer: n, offloadedLayers: offloaded)],
      valueSeconds: compute + reads, valueModel: .timeline, exact: false, explanation: "odd blocks offloaded")
  }
}

@Suite("One execution core", .serialized)
struct ExecutionCoreTests {
  static func spec(algorithm: String = "even", backend: BackendKind = .simulated) -> ExperimentSpec {
    Experiment("core") {
      Model(.small, precision: .fp32)
      Device("d", .orinNano8GB, count: 2).source()
      Network(bandwidth: .mbit(200), latency: .ms(1))
      Workload(
        requests: 10, prompt: .uniform(min: 3, max: 9), output: .uniform(min: 2, max: 6), arrival: .poisson(rate: 2000))
      Algorithm(algorithm)
      Execution(ExecutionOptions(maxBatch: 3, microBatches: 2))
      Backend(backend)
      Emulation(.none)
      Seed(3)
    }.spec
  }

  /// The same request trace through the simulator (virtual time) and through the source worker's driver (a
  /// clock the test moves to each of the simulator's event times) gives the same micro-batches, in order.
  @Test func theSimulatorAndTheSourceDriverFormTheSameMicroBatches() throws {
    let x = try #require(try Self.spec().expandPoints().first?.experiment)
    let builder = ProblemBuilder.roofline(x.spec.calibration)
    let plan = try Partitioners.solve(builder.problem(for: x, objective: .latency), algorithm: "even")
    let requests = x.spec.workload.materialize(seed: 3, vocabularySize: x.model.vocabSize)
    var sim = Simulation(
      SimulationInput(experiment: x, plan: plan, requests: requests, timeModel: builder.timeModel, seed: 3))
    sim.recordBatches = true
    #expect(sim.run().status == .complete)
    #expect(sim.dispatched.contains { $0.batch.entries.count > 1 }, "the trace should exercise batching")

    let job = RunJob(experiment: x, plan: plan, requests: requests, seed: 3, timeModel: builder.timeModel)
    var driver = SourceScheduler(
      configuration: job.schedulerConfiguration,
      requests: requests.map {
        RequestMessage(
          id: $0.id, prompt: $0.promptTokens, outputLength: $0.outputLength, arrival: $0.arrival?.value ?? 0)
      },
      keepHistory: true)
    let clock = ManualClock()
    var inFlight: [Int] = []
    func note(_ actions: [SourceScheduler.Action]) {
      for case .dispatch(let m) in actions { inFlight.append(Int(m.batch)) }
    }
    note(driver.start(at: clock.now()))
    var steps = 0
    while !driver.isFinished && steps < 10_000 {
      steps += 1
      let wake = driver.nextWake
      let ret = inFlight.compactMap { b in sim.returned[b].map { (b, $0) } }.min { $0.1 < $1.1 }
      if let w = wake, ret == nil || w <= ret!.1 {
        clock.set(w)
        note(driver.tick(at: clock.now()))
      } else if let (b, t) = ret {
        clock.set(t)
        inFlight.removeAll { $0 == b }
        let n = driver.scheduler.inFlightBatch(b)?.entries.count ?? 0
        note(try driver.tokensReturned(batch: b, tokens: [Int32](repeating: 0, count: n), at: clock.now()))
      } else {
        break
      }
    }
    #expect(driver.isFinished)
    #expect(driver.dispatched == sim.dispatched.map(\.batch))
  }

  /// An offloading algorithm added in one file runs on both backends, with no edit anywhere else.
  @Test(arguments: [BackendKind.simulated, .loopback])
  func aNewOffloadingAlgorithmRunsOnEveryBackend(backend: BackendKind) throws {
    var spec = Self.spec(algorithm: AlternateOffload.name, backend: backend)
    spec.workload.requests = 3
    let path = temporaryDirectory() + "/r.h5"
    let runner = ExperimentRunner(
      backends: [.simulated: SimulatedBackend(), .loopback: LoopbackBackend(options: Runs.options())],
      partitioners: .standard.adding([AlternateOffload.self]))
    let report = try runner.run(spec, options: RunOptions(outputPath: path))
    let run = try #require(try ResultsStore.read(path).runs.first)
    #expect(report.statusCounts == [.complete: 1], "\(run.outcome.message ?? "")")
    #expect(run.plan?.stages.first?.offloadedLayers == [1, 3, 5, 7])
    #expect(run.outcome.requests.allSatisfy { $0.isComplete })
    if backend == .loopback {
      #expect(run.outcome.facts["lossless"] == .number(1))
      #expect((run.outcome.facts["offload_reads"]?.doubleValue ?? 0) > 0)
    } else {
      #expect(run.outcome.devices.contains { $0.loadStallSeconds > 0 })
    }
  }
}

@Suite("Lossless reference, one layer range at a time")
struct ReferenceTests {
  /// The reference computed range by range (teacher-forced with the split run's tokens) is the unsplit model's
  /// own generation; a wrong token in the split run is found where it happened.
  @Test func rangeByRangeReproducesTheUnsplitModelAndFindsTheFirstWrongToken() throws {
    let spec = ExecutionCoreTests.spec()
    let x = try #require(try spec.expandPoints().first?.experiment)
    let builder = ProblemBuilder.roofline(x.spec.calibration)
    let plan = try Partitioners.solve(builder.problem(for: x, objective: .latency), algorithm: "even")
    let requests = Array(x.spec.workload.materialize(seed: 3, vocabularySize: x.model.vocabSize).prefix(3))
    let job = RunJob(experiment: x, plan: plan, requests: requests, seed: 3, timeModel: builder.timeModel)
    let weights = try WeightsSpec(x).source().open()
    let whole = try LocalPipeline(weights: weights)
    var unsplit: [Int: [Int32]] = [:]
    for r in requests {
      unsplit[r.id] = whole.generate(prompt: r.promptTokens, maxNewTokens: r.outputLength, sequence: r.id).tokens
    }
    // Ranges of at most two layers: nothing like the plan's cut.
    let ranges = stride(from: 0, to: x.model.numHiddenLayers + 2, by: 2).map {
      $0..<min($0 + 2, x.model.numHiddenLayers + 2)
    }
    #expect(ranges.count > plan.stages.count)
    let reference = try ReferenceTokens.byLayerRange(
      job: job, weights: weights, generated: unsplit, threads: 1, ranges: ranges)
    #expect(reference == unsplit)
    var wrong = unsplit
    let victim = try #require(requests.first { $0.outputLength >= 3 })
    wrong[victim.id]![1] = (wrong[victim.id]![1] + 1) % Int32(x.model.vocabSize)
    let checked = try ReferenceTokens.byLayerRange(
      job: job, weights: weights, generated: wrong, threads: 1, ranges: ranges)
    #expect(checked[victim.id]![0] == wrong[victim.id]![0])
    #expect(checked[victim.id]![1] == unsplit[victim.id]![1] && checked[victim.id]![1] != wrong[victim.id]![1])
  }

  @Test func rangesFitTheLargestStageWhenTheModelDoesNot() throws {
    let spec = ExecutionCoreTests.spec()
    let x = try #require(try spec.expandPoints().first?.experiment)
    let builder = ProblemBuilder.roofline(x.spec.calibration)
    let plan = try Partitioners.solve(builder.problem(for: x, objective: .latency), algorithm: "even")
    let job = RunJob(experiment: x, plan: plan, requests: [], seed: 3, timeModel: builder.timeModel)
    #expect(ReferenceTokens.ranges(job: job, available: 1e15) == [0..<(x.model.numHiddenLayers + 2)])
    let small = ReferenceTokens.ranges(job: job, available: 1)
    #expect(small.first?.lowerBound == 0 && small.last?.upperBound == x.model.numHiddenLayers + 2)
    #expect(zip(small, small.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
    #expect(small.count >= plan.stages.count)
  }
}

@Suite("Both backends keep the same books", .serialized)
struct SharedAccountsTests {
  /// The simulator's frame overhead is the transport's: an activation message of n floats and one span is
  /// 4n + 58 bytes on the stream.
  @Test func theSimulatorCountsTheFramesTheTransportSends() {
    for n in [1, 512, 3072] {
      let m = ActivationMessage(
        batch: 7, stage: 1, prefill: false, spans: [.init(id: 3, start: 10, count: 1)],
        values: [Float](repeating: 1, count: n))
      #expect(Double(m.encoded(halfPrecision: false).count + Wire.headerSize - 4 * n) == Simulation.frameOverheadBytes)
    }
  }

  /// A link into a worker serves frames in order from their send times, each taking its bytes on the wire at
  /// the link's rate, however they arrive (the kernel's token bucket may let a small one through at once).
  @Test func linkSerializationQueuesFramesFromTheirSendTimes() {
    let serial = LinkSerialization(bytesPerSecond: 1e6)
    let sent = monotonicNanoseconds() &- 1_000_000_000
    let frame = Frame(type: .activation, sentAt: sent, payload: [UInt8](repeating: 0, count: 2000))
    let wire = WireModel.onWire(frameBytes: Double(Wire.headerSize + 2000)) / 1e6
    #expect(isClose(serial.delay(frame: frame), wire, rtol: 1e-6))
    // Sent at the same moment, behind the first.
    #expect(isClose(serial.delay(frame: frame), 2 * wire, rtol: 1e-6))
    #expect(LinkSerialization(bytesPerSecond: nil).delay(frame: frame) == 0)
  }

  /// A real run records its timeline as the simulator does: every stage's computations and the transfers
  /// between them, in device time since the start.
  @Test func aRealRunRecordsItsTimeline() throws {
    var spec = ExecutionCoreTests.spec(backend: .loopback)
    spec.workload.requests = 3
    spec.execution.recordEvents = true
    let path = temporaryDirectory() + "/t.h5"
    let runner = ExperimentRunner(backends: [.loopback: LoopbackBackend(options: Runs.options())])
    _ = try runner.run(spec, options: RunOptions(outputPath: path))
    let run = try #require(try ResultsStore.read(path).runs.first)
    #expect(run.outcome.status == .complete, "\(run.outcome.message ?? "")")
    let events = try #require(run.outcome.events)
    let computed = run.outcome.stages.reduce(0) { $0 + $1.microBatches }
    #expect(events.filter { $0.kind == .compute }.count == computed)
    #expect(Set(events.filter { $0.kind == .compute }.map(\.device)) == ["d0", "d1"])
    #expect(events.contains { $0.kind == .transfer && $0.device == "d0" && $0.peer == "d1" })
    let end = run.outcome.requests.compactMap(\.completion).max() ?? 0
    #expect(events.allSatisfy { $0.start >= -0.01 && $0.end >= $0.start && $0.end <= end + 0.01 })
  }

  /// With memory admission "fail", a real run stops as a simulated one does, naming the device.
  @Test(arguments: [BackendKind.simulated, .loopback])
  func outgrowingMemoryFailsTheRunByName(backend: BackendKind) throws {
    var spec = ExecutionCoreTests.spec(backend: backend)
    let weights = ModelLayers(config: ModelPreset.small.config, precision: .fp32).totalWeightBytes.value
    // Room for about 60 tokens of KV cache beside the half of the model each device holds: enough for the plan
    // (three sequences of at most 15 tokens), not for ten requests admitted at once.
    let kvPerToken =
      ModelLayers(config: ModelPreset.small.config, precision: .fp32).layers
      .reduce(0.0) { $0 + $1.kvBytesPerToken.value } / 2
    spec.devices[0].usableMemory = Bytes(weights / 2 + 60 * kvPerToken)
    spec.workload.requests = 10
    spec.workload.arrival = .bursty(burst: 10, every: Seconds(100))
    spec.execution.memoryAdmission = .fail
    let path = temporaryDirectory() + "/m.h5"
    let runner = ExperimentRunner(
      backends: [.simulated: SimulatedBackend(), .loopback: LoopbackBackend(options: Runs.options())])
    _ = try? runner.run(spec, options: RunOptions(outputPath: path))
    let run = try #require(try ResultsStore.read(path).runs.first)
    #expect(run.outcome.status != .complete)
    #expect(run.outcome.message?.contains("out of memory on device d") == true, "\(run.outcome.message ?? "")")
  }
}
