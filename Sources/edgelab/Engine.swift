public import ArgumentParser
import Benchmarks
import Catalog
import EdgeLabCore
public import Engine
import Execution
import Foundation
import Tokenizer

extension WeightDType: ExpressibleByArgument {
  public init?(argument: String) {
    switch argument.lowercased() {
    case "f32", "fp32": self = .f32
    case "bf16": self = .bf16
    case "f16", "fp16": self = .f16
    default:
      guard let t = WeightDType.allCases.first(where: { $0.rawValue.lowercased() == argument.lowercased() }) else {
        return nil
      }
      self = t
    }
  }
  public static var allValueStrings: [String] { allCases.map { $0.rawValue.lowercased() } }
}
extension WeightStorage: ExpressibleByArgument {}
extension Arithmetic: ExpressibleByArgument {}

/// The `--threads` check the engine commands share.
func validateThreads(_ threads: Int) throws {
  guard (1...256).contains(threads) else { throw ValidationError("--threads must be between 1 and 256") }
}

struct Generate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Generate text or tokens with the engine (greedy by default).",
    discussion: """
      With --prompt, the model's tokenizer (a GGUF file's own, or tokenizer.json beside a checkpoint) turns the text \
      into tokens, the reply is printed as it is generated, and generation stops at the end of the turn. With \
      --prompt-tokens, ids go in and ids come out, exactly --max-new-tokens of them.
      """)
  @Option(help: "A GGUF file, a Hugging Face checkpoint directory, or a model preset (synthetic weights).") var model:
    String
  @Option(help: "Seed of synthetic weights (presets only).") var syntheticSeed: UInt64 = 1
  @Option(help: "Storage type of synthetic weights: f32, bf16, f16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k or q6_k.")
  var dtype: WeightDType = .f32
  @Option(help: "Checkpoint 16-bit and quantized weights: native (read in the kernels) or fp32 (widened at load).")
  var storage: WeightStorage = .native
  @Option(help: "Prompt text (tokenized with the model's tokenizer).") var prompt: String?
  @Flag(help: "Wrap --prompt in the model's chat template as a user turn (and start the assistant's turn).") var chat =
    false
  @Option(help: "With --chat: a system message.") var system: String?
  @Option(help: "A tokenizer.json to use instead of the model's own.") var tokenizer: String?
  @Flag(help: "With --prompt: keep generating after the end of the turn.") var ignoreEos = false
  @Option(help: "Prompt token ids, comma-separated.") var promptTokens: String?
  @Option(help: "Most tokens to generate (with --prompt-tokens: exactly this many).") var maxNewTokens = 128
  @Option(help: "Write the logits of every generated position (float32, little-endian, row-major).") var dumpLogits:
    String?
  @Option(help: "Cut the model into stages at these problem-layer indices (comma-separated), in one process.") var cuts:
    String?
  @Option(help: "Threads for the kernels and OpenBLAS.") var threads = 1
  @Option(
    help:
      "Rounding: exact (FP32, as Transformers) or llama.cpp (8-bit inputs of quantized products, float16 KV cache). Default: llama.cpp for GGUF files, exact otherwise."
  ) var arithmetic: Arithmetic?
  @Option(help: "Sampling temperature (0: greedy).") var temperature = 0.0
  @Option(help: "Top-k (0: all).") var topK = 0
  @Option(help: "Top-p (1: all).") var topP = 1.0
  @Option(help: "Sampling seed.") var seed: UInt64 = 0
  @Flag(help: "Print JSON.") var json = false
  @Option(
    help:
      "Speculative decoding: verify up to this many drafted tokens in one pass (greedy; the tokens are the same as without)."
  )
  var speculate: Int?
  @Option(
    help:
      "With --speculate, the drafter: lookup (prompt lookup, no model), exit:N (the target's first N blocks and its head: self-speculative, as LayerSkip), or a draft model (GGUF file, checkpoint or preset) with the target's vocabulary."
  )
  var draft = "lookup"

  func validate() throws {
    guard maxNewTokens >= 1 else { throw ValidationError("--max-new-tokens must be at least 1") }
    if let speculate {
      guard (1...64).contains(speculate) else { throw ValidationError("--speculate takes 1…64 drafted tokens") }
      guard temperature == 0, dumpLogits == nil else {
        throw ValidationError("--speculate decodes greedily: leave out --temperature and --dump-logits")
      }
    }
    try validateThreads(threads)
    guard temperature >= 0, temperature.isFinite else {
      throw ValidationError("--temperature must be ≥ 0 (0 is greedy)")
    }
    guard topK >= 0 else { throw ValidationError("--top-k must be ≥ 0 (0 keeps every token)") }
    guard topP > 0, topP <= 1 else { throw ValidationError("--top-p must be in (0, 1] (1 keeps every token)") }
    guard (prompt == nil) != (promptTokens == nil) else {
      throw ValidationError("give either --prompt TEXT or --prompt-tokens IDS")
    }
    if chat || system != nil || ignoreEos, prompt == nil {
      throw ValidationError("--chat, --system and --ignore-eos go with --prompt")
    }
    if system != nil, !chat { throw ValidationError("--system needs --chat") }
  }

  func run() throws {
    let source = ModelSource.parse(model, seed: syntheticSeed, dtype: dtype, storage: storage)
    let pipeline: LocalPipeline
    var selfDraft: LocalPipeline?
    let prompt: [Int32]
    var textTokenizer: Tokenizer? = nil
    do {
      let weights = try source.open()
      if let text = self.prompt {
        let t = try ModelTokenizer.load(model: model, weights: weights, override: tokenizer)
        textTokenizer = t
        prompt = try ModelTokenizer.promptTokens(text, tokenizer: t, chat: chat, system: system)
        if prompt.isEmpty { throw fail("--prompt gives no tokens; write some text", code: Exit.badInput) }
      } else {
        prompt = try Self.parseIds(promptTokens ?? "")
      }
      if let bad = prompt.first(where: { $0 < 0 || Int($0) >= weights.config.vocabSize }) {
        throw fail(
          "prompt token \(bad) is outside the vocabulary (0..<\(weights.config.vocabSize))", code: Exit.badInput)
      }
      let positions = weights.config.maxPositionEmbeddings
      if prompt.count + maxNewTokens > positions {
        throw fail(
          "\(prompt.count) prompt tokens + \(maxNewTokens) new tokens exceed the model's \(positions) positions (max_position_embeddings)",
          code: Exit.badInput)
      }
      let cutList = (cuts ?? "").split(separator: ",").compactMap { Int($0) }
      let rounding = arithmetic ?? (weights is GGUFWeights ? .llamaCpp : .exact)
      pipeline = try LocalPipeline(weights: weights, cuts: cutList, threads: threads, arithmetic: rounding)
      if speculate != nil, draft.hasPrefix("exit:") {
        guard let blocks = Int(draft.dropFirst(5)) else {
          throw fail("--draft exit:N takes the number of blocks kept (e.g. exit:20)", code: Exit.badInput)
        }
        selfDraft = try LocalPipeline.earlyExit(
          weights: weights, blocks: blocks, threads: threads, arithmetic: rounding)
      }
    } catch let e as CheckpointError {
      throw fail(e)
    } catch let e as TokenizerError {
      throw fail(e.description, code: Exit.badInput)
    }
    let sampler = Sampler(temperature: temperature, topK: topK, topP: topP, seed: seed)
    var stream = textTokenizer.map(StreamingDecoder.init)
    let stop = (textTokenizer != nil && !ignoreEos) ? textTokenizer!.stopTokens : []
    if let speculate {
      try runSpeculative(
        pipeline, prompt: prompt, lookahead: speculate, stop: stop, tokenizer: textTokenizer, selfDraft: selfDraft)
      return
    }
    let streaming = stream != nil && !json
    let g = pipeline.generate(
      prompt: prompt, maxNewTokens: maxNewTokens, sampler: sampler, recordLogits: dumpLogits != nil, stop: stop
    ) { id in
      guard streaming, !stop.contains(id) else { return }
      FileHandle.standardOutput.write(Data(stream!.push(id).utf8))
    }
    if let dumpLogits { try Self.writeLogits(g.logits, to: dumpLogits) }
    if json {
      // The documented key order; decode_tokens_per_s is null when only one token was generated (no decode step).
      let d = g.decodeTokensPerSecond
      let tokens = g.tokens.map(String.init).joined(separator: ", ")
      var line =
        #"{"tokens": [\#(tokens)], "prefill_s": \#(g.prefillSeconds), "decode_tokens_per_s": \#(d.isFinite ? String(d) : "null")"#
      if let t = textTokenizer {
        let reply = g.tokens.filter { !stop.contains($0) }
        line += #", "prompt_tokens": [\#(prompt.map(String.init).joined(separator: ", "))]"#
        line += #", "text": \#(try JSONCoding.compactString(t.decode(reply)))"#
      }
      print(line + "}")
    } else if streaming {
      FileHandle.standardOutput.write(Data((stream!.finish() + "\n").utf8))
      FileHandleStderr.write(
        "\(prompt.count) prompt tokens, \(g.tokens.count) generated; prefill \(String(format: g.prefillSeconds * 1000, digits: 1)) ms, decode \(String(format: g.decodeTokensPerSecond, digits: 2)) tok/s\n"
      )
    } else {
      print(g.tokens.map(String.init).joined(separator: ","))
    }
  }

  /// Greedy generation with a drafter; prints the tokens (or text) and what speculation did.
  func runSpeculative(
    _ pipeline: LocalPipeline, prompt: [Int32], lookahead: Int, stop: Set<Int32>, tokenizer: Tokenizer?,
    selfDraft: LocalPipeline?
  ) throws {
    let t0: Double
    let tokens: [Int32]
    let stats: SpeculationStats
    if let selfDraft {
      var drafter = ModelDrafter(model: selfDraft)
      t0 = MonotonicClock.now()
      (tokens, stats) = pipeline.generateSpeculative(
        prompt: prompt, maxNewTokens: maxNewTokens, lookahead: lookahead, drafter: &drafter, stop: stop)
    } else if draft == "lookup" {
      var drafter = PromptLookup()
      t0 = MonotonicClock.now()
      (tokens, stats) = pipeline.generateSpeculative(
        prompt: prompt, maxNewTokens: maxNewTokens, lookahead: lookahead, drafter: &drafter, stop: stop)
    } else {
      let weights: any WeightSource
      do { weights = try ModelSource.parse(draft, seed: syntheticSeed, dtype: dtype, storage: storage).open() } catch {
        throw fail(error, then: "--draft names it")
      }
      let vocabulary = pipeline.stages[0].config.vocabSize
      guard weights.config.vocabSize == vocabulary else {
        throw fail(
          "--draft \(draft) has \(weights.config.vocabSize) tokens in its vocabulary, the target \(vocabulary); a draft model must share the target's tokenizer",
          code: Exit.badInput)
      }
      let rounding = arithmetic ?? (weights is GGUFWeights ? .llamaCpp : .exact)
      let model: LocalPipeline
      do { model = try LocalPipeline(weights: weights, threads: threads, arithmetic: rounding) } catch {
        throw fail(error)
      }
      var drafter = ModelDrafter(model: model)
      t0 = MonotonicClock.now()
      (tokens, stats) = pipeline.generateSpeculative(
        prompt: prompt, maxNewTokens: maxNewTokens, lookahead: lookahead, drafter: &drafter, stop: stop)
    }
    let seconds = MonotonicClock.now() - t0
    let reply = tokens.filter { !stop.contains($0) }
    if json {
      var line = #"{"tokens": [\#(tokens.map(String.init).joined(separator: ", "))], "seconds": \#(seconds)"#
      line += #", "verifications": \#(stats.verifications), "proposed": \#(stats.proposed.reduce(0, +))"#
      line += #", "accepted": \#(stats.accepted.reduce(0, +))"#
      let rate = stats.acceptanceRate
      line += #", "acceptance_rate": \#(rate.isFinite ? String(rate) : "null")"#
      line +=
        #", "tokens_per_verification": \#(stats.tokensPerVerification.isFinite ? String(stats.tokensPerVerification) : "null")"#
      if let tokenizer { line += #", "text": \#(try JSONCoding.compactString(tokenizer.decode(reply)))"# }
      print(line + "}")
    } else {
      print(tokenizer.map { $0.decode(reply) } ?? tokens.map(String.init).joined(separator: ","))
      FileHandleStderr.write(
        "\(prompt.count) prompt tokens, \(tokens.count) generated in \(String(format: seconds, digits: 3)) s; \(stats.verifications) verifications, \(stats.accepted.reduce(0, +)) of \(stats.proposed.reduce(0, +)) drafted tokens accepted, \(String(format: stats.tokensPerVerification, digits: 2)) tokens per verification\n"
      )
    }
  }

  static func parseIds(_ text: String) throws -> [Int32] {
    let ids = text.split(separator: ",").compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
    guard !ids.isEmpty, ids.count == text.split(separator: ",").count else {
      throw fail("--prompt-tokens takes comma-separated integers (got '\(text)')", code: Exit.badInput)
    }
    return ids
  }

  static func writeLogits(_ logits: [Float], to path: String) throws {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
      throw fail("--dump-logits '\(path)' is a directory; give a file path", code: Exit.badInput)
    }
    var data = Data(capacity: logits.count * 4)
    for v in logits { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
    do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
      let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
      let why = FileManager.default.fileExists(atPath: parent) ? "not writable" : "no directory \(parent)"
      throw fail("cannot write --dump-logits file '\(path)' (\(why))", code: Exit.ioFailed)
    }
  }
}

struct EngineBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "engine", abstract: "Prefill and decode speed of the engine on a preset's shapes.")
  @Option(help: "Model preset.") var model = "Llama-3.2-1B"
  @Option(help: "Prompt tokens.") var prompt = 128
  @Option(help: "Generated tokens.") var new = 64
  @Option(help: "Threads.") var threads = 1
  @Option(help: "Weight storage: f32, bf16, f16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k or q6_k (synthetic weights).")
  var dtype: WeightDType = .f32
  @Option(help: "Repetitions (medians are reported).") var repetitions = 3
  @Option(
    help: "Rounding: exact (FP32 activations) or llama.cpp (8-bit inputs of quantized products, float16 KV cache).")
  var arithmetic: Arithmetic = .exact
  @Flag(help: "Print one JSON line.") var json = false

  func validate() throws {
    guard prompt >= 1 else { throw ValidationError("--prompt must be at least 1") }
    guard new >= 2 else {
      throw ValidationError(
        "--new must be at least 2 (the first token comes from the prefill; decode speed needs more)")
    }
    guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1") }
    try validateThreads(threads)
  }

  func run() throws {
    let r: EngineBench.Result
    do {
      r = try EngineBench.run(
        model: model, dtype: dtype, prompt: prompt, new: new, threads: threads, repetitions: repetitions,
        arithmetic: arithmetic
      ) {
        FileHandleStderr.write($0 + "\n")
      }
    } catch let e as CheckpointError { throw fail(e) }
    if json {
      print(try JSONCoding.compactString(r))
      return
    }
    print(
      "\(r.model) \(r.dtype) (\(r.arithmetic)), \(r.threads) thread(s), kernels \(r.kernelISA), OpenBLAS \(r.blasCore): prefill \(String(format: r.prefillTokensPerSecond, digits: 1)) tok/s, decode \(String(format: r.decodeTokensPerSecond, digits: 2)) tok/s, weights \(Bytes(Double(r.weightBytes))) → \(String(format: r.effectiveBandwidthGBs, digits: 1)) GB/s effective, peak RSS \(Bytes(Double(r.peakResidentBytes)))"
    )
  }
}

struct MemoryBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "memory", abstract: "Memory read bandwidth (the decode roofline).")
  @Option(help: "Threads.") var threads = 1
  @Option(help: "Buffer size in MiB.") var mib = 1024
  @Option(help: "Passes over the buffer.") var passes = 10
  @Flag(help: "Print one JSON line.") var json = false

  func validate() throws {
    guard mib >= 1, passes >= 1 else { throw ValidationError("--mib and --passes must be at least 1") }
    try validateThreads(threads)
  }

  func run() throws {
    let gbs = try EngineBench.memoryBandwidth(bytes: mib << 20, threads: threads, passes: passes)
    if json {
      print(#"{"threads": \#(threads), "read_bandwidth_gb_s": \#(String(format: gbs, digits: 2))}"#)
    } else {
      print("read bandwidth with \(threads) thread(s): \(String(format: gbs, digits: 2)) GB/s")
    }
  }
}
