import Catalog
import CostModel
import DSL
import EdgeLabCore
import Engine
import Execution
import Metrics
import Partitioning
import Pipeline
import Runner
import Spec
import TestSupport
import Testing

@testable import Runtime

/// Workers timing their own layers: what a calibration asks for, what a worker may be asked, and how its reply
/// becomes the device's speed against the time model.
@Suite("Worker calibration")
struct CalibrationTests {
  static func setting(algorithm: String, devices: Int = 2) throws -> (ResolvedExperiment, Plan, any LayerTimeModel) {
    let x = try #require(
      try Experiment("calibration") {
        Model(.small, precision: .fp32)
        Device("d", .orinNano8GB, count: devices).source()
        Workload(requests: 4, prompt: 16, output: 8)
        Algorithm(algorithm)
        Execution(ExecutionOptions(maxBatch: 2))
        Backend(.simulated)
        Emulation(.none)
      }.spec.expandPoints().first?.experiment)
    let builder = ProblemBuilder.roofline(x.spec.calibration)
    let plan = try Partitioners.solve(builder.problem(for: x, objective: .latency), algorithm: algorithm)
    return (x, plan, builder.timeModel)
  }

  static let limits = RunLimits(
    hiddenSize: 512, vocabSize: 32000, requests: 4, maxPromptTokens: 16, maxContextTokens: 24, maxBatch: 2)

  /// A worker that takes 1.25 × the time model's time for every part it reports has speed 1.25, for decode steps
  /// and prompts alike; the time model's time of a stage is summed here layer by layer, independently.
  @Test func aWorkerAtAKnownMultipleOfTheModelHasThatSpeed() throws {
    let (x, plan, model) = try Self.setting(algorithm: "even")
    let requests = (0..<4).map {
      RequestPlan(id: $0, arrival: nil, promptLength: 16, outputLength: 8, promptTokens: [])
    }
    let r = WorkerCalibrationPlan.request(requests: requests, limits: Self.limits, maxBatch: 2, seconds: 1)
    let layers = ModelLayers(config: x.model, precision: .fp32).layers
    let stage = try #require(plan.stages.firstIndex { $0.device == "d1" })
    let range = plan.stages[stage].firstLayer..<plan.stages[stage].endLayer
    let profile = try #require(x.device("d1")).profile
    func seconds(_ w: Work) -> Double {
      range.reduce(0) { $0 + model.time(layers[$1], device: "d1", on: profile, work: w, precision: .fp32).value }
    }
    let reply = WorkerCalibration(parts: [
      .init(
        stage: stage, layers: Array(range),
        decode: r.decode.map { 1.25 * seconds(.decode(contexts: Array(repeating: $0.context, count: $0.batch))) },
        prefill: r.prefill.map { 1.25 * seconds(.prefill(tokens: $0)) })
    ])
    let speed = try #require(
      try WorkerCalibrationPlan.speed(of: "d1", reply, request: r, plan: plan, experiment: x, timeModel: model))
    #expect(isClose(speed.decode, 1.25) && isClose(speed.prefill, 1.25))
    // Decode steps of two sequences at 1.5 ×: each batch size keeps its own ratio, the phase's lies between.
    try #require(r.decode.map(\.batch) == [1, 2])
    var uneven = reply
    uneven.parts[0].decode[1] *= 1.5 / 1.25
    let both = try #require(
      try WorkerCalibrationPlan.speed(of: "d1", uneven, request: r, plan: plan, experiment: x, timeModel: model))
    let points = try #require(both.decodePoints)
    #expect(points.map(\.size) == [1, 2] && isClose(points[0].ratio, 1.25) && isClose(points[1].ratio, 1.5))
    #expect(both.decode > 1.25 && both.decode < 1.5 && both.prefillPoints == nil)
    // A worker that timed nothing (paced to an emulated device) has no speed.
    #expect(
      try WorkerCalibrationPlan.speed(
        of: "d1", WorkerCalibration(parts: []), request: r, plan: plan, experiment: x, timeModel: model) == nil)
  }

  /// A member of an even group of two computes half of each block (the leader also the embedding and the
  /// head): at exactly those times its speed is 1.
  @Test func aGroupMemberIsComparedWithItsShareOfTheBlocks() throws {
    let (x, plan, model) = try Self.setting(algorithm: "tp-star")
    let g = try #require(plan.stages.first?.group)
    #expect(g.members == ["d0", "d1"])
    let r = WorkerCalibrationPlan.request(requests: [], limits: Self.limits, maxBatch: 1, seconds: 1)
    let layers = ModelLayers(config: x.model, precision: .fp32).layers
    let profile = try #require(x.device("d0")).profile
    let s = plan.stages[0]
    func part(_ d: String, _ ls: [Int]) -> WorkerCalibration.Part {
      func seconds(_ w: Work) -> Double {
        ls.reduce(0) { acc, l in
          let whole = model.time(layers[l], device: d, on: profile, work: w, precision: .fp32).value
          if case .block = layers[l].kind { return acc + whole / 2 }
          return acc + whole
        }
      }
      return .init(
        stage: 0, layers: ls, decode: r.decode.map { seconds(.decode(contexts: [$0.context])) },
        prefill: r.prefill.map { seconds(.prefill(tokens: $0)) })
    }
    let leader = part("d0", Array(s.firstLayer..<s.endLayer))
    let member = part("d1", Array(s.layers.filter { (1...x.model.numHiddenLayers).contains($0) }))
    for (d, p) in [("d0", leader), ("d1", member)] {
      let speed = try #require(
        try WorkerCalibrationPlan.speed(
          of: d, WorkerCalibration(parts: [p]), request: r, plan: plan, experiment: x, timeModel: model))
      #expect(isClose(speed.decode, 1) && isClose(speed.prefill, 1), "\(d): \(speed)")
    }
  }

  /// A reply is untrusted: times that do not answer the request, layers or stages the model and plan do not
  /// have, and times that are not positive are refused by name.
  @Test func aMalformedReplyIsRefused() throws {
    let (x, plan, model) = try Self.setting(algorithm: "even")
    let r = WorkerCalibrationPlan.request(requests: [], limits: Self.limits, maxBatch: 2, seconds: 1)
    let good = WorkerCalibration.Part(
      stage: 0, layers: [0, 1], decode: r.decode.map { _ in 0.001 }, prefill: r.prefill.map { _ in 0.002 })
    var bad: [(WorkerCalibration.Part, String)] = []
    var p = good
    p.decode.removeLast()
    bad.append((p, "points"))
    p = good
    p.prefill[0] = .nan
    bad.append((p, "points"))
    p = good
    p.layers = [0, 99]
    bad.append((p, "layers"))
    p = good
    p.stage = 7
    bad.append((p, "stage 7"))
    for (part, words) in bad {
      #expect {
        try WorkerCalibrationPlan.speed(
          of: "d0", WorkerCalibration(parts: [part]), request: r, plan: plan, experiment: x, timeModel: model)
      } throws: { "\($0)".contains(words) }
    }
    #expect(
      try WorkerCalibrationPlan.speed(
        of: "d0", WorkerCalibration(parts: [good]), request: r, plan: plan, experiment: x, timeModel: model) != nil)
  }

  /// The points follow the workload (median prompt; decode at its median context halfway through the output,
  /// alone and at the run's batch; a verification's tokens when speculating) and fit the run's limits.
  @Test func theRequestFollowsTheWorkloadWithinTheRunsLimits() throws {
    let requests = (0..<5).map {
      RequestPlan(id: $0, arrival: nil, promptLength: 10 + $0, outputLength: 6, promptTokens: [])
    }
    var limits = Self.limits
    let r = WorkerCalibrationPlan.request(requests: requests, limits: limits, maxBatch: 8, seconds: 1)
    #expect(r.prefill == [12])
    #expect(r.decode == [.init(batch: 1, context: 15), .init(batch: 2, context: 15)])
    #expect(r.problem(limits) == nil)
    limits.verifyTokens = 5
    limits.maxContextTokens = 14
    let v = WorkerCalibrationPlan.request(requests: requests, limits: limits, maxBatch: 1, seconds: 1)
    #expect(v.prefill == [12, 5] && v.decode == [.init(batch: 1, context: 13)])
    #expect(v.problem(limits) == nil)
    // Sequences that end at their first token leave no room for a decode step: prompts only.
    limits.maxContextTokens = 1
    limits.maxPromptTokens = 1
    let p = WorkerCalibrationPlan.request(requests: requests, limits: limits, maxBatch: 1, seconds: 1)
    #expect(p.decode.isEmpty && p.prefill == [1] && p.problem(limits) == nil)
  }

  @Test func aRequestBeyondTheRunsLimitsIsRefused() {
    let l = Self.limits
    func request(
      decode: [CalibrationRequest.Decode] = [.init(batch: 1, context: 8)], prefill: [Int] = [8], seconds: Double = 1,
      min: Int = 3, max: Int = 10
    ) -> CalibrationRequest {
      CalibrationRequest(decode: decode, prefill: prefill, seconds: seconds, minRepetitions: min, maxRepetitions: max)
    }
    #expect(request().problem(l) == nil)
    #expect(request(decode: [], prefill: []).problem(l)?.contains("no point") == true)
    #expect(request(decode: [.init(batch: 3, context: 8)]).problem(l)?.contains("batch of 3") == true)
    #expect(request(decode: [.init(batch: 1, context: 24)]).problem(l)?.contains("context of 24") == true)
    #expect(request(decode: [.init(batch: 1, context: 0)]).problem(l)?.contains("context of 0") == true)
    #expect(request(prefill: [17]).problem(l)?.contains("17 tokens") == true)
    #expect(request(seconds: .infinity).problem(l)?.contains("seconds") == true)
    #expect(request(min: 5, max: 4).problem(l)?.contains("repetitions") == true)
    #expect(request(max: CalibrationRequest.repetitionLimit + 1).problem(l)?.contains("repetitions") == true)
    // The points' sequences are held together: no more than twice the run's batch.
    let many = [CalibrationRequest.Decode](repeating: .init(batch: 2, context: 8), count: 3)
    #expect(request(decode: many).problem(l)?.contains("more than 4 sequences") == true)
    var cold = request()
    cold.coldBytes = CalibrationRequest.maxColdBytes
    #expect(cold.problem(l) == nil)
    for bad in [-1, CalibrationRequest.maxColdBytes + 1] {
      cold.coldBytes = bad
      #expect(cold.problem(l)?.contains("cold bytes") == true)
    }
  }

  /// A worker reads through before each pass what the plan's other devices compute with: a pipeline stage the
  /// other stages' layers (their weights, the embedding table's row per token aside), a group member the other
  /// member's share of the group's blocks and the stages it has no part in; a lone worker nothing.
  @Test func coldBytesAreTheOtherDevicesWeights() throws {
    let layers = ModelLayers(config: ModelPreset.small.config, precision: .fp32).layers
    func bytes(_ r: Range<Int>) -> Double { r.reduce(0) { $0 + layers[$1].weightBytes.value } }
    let (_, pipeline, _) = try Self.setting(algorithm: "even")
    let first = try #require(pipeline.stages.first)
    let second = try #require(pipeline.stages.last)
    #expect(first.firstLayer == 0 && pipeline.stages.count == 2)
    let forFirst = WorkerCalibrationPlan.othersWeightBytes(of: first.device, plan: pipeline, layers: layers)
    let forSecond = WorkerCalibrationPlan.othersWeightBytes(of: second.device, plan: pipeline, layers: layers)
    #expect(isClose(Double(forFirst), bytes(second.layers)))
    #expect(isClose(Double(forSecond), bytes(1..<first.endLayer)))
    let (_, one, _) = try Self.setting(algorithm: "even", devices: 1)
    #expect(
      WorkerCalibrationPlan.othersWeightBytes(of: try #require(one.stages.first).device, plan: one, layers: layers) == 0
    )
    let (_, group, _) = try Self.setting(algorithm: "tp-star")
    let shared = try #require(group.stages.first { $0.group != nil })
    let member = try #require(shared.group?.members.last)
    let outside = group.stages.filter { !$0.devices.contains(member) }.reduce(0.0) {
      $0 + bytes($1.layers.clamped(to: 1..<layers.count))
    }
    let members = Double(shared.devices.count)
    let expected = outside + bytes(shared.layers.clamped(to: 1..<layers.count)) * (members - 1) / members
    #expect(
      isClose(
        Double(WorkerCalibrationPlan.othersWeightBytes(of: member, plan: group, layers: layers)), expected))
    // The request carries them, at most the largest a worker reads.
    let r = WorkerCalibrationPlan.request(
      requests: [], limits: Self.limits, maxBatch: 1, seconds: 1, coldBytes: .max)
    #expect(r.coldBytes == CalibrationRequest.maxColdBytes)
  }

  /// The sweep reads every line of what it maps (its sum is the bytes' words, written as ones), and maps nothing
  /// for no bytes or more than a calibration may hold.
  @Test func aCacheSweepReadsItsMemory() throws {
    #expect(CacheSweep(bytes: 0) == nil)
    #expect(CacheSweep(bytes: CalibrationRequest.maxColdBytes + 1) == nil)
    let sweep = try #require(CacheSweep(bytes: 1 << 20))
    sweep.sweep()
    #expect(sweep.sink == UInt64(1 << 20) / 64 &* 0x0101_0101_0101_0101)
  }

  /// A calibration's sweep leaves the peak memory a worker reports: once unmapped, the peak is reset below it.
  @Test func thePeakIsResetAfterASweep() throws {
    var sweep = CacheSweep(bytes: 256 << 20)
    #expect(sweep != nil)
    let peak = ProcessMemory.peakResidentBytes()
    sweep = nil
    #expect(ProcessMemory.resetPeak())
    #expect(ProcessMemory.peakResidentBytes() < peak)
  }

  /// A worker is calibrated once loaded (or later), never before its assignment, and never on a bad request.
  @Test func aWorkerCalibratesOnlyWhenLoadedAndAskedWithinLimits() {
    let ok = CalibrationRequest(
      decode: [.init(batch: 1, context: 4)], prefill: [3], seconds: 0, minRepetitions: 1, maxRepetitions: 1)
    var m = WorkerMachine()
    guard case .reply(.failure(let why)) = m.handle(.control(.calibrate(ok))).first else {
      Issue.record("calibrated before an assignment")
      return
    }
    #expect(why.contains("calibrate"))
    _ = m.handle(.control(.assign(Machines.assignment())))
    _ = m.handle(.loaded(weightBytes: 1, seconds: 0))
    guard case .calibrate(let asked) = m.handle(.control(.calibrate(ok))).first else {
      Issue.record("a loaded worker did not calibrate")
      return
    }
    #expect(asked == ok)
    var tooLong = ok
    tooLong.prefill = [Machines.limits.maxPromptTokens + 1]
    guard case .reply(.failure(let bad)) = m.handle(.control(.calibrate(tooLong))).first else {
      Issue.record("a prompt past the run's limits was timed")
      return
    }
    #expect(bad.contains("bad calibration"))
    #expect(m.phase == .ready)
    // Not while micro-batches are in flight: the serving source has dispatched its first.
    var (serving, _) = Machines.serving()
    guard case .reply(.failure(let busy)) = serving.handle(.control(.calibrate(ok))).first else {
      Issue.record("calibrated with a micro-batch in flight")
      return
    }
    #expect(busy.contains("in flight"))
  }
}
