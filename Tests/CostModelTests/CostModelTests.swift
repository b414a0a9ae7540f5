import CostModel
import DSL
import Partitioning
import Runner
import TestSupport
import Testing

/// Hand-computed numbers for Llama-2-7B (h = 4096, 32 heads = 32 KV heads, intermediate 11008, vocab 32000).
@Suite("Cost model, Llama-2-7B by hand")
struct CostModelTests {
  let config = ModelPreset.llama2_7B.config

  @Test func parameterCounts() {
    // Attention 4·4096² + MLP 3·4096·11008 + two norms 2·4096.
    #expect(config.parametersPerBlock == 67_108_864 + 135_266_304 + 8192)
    // Embedding + 32 blocks + final norm + untied LM head: the published 6.74B.
    #expect(config.parameterCount == 131_072_000 + 32 * 202_383_360 + 4096 + 131_072_000)
    #expect(config.parameterCount == 6_738_415_616)
  }

  @Test func layerSizesAtFP32() {
    let layers = ModelLayers(config: config, precision: .fp32)
    #expect(layers.count == 34)
    #expect(layers.layers[0].weightBytes.value == 524_288_000)
    #expect(layers.layers[1].weightBytes.value == 809_533_440)
    #expect(layers.layers[33].weightBytes.value == Double((32000 * 4096 + 4096) * 4))
    #expect(layers.layers[1].kvBytesPerToken.value == 32768)  // K and V, 4096 values each, 4 bytes
    #expect(layers.layers[1].outputBytesPerToken.value == 16384)
    #expect(layers.layers[33].outputBytesPerToken.value == 4)  // the token id
    let fp16 = ModelLayers(config: config, precision: .fp16, wirePrecision: .fp16)
    #expect(fp16.layers[1].weightBytes.value == 809_533_440 / 2)
    #expect(fp16.layers[1].outputBytesPerToken.value == 8192)
  }

  @Test func decodeFlopsAndBytes() {
    let block = ModelLayers(config: config, precision: .fp32).layers[1]
    // 2·(params − norms) + elementwise 5·(4h + 3f) + attention 4·h·(context + 1).
    let matmul = 2.0 * (202_383_360 - 8192)
    let elementwise = 5.0 * (4 * 4096 + 3 * 11008)
    #expect(block.flops(.decode(contexts: [0])) == matmul + elementwise + 4 * 4096)
    #expect(block.flops(.decode(contexts: [99])) == matmul + elementwise + 4 * 4096 * 100)
    // Weights + KV written for one token + activations in and out.
    let weights: Double = 809_533_440
    let kv: Double = 32768
    let act: Double = 16384
    #expect(block.bytesMoved(.decode(contexts: [0])) == weights + kv + 2 * act)
    // A batch of two shares the weights; each reads its own KV cache (10 + 20 tokens) and writes one entry.
    let batchBytes: Double = weights + kv * 30 + 2 * kv + 4 * act
    #expect(block.bytesMoved(.decode(contexts: [10, 20])) == batchBytes)
    // Prefill of 4 tokens: attention over 1+2+3+4 = 10 context positions.
    #expect(block.flops(.prefill(tokens: 4)) == 4 * (matmul + elementwise) + 4 * 4096 * 10)
  }

  @Test func rooflineOnAnAGXOrin() {
    let block = ModelLayers(config: config, precision: .fp32).layers[1]
    let agx = DevicePreset.agxOrin32GB.profile
    let model = RooflineModel(calibration: Calibration(computeEfficiency: 0.5, memoryEfficiency: 0.94))
    // Memory-bound: 809,598,976 bytes at 204.8 GB/s × 0.94.
    let expected = 809_598_976.0 / (204.8e9 * 0.94)
    #expect(
      isClose(model.time(block, on: agx, work: .decode(contexts: [0]), precision: .fp32).value, expected, rtol: 1e-12))
    // A 512-token prefill is compute-bound: FLOPs at 3.33 TFLOPS × 0.5.
    let w = Work.prefill(tokens: 512)
    #expect(
      isClose(
        model.time(block, on: agx, work: w, precision: .fp32).value, block.flops(w) / (3.33e12 * 0.5), rtol: 1e-12))
    // The whole model per token on one AGX Orin ≈ EdgeShard's measured ≈140 ms (calibration target).
    let total = ModelLayers(config: config, precision: .fp32).layers.reduce(0.0) {
      $0 + model.time($1, on: agx, work: .decode(contexts: [64]), precision: .fp32).value
    }
    #expect(total > 0.135 && total < 0.145)
  }

  @Test func problemFromTheQuickstartSetup() throws {
    let x = try Experiment("p") {
      Model(.llama2_7B)
      Device("agx", .agxOrin32GB)
      Device("nx", .orinNX16GB)
      Network(bandwidth: .mbit(8), latency: .ms(3))
      Workload(requests: 4, prompt: 32, output: 96)
      Algorithm("even")
    }.spec.resolve()
    let p = ProblemBuilder.roofline(x.spec.calibration).problem(for: x, objective: .throughput)
    #expect(p.layers.count == 34 && p.devices.map(\.name) == ["agx", "nx"])
    #expect(p.source == "agx" && p.returnToSource && p.objective == .throughput)
    // Weights + KV for one sequence of 128 tokens.
    #expect(p.layers[1].memoryBytes == 809_533_440 + 32768 * 128)
    #expect(p.layers[0].memoryBytes == 524_288_000)
    #expect(p.devices[1].memoryBytes == 14e9)
    #expect(p.links.count == 2)
    #expect(p.links[0].bandwidthBytesPerS == 1e6 && p.links[0].latencyS == 0.003)
    // The AGX Orin has twice the NX's memory bandwidth: half the time per block.
    #expect(isClose(p.layers[5].timeS["nx"]! / p.layers[5].timeS["agx"]!, 204.8 / 102, rtol: 1e-3))
  }
}
