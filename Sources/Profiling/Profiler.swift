import CLinux
public import Catalog
public import CostModel
public import EdgeLabCore
import Engine
import Foundation
import Synchronization
import Transport

/// Measures this host into a `HostProfile`: the engine's per-layer times for model shapes, the one-way cost of a
/// pipeline message, the decode read bandwidth (alone and shared by co-located workers) and the offload store's
/// read bandwidth.
///
/// Layers are timed the way a run uses them, so that caches hold what they would: a pass runs the embedding,
/// every decoder block, then the head, and each part is timed; a block's time is the blocks' time divided by
/// their number (a single block measured alone would stay in the last-level cache). Every point is the median
/// of `repetitions` passes.
public struct Profiler: Sendable {
  public struct Options: Sendable {
    public var threads = 1
    public var repetitions = 5
    public var prefillTokens = [1, 4, 16, 32, 64, 128, 256]
    public var decodeBatches = [1, 2, 4, 8]
    public var decodeContexts = [16, 64, 256, 512]
    /// Even tensor-parallel splits whose member's part of a block is timed at every prefill length (those the
    /// model's KV heads and FFN columns divide).
    public var shardMembers = [2, 4]
    public var messageBytes = [64, 1024, 4096, 16384, 65536, 262_144]
    /// Samples per message size and per wait.
    public var messageSamples = 200
    /// How long a pipeline stage's receiver is taken to wait where the wait is not known (the partition
    /// problem's hops).
    public var messageGap = 0.002
    /// The receiver's waits the wake-up is measured after, increasing from 0.
    public var wakeGaps = [0, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008]
    public var storageDirectory = NSTemporaryDirectory()
    public init() {}
  }

  public var options: Options
  /// Progress lines (to stderr in the CLI).
  public var log: @Sendable (String) -> Void

  public init(options: Options = Options(), log: @escaping @Sendable (String) -> Void = { _ in }) {
    self.options = options
    self.log = log
  }

  public func profile(name: String, models: [ModelPreset], precision: Precision = .fp32) throws -> HostProfile {
    log("decode read bandwidth (\(options.threads) thread(s))")
    let decode = try hostDecodeBandwidth(threads: options.threads)
    let shared = try measureSharedBandwidth()
    log("offload store reads")
    let storage = try OffloadStore.measureReadBandwidth(directory: options.storageDirectory, bytes: 256 << 20)
    log("messages over loopback TCP")
    let message = try measureMessages()
    var tables: [ModelProfile] = []
    var flops = 0.0
    for m in models {
      log("layers of \(m.name)")
      let t = try measureModel(m, precision: precision)
      tables.append(t)
      // The largest prefill measured: its block's FLOP rate stands for large products on this host.
      let layers = ModelLayers(config: m.config, precision: precision)
      let tokens = options.prefillTokens.max() ?? 1
      let seconds = t.fit.prefillBlock(Double(tokens))
      if seconds > 0 { flops = max(flops, layers.layers[1].flops(.prefill(tokens: tokens)) / seconds) }
    }
    guard flops > 0 else { throw ProfileError("no prefill was measured; give at least one model") }
    var profile = HostProfile(
      name: name,
      host: HostFacts(
        cpu: Self.cpuName(), cores: ProcessInfo.processInfo.activeProcessorCount, threads: options.threads,
        blasCore: BLASCore.current, kernels: Kernels.isa, measuredAt: Self.timestamp()),
      decodeBandwidth: decode, storageReadBandwidth: storage, prefillFlops: FlopRate(flopsPerSecond: flops),
      message: message, models: tables)
    profile.sharedDecodeBandwidth = shared
    return profile
  }

  /// `profile` with one more model's table: `preset` at `precision`, computed in `arithmetic` (synthetic weights
  /// of that storage type time as a checkpoint's do). A profile keeps one table per shape and precision.
  public func adding(
    _ preset: ModelPreset, precision: Precision, arithmetic: Arithmetic, to profile: HostProfile
  ) throws -> HostProfile {
    var p = profile
    log("layers of \(preset.name) (\(precision.rawValue), \(arithmetic.rawValue) arithmetic)")
    let table = try measureModel(preset, precision: precision, arithmetic: arithmetic)
    p.models.removeAll { $0.shape == table.shape && $0.precision == precision }
    p.models.append(table)
    return p
  }

  /// The decode read bandwidth of 1 … n workers at once, n this host's cores (at most 8).
  public func measureSharedBandwidth() throws -> [Bandwidth] {
    let cores = min(ProcessInfo.processInfo.activeProcessorCount, 8)
    log("decode read bandwidth shared by 1–\(cores) workers")
    return try sharedDecodeBandwidth(workers: cores)
  }

  // MARK: - Layers

  func measureModel(_ preset: ModelPreset, precision: Precision, arithmetic: Arithmetic = .exact) throws
    -> ModelProfile
  {
    let c = preset.config
    let dtype = WeightDType(precision)
    let weights = SyntheticWeights(config: c, seed: 11, dtype: dtype)
    let l = c.numHiddenLayers
    let embed = try LlamaStage(weights: weights, layers: 0..<1, threads: options.threads, arithmetic: arithmetic)
    let blocks = try LlamaStage(
      weights: weights, layers: 1..<(l + 1), threads: options.threads, arithmetic: arithmetic)
    let head = try LlamaStage(
      weights: weights, layers: (l + 1)..<(l + 2), threads: options.threads, arithmetic: arithmetic)
    // Member 0 of each even split, over every block as a worker holds them.
    let splits =
      16 + options.prefillTokens.count * (options.repetitions + 1) < c.maxPositionEmbeddings
      ? options.shardMembers.filter {
        $0 >= 2 && $0 <= c.numKeyValueHeads && c.numKeyValueHeads % $0 == 0 && c.intermediateSize % $0 == 0
      } : []
    let shardStages = try splits.map { n in
      try LlamaStage(
        weights: weights, layers: 1..<(l + 1), threads: options.threads, arithmetic: arithmetic,
        shard: TensorShard.member(
          0, kvHeads: Array(repeating: c.numKeyValueHeads / n, count: n),
          ffnColumns: Array(repeating: c.intermediateSize / n, count: n)))
    }
    var rng = SeededRandom(seed: 12)
    func tokens(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32(rng.next() % UInt64(c.vocabSize)) } }
    func hidden(_ n: Int) -> [Float] { (0..<(n * c.hiddenSize)).map { _ in Float(rng.nextUnit() * 2 - 1) } }
    func timed(_ body: () -> StageOutput) -> (Double, StageOutput) {
      let t0 = monotonicSeconds()
      let out = body()
      return (monotonicSeconds() - t0, out)
    }
    var sequence = 1_000_000
    // Every repetition visits every point once (round robin), so that this machine's drifting memory bandwidth
    // moves all points alike instead of bending the curves; the first round warms up and is not counted.
    let lengths = options.prefillTokens.filter { $0 <= c.maxPositionEmbeddings }
    var prefillTimes = [[(Double, Double, Double)]](repeating: [], count: lengths.count)
    var shardTimes = [[[Double]]](repeating: [[Double]](repeating: [], count: lengths.count), count: splits.count)
    // A sequence each member's part decodes one step of before every timed prompt (its cache filled first).
    sequence += 1
    var shardWarm = (id: sequence, position: 16)
    for stage in shardStages {
      _ = stage.forward(
        [SequenceSpan(id: shardWarm.id, start: 0, count: shardWarm.position)], .hidden(hidden(shardWarm.position)),
        exchange: Unshared())
    }
    struct DecodeSet {
      var batch: Int
      var context: Int
      var ids: [Int]
      var position: Int
    }
    var sets: [DecodeSet] = []
    for batch in options.decodeBatches {
      for context in options.decodeContexts.sorted()
      where context + options.repetitions + 1 <= c.maxPositionEmbeddings {
        var ids: [Int] = []
        for _ in 0..<batch {
          sequence += 1
          ids.append(sequence)
        }
        // Each sequence's KV cache filled up to the context first.
        _ = blocks.forward(
          ids.map { SequenceSpan(id: $0, start: 0, count: context) }, .hidden(hidden(context * batch)))
        sets.append(DecodeSet(batch: batch, context: context, ids: ids, position: context))
      }
    }
    var decodeTimes = [[(Double, Double, Double)]](repeating: [], count: sets.count)
    for round in 0...options.repetitions {
      for (i, t) in lengths.enumerated() {
        // A prompt in a run comes after decode steps, not after another prompt: one untimed decode pass first.
        if let warm = sets.first {
          let spans = warm.ids.map { SequenceSpan(id: $0, start: warm.position, count: 1) }
          _ = head.forward(spans, .hidden(blocks.forward(spans, .hidden(hidden(warm.batch))).floats))
          sets[0].position += 1
        }
        sequence += 1
        let span = [SequenceSpan(id: sequence, start: 0, count: t)]
        let (te, x) = timed { embed.forward(span, .tokens(tokens(t))) }
        let (tb, y) = timed { blocks.forward(span, .hidden(x.floats)) }
        let (th, _) = timed { head.forward(span, .hidden(y.floats)) }
        blocks.release(sequence: sequence)
        if round > 0 { prefillTimes[i].append((te, tb / Double(l), th)) }
        // The members' parts right after, on the same input (no exchange: the sums do not change the time),
        // each after an untimed decode step of its own, as a member's prompt comes after its decode steps.
        for (k, stage) in shardStages.enumerated() {
          let warm = [SequenceSpan(id: shardWarm.id, start: shardWarm.position, count: 1)]
          _ = stage.forward(warm, .hidden(hidden(1)), exchange: Unshared())
          let (ts, _) = timed { stage.forward(span, .hidden(x.floats), exchange: Unshared()) }
          stage.release(sequence: sequence)
          if round > 0 { shardTimes[k][i].append(ts / Double(l)) }
        }
        shardWarm.position += 1
      }
      for i in sets.indices {
        let spans = sets[i].ids.map { SequenceSpan(id: $0, start: sets[i].position, count: 1) }
        let (te, x) = timed { embed.forward(spans, .tokens(tokens(sets[i].batch))) }
        let (tb, y) = timed { blocks.forward(spans, .hidden(x.floats)) }
        let (th, _) = timed { head.forward(spans, .hidden(y.floats)) }
        sets[i].position += 1
        if round > 0 { decodeTimes[i].append((te, tb / Double(l), th)) }
      }
    }
    for s in sets { for id in s.ids { blocks.release(sequence: id) } }
    for stage in shardStages { stage.release(sequence: shardWarm.id) }
    let prefill = lengths.enumerated().map { i, t in
      ModelProfile.PrefillPoint(
        tokens: t, embed: median(prefillTimes[i].map(\.0)[...]), block: median(prefillTimes[i].map(\.1)[...]),
        head: median(prefillTimes[i].map(\.2)[...]), blockSpread: spread(prefillTimes[i].map(\.1)))
    }
    let decode = sets.enumerated().map { i, s in
      ModelProfile.DecodePoint(
        batch: s.batch, context: s.context, embed: median(decodeTimes[i].map(\.0)[...]),
        block: median(decodeTimes[i].map(\.1)[...]), head: median(decodeTimes[i].map(\.2)[...]),
        blockSpread: spread(decodeTimes[i].map(\.1)))
    }
    let shards = splits.enumerated().flatMap { k, n in
      lengths.enumerated().map { i, t in
        ModelProfile.ShardPoint(members: n, tokens: t, block: median(shardTimes[k][i][...]))
      }
    }
    let fit = try ModelProfile.fitting(prefill: prefill, decode: decode)
    return ModelProfile(
      model: preset.name, config: c, precision: precision, prefill: prefill, decode: decode, fit: fit,
      shards: shards.isEmpty ? nil : shards)
  }

  // MARK: - Messages

  /// One-way time of an activation message between two pipeline stages over loopback TCP, along a worker's
  /// path: from just before the sender encodes it to when the receiving thread has decoded it (a worker computes
  /// on the thread that reads its input), the two on cores of their own where the machine has two, as
  /// `CPUPlacement` places workers, so that the wake-up crosses cores as in a run. Over its size with the
  /// receiver just started waiting (the sender sends again as soon as the reply is in), and, for a small message,
  /// over how long the receiver waited (the sender computing for that long first, reading through memory as a
  /// stage streams its weights). Every round visits every
  /// point once, so that drift moves all points alike. Each point is the mean of its samples but the slowest 1%:
  /// a run's time per token is a mean, and a virtual machine's wake-ups have a long tail (here the mean of a
  /// message after 3 ms of waiting was 1.7 × its median) that a median or a trimmed mean leaves out.
  public func measureMessages() throws -> MessageProfile {
    let token = Array("profile-token".utf8)
    let listener = try Listener(host: "127.0.0.1", port: 0, token: token)
    defer { listener.close() }
    let cpus = Self.affinity()
    let (senderCPU, receiverCPU): ([Int32]?, [Int32]?) = cpus.count >= 2 ? ([cpus[0]], [cpus[1]]) : (nil, nil)
    let sentAt = Atomic<UInt64>(0)
    let last = Atomic<UInt64>(0)
    let echo = Thread {
      if let receiverCPU { _ = el_set_affinity(0, receiverCPU, Int32(receiverCPU.count)) }
      guard let c = try? listener.accept() else { return }
      while let f = try? c.receive() {
        guard (try? ActivationMessage.decode(f.payload)) != nil else { break }
        last.store(monotonicNanoseconds() &- sentAt.load(ordering: .acquiring), ordering: .releasing)
        try? c.send(.control, [1])
      }
      c.close()
    }
    echo.start()
    // The sender is this thread, on a core of its own while measuring.
    if let senderCPU { _ = el_set_affinity(0, senderCPU, Int32(senderCPU.count)) }
    defer { if !cpus.isEmpty { _ = el_set_affinity(0, cpus, Int32(cpus.count)) } }
    let c = try Connection.connect(to: listener.endpoint, token: token, name: "profile")
    defer { c.close() }
    func message(_ bytes: Int) -> [UInt8] {
      ActivationMessage(
        batch: 1, stage: 1, prefill: false, spans: [.init(id: 1, start: 0, count: 1)],
        values: [Float](repeating: 0.5, count: max(1, bytes / 4))
      ).encoded(halfPrecision: false)
    }
    // While it waits, a worker of a run has the other stages stream their weights through the host's shared
    // caches: the sender "computes" by reading through memory larger than a last-level cache, so that the receiver
    // wakes to caches that no longer hold its code and data, as in the run.
    let traffic = CacheSweep(bytes: Self.computeTrafficBytes)
    /// One message after `gap` seconds of the sender computing; its one-way seconds.
    func once(_ m: [UInt8], gap: Double) throws -> Double {
      let until = monotonicSeconds() + gap
      while monotonicSeconds() < until { traffic?.read(lines: 64) }
      sentAt.store(monotonicNanoseconds(), ordering: .releasing)
      try c.send(.activation, m)
      _ = try c.receive()
      return Double(last.load(ordering: .acquiring)) * 1e-9
    }
    let sized = options.messageBytes.map(message)
    let small = message(Self.wakeMessageBytes)
    let gaps = options.wakeGaps
    var sizeSamples = [[Double]](repeating: [], count: sized.count)
    var gapSamples = [[Double]](repeating: [], count: gaps.count)
    for round in 0..<(options.messageSamples + 10) {
      for (i, m) in sized.enumerated() {
        let s = try once(m, gap: 0)
        if round >= 10 { sizeSamples[i].append(s) }
      }
      for (i, g) in gaps.enumerated() {
        let s = try once(small, gap: g)
        if round >= 10 { gapSamples[i].append(s) }
      }
    }
    let points = zip(sized, sizeSamples).map { m, s in
      MessageProfile.Point(bytes: m.count + Wire.headerSize, seconds: meanBelowSlowest(s))
    }
    let knots = points.map { Double($0.bytes) }
    guard
      let fit = PiecewiseLinear.fit(knots: knots, points: points.map { (Double($0.bytes), $0.seconds) })
    else { throw ProfileError("cannot fit the message costs") }
    let base = gapSamples.first.map(meanBelowSlowest) ?? 0
    let wakePoints = zip(gaps, gapSamples).map { g, s in
      MessageProfile.WakePoint(idle: g, seconds: max(0, meanBelowSlowest(s) - base))
    }
    let wake = PiecewiseLinear(knots: gaps, values: wakePoints.map(\.seconds))
    return MessageProfile(
      points: points, fit: fit, wakePoints: wakePoints, wake: wake, referenceIdle: options.messageGap)
  }

  /// The payload of the message the wake-up is measured with: a small model's hidden state of one token.
  static let wakeMessageBytes = 2048
  /// What the sender reads through between messages (from where it stopped, around): a 2 ms wait reads some
  /// tens of megabytes of it at a core's streaming rate.
  static let computeTrafficBytes = 256 << 20

  /// (largest − smallest) / median of `v`; nil when empty.
  func spread(_ v: [Double]) -> Double? {
    guard let lo = v.min(), let hi = v.max() else { return nil }
    let m = median(v[...])
    return m > 0 ? (hi - lo) / m : nil
  }

  /// The mean of `v` without its slowest 1% (a preemption of milliseconds in a few hundred samples would
  /// otherwise decide it).
  func meanBelowSlowest(_ v: [Double]) -> Double {
    let s = v.sorted().dropLast(v.count / 100)
    return s.isEmpty ? .nan : s.reduce(0, +) / Double(s.count)
  }

  // MARK: - Helpers

  /// The CPUs this thread may run on.
  static func affinity() -> [Int32] {
    var out = [Int32](repeating: 0, count: 1024)
    let n = el_get_affinity(&out, Int32(out.count))
    return n > 0 ? Array(out.prefix(Int(n))) : []
  }

  func median(_ v: ArraySlice<Double>) -> Double {
    let s = v.sorted()
    return s.isEmpty ? .nan : s[s.count / 2]
  }

  func monotonicSeconds() -> Double { Double(monotonicNanoseconds()) * 1e-9 }

  static func cpuName() -> String {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
    for line in text.split(separator: "\n") where line.hasPrefix("model name") {
      return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
    }
    return "unknown"
  }

  public static func timestamp() -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    return f.string(from: Date())
  }
}
