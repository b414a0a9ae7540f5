import Catalog
import EdgeLabCore
import Foundation
import TestSupport
import Testing

@testable import Engine

/// Reference outputs of Hugging Face Transformers (scripts/fixtures/make_llama_fixtures.py).
struct Reference: Decodable {
  struct Block: Decodable {
    var rowOffset: Int
    var rows: Int
    enum CodingKeys: String, CodingKey {
      case rowOffset = "row_offset"
      case rows
    }
  }
  struct Case: Decodable {
    var promptIds: [Int32]
    var generatedIds: [Int32]
    var prefillLogits: Block
    var stepLogits: Block
    enum CodingKeys: String, CodingKey {
      case promptIds = "prompt_ids"
      case generatedIds = "generated_ids"
      case prefillLogits = "prefill_logits"
      case stepLogits = "step_logits"
    }
  }
  struct Rope: Decodable {
    var hfInvFreq: [Double]
    enum CodingKeys: String, CodingKey { case hfInvFreq = "hf_inv_freq" }
  }
  var cases: [Case]
  var rope: Rope?
  var logits: [Float] = []
  var vocab = 0
  enum CodingKeys: String, CodingKey { case cases, rope }

  static func load(_ name: String) throws -> (dir: String, ref: Reference) {
    let dir = Fixtures.directory + "/" + name
    var r = try JSONDecoder().decode(
      Reference.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/reference.json")))
    let raw = try Data(contentsOf: URL(fileURLWithPath: dir + "/logits.f32"))
    r.logits = raw.withUnsafeBytes { b in
      (0..<(raw.count / 4)).map {
        Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
      }
    }
    return (dir, r)
  }

  func rows(_ b: Block, vocab: Int) -> [Float] {
    Array(logits[(b.rowOffset * vocab)..<((b.rowOffset + b.rows) * vocab)])
  }
}

enum Fixtures {
  static var directory: String { Bundle.module.resourceURL!.appendingPathComponent("Fixtures").path }
  static let models = ["gqa-llama3", "llama2-style", "tied-emb", "bf16-weights", "f16-weights-sharded"]
}

/// The documented tolerance against Transformers: |engine − HF| ≤ 1e-4 absolute on every logit (FP32 arithmetic
/// on both sides; differences come from summation order and transcendental functions).
let logitTolerance = 1e-4

@Suite("Engine against Hugging Face Transformers")
struct FixtureTests {
  @Test(arguments: Fixtures.models)
  func logitsAndGreedyTokensMatch(model: String) throws {
    let (dir, ref) = try Reference.load(model)
    let weights = CheckpointWeights(try Checkpoint(directory: dir))
    let vocab = weights.config.vocabSize
    let pipeline = try LocalPipeline(weights: weights)
    for (i, c) in ref.cases.enumerated() {
      // Prefill: logits of every prompt position.
      let prefill = pipeline.forward(
        [SequenceSpan(id: 100 + i, start: 0, count: c.promptIds.count)], tokens: c.promptIds, allLogits: true)
      pipeline.release(sequence: 100 + i)
      let expectedPrefill = ref.rows(c.prefillLogits, vocab: vocab)
      #expect(!expectedPrefill.isEmpty && expectedPrefill.count == c.promptIds.count * vocab)
      #expect(
        firstMismatch(prefill.floats, expectedPrefill, rtol: 0, atol: logitTolerance) == nil,
        "\(model) case \(i) prefill")
      // Greedy generation with the KV cache.
      let g = pipeline.generate(
        prompt: c.promptIds, maxNewTokens: c.generatedIds.count, sequence: i, recordLogits: true)
      #expect(g.tokens == c.generatedIds, "\(model) case \(i) tokens")
      let mismatch = firstMismatch(g.logits, ref.rows(c.stepLogits, vocab: vocab), rtol: 0, atol: logitTolerance)
      #expect(mismatch == nil, "\(model) case \(i): step logits differ at \(mismatch ?? -1)")
    }
  }

  @Test func ropeFrequenciesMatchTransformers() throws {
    let (dir, ref) = try Reference.load("gqa-llama3")
    let config = try Checkpoint(directory: dir).config
    #expect(config.ropeScaling?.ropeType == "llama3" && config.ropeTheta == 500_000)
    let ours = Rope.inverseFrequencies(config)
    let theirs = try #require(ref.rope?.hfInvFreq)
    #expect(ours.count == theirs.count)
    for (a, b) in zip(ours, theirs) { #expect(isClose(Double(a), b, rtol: 1e-6, atol: 0)) }
  }

  @Test func tiedCheckpointHasNoLMHeadTensor() throws {
    let (dir, _) = try Reference.load("tied-emb")
    let cp = try Checkpoint(directory: dir)
    #expect(!cp.has("lm_head.weight") && cp.config.tieWordEmbeddings)
  }
}

@Suite("Split execution is lossless")
struct SplitTests {
  static func logits(_ p: LocalPipeline, prompt: [Int32], steps: Int) -> ([Int32], [Float]) {
    let g = p.generate(prompt: prompt, maxNewTokens: steps, recordLogits: true)
    return (g.tokens, g.logits)
  }

  /// 2 or 3 stages give bit-identical logits to one stage: prefill, then decode with KV caches in every stage.
  @Test(arguments: Fixtures.models)
  func stagesAreBitIdentical(model: String) throws {
    let (dir, ref) = try Reference.load(model)
    let weights = CheckpointWeights(try Checkpoint(directory: dir))
    let total = weights.config.numHiddenLayers + 2
    let whole = try LocalPipeline(weights: weights)
    for cuts in [[1], [total - 1], [2], [1, total - 1], [1, 2]] where cuts.allSatisfy({ $0 > 0 && $0 < total }) {
      let split = try LocalPipeline(weights: weights, cuts: cuts)
      for c in ref.cases {
        let a = Self.logits(whole, prompt: c.promptIds, steps: 6)
        let b = Self.logits(split, prompt: c.promptIds, steps: 6)
        #expect(a.0 == b.0)
        #expect(a.1 == b.1, "\(model) cut at \(cuts): logits differ")
      }
    }
  }

  /// A decode step batched with other sequences gives exactly what it gives alone.
  @Test func batchedDecodeIsBitIdenticalToAlone() throws {
    let (dir, ref) = try Reference.load("gqa-llama3")
    let weights = CheckpointWeights(try Checkpoint(directory: dir))
    let alone = try LocalPipeline(weights: weights, cuts: [2])
    let batched = try LocalPipeline(weights: weights, cuts: [2])
    let prompts = ref.cases.map(\.promptIds)
    var expected: [[Float]] = []
    for (i, p) in prompts.enumerated() {
      _ = alone.forward([SequenceSpan(id: i, start: 0, count: p.count)], tokens: p)
      expected.append(alone.forward([SequenceSpan(id: i, start: p.count, count: 1)], tokens: [7]).floats)
      _ = batched.forward([SequenceSpan(id: i, start: 0, count: p.count)], tokens: p)
    }
    let spans = prompts.enumerated().map { SequenceSpan(id: $0, start: $1.count, count: 1) }
    let out = batched.forward(spans, tokens: Array(repeating: 7, count: prompts.count)).floats
    let vocab = weights.config.vocabSize
    for i in prompts.indices { #expect(Array(out[(i * vocab)..<((i + 1) * vocab)]) == expected[i]) }
  }

  /// Widening 16-bit weights at load gives the same numbers as widening inside the kernels.
  @Test(arguments: ["bf16-weights", "f16-weights-sharded"])
  func sixteenBitStorageIsExact(model: String) throws {
    let (dir, ref) = try Reference.load(model)
    let cp = try Checkpoint(directory: dir)
    let native = try LocalPipeline(weights: CheckpointWeights(cp, storage: .native))
    let widened = try LocalPipeline(weights: CheckpointWeights(cp, storage: .fp32))
    #expect(native.stages[0].weightBytes * 2 < widened.stages[0].weightBytes + 64 * 1024)
    let p = ref.cases[2].promptIds
    #expect(Self.logits(native, prompt: p, steps: 4) == Self.logits(widened, prompt: p, steps: 4))
  }

  /// The thread count is each engine's own: two pipelines with different counts, running at the same time on
  /// two threads, each give the results they give alone. Decode steps (and one-token prompts) run the
  /// row-wise kernels, whose results do not depend on the thread count at all; prompts of several tokens go
  /// through OpenBLAS's sgemm, whose rounding can (see `Kernels`), so those are compared at equal counts.
  @Test func threadCountDoesNotChangeResults() throws {
    let weights = SyntheticWeights(config: ModelPreset.small.config, seed: 3)
    let one = try LocalPipeline(weights: weights, cuts: [4], threads: 1)
    let two = try LocalPipeline(weights: weights, cuts: [4], threads: 2)
    let prompt: [Int32] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    // Row-wise paths: identical for 1 and 2 threads.
    #expect(Self.logits(one, prompt: [7], steps: 5) == Self.logits(two, prompt: [7], steps: 5))
    // Alone, then both at once on two threads: each engine's own count holds while the other runs.
    let alone = (Self.logits(one, prompt: prompt, steps: 3), Self.logits(two, prompt: prompt, steps: 3))
    let together = Arrivals<(Int, ([Int32], [Float]))>()
    for (i, p) in [one, two].enumerated() {
      Thread.detachNewThread { for _ in 0..<3 { together.add((i, Self.logits(p, prompt: prompt, steps: 3))) } }
    }
    for (i, result) in together.wait(6) {
      #expect(result == (i == 0 ? alone.0 : alone.1), "engine with \(i + 1) thread(s) changed while the other ran")
    }
  }
}

@Suite("Weights")
struct WeightTests {
  @Test func syntheticWeightsDependOnlyOnTheSeed() throws {
    let c = ModelPreset.tiny.config
    let a = try SyntheticWeights(config: c, seed: 5).matrix(
      "model.layers.0.mlp.up_proj.weight", rows: c.intermediateSize, cols: c.hiddenSize)
    let b = try SyntheticWeights(config: c, seed: 5).matrix(
      "model.layers.0.mlp.up_proj.weight", rows: c.intermediateSize, cols: c.hiddenSize)
    let d = try SyntheticWeights(config: c, seed: 6).matrix(
      "model.layers.0.mlp.up_proj.weight", rows: c.intermediateSize, cols: c.hiddenSize)
    func floats(_ m: WeightMatrix) -> [Float] {
      Array(UnsafeBufferPointer(start: m.base.assumingMemoryBound(to: Float.self), count: m.rows * m.cols))
    }
    #expect(floats(a) == floats(b))
    #expect(floats(a) != floats(d))
    let values = floats(a)
    let mean = values.reduce(0, +) / Float(values.count)
    let std = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(values.count)).squareRoot()
    #expect(abs(mean) < 0.002 && abs(std - 0.02) < 0.002)
  }

  @Test func aStageLoadsOnlyItsOwnLayers() throws {
    let weights = SyntheticWeights(config: ModelPreset.small.config, seed: 1)
    let first = try LlamaStage(weights: weights, layers: 0..<3)
    let middle = try LlamaStage(weights: weights, layers: 3..<6)
    let whole = try LlamaStage(weights: weights, layers: 0..<10)
    #expect(first.startsAtEmbedding && !first.endsWithHead && !middle.startsAtEmbedding)
    let c = ModelPreset.small.config
    let block = c.parametersPerBlock * 4
    #expect(middle.weightBytes == 3 * block)
    #expect(first.weightBytes == c.vocabSize * c.hiddenSize * 4 + 2 * block)
    #expect(whole.weightBytes == c.parameterCount * 4)
  }

  @Test func samplingIsSeededAndTopKOneIsGreedy() {
    let logits: [Float] = [0.1, 2.0, 1.9, -1, 0.5]
    logits.withUnsafeBufferPointer { l in
      var r1 = SeededRandom(seed: 9)
      var r2 = SeededRandom(seed: 9)
      let s = Sampler(temperature: 1, topK: 0, topP: 0.9, seed: 9)
      let a = (0..<20).map { _ in s.pick(l, &r1) }
      let b = (0..<20).map { _ in s.pick(l, &r2) }
      #expect(a == b)
      #expect(Set(a).isSubset(of: [1, 2, 4, 0]))
      var r3 = SeededRandom(seed: 1)
      #expect(Sampler(temperature: 5, topK: 1).pick(l, &r3) == 1)
      #expect(Sampler.greedy.pick(l, &r3) == 1)
    }
  }
}

@Suite("Bad checkpoints")
struct BadCheckpointTests {
  static func error(_ name: String) -> CheckpointError? {
    do {
      let cp = try Checkpoint(directory: Fixtures.directory + "/bad/" + name)
      _ = try LocalPipeline(weights: CheckpointWeights(cp))
      return nil
    } catch { return error }
  }

  @Test(
    arguments: [
      ("missing-tensor", CheckpointError.Kind.missingTensor, "model.layers.1.mlp.down_proj.weight"),
      ("wrong-shape", .wrongShape, "model.layers.0.mlp.up_proj.weight"),
      ("truncated", .truncated, nil),
      ("bad-dtype", .unsupportedDType, "model.layers.0.self_attn.q_proj.weight"),
      ("unknown-arch", .unknownArchitecture, nil),
    ] as [(String, CheckpointError.Kind, String?)])
  func areReportedWithFileAndTensor(name: String, kind: CheckpointError.Kind, tensor: String?) throws {
    let e = try #require(Self.error(name), "\(name) loaded")
    #expect(e.kind == kind)
    #expect(e.file.contains("bad/" + name))
    if let tensor { #expect(e.tensor == tensor) }
  }

  @Test func missingDirectoryIsNamed() {
    #expect(throws: CheckpointError.self) { try Checkpoint(directory: "/nonexistent/model") }
  }
}

@Suite("OpenBLAS core selection")
struct BLASCoreTests {
  static let cpus: [(String, Set<String>)] = [
    ("SSE only", ["sse", "sse2", "sse3"]),
    ("AVX", ["sse3", "avx"]),
    ("AVX2", ["avx", "avx2", "fma"]),
    ("AVX-512 (Skylake-SP)", ["avx", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]),
    ("AVX-512 without BW", ["avx", "avx2", "fma", "avx512f", "avx512cd"]),
    ("no flags (not x86)", []),
  ]

  /// Whatever OpenBLAS chose and whatever the CPU has, the choice never needs a flag the CPU lacks, and it only
  /// ever replaces a weaker core.
  @Test(arguments: ["Prescott", "Core2", "Nehalem", "Sandybridge", "Haswell", "Zen", "SkylakeX", "Cooperlake", "armv8"])
  func theChoiceNeverNeedsAFlagTheCPULacks(current: String) throws {
    for (name, flags) in Self.cpus {
      guard let chosen = BLASCore.choice(current: current, flags: flags) else { continue }
      let needs = try #require(BLASCore.x86.first { $0.name == chosen }?.needs)
      #expect(needs.isSubset(of: flags), "\(name): \(chosen) needs \(needs.subtracting(flags))")
      #expect(BLASCore.rank(chosen) > BLASCore.rank(current), "\(name): \(chosen) is no better than \(current)")
    }
  }

  @Test func aGenericFallbackIsReplacedByTheBestTheCPUHas() {
    #expect(BLASCore.choice(current: "Prescott", flags: Self.cpus[3].1) == "SkylakeX")
    #expect(BLASCore.choice(current: "Prescott", flags: Self.cpus[4].1) == "Haswell")
    #expect(BLASCore.choice(current: "Core2", flags: Self.cpus[2].1) == "Haswell")
    #expect(BLASCore.choice(current: "Haswell", flags: Self.cpus[2].1) == nil)
    #expect(BLASCore.choice(current: "Cooperlake", flags: Self.cpus[3].1) == nil)
    #expect(BLASCore.choice(current: "Prescott", flags: Self.cpus[0].1) == nil)
  }

  @Test func aWeakerCoreIsReplacedUnlessEdgeLabsOwnSettingForcesOne() {
    let avx512 = Self.cpus[3].1
    #expect(BLASSelection.wanted(environment: [:], current: "Haswell", flags: avx512) == "SkylakeX")
    #expect(
      BLASSelection.wanted(environment: ["OPENBLAS_CORETYPE": "Haswell"], current: "Haswell", flags: avx512)
        == "SkylakeX")
    #expect(
      BLASSelection.wanted(environment: ["EDGELAB_BLAS_CORE": "Haswell"], current: "Haswell", flags: avx512) == nil)
    #expect(
      BLASSelection.wanted(environment: ["EDGELAB_BLAS_CORE": "Haswell"], current: "SkylakeX", flags: avx512)
        == "Haswell")
    #expect(
      BLASSelection.wanted(environment: ["EDGELAB_BLAS_SELECTED": "SkylakeX"], current: "Haswell", flags: avx512) == nil
    )
  }

  /// The kernels this process runs (the selected core under `make test`) compute a product correctly.
  @Test func theLoadedCoreComputesCorrectly() {
    #expect(BLASCore.verify(), "core \(BLASCore.current)")
  }
}
