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
