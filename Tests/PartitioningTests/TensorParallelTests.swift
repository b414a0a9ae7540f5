import EdgeLabCore
import Foundation
import Pipeline
import Testing

@testable import Partitioning

/// Plans whose stages are shared by groups of devices (tensor parallelism): the group's data, its checks, the
/// collective's cost and the `tp` algorithms.
@Suite("Tensor-parallel groups and the tp algorithms")
struct TensorParallelTests {
  /// Eight devices, 2 + 8 + 1 layers (embedding, 8 blocks of 0.08 s, head), a model with 8 KV heads and 64 FFN
  /// columns, hidden size 1000 in FP16 on the wire.
  static func problem(latency: Double = 0.001, bandwidth: Double = 1e8, devices: Int = 8) -> PartitionProblem {
    var p = Problems.uniform(
      layers: 10, memory: Array(repeating: 100, count: devices), time: Array(repeating: 0.08, count: devices),
      bandwidth: bandwidth, latency: latency)
    p.shape = PartitionProblem.ModelShape(
      hiddenSize: 1000, kvHeads: 8, ffnColumns: 64, attentionParameters: 1, ffnParameters: 3, firstBlock: 1,
      endBlock: 9, wireBytesPerValue: 2)
    return p
  }

  @Test func groupsSerialiseAndValidateByName() throws {
    let g = try #require(TensorGroup.even(["a", "b", "c", "d"], kvHeads: 8, ffnColumns: 64, collective: .star))
    #expect(g.kvHeads == [2, 2, 2, 2] && g.ffnColumns == [16, 16, 16, 16])
    let stage = Plan.Stage(device: "a", firstLayer: 0, endLayer: 10, group: g)
    let json = try JSONCoding.compactString(stage)
    #expect(json.contains(#""group":{"collective":"star","ffn_columns":[16,16,16,16]"#))
    #expect(try JSONCoding.decoder.decode(Plan.Stage.self, from: Data(json.utf8)) == stage)
    // A plain stage's JSON is as before (no group key).
    #expect(!(try JSONCoding.compactString(Plan.Stage(device: "a", firstLayer: 0, endLayer: 2))).contains("group"))
    #expect(TensorGroup.even(["a", "b", "c"], kvHeads: 8, ffnColumns: 64) == nil)
    #expect(g.problems(device: "a", kvHeads: 8, ffnColumns: 64).isEmpty)
    // A share that does not divide the heads, a missing head, the wrong first member: each refused by name.
    var bad = g
    bad.kvHeads = [3, 3, 1, 1]
    #expect(bad.problems(device: "a", kvHeads: 8, ffnColumns: 64).isEmpty)  // uneven but whole heads: fine
    bad.kvHeads = [3, 3, 2, 1]
    #expect(bad.problems(device: "a", kvHeads: 8, ffnColumns: 64).contains { $0.hasPrefix("kv_heads [3, 3, 2, 1]") })
    bad.kvHeads = [4, 4, 0, 0]
    #expect(bad.problems(device: "a", kvHeads: 8, ffnColumns: 64).contains { $0.hasPrefix("kv_heads") })
    #expect(g.problems(device: "b", kvHeads: 8, ffnColumns: 64).contains { $0.hasPrefix("members") })
  }

  @Test func aCollectiveUsesTheLinksExchangeLatencyAndAHopItsLatency() throws {
    var p = Self.problem(latency: 0.001)
    let shape = try #require(p.shape)
    let members = [0, 1, 2, 3]
    let before = GroupSemantics.allReduceSeconds(members, .ring, try IndexedProblem(p), shape: shape)
    for i in p.links.indices { p.links[i].exchangeLatencyS = 0.0002 }
    let indexed = try IndexedProblem(p)
    // Six steps of a ring of four, each 0.8 ms cheaper; a pipeline hop keeps the link's latency.
    let after = GroupSemantics.allReduceSeconds(members, .ring, indexed, shape: shape)
    #expect(abs(before - after - 6 * 0.0008) < 1e-12)
    #expect(indexed.latency[0][1] == 0.001 && indexed.exchangeLatency[0][1] == 0.0002)
    p.links[0].exchangeLatencyS = -1
    #expect(p.problems().contains { $0.contains("exchange_latency_s must be a finite time ≥ 0") })
  }

  @Test func collectivesCostLatencyPerStepAndBytesPerLink() {
    // Ring: 2(n − 1) steps of 1/n of the bytes; star: two steps, all bytes through the first member.
    #expect(TensorGroup.allReduceSeconds(.ring, members: 4, bytes: 4000, latency: 0.001, bandwidth: 1e6) == 6 * 0.002)
    #expect(
      abs(TensorGroup.allReduceSeconds(.star, members: 4, bytes: 4000, latency: 0.001, bandwidth: 1e6) - 0.026) < 1e-12)
    #expect(TensorGroup.allReduceSeconds(.ring, members: 1, bytes: 4000, latency: 1, bandwidth: 1) == 0)
    // Where latency dominates, the star wins; where bandwidth does, the ring.
    func ring(_ l: Double, _ b: Double) -> Double {
      TensorGroup.allReduceSeconds(.ring, members: 8, bytes: 2000, latency: l, bandwidth: b)
    }
    func star(_ l: Double, _ b: Double) -> Double {
      TensorGroup.allReduceSeconds(.star, members: 8, bytes: 2000, latency: l, bandwidth: b)
    }
    #expect(star(0.001, 1e9) < ring(0.001, 1e9))
    #expect(ring(0, 1e5) < star(0, 1e5))
  }

  @Test func tpSplitsEveryBlockEvenlyOverAPowerOfTwo() throws {
    let plan = try Partitioners.solve(Self.problem(), algorithm: "tp")
    #expect(plan.stages.count == 1 && plan.stages[0].firstLayer == 0 && plan.stages[0].endLayer == 10)
    let g = try #require(plan.stages[0].group)
    #expect(g.members == (0..<8).map { "d\($0)" } && g.kvHeads == Array(repeating: 1, count: 8))
    #expect(g.collective == .ring && plan.devices.count == 8 && !plan.isStandard)
    // Its value: embedding and head on the source, each block 1/8 of 0.08 s, two ring all-reduces per block.
    let reduce = TensorGroup.allReduceSeconds(.ring, members: 8, bytes: 2000, latency: 0.001, bandwidth: 1e8)
    // The leader first sends the stage's input to the seven others.
    let broadcast = 0.001 + 7 * 2000 / 1e8
    #expect(abs(plan.valueSeconds - (0.16 + broadcast + 8 * (0.01 + 2 * reduce))) < 1e-12)
    // Fewer devices on request; a count that is not a power of two, or does not divide the heads, is refused.
    let four = try Partitioners.solve(Self.problem(), algorithm: "tp-star", parameters: ["devices": 4])
    #expect(four.stages[0].group?.members.count == 4 && four.stages[0].group?.collective == .star)
    #expect(try Partitioners.solve(Self.problem(), algorithm: "tp", parameters: ["devices": 1]).stages[0].group == nil)
    #expect(throws: PartitionError.self) {
      try Partitioners.solve(Self.problem(), algorithm: "tp", parameters: ["devices": 3])
    }
    // Six devices: the largest power of two that divides the heads is 4.
    let six = try Partitioners.solve(Self.problem(devices: 6), algorithm: "tp")
    #expect(six.stages[0].group?.members.count == 4)
  }

  @Test func aLatencyBoundEighthDeviceStopsPaying() throws {
    func value(_ algorithm: String, _ n: Int, latency: Double) throws -> Double {
      try Partitioners.solve(
        Self.problem(latency: latency), algorithm: algorithm, parameters: ["devices": .number(Double(n))]
      )
      .valueSeconds
    }
    // Fast links: more devices, faster. Slow ones: the ring's 14 steps per all-reduce make 8 slower than 4,
    // and the star (two steps) still gains.
    #expect(try value("tp", 8, latency: 0.0001) < value("tp", 4, latency: 0.0001))
    #expect(try value("tp", 8, latency: 0.002) > value("tp", 4, latency: 0.002))
    #expect(try value("tp-star", 8, latency: 0.002) < value("tp-star", 4, latency: 0.002))
  }

  @Test func groupsOfAnyAlgorithmAreChecked() throws {
    let p = Self.problem()
    var g = try #require(TensorGroup.even(["d0", "d1"], kvHeads: 8, ffnColumns: 64))
    g.ffnColumns = [32, 31]
    let plan = Plan(
      algorithm: "mine", objective: .latency, stages: [Plan.Stage(device: "d0", firstLayer: 0, endLayer: 10, group: g)],
      valueSeconds: 1, exact: false)
    #expect(throws: PartitionError.self) { try PartitionerRegistry.checkGroups(plan, p, algorithm: "mine") }
    var noShape = p
    noShape.shape = nil
    g.ffnColumns = [32, 32]
    let good = Plan(
      algorithm: "mine", objective: .latency, stages: [Plan.Stage(device: "d0", firstLayer: 0, endLayer: 10, group: g)],
      valueSeconds: 1, exact: false)
    try PartitionerRegistry.checkGroups(good, p, algorithm: "mine")
    #expect(throws: PartitionError.self) { try PartitionerRegistry.checkGroups(good, noShape, algorithm: "mine") }
  }
}
