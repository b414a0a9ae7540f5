import EdgeLabCore
import Partitioning
import Pipeline
import TestSupport
import Testing

@Suite("On-demand offloading baselines and the prefill-weighted throughput objective")
struct OnDemandTests {
  /// 8 layers of 1 GB on two 3 GB devices (8 GB > 6 GB), storage 2 GB/s, 10 ms per layer.
  static func tight() -> PartitionProblem {
    var p = Problems.uniform(
      layers: 8, memory: [3e9, 3e9], time: [0.01, 0.01], layerBytes: 1e9, bandwidth: 1e8, latency: 0.001)
    for i in p.devices.indices { p.devices[i].storageBytesPerS = 2e9 }
    return p
  }

  @Test func evenOnDemandReadsWhatDoesNotFitWhenItIsUsed() throws {
    let plan = try Partitioners.solve(Self.tight(), algorithm: "even-ondemand")
    #expect(plan.stages.map { $0.endLayer - $0.firstLayer } == [4, 4])
    #expect(plan.residency?.devices.allSatisfy { !$0.prefetch && $0.stagingSlots == 1 } == true)
    // Each device holds 2 of its 4 layers beside one staging slot: 2 reads of 0.5 s per device and token,
    // none hidden (nothing is read before its use): at least 4 × 0.5 s + 8 × 10 ms per token.
    #expect(plan.stages.map(\.offloadedLayers.count) == [2, 2])
    #expect(plan.valueSeconds >= 2.08 - 1e-9)
  }

  @Test func limeHidesReadsThatOnDemandLoadingWaitsFor() throws {
    let onDemand = try Partitioners.solve(Self.tight(), algorithm: "even-ondemand")
    let lime = try Partitioners.solve(Self.tight(), algorithm: "lime")
    #expect(lime.valueSeconds < onDemand.valueSeconds)
  }

  @Test func edgeShardOnDemandKeepsEdgeShardsPartitionAndNeedsStorage() throws {
    let plan = try Partitioners.solve(Self.tight(), algorithm: "edgeshard-ondemand")
    #expect(plan.stages.first?.firstLayer == 0 && plan.stages.last?.endLayer == 8)
    #expect(!plan.stages.flatMap(\.offloadedLayers).isEmpty)
    var noStorage = Self.tight()
    for i in noStorage.devices.indices { noStorage.devices[i].storageBytesPerS = nil }
    #expect(throws: PartitionError.self) { try Partitioners.solve(noStorage, algorithm: "edgeshard-ondemand") }
  }

  /// Two devices: the source d0 is slow (10 ms a layer), d1 fast (1 ms), the link between them slow (1 KB of
  /// activations takes 10 ms). Prompts of 100 tokens and 10 generated tokens: each prompt's activations (100 KB)
  /// would cross the link, 1 s per request, 100 ms per generated token.
  static func prefillCrossesASlowLink() -> PartitionProblem {
    var p = Problems.uniform(
      layers: 4, memory: [10, 10], time: [0.01, 0.001], outputBytes: 1000, bandwidth: 1e5, latency: 0,
      objective: .throughput)
    for i in p.layers.indices { p.layers[i].prefillTimeS = ["d0": 0.1, "d1": 0.01] }
    p.promptTokens = 100
    p.outputTokens = 10
    return p
  }

  @Test func theThroughputObjectiveWeighsEachPromptsPrefill() throws {
    let p = Self.prefillCrossesASlowLink()
    // Decode only: hand three layers to d1 (bottleneck 10 ms on d0 or the link) rather than 40 ms on d0 alone.
    let decodeOnly = try Partitioners.solve(p, algorithm: "edgeshard-throughput", parameters: ["prefill": "ignored"])
    #expect(decodeOnly.stages.count == 2)
    // Weighted: the link would carry 11 KB per generated token (110 ms); d0 alone costs 4 × (10 + 100/10) ms.
    let weighted = try Partitioners.solve(p, algorithm: "edgeshard-throughput")
    #expect(weighted.stages.map(\.device) == ["d0"])
    #expect(weighted.notes.contains { $0.hasPrefix("chosen with prefill weighted") })
    // Without workload lengths the objective is the decode-only one.
    var bare = p
    bare.promptTokens = nil
    #expect(try Partitioners.solve(bare, algorithm: "edgeshard-throughput").stages.count == 2)
    #expect(throws: PartitionError.self) {
      try Partitioners.solve(p, algorithm: "edgeshard-throughput", parameters: ["prefill": "sometimes"])
    }
  }
}
