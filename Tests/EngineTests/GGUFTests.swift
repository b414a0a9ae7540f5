import Catalog
import EdgeLabCore
import Foundation
import TestSupport
import Testing

@testable import Engine

/// Values written by the `gguf` package (Fixtures/gguf/make_gguf_fixtures.py): every metadata type, one tensor of
/// each weight type with its first rows as `gguf.quants.dequantize` gives them, and tiny Llama models with the
/// outputs of Transformers on the same weights.
enum GGUFFixtures {
  static var directory: String { Fixtures.directory + "/gguf" }

  struct Types: Decodable {
    struct Tensor: Decodable {
      var name: String
      var type: String
      var shape: [Int]
      var nbytes: Int
      var rowsDequantized: [[Double]]
      enum CodingKeys: String, CodingKey {
        case name, type, shape, nbytes
        case rowsDequantized = "rows_dequantized"
      }
    }
    var tensors: [Tensor]
  }

  struct Expected: Decodable {
    struct Model: Decodable {
      var generatedIds: [Int32]
      var promptLastLogits: [Float]
      var tensorTypes: [String: String]?
      enum CodingKeys: String, CodingKey {
        case generatedIds = "generated_ids"
        case promptLastLogits = "prompt_last_logits"
        case tensorTypes = "tensor_types"
      }
    }
    var promptIds: [Int32]
    var models: [String: Model]
    enum CodingKeys: String, CodingKey {
      case models
      case promptIds = "prompt_ids"
    }
  }

  static func load<T: Decodable>(_ t: T.Type, _ name: String) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
  }

  static let models = [
    "tiny-llama-f32.gguf", "tiny-llama-q8_0.gguf", "tiny-llama-q4_0.gguf", "tiny-llama-q4_1.gguf",
    "tiny-llama-q4_k.gguf", "tiny-llama-q6_k.gguf",
  ]
}

@Suite("GGUF files and quantized weights")
struct GGUFTests {
  @Test(arguments: ["types.gguf", "types-align64.gguf"])
  func everyTensorTypeReadsAsTheGGUFPackageWroteIt(file: String) throws {
    let f = try GGUFFile(path: GGUFFixtures.directory + "/" + file)
    let types = try GGUFFixtures.load(GGUFFixtures.Types.self, "types.json")
    #expect(types.tensors.count == 9)
    for t in types.tensors {
      let g = try #require(f.tensors[t.name], "\(t.name)")
      #expect(g.dtype.rawValue == t.type)
      #expect(g.dimensions == t.shape.reversed())
      #expect(g.end - g.begin == t.nbytes)
      let expected = t.rowsDequantized.flatMap { $0 }.map { Float($0) }
      let values = Quantization.dequantize(f.bytes(g), dtype: g.dtype, count: expected.count)
      #expect(values == expected, "\(t.name): dequantized values differ from gguf.quants.dequantize")
    }
  }

  @Test func everyMetadataType() throws {
    let m = try GGUFFile(path: GGUFFixtures.directory + "/types.gguf").metadata
    #expect(m["general.architecture"] == .string("edgelab-types"))
    #expect(m["test.uint8"]?.int == 200)
    #expect(m["test.int8"]?.int == -100)
    #expect(m["test.uint16"]?.int == 60000)
    #expect(m["test.int16"]?.int == -30000)
    #expect(m["test.uint32"]?.int == 4_000_000_000)
    #expect(m["test.int32"]?.int == -2_000_000_000)
    #expect(m["test.uint64"] == .uint(18_000_000_000_000_000_000))
    #expect(m["test.int64"]?.int == -9_000_000_000_000_000_000)
    #expect(m["test.float32"]?.double == Double(Float(3.14159)))
    #expect(m["test.float64"]?.double == 2.718281828459045)
    #expect(m["test.bool_true"] == .bool(true))
    #expect(m["test.bool_false"] == .bool(false))
    #expect(m["test.string"] == .string("héllo wörld 🦙\nsecond line"))
    #expect(m["test.string_empty"] == .string(""))
    #expect(m["test.array_int32"]?.array?.compactMap(\.int) == [1, -2, 3, 2_147_483_647, -2_147_483_648])
    #expect(m["test.array_string"]?.array?.compactMap(\.string) == ["a", "", "ünïcödé", "🦙", "two words"])
    #expect(m["test.array_uint8"]?.array?.compactMap(\.int) == [0, 1, 127, 128, 255])
    #expect(m["test.array_bool"] == .array([.bool(true), .bool(false), .bool(true)]))
    #expect(m["test.array_uint64"] == .array([.uint(0), .uint(UInt64.max)]))
    let nested = try GGUFFile(path: GGUFFixtures.directory + "/nested-array.gguf")
    #expect(nested.metadata.values.contains { $0.array?.contains { $0.array != nil } == true })
  }

  /// Every prefix of a valid file, and the file with its counts made huge, is refused with an error, never a
  /// trap or an allocation of the claimed size.
  @Test func truncatedAndCorruptFilesAreRefused() throws {
    let bytes = try Data(contentsOf: URL(fileURLWithPath: GGUFFixtures.directory + "/types.gguf"))
    let dir = temporaryDirectory("gguf")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/bad.gguf"
    for cut in stride(from: 1, to: bytes.count, by: 97) {
      try bytes.prefix(cut).write(to: URL(fileURLWithPath: path))
      #expect(throws: CheckpointError.self) { try GGUFFile(path: path) }
    }
    // Tensor count, metadata count, the first key's length, the length of its string value.
    for offset in [8, 16, 24, 56] {
      var d = bytes
      for i in 0..<8 { d[offset + i] = 0x7F }
      try d.write(to: URL(fileURLWithPath: path))
      #expect(throws: CheckpointError.self) { try GGUFFile(path: path) }
    }
    var notGGUF = bytes
    notGGUF[0] = 0
    try notGGUF.write(to: URL(fileURLWithPath: path))
    let e = #expect(throws: CheckpointError.self) { try GGUFFile(path: path) }
    #expect(e?.file == path)
  }

  /// The F32 file holds the Hugging Face checkpoint's weights with llama.cpp's permuted Q and K rows: with the
  /// interleaved rotary pairs, the logits are Transformers'. The quantized files against Transformers run on the
  /// same files' dequantized weights.
  @Test(arguments: GGUFFixtures.models)
  func logitsAndGreedyTokensMatchTransformers(model: String) throws {
    let expected = try GGUFFixtures.load(GGUFFixtures.Expected.self, "tiny-llama-expected.json")
    let ref = try #require(expected.models[model])
    let weights = try GGUFWeights(path: GGUFFixtures.directory + "/" + model)
    let pipeline = try LocalPipeline(weights: weights)
    let g = pipeline.generate(prompt: expected.promptIds, maxNewTokens: ref.generatedIds.count, recordLogits: true)
    #expect(g.tokens == ref.generatedIds)
    let first = Array(g.logits.prefix(weights.config.vocabSize))
    #expect(firstMismatch(first, ref.promptLastLogits, rtol: 0, atol: logitTolerance) == nil)
  }

  @Test func ggufAndSafetensorsOfTheSameModelAgree() throws {
    let gguf = try GGUFWeights(path: GGUFFixtures.directory + "/tiny-llama-f32.gguf")
    let hf = CheckpointWeights(try Checkpoint(directory: GGUFFixtures.directory + "/tiny-llama-hf"))
    #expect(gguf.config.hiddenSize == hf.config.hiddenSize)
    #expect(gguf.config.vocabSize == hf.config.vocabSize)
    #expect(gguf.config.numKeyValueHeads == hf.config.numKeyValueHeads)
    let prompt: [Int32] = [3, 17, 101, 250, 9]
    let a = try LocalPipeline(weights: gguf).generate(prompt: prompt, maxNewTokens: 6, recordLogits: true)
    let b = try LocalPipeline(weights: hf).generate(prompt: prompt, maxNewTokens: 6, recordLogits: true)
    #expect(a.tokens == b.tokens)
    #expect(firstMismatch(a.logits, b.logits, rtol: 0, atol: logitTolerance) == nil)
  }

  static let quantized: [WeightDType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K]

  /// The decode kernel on quantized rows equals dequantizing them and taking FP32 dot products: within 1e-5 of
  /// Σ|w·x| (the scale of a dot product's rounding), for every batch size and thread count, and identical
  /// across batch sizes and thread counts.
  @Test(arguments: quantized)
  func quantizedMatvecEqualsDequantizeThenFP32(dtype: WeightDType) throws {
    let rows = 37
    let cols = 512
    let w = try SyntheticWeights(config: ModelPreset.tiny.config, seed: 9, dtype: dtype).matrix(
      "probe", rows: rows, cols: cols)
    let dense = w.floats()
    var rng = SeededRandom(seed: 3)
    let batch = 5
    let x = (0..<(batch * cols)).map { _ in Float(rng.nextUnit() * 4 - 2) }
    var reference = [Double](repeating: 0, count: batch * rows)
    var scale = [Double](repeating: 0, count: batch * rows)
    for b in 0..<batch {
      for r in 0..<rows {
        for c in 0..<cols {
          let p = Double(dense[r * cols + c]) * Double(x[b * cols + c])
          reference[b * rows + r] += p
          scale[b * rows + r] += abs(p)
        }
      }
    }
    var outputs: [[Float]] = []
    for (tokens, threads) in [(1, 1), (batch, 1), (batch, 2), (3, 2)] {
      Kernels.reserve(threads: threads)
      var y = [Float](repeating: 0, count: tokens * rows)
      x.withUnsafeBufferPointer { xb in
        y.withUnsafeMutableBufferPointer { yb in
          Kernels.linear(w, xb.baseAddress!, tokens: tokens, yb.baseAddress!, rowwise: true, threads: threads)
        }
      }
      for i in y.indices {
        #expect(abs(Double(y[i]) - reference[i]) <= 1e-5 * scale[i], "\(dtype) row \(i % rows) input \(i / rows)")
      }
      outputs.append(y)
    }
    for y in outputs {
      #expect(Array(y.prefix(rows)) == Array(outputs[0].prefix(rows)), "\(dtype): not batch-invariant")
    }
    #expect(outputs[1] == outputs[2], "\(dtype): depends on the thread count")
  }

  /// Quantizing then dequantizing stays within each format's step (the synthetic weights' quantizers).
  @Test(arguments: quantized)
  func quantizationRoundTripsWithinAStep(dtype: WeightDType) {
    var rng = SeededRandom(seed: 5)
    let values = (0..<1024).map { _ in Float(rng.nextUnit() * 2 - 1) }
    let bytes = Quantization.quantize(values, dtype: dtype)
    #expect(bytes.count == dtype.bytes(1024))
    let back = bytes.withUnsafeBytes { Quantization.dequantize($0.baseAddress!, dtype: dtype, count: 1024) }
    let levels: Double =
      switch dtype {
      case .q8_0: 127
      case .q6_K: 31
      case .q5_0, .q5_1, .q5_K: 15.5
      default: 7.5
      }
    let worst = zip(values, back).map { abs(Double($0) - Double($1)) }.max()!
    #expect(worst <= 1.5 / levels, "\(dtype): worst error \(worst)")
  }

  /// Split execution of every precision gives the bits of the unsplit model (tokens and logits).
  @Test(arguments: [WeightDType.f32, .bf16, .f16, .q8_0, .q4_0, .q4_1])
  func splitIsLosslessForEveryPrecision(dtype: WeightDType) throws {
    let weights = SyntheticWeights(config: ModelPreset.tiny.config, seed: 21, dtype: dtype)
    try checkLossless(weights, cuts: [1, 3])
  }

  @Test(arguments: ["tiny-llama-q4_k.gguf", "tiny-llama-q6_k.gguf", "tiny-llama-q4_1.gguf"])
  func splitIsLosslessForGGUFFiles(model: String) throws {
    try checkLossless(try GGUFWeights(path: GGUFFixtures.directory + "/" + model), cuts: [1, 2])
  }

  func checkLossless(_ weights: any WeightSource, cuts: [Int]) throws {
    let prompt: [Int32] = [5, 9, 1, 200, 17, 33, 2]
    let whole = try LocalPipeline(weights: weights, threads: 2)
    let split = try LocalPipeline(weights: weights, cuts: cuts, threads: 2)
    #expect(split.stages.count == cuts.count + 1)
    let a = whole.generate(prompt: prompt, maxNewTokens: 6, recordLogits: true)
    let b = split.generate(prompt: prompt, maxNewTokens: 6, recordLogits: true)
    #expect(a.tokens == b.tokens)
    #expect(a.logits == b.logits)
  }

  @Test func quantizedSyntheticWeightsNeedWholeBlocks() {
    // The tiny preset's rows are not whole 256-value blocks.
    let e = #expect(throws: CheckpointError.self) {
      try SyntheticWeights(config: ModelPreset.tiny.config, seed: 1, dtype: .q4_K).matrix("m", rows: 4, cols: 96)
    }
    #expect(e?.detail.contains("blocks of 256") == true)
  }
}

@Suite("llama.cpp's arithmetic")
struct LlamaCppArithmeticTests {
  /// W · x for the first `tokens` rows of x, through `Kernels.linear` on `threads` threads.
  static func product(
    _ w: WeightMatrix, _ x: [Float], tokens: Int, rowwise: Bool = true, threads: Int = 1,
    arithmetic: Arithmetic = .llamaCpp
  ) -> [Float] {
    Kernels.reserve(threads: threads)
    var y = [Float](repeating: 0, count: tokens * w.rows)
    x.withUnsafeBufferPointer { xb in
      y.withUnsafeMutableBufferPointer { yb in
        Kernels.linear(
          w, xb.baseAddress!, tokens: tokens, yb.baseAddress!, rowwise: rowwise, threads: threads,
          arithmetic: arithmetic)
      }
    }
    return y
  }

  /// Q4_0 repacked in 8-row groups gives every row the bits of the file's layout, for any batch and thread count.
  @Test func repackedQ4_0GivesTheSameBits() throws {
    let w = try SyntheticWeights(config: ModelPreset.tiny.config, seed: 6, dtype: .q4_0).matrix(
      "probe", rows: 48, cols: 256)
    let packed = w.repackedForLlamaCpp()
    #expect(packed.interleaved && packed.byteCount == w.byteCount)
    var rng = SeededRandom(seed: 2)
    let x = (0..<(3 * 256)).map { _ in Float(rng.nextUnit() * 2 - 1) }
    for (tokens, threads) in [(1, 1), (3, 1), (3, 2)] {
      let repacked = Self.product(packed, x, tokens: tokens, threads: threads)
      #expect(repacked == Self.product(w, x, tokens: tokens, threads: threads))
    }
  }

  /// With 8-bit inputs, a product is the exact integer sum of each pair of blocks, scaled by both blocks'
  /// scales (Q4_1: plus its minimum times the input block's sum, rounded to float16 as ggml keeps it).
  @Test(arguments: [WeightDType.q8_0, .q4_0, .q4_1])
  func integerProductsMatchTheirDefinition(dtype: WeightDType) throws {
    let rows = 19
    let cols = 256
    let w = try SyntheticWeights(config: ModelPreset.tiny.config, seed: 4, dtype: dtype).matrix(
      "probe", rows: rows, cols: cols)
    var rng = SeededRandom(seed: 8)
    let tokens = 3
    let x = (0..<(tokens * cols)).map { _ in Float(rng.nextUnit() * 6 - 3) }
    var y = [Float](repeating: 0, count: tokens * rows)
    x.withUnsafeBufferPointer { xb in
      y.withUnsafeMutableBufferPointer { yb in
        Kernels.linear(
          w, xb.baseAddress!, tokens: tokens, yb.baseAddress!, rowwise: true, threads: 1, arithmetic: .llamaCpp)
      }
    }
    let dense = w.floats()
    let bytesPerBlock = dtype.blockBytes
    for t in 0..<tokens {
      // The inputs as ggml quantizes them.
      var qx: [Int] = []
      var dx: [Double] = []
      var sx: [Double] = []
      for b in 0..<(cols / 32) {
        let v = x[(t * cols + 32 * b)..<(t * cols + 32 * b + 32)]
        let amax = v.map { abs($0) }.max()!
        let d = amax / 127
        let id: Float = amax != 0 ? 127 / amax : 0
        let q = v.map { Int(($0 * id).rounded(.toNearestOrEven)) }
        qx += q
        dx.append(Double(Float(Float16(d))))
        sx.append(Double(Float(Float16(d * Float(q.reduce(0, +))))))
      }
      for r in 0..<rows {
        var expected = 0.0
        for b in 0..<(cols / 32) {
          let block = w.base + r * w.rowBytes + b * bytesPerBlock
          let dw = Double(Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self))))
          // The weight block's integers, from its dequantized values.
          var dot = 0
          for j in 0..<32 {
            let value = Double(dense[r * cols + 32 * b + j])
            var q = value / dw
            if dtype == .q4_1 {
              let m = Double(Float(Float16(bitPattern: (block + 2).loadUnaligned(as: UInt16.self))))
              q = (value - m) / dw
            }
            dot += Int(q.rounded()) * qx[32 * b + j]
          }
          expected += dw * dx[b] * Double(dot)
          if dtype == .q4_1 {
            expected += Double(Float(Float16(bitPattern: (block + 2).loadUnaligned(as: UInt16.self)))) * sx[b]
          }
        }
        #expect(abs(Double(y[t * rows + r]) - expected) <= 1e-5 * max(1, abs(expected)), "\(dtype) row \(r)")
      }
    }
  }
}

extension LlamaCppArithmeticTests {
  /// ggml's Q8_K quantization of one input row: per 256 values, the value of largest magnitude (the first of them)
  /// maps to −127, q = round-half-even(−127 / max · x) (at most 127), d = 1 / (−127 / max).
  static func q8K(_ x: ArraySlice<Float>) -> [Double] {
    var out: [Double] = []
    var i = x.startIndex
    while i < x.endIndex {
      let v = x[i..<(i + 256)]
      var max: Float = 0
      var amax: Float = 0
      for value in v where abs(value) > amax {
        amax = abs(value)
        max = value
      }
      if amax == 0 {
        out += [Double](repeating: 0, count: 256)
      } else {
        let iscale = -127 / max
        let d = 1 / iscale
        out += v.map { Double(d) * Double(min(127, Int((iscale * $0).rounded(.toNearestOrEven)))) }
      }
      i += 256
    }
    return out
  }

  /// llama.cpp multiplies F16 and BF16 weights by inputs rounded to the weights' type: the exact product of the
  /// rounded inputs, for decode and prefill, up to the order of additions (ggml's BF16 reduction, AVX512-BF16's
  /// pairs, tinyBLAS's lanes for the reproduced build against this instruction set's); F16 decode bit for bit.
  @Test(arguments: [WeightDType.bf16, .f16])
  func sixteenBitWeightsTakeInputsRoundedToTheirType(dtype: WeightDType) throws {
    let rows = 20
    let cols = 96
    let w = try SyntheticWeights(config: ModelPreset.tiny.config, seed: 3, dtype: dtype).matrix(
      "probe", rows: rows, cols: cols)
    var rng = SeededRandom(seed: 4)
    for tokens in [1, 5] {
      let x = (0..<(tokens * cols)).map { _ in Float(rng.nextUnit() * 2 - 1) }
      let rounded = x.map { Kernels.roundTrip($0, dtype: dtype) }
      #expect(rounded != x)
      let llama = Self.product(w, x, tokens: tokens, rowwise: false)
      let exact = Self.product(w, rounded, tokens: tokens, rowwise: false, arithmetic: .exact)
      if dtype == .f16 && tokens == 1 {
        #expect(llama == exact, "\(dtype), \(tokens) token(s)")
      } else {
        // Rounding the inputs moves products by ~1e-3 of their size; another order of additions by ~1e-7.
        for (a, b) in zip(llama, exact) { #expect(abs(a - b) <= 1e-5 * max(1, abs(b)), "\(dtype), \(a) \(b)") }
      }
    }
  }

  /// With 8-bit inputs (ggml's Q8_K), a K-quant product equals the dequantized weights times the dequantized
  /// inputs, summed exactly: within 1e-5 of Σ|w·x|, identical for every batch and thread count.
  @Test(arguments: [WeightDType.q4_K, .q5_K, .q6_K])
  func superBlockProductsMatchTheirDefinition(dtype: WeightDType) throws {
    let rows = 24
    let cols = 512
    let w = try SyntheticWeights(config: ModelPreset.tiny.config, seed: 5, dtype: dtype).matrix(
      "probe", rows: rows, cols: cols)
    var rng = SeededRandom(seed: 12)
    let tokens = 3
    let x = (0..<(tokens * cols)).map { _ in Float(rng.nextUnit() * 6 - 3) }
    let y = Self.product(w, x, tokens: tokens)
    let dense = w.floats()
    for t in 0..<tokens {
      let qx = Self.q8K(x[(t * cols)..<((t + 1) * cols)])
      for r in 0..<rows {
        var expected = 0.0
        var scale = 0.0
        for c in 0..<cols {
          let p = Double(dense[r * cols + c]) * qx[c]
          expected += p
          scale += abs(p)
        }
        #expect(abs(Double(y[t * rows + r]) - expected) <= 1e-5 * scale, "\(dtype) row \(r) input \(t)")
      }
    }
    #expect(Self.product(w, x, tokens: tokens, threads: 2) == y, "\(dtype): depends on the thread count")
    #expect(Self.product(w, x, tokens: 1, threads: 2) == Array(y.prefix(rows)), "\(dtype): depends on the batch")
  }
}

/// llama.cpp's own greedy tokens and logits on the tiny GGUF models (Fixtures/gguf/make_llamacpp_reference.py).
struct LlamaCppReference: Decodable {
  struct Model: Decodable {
    var generatedIds: [Int32]
    var stepLogits: [[Float]]
    enum CodingKeys: String, CodingKey {
      case generatedIds = "generated_ids"
      case stepLogits = "step_logits"
    }
  }
  var promptIds: [Int32]
  var models: [String: Model]
  /// Whether llama.cpp's BF16 products used AVX512-BF16's dot-product instruction (the AVX-512 fixture).
  var bf16Dot: Bool?
  enum CodingKeys: String, CodingKey {
    case models
    case promptIds = "prompt_ids"
    case bf16Dot = "bf16_dot"
  }
}

@Suite("llama.cpp's arithmetic against llama.cpp")
struct LlamaCppAgreementTests {
  /// With `.llamaCpp` arithmetic the engine reproduces llama.cpp's logits (same rounding of the 8-bit inputs, the
  /// float16 cache, its exponential and its orders of addition, as the llama.cpp build for this CPU's vector width
  /// computes them) and therefore its greedy tokens: within 1e-5 (equal on the machines measured). A prompt's FP32
  /// and 16-bit products are tinyBLAS's order (el_sgemm), its decode steps ggml's dot products.
  @Test(arguments: [
    "tiny-llama-f32.gguf", "tiny-llama-f16.gguf", "tiny-llama-bf16.gguf", "tiny-llama-q8_0.gguf",
    "tiny-llama-q4_0.gguf", "tiny-llama-q4_1.gguf", "tiny-llama-q5_0.gguf", "tiny-llama-q5_1.gguf",
    "tiny-llama-q4_k.gguf", "tiny-llama-q5_k.gguf", "tiny-llama-q6_k.gguf",
  ])
  func tokensAndLogitsMatchLlamaCpp(model: String) throws {
    // The fixture of the llama.cpp build this process reproduces (written by llama.cpp on such a CPU).
    let ref = try GGUFFixtures.load(LlamaCppReference.self, "llamacpp-reference-\(Kernels.llamaCppSIMD).json")
    let expected = try #require(ref.models[model], "no fixture for \(model)")
    // BF16 products differ between AVX-512 builds with and without AVX512-BF16: the fixture holds one of them.
    if model.contains("bf16"), (ref.bf16Dot ?? false) != Kernels.llamaCppBF16Dot { return }
    let weights = try GGUFWeights(path: GGUFFixtures.directory + "/" + model)
    let g = try LocalPipeline(weights: weights, arithmetic: .llamaCpp).generate(
      prompt: ref.promptIds, maxNewTokens: expected.generatedIds.count, recordLogits: true)
    #expect(g.tokens == expected.generatedIds)
    let vocab = weights.config.vocabSize
    // FP32 decode steps run the exact kernel of this instruction set, whose order is ggml's (for rows a multiple of
    // 64 values, as here) for the build of the same vector width only: where the emulated build is another
    // (EDGELAB_LLAMACPP_SIMD, EDGELAB_KERNEL_ISA), FP32 logits differ in their last bits.
    let nativeWidth = Kernels.isa == Kernels.llamaCppSIMD
    let tolerance = model.contains("f32") && !nativeWidth ? 3e-4 : 1e-5
    for (step, row) in expected.stepLogits.enumerated() {
      let ours = Array(g.logits[(step * vocab)..<((step + 1) * vocab)])
      #expect(firstMismatch(ours, row, rtol: 0, atol: tolerance) == nil, "\(model) step \(step)")
    }
  }

  @Test(arguments: [
    "tiny-llama-q4_1.gguf", "tiny-llama-q8_0.gguf", "tiny-llama-q4_0.gguf", "tiny-llama-q4_k.gguf",
    "tiny-llama-q6_k.gguf",
  ])
  func splitIsLosslessWithLlamaCppArithmetic(model: String) throws {
    let weights = try GGUFWeights(path: GGUFFixtures.directory + "/" + model)
    let prompt: [Int32] = [5, 9, 1, 200, 17, 33, 2]
    let whole = try LocalPipeline(weights: weights, threads: 2, arithmetic: .llamaCpp)
    let split = try LocalPipeline(weights: weights, cuts: [1, 2], threads: 2, arithmetic: .llamaCpp)
    let a = whole.generate(prompt: prompt, maxNewTokens: 6, recordLogits: true)
    let b = split.generate(prompt: prompt, maxNewTokens: 6, recordLogits: true)
    #expect(a.tokens == b.tokens)
    #expect(a.logits == b.logits)
  }
}

@Suite("GGUF files that break the format's rules")
struct GGUFRobustnessTests {
  /// Rewrites the value of a metadata key of types.gguf in place (same length) and parses the result.
  static func patched(_ key: String, _ transform: (inout Data, Int) -> Void) throws -> String {
    var bytes = try Data(contentsOf: URL(fileURLWithPath: GGUFFixtures.directory + "/types-align64.gguf"))
    let k = Data(key.utf8)
    let at = try #require(bytes.range(of: k)).upperBound
    transform(&bytes, at)
    let path = temporaryDirectory("gguf-bad") + "/bad.gguf"
    try bytes.write(to: URL(fileURLWithPath: path))
    return path
  }

  /// general.alignment below 8 would let F32 tensors start at addresses no float may be read from.
  @Test func alignmentBelowEightIsRefused() throws {
    // The value follows the key and its 4-byte type (uint32).
    let path = try Self.patched("general.alignment") { d, at in
      d[at + 4] = 2
      d[at + 5] = 0
      d[at + 6] = 0
      d[at + 7] = 0
    }
    let e = #expect(throws: CheckpointError.self) { try GGUFFile(path: path) }
    #expect(e?.detail.contains("alignment") == true)
  }
}
