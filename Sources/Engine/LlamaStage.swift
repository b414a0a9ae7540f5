import CKernels
public import Catalog
import Foundation

/// The tokens of one sequence in a batch: `count` tokens at positions start..<start+count.
public struct SequenceSpan: Hashable, Sendable, Codable {
  public var id: Int
  public var start: Int
  public var count: Int
  public init(id: Int, start: Int, count: Int) {
    self.id = id
    self.start = start
    self.count = count
  }
}

/// What a stage consumes: token ids (a stage that starts at the embedding) or hidden states [tokens × hidden].
public enum StageInput: Sendable {
  case tokens([Int32])
  case hidden([Float])
}

/// What a stage produces: hidden states, or logits (one row per sequence — its last token — unless all rows
/// were asked for).
public enum StageOutput: Sendable {
  case hidden([Float])
  case logits([Float], rows: Int)

  public var floats: [Float] {
    switch self {
    case .hidden(let h): h
    case .logits(let l, _): l
    }
  }
}

/// A contiguous range of a Llama model's layers, with only those layers' weights loaded.
///
/// Layers are numbered as in partition problems: 0 is the token embedding, 1…L the decoder blocks, L+1 the
/// head (final RMSNorm and LM head, tied to the embedding when the checkpoint says so). A stage keeps the KV
/// cache of its blocks for every sequence it has seen until `release(sequence:)`.
///
/// Arithmetic is FP32. Decode batches (one token per sequence) use the per-row kernels, so a sequence's
/// results do not depend on what else is in the batch; prefill uses OpenBLAS sgemm.
public final class LlamaStage: @unchecked Sendable {
  public let config: ModelConfig
  public let layers: Range<Int>
  let embedding: WeightMatrix?
  var blocks: [Slot]
  let store: OffloadStore?
  let finalNorm: [Float]?
  let lmHead: WeightMatrix?
  let invFreq: [Float]
  let ropeLayout: RopeLayout
  let ropeFactors: [Float]?
  /// Threads the kernels use for this stage (results do not depend on it).
  public let threads: Int
  /// Whose rounding the stage reproduces (Transformers' FP32, or llama.cpp's).
  public let arithmetic: Arithmetic
  /// This member's part of the blocks when a tensor-parallel group shares them; nil: the whole blocks.
  public let shard: TensorShard?
  /// Query heads, KV heads and FFN columns this stage computes (the model's unless it holds a shard).
  let heads: Int
  let kvHeads: Int
  let ffnColumns: Int
  var caches: [Int: [KVCache]] = [:]

  struct Block {
    var attnNorm: [Float]
    var q: WeightMatrix, k: WeightMatrix, v: WeightMatrix, o: WeightMatrix
    var mlpNorm: [Float]
    var gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix

    static let names = ["q", "k", "v", "o", "gate", "up", "down"]
    var matrices: [(String, WeightMatrix)] {
      [("q", q), ("k", k), ("v", v), ("o", o), ("gate", gate), ("up", up), ("down", down)]
    }
    init(
      attnNorm: [Float], q: WeightMatrix, k: WeightMatrix, v: WeightMatrix, o: WeightMatrix, mlpNorm: [Float],
      gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix
    ) {
      (self.attnNorm, self.q, self.k, self.v, self.o, self.mlpNorm, self.gate, self.up, self.down) = (
        attnNorm, q, k, v, o, mlpNorm, gate, up, down
      )
    }
    /// The block with its matrices laid out for llama.cpp's arithmetic (Q4_0 in 8-row groups).
    func repackedForLlamaCpp() -> Block {
      Block(
        attnNorm: attnNorm, q: q.repackedForLlamaCpp(), k: k.repackedForLlamaCpp(), v: v.repackedForLlamaCpp(),
        o: o.repackedForLlamaCpp(), mlpNorm: mlpNorm, gate: gate.repackedForLlamaCpp(), up: up.repackedForLlamaCpp(),
        down: down.repackedForLlamaCpp())
    }
    /// This member's part of the block: its heads' rows of Q, K and V and columns of O, its columns' rows of the
    /// gate and up projections and columns of the down projection.
    func sharded(_ s: TensorShard, _ c: ModelConfig, layer: String) throws(CheckpointError) -> Block {
      let hd = c.headDim
      let perKV = c.numAttentionHeads / c.numKeyValueHeads
      let qRows = (s.kvHeads.lowerBound * perKV * hd)..<(s.kvHeads.upperBound * perKV * hd)
      let kvRows = (s.kvHeads.lowerBound * hd)..<(s.kvHeads.upperBound * hd)
      func columns(_ m: WeightMatrix, _ r: Range<Int>, _ name: String, _ remedy: String) throws(CheckpointError)
        -> WeightMatrix
      {
        guard let out = m.columns(r) else {
          throw CheckpointError(
            .badConfig, file: "(stage)", tensor: layer + name,
            "a tensor-parallel share must cut \(m.dtype.rawValue) weights on whole blocks of \(m.dtype.blockValues) values; columns \(r) do not (\(remedy))"
          )
        }
        return out
      }
      return Block(
        attnNorm: attnNorm, q: q.rows(qRows), k: k.rows(kvRows), v: v.rows(kvRows),
        o: try columns(
          o, qRows, "self_attn.o_proj.weight",
          "a KV head's query columns are \(perKV * hd) values here: this type cannot be split by heads"),
        mlpNorm: mlpNorm, gate: gate.rows(s.ffnColumns), up: up.rows(s.ffnColumns),
        down: try columns(
          down, s.ffnColumns, "mlp.down_proj.weight",
          "choose FFN column shares that are multiples of \(o.dtype.blockValues)"))
    }
    init(norms: ([Float], [Float]), _ m: [String: WeightMatrix]) {
      self.init(
        attnNorm: norms.0, q: m["q"]!, k: m["k"]!, v: m["v"]!, o: m["o"]!, mlpNorm: norms.1, gate: m["gate"]!,
        up: m["up"]!, down: m["down"]!)
    }
  }

  /// A decoder block, resident or read from the offload store before each use.
  enum Slot {
    case resident(layer: Int, Block)
    case offloaded(layer: Int, norms: ([Float], [Float]))
    var layer: Int {
      switch self {
      case .resident(let l, _), .offloaded(let l, _): l
      }
    }
  }

  /// Builds a stage for `layers` (a range within 0…L+1), loading only its weights.
  ///
  /// - Parameters:
  ///   - offloaded: decoder blocks (problem-layer indices) kept out of memory and read from `store` on use.
  ///   - store: the device's offload store, shared by its stages; it receives the offloaded blocks (every block
  ///     when it `keepsEveryBlock`).
  ///   - threads: threads this stage's kernels use.
  ///   - arithmetic: `.llamaCpp` to round as llama.cpp does (8-bit inputs of quantized products, float16 KV cache).
  public init(
    weights: any WeightSource, layers: Range<Int>, offloaded: Set<Int> = [], store: OffloadStore? = nil,
    threads: Int = 1, arithmetic: Arithmetic = .exact, shard: TensorShard? = nil
  ) throws(CheckpointError) {
    self.arithmetic = arithmetic
    let c = weights.config
    config = c
    let total = c.numHiddenLayers + 2
    guard !layers.isEmpty, layers.lowerBound >= 0, layers.upperBound <= total else {
      throw CheckpointError(.badConfig, file: "(stage)", "layer range \(layers) is outside 0..<\(total)")
    }
    if let shard {
      guard !shard.kvHeads.isEmpty, shard.kvHeads.lowerBound >= 0, shard.kvHeads.upperBound <= c.numKeyValueHeads,
        !shard.ffnColumns.isEmpty, shard.ffnColumns.lowerBound >= 0, shard.ffnColumns.upperBound <= c.intermediateSize
      else {
        throw CheckpointError(
          .badConfig, file: "(stage)",
          "tensor-parallel shard: KV heads \(shard.kvHeads) and FFN columns \(shard.ffnColumns) must be non-empty ranges within the model's \(c.numKeyValueHeads) heads and \(c.intermediateSize) columns"
        )
      }
      guard offloaded.isEmpty else {
        throw CheckpointError(.badConfig, file: "(stage)", "a tensor-parallel shard keeps its blocks resident")
      }
    }
    self.shard = shard
    let perKV = c.numAttentionHeads / c.numKeyValueHeads
    heads = (shard?.kvHeads.count).map { $0 * perKV } ?? c.numAttentionHeads
    kvHeads = shard?.kvHeads.count ?? c.numKeyValueHeads
    ffnColumns = shard?.ffnColumns.count ?? c.intermediateSize
    self.layers = layers
    self.threads = min(max(1, threads), Kernels.maxThreads)
    Kernels.reserve(threads: self.threads)
    let h = c.hiddenSize
    embedding = layers.contains(0) ? try weights.matrix("model.embed_tokens.weight", rows: c.vocabSize, cols: h) : nil
    if !offloaded.intersection(layers).isEmpty && store == nil {
      throw CheckpointError(.badConfig, file: "(stage)", "offloaded layers need an offload store")
    }
    self.store = store
    var bs: [Slot] = []
    for l in layers where l >= 1 && l <= c.numHiddenLayers {
      let p = "model.layers.\(l - 1)."
      var block = Block(
        attnNorm: try weights.vector(p + "input_layernorm.weight", count: h),
        q: try weights.matrix(p + "self_attn.q_proj.weight", rows: c.qDim, cols: h),
        k: try weights.matrix(p + "self_attn.k_proj.weight", rows: c.kvDim, cols: h),
        v: try weights.matrix(p + "self_attn.v_proj.weight", rows: c.kvDim, cols: h),
        o: try weights.matrix(p + "self_attn.o_proj.weight", rows: h, cols: c.qDim),
        mlpNorm: try weights.vector(p + "post_attention_layernorm.weight", count: h),
        gate: try weights.matrix(p + "mlp.gate_proj.weight", rows: c.intermediateSize, cols: h),
        up: try weights.matrix(p + "mlp.up_proj.weight", rows: c.intermediateSize, cols: h),
        down: try weights.matrix(p + "mlp.down_proj.weight", rows: h, cols: c.intermediateSize))
      if let shard { block = try block.sharded(shard, c, layer: p) }
      if arithmetic == .llamaCpp { block = block.repackedForLlamaCpp() }
      if let store, offloaded.contains(l) || store.keepsEveryBlock {
        try store.add(layer: l, matrices: block.matrices)
      }
      bs.append(
        offloaded.contains(l)
          ? .offloaded(layer: l, norms: (block.attnNorm, block.mlpNorm)) : .resident(layer: l, block))
    }
    blocks = bs
    if layers.contains(total - 1) {
      finalNorm = try weights.vector("model.norm.weight", count: h)
      let tied = c.tieWordEmbeddings || !weights.has("lm_head.weight")
      if tied && !c.tieWordEmbeddings {
        throw CheckpointError(
          .missingTensor, file: "(checkpoint)", tensor: "lm_head.weight", "missing, and tie_word_embeddings is false")
      }
      var head: WeightMatrix
      if tied {
        if let embedding {
          head = embedding
        } else {
          head = try weights.matrix("model.embed_tokens.weight", rows: c.vocabSize, cols: h)
        }
      } else {
        head = try weights.matrix("lm_head.weight", rows: c.vocabSize, cols: h)
      }
      // llama.cpp loads a tied head twice (TENSOR_DUPLICATED), the embedding for lookups and a repacked copy for
      // the product; so does this, where the type is repacked.
      if arithmetic == .llamaCpp { head = head.repackedForLlamaCpp() }
      lmHead = head
    } else {
      finalNorm = nil
      lmHead = nil
    }
    var inv = Rope.inverseFrequencies(c)
    if let factors = weights.ropeFrequencyFactors, factors.count == inv.count {
      inv = zip(inv, factors).map { $0 / $1 }
    }
    invFreq = inv
    ropeLayout = weights.ropeLayout
    ropeFactors = weights.ropeFrequencyFactors
  }

  /// Bytes of weights this stage holds (a tied head counted once when it shares the embedding).
  public var weightBytes: Int {
    var b = embedding?.byteCount ?? 0
    for slot in blocks {
      guard case .resident(_, let x) = slot else { continue }
      b += [x.q, x.k, x.v, x.o, x.gate, x.up, x.down].reduce(0) { $0 + $1.byteCount } + 8 * config.hiddenSize
    }
    if let lmHead, embedding == nil || lmHead.memory !== embedding!.memory { b += lmHead.byteCount }
    if finalNorm != nil { b += 4 * config.hiddenSize }
    return b
  }

  /// KV-cache bytes held for all sequences.
  public var kvBytes: Int { caches.values.reduce(0) { $0 + $1.reduce(0) { $0 + $1.bytes } } }

  /// Decoder blocks (problem-layer indices) currently read from storage on use.
  public var offloadedLayers: [Int] { blocks.compactMap { if case .offloaded(let l, _) = $0 { l } else { nil } } }

  /// Changes which blocks are offloaded (online memory adaptation). Blocks made resident are read from the
  /// store once and kept; blocks offloaded are dropped from memory. Needs a store holding every block
  /// (`OffloadStore.keepsEveryBlock`) unless only already-offloaded blocks change. Returns how many blocks
  /// changed. The caller then gives the store the device's new order of offloaded blocks.
  @discardableResult
  public func setOffloaded(_ wanted: Set<Int>) -> Int {
    guard let store else { return 0 }
    var changed = 0
    for (i, slot) in blocks.enumerated() {
      switch slot {
      case .resident(let l, let b) where wanted.contains(l) && store.contains(l):
        blocks[i] = .offloaded(layer: l, norms: (b.attnNorm, b.mlpNorm))
        changed += 1
      case .offloaded(let l, let norms) where !wanted.contains(l):
        blocks[i] = .resident(layer: l, Block(norms: norms, store.readResident(l)))
        changed += 1
      default: break
      }
    }
    return changed
  }

  public var startsAtEmbedding: Bool { layers.lowerBound == 0 }
  public var endsWithHead: Bool { lmHead != nil }

  /// Drops a sequence's KV cache.
  public func release(sequence: Int) { caches[sequence] = nil }

  /// Forgets a sequence's positions from `length` on (rejected speculative tokens): the cache then holds what a
  /// cache that never saw them holds, byte for byte (`kvContents`).
  public func truncate(sequence: Int, to length: Int) {
    precondition(length >= 0, "a cache length is not negative")
    for kv in caches[sequence] ?? [] { kv.truncate(to: length) }
  }

  /// A sequence's cached keys and values per block (each block: per KV head, positions × head_dim, keys then
  /// values), for comparing caches.
  public func kvContents(sequence: Int) -> [[Float]] { (caches[sequence] ?? []).map { $0.contents } }

  /// Runs the stage on a batch.
  ///
  /// - Parameters:
  ///   - spans: the sequences in the batch, in the order of their tokens in `input`.
  ///   - input: token ids if the stage starts at the embedding, else hidden states [Σ count × hidden].
  ///   - allLogits: on the last stage, logits for every token instead of each sequence's last.
  ///   - decodeArithmetic: compute every token as a decode step computes it alone (per-row kernels, attention as
  ///     for one token), also in spans of several tokens: a speculative verification of k tokens then gives
  ///     exactly the numbers of k decode steps, so accepting by greedy argmax is lossless bit for bit.
  public func forward(
    _ spans: [SequenceSpan], _ input: StageInput, allLogits: Bool = false, decodeArithmetic: Bool = false
  ) -> StageOutput {
    forward(spans, input, allLogits: allLogits, decodeArithmetic: decodeArithmetic, exchange: Unshared())
  }

  /// Runs this member's shard of a stage that a tensor-parallel group shares: the first member's hidden
  /// states reach every member before the first block (`exchange.broadcast`; a member other than the first
  /// passes empty hidden states), and the partial outputs of each attention and FFN are summed across members
  /// (`exchange.allReduce`) before the residual adds them. Only the first member's output (hidden states or
  /// logits) is the stage's.
  public func forward<X: GroupExchange>(
    _ spans: [SequenceSpan], _ input: StageInput, allLogits: Bool = false, decodeArithmetic: Bool = false,
    exchange: X
  ) throws(X.Failure) -> StageOutput {
    let h = config.hiddenSize
    let t = spans.reduce(0) { $0 + $1.count }
    var x = [Float](repeating: 0, count: t * h)
    switch input {
    case .tokens(let ids):
      precondition(embedding != nil && ids.count == t, "token input needs the embedding layer and one id per token")
      x.withUnsafeMutableBufferPointer { xb in
        for (i, id) in ids.enumerated() {
          let row = min(max(Int(id), 0), config.vocabSize - 1)
          embedding!.row(row, into: xb.baseAddress! + i * h)
        }
      }
    case .hidden(let hs) where hs.isEmpty && shard != nil:
      break
    case .hidden(let hs):
      precondition(hs.count == t * h, "hidden input has \(hs.count) values, expected \(t) × \(h)")
      x = hs
    }
    if shard != nil && !blocks.isEmpty { try exchange.broadcast(&x) }
    let rowwise = decodeArithmetic || spans.allSatisfy { $0.count == 1 }
    let angles = Rope.Angles(
      positions: spans.flatMap { $0.start..<($0.start + $0.count) }, headDim: config.headDim, invFreq: invFreq,
      layout: ropeLayout,
      ggml: arithmetic == .llamaCpp ? (base: Float(config.ropeTheta), factors: ropeFactors) : nil)
    for (bi, slot) in blocks.enumerated() {
      switch slot {
      case .resident(_, let b):
        try blockForward(
          b, index: bi, spans: spans, x: &x, tokens: t, rowwise: rowwise, angles: angles,
          decodeArithmetic: decodeArithmetic, exchange: exchange)
      case .offloaded(let l, let norms):
        let matrices = store!.acquire(l)
        try blockForward(
          Block(norms: norms, matrices), index: bi, spans: spans, x: &x, tokens: t, rowwise: rowwise, angles: angles,
          decodeArithmetic: decodeArithmetic, exchange: exchange)
        store!.release(l)
      }
    }
    guard let lmHead, let finalNorm else { return .hidden(x) }
    // Rows to project: every token, or each sequence's last.
    var rows: [Int] = []
    if allLogits {
      rows = Array(0..<t)
    } else {
      var offset = 0
      for s in spans {
        offset += s.count
        rows.append(offset - 1)
      }
    }
    var normed = [Float](repeating: 0, count: rows.count * h)
    x.withUnsafeBufferPointer { xb in
      normed.withUnsafeMutableBufferPointer { nb in
        for (i, r) in rows.enumerated() {
          Ops.rmsNorm(
            xb.baseAddress! + r * h, finalNorm, h, config.rmsNormEps, nb.baseAddress! + i * h, arithmetic: arithmetic)
        }
      }
    }
    var logits = [Float](repeating: 0, count: rows.count * config.vocabSize)
    normed.withUnsafeBufferPointer { nb in
      logits.withUnsafeMutableBufferPointer { lb in
        Kernels.linear(
          lmHead, nb.baseAddress!, tokens: rows.count, lb.baseAddress!, rowwise: rowwise || !allLogits,
          threads: threads,
          arithmetic: arithmetic)
      }
    }
    return .logits(logits, rows: rows.count)
  }

  func cache(_ sequence: Int) -> [KVCache] {
    if let c = caches[sequence] { return c }
    let c = blocks.map { _ in KVCache(heads: kvHeads, headDim: config.headDim) }
    caches[sequence] = c
    return c
  }

  func blockForward<X: GroupExchange>(
    _ b: Block, index: Int, spans: [SequenceSpan], x: inout [Float], tokens t: Int, rowwise: Bool,
    angles: Rope.Angles, decodeArithmetic: Bool = false, exchange: X
  ) throws(X.Failure) {
    let c = config
    let h = c.hiddenSize
    let hd = c.headDim
    let qd = heads * hd
    let kvd = kvHeads * hd
    let f = ffnColumns
    var xn = [Float](repeating: 0, count: t * h)
    var q = [Float](repeating: 0, count: t * qd)
    var k = [Float](repeating: 0, count: t * kvd)
    var v = [Float](repeating: 0, count: t * kvd)
    x.withUnsafeBufferPointer { xb in
      xn.withUnsafeMutableBufferPointer { nb in
        for i in 0..<t {
          Ops.rmsNorm(
            xb.baseAddress! + i * h, b.attnNorm, h, c.rmsNormEps, nb.baseAddress! + i * h, arithmetic: arithmetic)
        }
      }
    }
    xn.withUnsafeBufferPointer { nb in
      q.withUnsafeMutableBufferPointer { qb in
        k.withUnsafeMutableBufferPointer { kb in
          v.withUnsafeMutableBufferPointer { vb in
            Kernels.linear(
              [(b.q, qb.baseAddress!), (b.k, kb.baseAddress!), (b.v, vb.baseAddress!)], nb.baseAddress!,
              tokens: t, rowwise: rowwise, threads: threads, arithmetic: arithmetic)
          }
        }
      }
    }
    // Rotary embeddings at each token's position (angles computed once per forward), then append K and V to each
    // sequence's cache.
    q.withUnsafeMutableBufferPointer { qb in
      k.withUnsafeMutableBufferPointer { kb in
        for i in 0..<t {
          angles.rotate(qb.baseAddress! + i * qd, heads: self.heads, token: i)
          angles.rotate(kb.baseAddress! + i * kvd, heads: self.kvHeads, token: i)
        }
      }
    }
    if arithmetic == .llamaCpp {
      // llama.cpp's float16 KV cache.
      for i in k.indices { k[i] = Float(Float16(k[i])) }
      for i in v.indices { v[i] = Float(Float16(v[i])) }
    }
    var offset = 0
    for s in spans {
      let kv = cache(s.id)[index]
      k.withUnsafeBufferPointer { kb in
        v.withUnsafeBufferPointer { vb in
          kv.write(
            keys: kb.baseAddress! + offset * kvd, values: vb.baseAddress! + offset * kvd, at: s.start, count: s.count)
        }
      }
      offset += s.count
    }
    // Attention: every (token, head) pair over the sequence's cache up to the token's position (causal).
    var attn = [Float](repeating: 0, count: t * qd)
    var work: [(token: Int, cache: KVCache)] = []
    offset = 0
    for s in spans {
      let kv = cache(s.id)[index]
      for j in 0..<s.count { work.append((offset + j, kv)) }
      offset += s.count
    }
    let group = c.numAttentionHeads / c.numKeyValueHeads
    let scale = 1 / Float(hd).squareRoot()
    let heads = self.heads
    let qp = q.withUnsafeBufferPointer { UnsafePointerBox($0.baseAddress!) }
    let ap = attn.withUnsafeMutableBufferPointer { UnsafeMutablePointerBox($0.baseAddress!) }
    let posBox = angles.positions
    let workBox = work
    let f16 = arithmetic == .llamaCpp
    // llama.cpp multiplies a batch of one token with ggml's vector kernel, of more with llamafile's tiles: a
    // sequence's prompt is computed as its batch, each generated token as one alone — also when decode steps of
    // several sequences share a batch here, so that a sequence's result does not depend on its neighbours.
    var single = [Bool](repeating: decodeArithmetic, count: t)
    offset = 0
    for s in spans {
      if s.count == 1 { single[offset] = true }
      offset += s.count
    }
    let singleBox = single
    withExtendedLifetime((q, attn)) {
      let n = workBox.count * heads
      let workers = min(threads, n)
      let per = (n + workers - 1) / workers
      Parallel.forEach(workers) { worker in
        var scores = [Float](repeating: 0, count: 1)
        for item in (worker * per)..<min(n, (worker + 1) * per) {
          let (i, head) = (item / heads, item % heads)
          let (token, kv) = workBox[i]
          let ctx = posBox[token] + 1
          if scores.count < ctx + 64 { scores = [Float](repeating: 0, count: max(ctx + 64, 2 * scores.count)) }
          let kvHead = head / group
          scores.withUnsafeMutableBufferPointer { sb in
            kv.withHead(kvHead) { kp, vp in
              if f16 && hd % 16 == 0 && hd <= 512 {
                el_attend_ggml(
                  qp.pointer + token * qd + head * hd, kp, vp, ctx, hd, scale, sb.baseAddress!,
                  ap.pointer + token * qd + head * hd, singleBox[token] ? 1 : 0)
              } else {
                (f16 ? el_attend_f16 : el_attend)(
                  qp.pointer + token * qd + head * hd, kp, vp, ctx, hd, scale, sb.baseAddress!,
                  ap.pointer + token * qd + head * hd)
              }
            }
          }
        }
      }
    }
    // Output projection and residual.
    var o = [Float](repeating: 0, count: t * h)
    attn.withUnsafeBufferPointer { ab in
      o.withUnsafeMutableBufferPointer {
        Kernels.linear(
          b.o, ab.baseAddress!, tokens: t, $0.baseAddress!, rowwise: rowwise, threads: threads, arithmetic: arithmetic)
      }
    }
    if shard != nil { try exchange.allReduce(&o) }
    for i in 0..<(t * h) { x[i] += o[i] }
    // SwiGLU MLP and residual.
    x.withUnsafeBufferPointer { xb in
      xn.withUnsafeMutableBufferPointer { nb in
        for i in 0..<t {
          Ops.rmsNorm(
            xb.baseAddress! + i * h, b.mlpNorm, h, c.rmsNormEps, nb.baseAddress! + i * h, arithmetic: arithmetic)
        }
      }
    }
    var g = [Float](repeating: 0, count: t * f)
    var u = [Float](repeating: 0, count: t * f)
    xn.withUnsafeBufferPointer { nb in
      g.withUnsafeMutableBufferPointer { gb in
        u.withUnsafeMutableBufferPointer { ub in
          Kernels.linear(
            [(b.gate, gb.baseAddress!), (b.up, ub.baseAddress!)], nb.baseAddress!, tokens: t, rowwise: rowwise,
            threads: threads, arithmetic: arithmetic)
        }
      }
    }
    if arithmetic == .llamaCpp {
      g.withUnsafeMutableBufferPointer { gb in
        u.withUnsafeBufferPointer { ub in
          for i in 0..<t { el_swiglu_ggml(gb.baseAddress! + i * f, ub.baseAddress! + i * f, f) }
        }
      }
    } else {
      for i in 0..<(t * f) {
        let gi = g[i]
        g[i] = gi / (1 + expf(-gi)) * u[i]
      }
    }
    g.withUnsafeBufferPointer { gb in
      o.withUnsafeMutableBufferPointer {
        Kernels.linear(
          b.down, gb.baseAddress!, tokens: t, $0.baseAddress!, rowwise: rowwise, threads: threads,
          arithmetic: arithmetic)
      }
    }
    if shard != nil { try exchange.allReduce(&o) }
    for i in 0..<(t * h) { x[i] += o[i] }
  }
}

/// Elementwise operations, in FP32 as Hugging Face computes them.
enum Ops {
  /// out = x / sqrt(mean(x²) + eps) · w. llama.cpp sums the squares in double.
  static func rmsNorm(
    _ x: UnsafePointer<Float>, _ w: [Float], _ n: Int, _ eps: Double, _ out: UnsafeMutablePointer<Float>,
    arithmetic: Arithmetic = .exact
  ) {
    let mean: Float
    if arithmetic == .llamaCpp {
      var ss: Double = 0
      for i in 0..<n { ss += Double(x[i] * x[i]) }
      mean = Float(ss / Double(n))
    } else {
      var ss: Float = 0
      for i in 0..<n { ss += x[i] * x[i] }
      mean = ss / Float(n)
    }
    let r = 1 / (mean + Float(eps)).squareRoot()
    for i in 0..<n { out[i] = w[i] * (x[i] * r) }
  }
}

/// Rotary position embeddings (the half-split layout of Hugging Face's Llama), with llama3 frequency scaling.
enum Rope {
  /// HF's `_compute_default_rope_parameters` and `_compute_llama3_parameters`, in FP32.
  static func inverseFrequencies(_ c: ModelConfig) -> [Float] {
    let d = c.headDim
    var inv = (0..<(d / 2)).map { i in 1 / powf(Float(c.ropeTheta), Float(2 * i) / Float(d)) }
    guard let s = c.ropeScaling, s.ropeType == "llama3" else { return inv }
    let factor = Float(s.factor)
    let low = Float(s.lowFreqFactor)
    let high = Float(s.highFreqFactor)
    let old = Float(s.originalMaxPositionEmbeddings)
    let lowWavelen = old / low
    let highWavelen = old / high
    inv = inv.map { f in
      let wavelen = 2 * Float.pi / f
      if wavelen < highWavelen { return f }
      if wavelen > lowWavelen { return f / factor }
      let smooth = (old / wavelen - low) / (high - low)
      return (1 - smooth) * f / factor + smooth * f
    }
    return inv
  }

  /// The cosines and sines of every token of a batch (one table per forward, used by every block), and the
  /// rotation of a head's pairs of dimensions: (i, i + d/2) in the half-split layout, (2i, 2i + 1) interleaved.
  struct Angles {
    let positions: [Int]
    let half: Int
    let layout: RopeLayout
    /// As llama.cpp computes them (`ggml` given): θ starts at the position and is multiplied by base^(−2/d) once
    /// per pair, divided by the file's frequency factors; the rotation fused as GCC contracts ggml's.
    let fused: Bool
    var cos: [Float]
    var sin: [Float]

    init(
      positions: [Int], headDim d: Int, invFreq: [Float], layout: RopeLayout,
      ggml: (base: Float, factors: [Float]?)?
    ) {
      self.positions = positions
      half = d / 2
      self.layout = layout
      fused = ggml != nil
      cos = [Float](repeating: 0, count: positions.count * half)
      sin = cos
      for (t, position) in positions.enumerated() {
        if let ggml {
          let scale = powf(ggml.base, -2 / Float(d))
          var theta = Float(position)
          for i in 0..<half {
            let a = theta / (ggml.factors?[i] ?? 1)
            cos[t * half + i] = cosf(a)
            sin[t * half + i] = sinf(a)
            theta *= scale
          }
        } else {
          for i in 0..<half {
            let a = Float(position) * invFreq[i]
            cos[t * half + i] = cosf(a)
            sin[t * half + i] = sinf(a)
          }
        }
      }
    }

    /// Rotates the `heads` heads at `x` to the position of batch token `token`.
    func rotate(_ x: UnsafeMutablePointer<Float>, heads: Int, token: Int) {
      let d = 2 * half
      let (stride, partner) = layout == .halfSplit ? (1, half) : (2, 1)
      for i in 0..<half {
        let cs = cos[token * half + i]
        let sn = sin[token * half + i]
        for hh in 0..<heads {
          let p = x + hh * d + i * stride
          let a = p[0]
          let b = p[partner]
          if fused {
            p[0] = (-(b * sn)).addingProduct(a, cs)
            p[partner] = (b * cs).addingProduct(a, sn)
          } else {
            p[0] = a * cs - b * sn
            p[partner] = b * cs + a * sn
          }
        }
      }
    }
  }
}

/// The K and V cache of one block for one sequence: per KV head, positions × head_dim, contiguous.
final class KVCache: @unchecked Sendable {
  let heads: Int
  let headDim: Int
  private(set) var capacity = 0
  private var keys: UnsafeMutablePointer<Float>?
  private var values: UnsafeMutablePointer<Float>?
  private(set) var length = 0

  init(heads: Int, headDim: Int) {
    self.heads = heads
    self.headDim = headDim
  }
  deinit {
    keys?.deallocate()
    values?.deallocate()
  }

  var bytes: Int { 2 * heads * capacity * headDim * 4 }

  private func grow(to needed: Int) {
    var cap = max(capacity, 16)
    while cap < needed { cap *= 2 }
    if cap == capacity { return }
    let nk = UnsafeMutablePointer<Float>.allocate(capacity: heads * cap * headDim)
    let nv = UnsafeMutablePointer<Float>.allocate(capacity: heads * cap * headDim)
    if let keys, let values {
      for hh in 0..<heads {
        (nk + hh * cap * headDim).update(from: keys + hh * capacity * headDim, count: length * headDim)
        (nv + hh * cap * headDim).update(from: values + hh * capacity * headDim, count: length * headDim)
      }
      keys.deallocate()
      values.deallocate()
    }
    keys = nk
    values = nv
    capacity = cap
  }

  /// Writes `count` tokens' keys and values ([count × heads·headDim]) at positions start..<start+count.
  func write(keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, at start: Int, count: Int) {
    if start + count > capacity { grow(to: start + count) }
    for j in 0..<count {
      for hh in 0..<heads {
        (keys! + (hh * capacity + start + j) * headDim).update(
          from: k + j * heads * headDim + hh * headDim, count: headDim)
        (values! + (hh * capacity + start + j) * headDim).update(
          from: v + j * heads * headDim + hh * headDim, count: headDim)
      }
    }
    length = max(length, start + count)
  }

  /// Forgets positions from `n` on: their bytes are zeroed, as in a cache that never held them.
  func truncate(to n: Int) {
    guard n < length, let keys, let values else { return }
    for hh in 0..<heads {
      (keys + (hh * capacity + n) * headDim).update(repeating: 0, count: (length - n) * headDim)
      (values + (hh * capacity + n) * headDim).update(repeating: 0, count: (length - n) * headDim)
    }
    length = n
  }

  /// The cached positions' keys then values, per head.
  var contents: [Float] {
    guard let keys, let values else { return [] }
    var out: [Float] = []
    out.reserveCapacity(2 * heads * length * headDim)
    for hh in 0..<heads {
      out += UnsafeBufferPointer(start: keys + hh * capacity * headDim, count: length * headDim)
      out += UnsafeBufferPointer(start: values + hh * capacity * headDim, count: length * headDim)
    }
    return out
  }

  func withHead<R>(_ head: Int, _ body: (UnsafePointer<Float>, UnsafePointer<Float>) -> R) -> R {
    body(keys! + head * capacity * headDim, values! + head * capacity * headDim)
  }
}
