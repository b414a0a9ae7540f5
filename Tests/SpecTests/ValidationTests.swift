import DSL
import Testing

@Suite("Validation")
struct ValidationTests {
  func base() -> ExperimentSpec {
    Experiment("valid") {
      Model(.llama32_3B)
      Device("nano", .orinNano8GB, count: 3)
      Algorithm("even")
    }.spec
  }

  func fields(_ spec: ExperimentSpec, known: Set<String>? = nil) -> [String] {
    spec.problems(knownAlgorithms: known).map(\.field)
  }

  @Test func aValidSpecHasNoProblems() throws {
    #expect(base().problems().isEmpty)
    let r = try base().resolve()
    #expect(r.devices.map(\.name) == ["nano0", "nano1", "nano2"])
    #expect(r.links.count == 6)
  }

  @Test func memoryBudgetAboveTheDeviceIsNamed() {
    var s = base()
    s.devices[0].usableMemory = .GB(9)
    let issue = s.problems().first { $0.field == "devices[nano].usable_memory" }
    #expect(issue?.message.contains("device 'nano' has 8.0 GB but the budget asks for 9.0 GB") == true)
  }

  @Test func unknownNamesAreListed() {
    var s = base()
    s.model = ModelChoice(preset: "Llama-5-1T")
    s.devices.append(DeviceGroup(name: "x", preset: "raspberry-pi"))
    s.source = "nano7"
    let issues = s.problems(knownAlgorithms: ["edgeshard-latency"])
    let text = issues.map(\.description).joined(separator: "\n")
    #expect(text.contains("model.preset: unknown model preset 'Llama-5-1T'"))
    #expect(text.contains("unknown device preset 'raspberry-pi'"))
    #expect(text.contains("source: 'nano7' is not a device"))
    #expect(text.contains("unknown algorithm 'even'; registered: edgeshard-latency"))
  }

  @Test func duplicateDeviceNamesAreCaught() {
    var s = base()
    s.devices.append(DeviceGroup(name: "nano1", preset: "jetson-orin-nano-8gb"))
    #expect(s.problems().contains { $0.message.contains("device name 'nano1' is used twice") })
  }

  @Test func linkAndWorkloadRanges() {
    var s = base()
    s.network.link.loss = 1.5
    s.network.link.bandwidth = Bandwidth(bitsPerSecond: 0)
    s.network.overrides = [LinkOverride(from: ["nano0"], to: ["ghost"], latency: .ms(-1))]
    s.workload.requests = 0
    s.workload.arrival = .poisson(rate: -1)
    s.workload.outputTokens = .fixed(200_000)
    let f = fields(s)
    for expected in [
      "network.link.loss", "network.link.bandwidth", "network.overrides[0]", "network.overrides[0].latency",
      "workload.requests", "workload.arrival.rate", "workload",
    ] {
      #expect(f.contains(expected), "missing \(expected) in \(f)")
    }
  }

  @Test func traceMustBeOrdered() {
    var s = base()
    s.network.overrides = [
      LinkOverride(
        name: "t", from: ["nano0"], to: ["nano1"],
        trace: BandwidthTrace(points: [
          .init(at: .zero, bandwidth: .mbit(10)), .init(at: .zero, bandwidth: .mbit(5)),
        ]))
    ]
    #expect(fields(s).contains("network.overrides[t].trace"))
  }

  @Test func resolveThrowsEveryProblemAtOnce() {
    var s = base()
    s.repetitions = 0
    s.algorithms = []
    do {
      _ = try s.resolve()
      Issue.record("resolved an invalid spec")
    } catch {
      #expect(error.issues.count == 2)
      #expect(error.description.contains("experiment 'valid'"))
    }
  }

  @Test func asymmetricOverridesApplyOneWay() throws {
    var s = base()
    s.network.overrides = [
      LinkOverride(from: ["nano0"], to: ["nano1"], oneWay: true, bandwidth: .mbit(5)),
      LinkOverride(from: ["nano2"], to: ["nano"], disconnected: true),
    ]
    let r = try s.resolve()
    #expect(r.link(from: "nano0", to: "nano1")?.spec.bandwidth == .mbit(5))
    #expect(r.link(from: "nano1", to: "nano0")?.spec.bandwidth == .gbit(1))
    #expect(r.link(from: "nano2", to: "nano0") == nil)
    #expect(r.link(from: "nano0", to: "nano2") == nil)
  }
}

@Suite("Workload")
struct WorkloadTests {
  @Test func materialisationIsDeterministic() {
    let w = WorkloadSpec(
      arrival: .poisson(rate: 2), requests: 50, promptTokens: .uniform(min: 8, max: 64),
      outputTokens: .normal(mean: 32, std: 8, min: 1, max: 64))
    let a = w.materialize(seed: 3, vocabularySize: 1000)
    let b = w.materialize(seed: 3, vocabularySize: 1000)
    #expect(a == b)
    #expect(a != w.materialize(seed: 4, vocabularySize: 1000))
    #expect(a.allSatisfy { (8...64).contains($0.promptLength) && $0.promptTokens.count == $0.promptLength })
    #expect(a.allSatisfy { $0.promptTokens.allSatisfy { (0..<1000).contains($0) } })
    let times = a.compactMap(\.arrival).map(\.value)
    #expect(times == times.sorted() && times.count == 50)
  }

  @Test func burstyArrivesInBatches() {
    let w = WorkloadSpec(arrival: .bursty(burst: 4, every: .ms(500)), requests: 10)
    let t = w.materialize(seed: 1, vocabularySize: 10).compactMap(\.arrival).map(\.value)
    #expect(t == [0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5, 1, 1])
  }

  @Test func onOffArrivesOnlyWhileOn() {
    let w = WorkloadSpec(arrival: .onOff(on: .ms(100), off: .ms(900), rate: 100), requests: 40)
    let t = w.materialize(seed: 2, vocabularySize: 10).compactMap(\.arrival).map(\.value)
    #expect(t.allSatisfy { $0.truncatingRemainder(dividingBy: 1.0) < 0.1 })
  }

  @Test func closedLoopHasNoArrivalTimes() {
    let w = WorkloadSpec(arrival: .closedLoop(), requests: 3)
    #expect(w.materialize(seed: 1, vocabularySize: 10).allSatisfy { $0.arrival == nil })
  }
}
