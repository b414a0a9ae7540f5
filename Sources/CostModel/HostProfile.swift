public import Catalog
public import EdgeLabCore

/// A host measured with the engine (`edgelab profile`): per-layer times of one or more model shapes over prompt
/// lengths (prefill) and over batch sizes × contexts (decode), the one-way cost of a pipeline message over its
/// size, and the read bandwidths. The raw points are kept beside the fitted functions the cost model evaluates.
///
/// The fit, per model shape and precision:
/// - prefill: each layer kind's time is piecewise-linear in the prompt's tokens, through the measured lengths;
/// - decode: a block's time is `base(b) + perContext(b) × mean context` for a batch of b sequences (a straight
///   line in the context fitted per measured batch size, both coefficients then piecewise-linear in b); the
///   embedding and the head are piecewise-linear in b, through each batch size's median over contexts;
/// - message: one-way seconds piecewise-linear in bytes, plus piecewise-linear in the receiver's idle seconds.
/// A block is measured whole: its context-dependent part (attention over the KV cache) is the fit's
/// `perContext` term, the rest (projections, MLP, norms) its `base`.
public struct HostProfile: Codable, Hashable, Sendable {
  public static let currentFormat = "edgelab-profile/1"

  public var format: String
  public var name: String
  public var host: HostFacts
  /// Bytes per second one decode step reads with the profile's threads (the engine's matrix-vector kernel over
  /// weights larger than the caches): the host bandwidth of the dilation plan.
  public var decodeBandwidth: Bandwidth
  /// Sequential read bandwidth of the storage offloaded layers are read from (the offload store's file).
  public var storageReadBandwidth: Bandwidth
  /// Large matrix products (prefill), FLOP/s reached; with `decodeBandwidth`, the roofline used for model
  /// shapes the profile did not measure.
  public var prefillFlops: FlopRate
  public var message: MessageProfile
  public var models: [ModelProfile]
  /// The decode read bandwidth of 1, 2, … workers streaming weights at once (one core each), all of them
  /// together: how workers co-located on this host share its memory. Nil in profiles measured before.
  public var sharedDecodeBandwidth: [Bandwidth]?

  public init(
    name: String, host: HostFacts, decodeBandwidth: Bandwidth, storageReadBandwidth: Bandwidth,
    prefillFlops: FlopRate, message: MessageProfile, models: [ModelProfile]
  ) {
    self.format = Self.currentFormat
    self.name = name
    self.host = host
    self.decodeBandwidth = decodeBandwidth
    self.storageReadBandwidth = storageReadBandwidth
    self.prefillFlops = prefillFlops
    self.message = message
    self.models = models
  }

  enum CodingKeys: String, CodingKey {
    case format, name, host, message, models
    case decodeBandwidth = "decode_bandwidth"
    case storageReadBandwidth = "storage_read_bandwidth"
    case prefillFlops = "prefill_flops"
    case sharedDecodeBandwidth = "shared_decode_bandwidth"
  }

  /// How many times longer one worker's memory-bound work (decode) takes while `workers` workers on this host
  /// compute at once: k · B(1) / B(k), at least 1. Past the most workers measured the host's bandwidth is taken
  /// as saturated at their B. 1 without the measurement.
  public func sharedSlowdown(workers k: Int) -> Double {
    guard k > 1, let b = sharedDecodeBandwidth, let one = b.first?.bytesPerSecond else { return 1 }
    let all = b[min(k, b.count) - 1].bytesPerSecond
    return all > 0 ? max(1, Double(k) * one / all) : 1
  }

  /// The table measured for a model of this shape at this precision, if any.
  public func model(_ config: ModelConfig, _ precision: Precision) -> ModelProfile? {
    let shape = ModelProfile.shape(of: config)
    return models.first { $0.shape == shape && $0.precision == precision }
  }

  /// Seconds for `layer`'s `work` on this host: from the measured table of the layer's model shape, else the
  /// roofline of the host's measured rates.
  public func time(_ layer: LayerCost, work: Work, precision: Precision) -> Double {
    if let m = model(layer.config, precision) { return m.time(layer.kind, work) }
    let compute = layer.flops(work) / prefillFlops.flopsPerSecond
    let memory = layer.bytesMoved(work) / decodeBandwidth.bytesPerSecond
    return max(compute, memory)
  }

  /// Everything wrong with a profile read from a file, each naming the field.
  public func problems() -> [String] {
    var p: [String] = []
    if format != Self.currentFormat {
      p.append("format is '\(format)'; this EdgeLab reads '\(Self.currentFormat)' (measure again: edgelab profile)")
    }
    for (field, v) in [
      ("decode_bandwidth", decodeBandwidth.bitsPerSecond),
      ("storage_read_bandwidth", storageReadBandwidth.bitsPerSecond),
      ("prefill_flops", prefillFlops.flopsPerSecond),
    ] where !(v > 0 && v.isFinite) {
      p.append("\(field) must be positive and finite (it is \(v))")
    }
    p += message.problems()
    if let b = sharedDecodeBandwidth {
      if b.isEmpty { p.append("shared_decode_bandwidth: at least one worker's (leave it out when not measured)") }
      if b.count > Self.maxWorkers { p.append("shared_decode_bandwidth: at most \(Self.maxWorkers) workers") }
      if b.contains(where: { !($0.bitsPerSecond > 0 && $0.bitsPerSecond.isFinite) }) {
        p.append("shared_decode_bandwidth: every bandwidth must be positive and finite")
      }
    }
    if models.count > Self.maxModels { p.append("models: at most \(Self.maxModels) (there are \(models.count))") }
    for (i, m) in models.prefix(Self.maxModels).enumerated() { p += m.problems().map { "models[\(i)].\($0)" } }
    return p
  }

  /// Ceilings on what a profile file may hold, checked before use.
  public static let maxModels = 64
  public static let maxPoints = 10_000
  public static let maxWorkers = 1024
}

/// What was measured where.
public struct HostFacts: Codable, Hashable, Sendable {
  public var cpu: String
  public var cores: Int
  /// Engine threads per worker the profile measured (as a loopback worker runs).
  public var threads: Int
  public var blasCore: String
  public var kernels: String
  public var measuredAt: String

  public init(cpu: String, cores: Int, threads: Int, blasCore: String, kernels: String, measuredAt: String) {
    self.cpu = cpu
    self.cores = cores
    self.threads = threads
    self.blasCore = blasCore
    self.kernels = kernels
    self.measuredAt = measuredAt
  }

  enum CodingKeys: String, CodingKey {
    case cpu, cores, threads, kernels
    case blasCore = "blas_core"
    case measuredAt = "measured_at"
  }
}

/// One-way cost of an activation message between two workers on this host (encode, send, wake the receiver,
/// receive, decode), over its size in bytes and the time the receiver had been waiting for it.
///
/// A receiver that has waited long is asleep, and on a virtual machine its CPU may have been halted: waking it
/// costs tens of microseconds more than a message to a receiver that has just started waiting (a collective's
/// barrier). `fit` is the cost over size for a receiver that has just started waiting; `wake` adds the cost of
/// the wait over its seconds. Profiles measured before the wake was (no `wake`) have a `fit` measured with the
/// receiver idle for the profiler's gap, whatever it waited.
public struct MessageProfile: Codable, Hashable, Sendable {
  public struct Point: Codable, Hashable, Sendable {
    public var bytes: Int
    public var seconds: Double
    public init(bytes: Int, seconds: Double) {
      self.bytes = bytes
      self.seconds = seconds
    }
  }
  /// A small message's extra one-way seconds after the receiver waited `idle` seconds.
  public struct WakePoint: Codable, Hashable, Sendable {
    public var idle: Double
    public var seconds: Double
    public init(idle: Double, seconds: Double) {
      self.idle = idle
      self.seconds = seconds
    }
  }
  public var points: [Point]
  public var fit: PiecewiseLinear
  public var wakePoints: [WakePoint]?
  /// Extra seconds over the receiver's idle seconds, constant beyond the last knot.
  public var wake: PiecewiseLinear?
  /// The idle seconds assumed where a caller does not know them (a pipeline stage waiting for its predecessor:
  /// the partition problem's hops).
  public var referenceIdle: Double?

  public init(
    points: [Point], fit: PiecewiseLinear, wakePoints: [WakePoint]? = nil, wake: PiecewiseLinear? = nil,
    referenceIdle: Double? = nil
  ) {
    self.points = points
    self.fit = fit
    self.wakePoints = wakePoints
    self.wake = wake
    self.referenceIdle = referenceIdle
  }

  enum CodingKeys: String, CodingKey {
    case points, fit, wake
    case wakePoints = "wake_points"
    case referenceIdle = "reference_idle"
  }

  /// One-way seconds of a message of `bytes` whose receiver waited `idle` seconds for it (nil: the reference).
  public func seconds(bytes: Double, idle: Double? = nil) -> Double {
    guard let wake, let lo = wake.knots.first, let hi = wake.knots.last else { return fit(bytes) }
    let waited = min(max(idle ?? referenceIdle ?? hi, lo), hi)
    return fit(bytes) + wake(waited)
  }

  /// What is wrong with this part of a profile read from a file, if anything.
  public func problems() -> [String] {
    var p = fit.problems("message.fit")
    if points.count > HostProfile.maxPoints { p.append("message.points: at most \(HostProfile.maxPoints)") }
    if points.contains(where: { !($0.seconds >= 0 && $0.seconds.isFinite) || $0.bytes < 0 }) {
      p.append("message.points: bytes and seconds must be non-negative and finite")
    }
    if let wake {
      p += wake.problems("message.wake")
      if wake.knots.contains(where: { $0 < 0 }) { p.append("message.wake: idle seconds must be ≥ 0") }
    }
    if let w = wakePoints {
      if w.count > HostProfile.maxPoints { p.append("message.wake_points: at most \(HostProfile.maxPoints)") }
      if w.contains(where: { !($0.idle >= 0 && $0.idle.isFinite && $0.seconds.isFinite) }) {
        p.append("message.wake_points: idle seconds must be non-negative and finite, seconds finite")
      }
    }
    if let r = referenceIdle, !(r >= 0 && r.isFinite) {
      p.append("message.reference_idle must be a finite time ≥ 0")
    }
    return p
  }
}

/// Per-layer times of one model shape at one precision.
public struct ModelProfile: Codable, Hashable, Sendable {
  public struct PrefillPoint: Codable, Hashable, Sendable {
    public var tokens: Int
    public var embed: Double
    public var block: Double
    public var head: Double
    /// How far the block's passes spread: (slowest − fastest) / median; nil in profiles measured before.
    public var blockSpread: Double?
    public init(tokens: Int, embed: Double, block: Double, head: Double, blockSpread: Double? = nil) {
      self.tokens = tokens
      self.embed = embed
      self.block = block
      self.head = head
      self.blockSpread = blockSpread
    }
    enum CodingKeys: String, CodingKey {
      case tokens, embed, block, head
      case blockSpread = "block_spread"
    }
  }
  public struct DecodePoint: Codable, Hashable, Sendable {
    public var batch: Int
    /// Tokens already in each sequence's KV cache.
    public var context: Int
    public var embed: Double
    public var block: Double
    public var head: Double
    /// How far the block's passes spread: (slowest − fastest) / median; nil in profiles measured before.
    public var blockSpread: Double?
    public init(batch: Int, context: Int, embed: Double, block: Double, head: Double, blockSpread: Double? = nil) {
      self.batch = batch
      self.context = context
      self.embed = embed
      self.block = block
      self.head = head
      self.blockSpread = blockSpread
    }
    enum CodingKeys: String, CodingKey {
      case batch, context, embed, block, head
      case blockSpread = "block_spread"
    }
  }
  /// One tensor-parallel member's part of a decoder block, measured: member 0 of an even split among `members`
  /// (its KV heads and FFN columns), prefilling `tokens` tokens, in the same rounds as the whole block's point of
  /// that length.
  public struct ShardPoint: Codable, Hashable, Sendable {
    public var members: Int
    public var tokens: Int
    public var block: Double
    public init(members: Int, tokens: Int, block: Double) {
      self.members = members
      self.tokens = tokens
      self.block = block
    }
  }
  public struct Fit: Codable, Hashable, Sendable {
    public var prefillEmbed: PiecewiseLinear
    public var prefillBlock: PiecewiseLinear
    public var prefillHead: PiecewiseLinear
    public var decodeEmbed: PiecewiseLinear
    public var decodeHead: PiecewiseLinear
    public var decodeBlockBase: PiecewiseLinear
    public var decodeBlockPerContext: PiecewiseLinear

    enum CodingKeys: String, CodingKey {
      case prefillEmbed = "prefill_embed"
      case prefillBlock = "prefill_block"
      case prefillHead = "prefill_head"
      case decodeEmbed = "decode_embed"
      case decodeHead = "decode_head"
      case decodeBlockBase = "decode_block_base"
      case decodeBlockPerContext = "decode_block_per_context"
    }

    var all: [(String, PiecewiseLinear)] {
      [
        ("prefill_embed", prefillEmbed), ("prefill_block", prefillBlock), ("prefill_head", prefillHead),
        ("decode_embed", decodeEmbed), ("decode_head", decodeHead), ("decode_block_base", decodeBlockBase),
        ("decode_block_per_context", decodeBlockPerContext),
      ]
    }
  }

  /// The model's name when measured (a preset, or a checkpoint's).
  public var model: String
  /// Architecture fingerprint: the profile applies to every model of this shape.
  public var shape: String
  public var precision: Precision
  public var prefill: [PrefillPoint]
  public var decode: [DecodePoint]
  public var fit: Fit
  /// Members' parts of a block (`ShardPoint`); nil in profiles measured before, or where the heads do not split.
  public var shards: [ShardPoint]?

  public init(
    model: String, config: ModelConfig, precision: Precision, prefill: [PrefillPoint], decode: [DecodePoint], fit: Fit,
    shards: [ShardPoint]? = nil
  ) {
    self.model = model
    self.shape = Self.shape(of: config)
    self.precision = precision
    self.prefill = prefill
    self.decode = decode
    self.fit = fit
    self.shards = shards
  }

  /// How many times longer a tensor-parallel member holding `share` of a block's heads (or FFN columns) takes for
  /// `work` than `share` × the whole block: its matrices are narrower, and the kernels run them less efficiently
  /// (measured here at 32 prompt tokens: 1.05 for a half, 1.17 for a quarter). From the shard points: for each
  /// measured split, the member's time × members / the whole block's at the same length, linear in the length
  /// between measured lengths (clamped at the ends; decode, one row per sequence, takes the one-token point);
  /// then linear in the share between the splits' shares (1/members) and 1 at the whole block, clamped below the
  /// smallest share measured. 1 without shard points.
  public func shardRatio(share: Double, work: Work) -> Double {
    guard let shards, !shards.isEmpty, share > 0, share < 1 else { return 1 }
    let tokens: Double
    switch work {
    case .prefill(let t, _): tokens = Double(t)
    case .decode: tokens = 1
    }
    let whole = Dictionary(prefill.map { ($0.tokens, $0.block) }, uniquingKeysWith: { a, _ in a })
    // A piecewise-linear function at `x` held within its knots.
    func clamped(_ f: PiecewiseLinear, _ x: Double) -> Double { f(min(max(x, f.knots[0]), f.knots[f.knots.count - 1])) }
    var shares: [Double] = []
    var ratios: [Double] = []
    for n in Set(shards.map(\.members)).sorted(by: >) {
      var byLength: [Int: Double] = [:]
      for p in shards where p.members == n && byLength[p.tokens] == nil {
        if let w = whole[p.tokens], w > 0 { byLength[p.tokens] = p.block * Double(n) / w }
      }
      guard !byLength.isEmpty else { continue }
      let lengths = byLength.keys.sorted()
      let ratio = PiecewiseLinear(knots: lengths.map(Double.init), values: lengths.map { byLength[$0]! })
      shares.append(1 / Double(n))
      ratios.append(clamped(ratio, tokens))
    }
    guard !shares.isEmpty else { return 1 }
    return clamped(PiecewiseLinear(knots: shares + [1], values: ratios + [1]), share)
  }

  public static func shape(of c: ModelConfig) -> String {
    "h\(c.hiddenSize)-i\(c.intermediateSize)-q\(c.numAttentionHeads)-kv\(c.numKeyValueHeads)-d\(c.headDim)-v\(c.vocabSize)"
  }

  /// Seconds of one layer of kind `kind` for `work`, from the fit.
  public func time(_ kind: LayerKind, _ work: Work) -> Double {
    switch work {
    case .prefill(let t, let past):
      let tokens = Double(t)
      switch kind {
      case .embedding: return fit.prefillEmbed(tokens)
      case .head: return fit.prefillHead(tokens)
      case .block:
        // A prompt written after `past` cached tokens also attends to them: the decode fit's cost per context
        // token, for each new token.
        let extra = past > 0 ? fit.decodeBlockPerContext(1) * Double(past) * tokens : 0
        return fit.prefillBlock(tokens) + extra
      }
    case .decode(let contexts):
      let b = Double(max(contexts.count, 1))
      switch kind {
      case .embedding: return fit.decodeEmbed(b)
      case .head: return fit.decodeHead(b)
      case .block:
        let mean = contexts.isEmpty ? 0 : Double(contexts.reduce(0, +)) / Double(contexts.count)
        return fit.decodeBlockBase(b) + fit.decodeBlockPerContext(b) * mean
      }
    }
  }

  /// Fits the functions to measured points: prefill through every measured length (the engine switches kernels
  /// between one token and several, so the curve has a knee no coarser fit follows), decode with a straight line
  /// in context per measured batch size (attention over the cache grows linearly with it).
  public static func fitting(prefill: [PrefillPoint], decode: [DecodePoint]) throws(ProfileError) -> Fit {
    func knots(_ xs: [Double]) -> [Double] { Array(Set(xs)).sorted() }
    func fit(_ name: String, _ pts: [(x: Double, y: Double)], knots k: [Double]) throws(ProfileError)
      -> PiecewiseLinear
    {
      guard let f = PiecewiseLinear.fit(knots: k, points: pts) else {
        throw ProfileError("cannot fit \(name): \(pts.count) points do not determine \(k.count) knots")
      }
      return f
    }
    let pk = knots(prefill.map { Double($0.tokens) })
    let batches = Array(Set(decode.map(\.batch))).sorted()
    var base: [(x: Double, y: Double)] = []
    var slope: [(x: Double, y: Double)] = []
    for b in batches {
      let pts = decode.filter { $0.batch == b }.map { (x: Double($0.context), y: $0.block) }
      let cs = Array(Set(pts.map(\.x))).sorted()
      guard cs.count >= 2 else { throw ProfileError("decode at batch \(b) needs at least two contexts") }
      let line = try fit("decode block at batch \(b)", pts, knots: [cs.first!, cs.last!])
      let s = (line.values[1] - line.values[0]) / (cs.last! - cs.first!)
      base.append((Double(b), line.values[0] - s * cs.first!))
      slope.append((Double(b), s))
    }
    let bk = batches.map(Double.init)
    // The embedding and the head do not depend on the context: per batch size, the median over contexts.
    func perBatch(_ value: (DecodePoint) -> Double) -> [(x: Double, y: Double)] {
      batches.map { b in
        let v = decode.filter { $0.batch == b }.map(value).sorted()
        return (Double(b), v[v.count / 2])
      }
    }
    return Fit(
      prefillEmbed: try fit("prefill embed", prefill.map { (Double($0.tokens), $0.embed) }, knots: pk),
      prefillBlock: try fit("prefill block", prefill.map { (Double($0.tokens), $0.block) }, knots: pk),
      prefillHead: try fit("prefill head", prefill.map { (Double($0.tokens), $0.head) }, knots: pk),
      decodeEmbed: try fit("decode embed", perBatch(\.embed), knots: bk),
      decodeHead: try fit("decode head", perBatch(\.head), knots: bk),
      decodeBlockBase: PiecewiseLinear(knots: bk, values: base.map(\.y)),
      decodeBlockPerContext: PiecewiseLinear(knots: bk, values: slope.map(\.y)))
  }

  func problems() -> [String] {
    var p: [String] = []
    if prefill.count + decode.count > HostProfile.maxPoints {
      p.append("points: at most \(HostProfile.maxPoints) (there are \(prefill.count + decode.count))")
    }
    let values = prefill.flatMap { [$0.embed, $0.block, $0.head] } + decode.flatMap { [$0.embed, $0.block, $0.head] }
    if !values.allSatisfy({ $0 >= 0 && $0.isFinite }) { p.append("points: times must be non-negative and finite") }
    if let shards {
      if shards.count > HostProfile.maxPoints { p.append("shards: at most \(HostProfile.maxPoints) points") }
      let lengths = Set(prefill.map(\.tokens))
      for (i, s) in shards.prefix(HostProfile.maxPoints).enumerated() {
        if s.members < 2 || s.members > 1024 { p.append("shards[\(i)].members must be 2…1024 (it is \(s.members))") }
        if !lengths.contains(s.tokens) {
          p.append("shards[\(i)].tokens (\(s.tokens)) must be one of the prefill points' lengths")
        }
        if !(s.block > 0 && s.block.isFinite) { p.append("shards[\(i)].block must be a positive, finite time") }
      }
    }
    let spreads = prefill.compactMap(\.blockSpread) + decode.compactMap(\.blockSpread)
    if !spreads.allSatisfy({ $0 >= 0 && $0.isFinite }) { p.append("points: block_spread must be finite and ≥ 0") }
    for (name, f) in fit.all { p += f.problems("fit.\(name)") }
    return p
  }
}

/// A profile that cannot be made or used, with what to do.
public struct ProfileError: Error, CustomStringConvertible, Sendable {
  public var description: String
  public init(_ description: String) { self.description = description }
}
