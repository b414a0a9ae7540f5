public import Catalog
public import CostModel
import EdgeLabCore
public import Engine
public import Execution
import Foundation
public import Metrics
public import Pipeline
public import Spec
public import Transport

/// Where a worker gets its weights.
public struct WeightsSpec: Codable, Sendable, Hashable {
  /// A local Hugging Face checkpoint directory (on the worker's machine).
  public var checkpoint: String?
  /// A model preset for synthetic weights.
  public var preset: String?
  public var seed: UInt64
  /// The storage type of synthetic weights ("F32", "BF16", "F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K" or "Q6_K").
  public var dtype: String
  /// "native" or "fp32" for checkpoint 16-bit weights.
  public var storage: String
  /// "exact" or "llama.cpp": whose rounding the stages reproduce (exact when absent).
  public var arithmetic: String?

  public init(
    checkpoint: String? = nil, preset: String? = nil, seed: UInt64 = 1, dtype: String = "F32",
    storage: String = "native", arithmetic: String? = nil
  ) {
    self.arithmetic = arithmetic
    self.checkpoint = checkpoint
    self.preset = preset
    self.seed = seed
    self.dtype = dtype
    self.storage = storage
  }

  /// The weights of an experiment's model: its checkpoint, or synthetic weights of its preset.
  public init(_ x: ResolvedExperiment) {
    let w = x.spec.model
    self.init(
      checkpoint: w.checkpoint, preset: w.checkpoint == nil ? (w.preset ?? "tiny") : nil,
      seed: w.weightsSeed ?? x.spec.seed,
      dtype: WeightDType(w.precision).rawValue, arithmetic: w.arithmetic == .exact ? nil : w.arithmetic.rawValue)
  }

  /// The stages' rounding (exact if the field names none the engine knows).
  public var rounding: Arithmetic { arithmetic.flatMap(Arithmetic.init(rawValue:)) ?? .exact }

  public func source() -> ModelSource {
    if let checkpoint { return .checkpoint(path: checkpoint, storage: WeightStorage(rawValue: storage) ?? .native) }
    return .synthetic(preset: preset ?? "tiny", seed: seed, dtype: WeightDType(rawValue: dtype) ?? .f32)
  }
}

/// One pipeline stage a worker runs.
public struct StageAssignment: Codable, Sendable, Hashable {
  /// Position in the pipeline (a device may run several: interleaved chunks).
  public var index: Int
  public var firstLayer: Int
  public var endLayer: Int
  /// Layers read from local storage before each use when the run starts.
  public var offloaded: [Int]
  /// KV-cache bytes one token of context takes in this stage's layers (as the cost model counts them): what
  /// residency adapts to, the same quantity the simulator tracks.
  public var kvBytesPerToken: Double
  /// This worker's part of a stage that a tensor-parallel group shares (nil: the whole stage).
  public var shard: ShardAssignment? = nil

  public init(
    index: Int, firstLayer: Int, endLayer: Int, offloaded: [Int] = [], kvBytesPerToken: Double = 0,
    shard: ShardAssignment? = nil
  ) {
    self.index = index
    self.firstLayer = firstLayer
    self.endLayer = endLayer
    self.offloaded = offloaded
    self.kvBytesPerToken = kvBytesPerToken
    self.shard = shard
  }

  /// Whether this worker runs the stage as the pipeline sees it (receives its input, sends its output): the
  /// stage is its own, or it leads the stage's group.
  public var leads: Bool { (shard?.member ?? 0) == 0 }
}

/// A member's place in a tensor-parallel group: the group's devices (the stage's device first), the KV heads
/// and FFN columns of each, and which of them this worker is. The first member receives the stage's input and
/// sends every member the hidden states; the partial results are summed in member order by the first member
/// (a star), or round a ring of the members (`ring`); the others compute their shares when the first asks.
public struct ShardAssignment: Codable, Sendable, Hashable {
  public var member: Int
  public var members: [String]
  public var kvHeads: [Int]
  public var ffnColumns: [Int]
  /// Partial sums go round a ring of the members in order (else: through the leader, a star).
  public var ring: Bool

  public init(member: Int, members: [String], kvHeads: [Int], ffnColumns: [Int], ring: Bool = false) {
    self.member = member
    self.members = members
    self.kvHeads = kvHeads
    self.ffnColumns = ffnColumns
    self.ring = ring
  }

  /// The next member round the ring and the previous one.
  public var successor: String { members[(member + 1) % members.count] }
  public var predecessor: String { members[(member + members.count - 1) % members.count] }

  /// This member's heads and columns.
  public var shard: TensorShard { TensorShard.member(member, kvHeads: kvHeads, ffnColumns: ffnColumns) }

  /// What is wrong with it for a worker on `device` in a stage led by `leader`, if anything.
  func problem(device: String, leader: String) -> String? {
    let n = members.count
    guard n >= 2, kvHeads.count == n, ffnColumns.count == n, (0..<n).contains(member) else {
      return
        "a group needs at least two members, one KV-head and one FFN-column share each, and this worker's place among them"
    }
    guard members[member] == device, members[0] == leader, Set(members).count == n else {
      return
        "the group's members \(members) must be distinct, led by the stage's device \(leader), and include \(device) at \(member)"
    }
    guard kvHeads.allSatisfy({ (1...(1 << 16)).contains($0) }), ffnColumns.allSatisfy({ (1...(1 << 24)).contains($0) })
    else { return "shares must be positive and bounded" }
    return nil
  }
}

/// The bounds every message of a run must keep, derived from the model and the workload. A worker refuses
/// anything outside them before it reaches the engine.
public struct RunLimits: Codable, Sendable, Hashable {
  /// Hidden size and vocabulary of the model.
  public var hiddenSize: Int
  public var vocabSize: Int
  /// Requests of the run: sequence ids are 0..<requests.
  public var requests: Int
  /// Longest prompt, and longest context (prompt + output) any sequence reaches.
  public var maxPromptTokens: Int
  public var maxContextTokens: Int
  /// Most decode steps in one micro-batch.
  public var maxBatch: Int
  /// Most tokens of one speculative verification (the lookahead + 1); nil or 0: the run does not speculate and
  /// a verification is refused.
  public var verifyTokens: Int? = nil

  public init(
    hiddenSize: Int, vocabSize: Int, requests: Int, maxPromptTokens: Int, maxContextTokens: Int, maxBatch: Int
  ) {
    self.hiddenSize = hiddenSize
    self.vocabSize = vocabSize
    self.requests = requests
    self.maxPromptTokens = maxPromptTokens
    self.maxContextTokens = maxContextTokens
    self.maxBatch = maxBatch
  }

  /// Most tokens one micro-batch carries.
  public var maxTokensPerBatch: Int { max(maxPromptTokens, maxBatch, verifyTokens ?? 0) }

  /// The largest payload of a data frame: a micro-batch's spans and its hidden states in FP32 (`Wire`'s limit
  /// when that would overflow).
  public var maxActivationPayload: Int {
    let values = maxTokensPerBatch.multipliedReportingOverflow(by: hiddenSize)
    let bytes = values.partialValue.multipliedReportingOverflow(by: 4)
    let spans = max(maxBatch, 1).multipliedReportingOverflow(by: 16)
    let total = bytes.partialValue.addingReportingOverflow(spans.partialValue)
    guard !values.overflow, !bytes.overflow, !spans.overflow, !total.overflow else { return Wire.defaultMaxPayload }
    return min(Wire.defaultMaxPayload, 64 + total.partialValue)
  }

  /// What is out of range, if anything. Limits bound what workers allocate, so each has a ceiling.
  public var problem: String? {
    let ceiling = 1 << 24
    let named: [(String, Int)] = [
      ("hidden_size", hiddenSize), ("vocab_size", vocabSize), ("max_batch", maxBatch),
      ("max_prompt_tokens", maxPromptTokens),
      ("max_context_tokens", maxContextTokens),
    ]
    if let (name, v) = named.first(where: { !(1...ceiling).contains($0.1) }) {
      return "\(name) \(v) outside 1...\(ceiling)"
    }
    if !(0...ceiling).contains(requests) { return "requests \(requests) outside 0...\(ceiling)" }
    if let v = verifyTokens, !(0...1024).contains(v) { return "verify_tokens \(v) outside 0...1024" }
    if maxContextTokens < maxPromptTokens {
      return "max_context_tokens \(maxContextTokens) below max_prompt_tokens \(maxPromptTokens)"
    }
    return nil
  }
}

/// Everything a worker needs to take part in a run.
public struct Assignment: Codable, Sendable {
  /// The run, for logs.
  public var run: String
  public var device: String
  public var weights: WeightsSpec
  public var threads: Int
  public var stages: [StageAssignment]
  public var stageCount: Int
  /// The device that runs each pipeline stage, by stage index.
  public var stageDevices: [String]
  /// Data endpoints of the other workers, by device.
  public var peers: [String: Endpoint]
  public var source: String
  public var limits: RunLimits
  public var halfPrecisionWire: Bool
  /// How this device keeps its layers in memory (nil: every layer resident).
  public var residency: ResidencyPolicy.Device?
  /// Directory for this worker's offloaded-layer store.
  public var storageDirectory: String
  /// Storage read pacing for offloaded layers (bytes/s of wall time; nil: as fast as the disk).
  public var storageBytesPerSecond: Double?
  /// Emulated delay of the links into this worker, by sending device.
  public var delays: [String: LinkDelay]
  /// Sender-side pacing of outbound links, bytes/s by destination device (userspace shaping).
  public var pacing: [String: Double]
  public var seed: UInt64
  /// Wall seconds per device second (time dilation; 1 without emulation).
  public var dilation: Double
  /// The source's scheduling (nil on other workers).
  public var scheduler: PipelineScheduler.Configuration?
  /// This device's memory account, where the run fails when its KV cache outgrows it (memory admission "fail").
  public var failsBeyond: MemoryBudget.Device? = nil
  /// Record stage computations and arriving transfers for the run's timeline.
  public var recordEvents: Bool? = nil
  /// Pad each computation to this many wall seconds per CPU second (`LaunchTarget.computeStretch`).
  public var computeStretch: Double? = nil

  /// Whether this worker's computations take its own time: not paced to an emulated device, not stretched, no
  /// layers read from storage. Only such a worker calibrates (`CalibrationRequest`).
  public var computesAtOwnSpeed: Bool { pace == nil && (computeStretch ?? 1) <= 1 && residency == nil }
  /// An emulated device's time model: each computation of a stage it runs alone (no group, no offloaded layer)
  /// takes the model's time for its work × `dilation` in wall time, whatever this host's CPU took (nil: not
  /// emulated, or the stretch above).
  public var pace: ComputePace? = nil
  /// On the source of a speculative run: the draft it runs and how far it drafts (nil: no speculation).
  public var speculation: SpeculationAssignment? = nil
}

/// The time model an emulated worker paces its computations to, and the precision its layers are costed at.
public struct ComputePace: Codable, Sendable, Hashable {
  public var model: DevicePace
  public var precision: Precision
  public init(model: DevicePace, precision: Precision) {
    self.model = model
    self.precision = precision
  }
}

/// Speculative decoding at the source: it drafts with the target's own first `draftBlocks` blocks and its head
/// (a self-speculative draft, from the same weights), `lookahead` tokens at a time, and the pipeline verifies.
/// Requests are served one at a time in arrival order, as the simulator serves a strategy's requests.
public struct SpeculationAssignment: Codable, Sendable, Hashable {
  public var lookahead: Int
  public var draftBlocks: Int
  /// Requests arrive when the previous one finishes (a closed loop of one user), not at their arrival times.
  public var closedLoop: Bool

  public init(lookahead: Int, draftBlocks: Int, closedLoop: Bool) {
    self.lookahead = lookahead
    self.draftBlocks = draftBlocks
    self.closedLoop = closedLoop
  }
}

/// What one verification of a speculative run did.
public struct VerificationEvent: Codable, Sendable, Hashable {
  public var request: Int
  public var proposed: Int
  public var accepted: Int
  public init(request: Int, proposed: Int, accepted: Int) {
    self.request = request
    self.proposed = proposed
    self.accepted = accepted
  }
}

/// A request handed to the source worker before the run starts.
public struct RequestMessage: Codable, Sendable, Hashable {
  public var id: Int
  public var prompt: [Int32]
  public var outputLength: Int
  /// Arrival time in device seconds after the start (open loop).
  public var arrival: Double

  public init(id: Int, prompt: [Int32], outputLength: Int, arrival: Double = 0) {
    self.id = id
    self.prompt = prompt
    self.outputLength = outputLength
    self.arrival = arrival
  }
}

/// A token that reached the source.
public struct TokenEvent: Codable, Sendable, Hashable {
  public var request: Int
  public var index: Int
  public var token: Int32
  /// Device seconds since the run started at the source.
  public var time: Double
}

/// A request that arrived at the source.
public struct ArrivalEvent: Codable, Sendable, Hashable {
  public var request: Int
  /// Device seconds since the run started at the source.
  public var time: Double
}

/// How far work has gone through a worker: counters that only grow, reported with every heartbeat.
public struct WorkerProgress: Codable, Sendable, Hashable {
  public struct Stage: Codable, Sendable, Hashable {
    public var index: Int
    /// Micro-batches that arrived for this stage, and that it has passed on.
    public var received: UInt64
    public var completed: UInt64
  }
  public var stages: [Stage]
  /// On the source: micro-batches sent into the pipeline, and whose tokens came back.
  public var dispatched: UInt64
  public var returned: UInt64

  public init(stages: [Stage] = [], dispatched: UInt64 = 0, returned: UInt64 = 0) {
    self.stages = stages
    self.dispatched = dispatched
    self.returned = returned
  }
}

/// What a worker measured.
public struct WorkerStats: Codable, Sendable {
  public struct Stage: Codable, Sendable {
    public var index: Int
    public var computeSeconds: Double
    public var microBatches: Int
  }
  public struct Link: Codable, Sendable {
    public var to: String
    public var counters: LinkCounters
  }
  public var device: String
  public var stages: [Stage]
  public var links: [Link]
  public var peakResidentBytes: Int
  public var weightBytes: Int
  public var computeSeconds: Double
  public var loadStallSeconds: Double
  public var offloadReads: Int
  public var adaptations: Int
  /// Messages refused as invalid (each closed its connection).
  public var refusedMessages: Int
  /// The worker's part of the run's timeline, when it recorded one (at most `maxEvents`).
  public var events: [TimelineEvent]? = nil
  /// Paced computations (`Assignment.pace`) this host took more than 5% longer for than the emulated device's
  /// time × the dilation, and the wall seconds they took beyond it: the device ran slower than declared.
  public var paceOverruns: Int? = nil
  public var paceOverrunSeconds: Double? = nil
  public static let maxEvents = 200_000
}

/// Coordinator → worker: time your own layers on this work before (or after) the workload; nothing of the run
/// is touched (the calibration's sequences are its own, released after).
public struct CalibrationRequest: Codable, Sendable, Hashable {
  public struct Decode: Codable, Sendable, Hashable {
    /// Sequences decoding one token each, every one at `context` cached tokens (the step's token is dropped
    /// again after each pass, so every pass sees the same context).
    public var batch: Int
    public var context: Int
  }
  public var decode: [Decode]
  /// Prompt lengths.
  public var prefill: [Int]
  /// Rounds (every point once) go on, after one untimed round, until this many seconds have passed for a part
  /// of the model, between `minRepetitions` and `maxRepetitions` of them; each point's time is their mean. A
  /// host's speed drifts from second to second: the rounds average over as long.
  public var seconds: Double
  public var minRepetitions: Int
  public var maxRepetitions: Int
  /// Bytes the run's other workers read between two of this worker's computations (their weights): the worker
  /// reads as many through before each timed pass, so that the pass finds the host's shared caches and address
  /// translations as the run leaves them: on this project's 2-core VM (32 MB of L3), reading 50 MB again took 4%
  /// longer after 128 MB of other reads than back to back, 20 MB 27% longer. 0 for a run with no other worker.
  public var coldBytes: Int

  public init(
    decode: [Decode], prefill: [Int], seconds: Double, minRepetitions: Int, maxRepetitions: Int, coldBytes: Int = 0
  ) {
    self.decode = decode
    self.prefill = prefill
    self.seconds = seconds
    self.minRepetitions = minRepetitions
    self.maxRepetitions = maxRepetitions
    self.coldBytes = coldBytes
  }

  public static let maxPoints = 8
  /// The most `coldBytes` a worker reads through (and holds while it calibrates).
  public static let maxColdBytes = CacheSweep.maxBytes
  public static let repetitionLimit = 2000
  /// A worker ends its calibration after this many seconds in all, filling the caches included, whatever the
  /// request says (after at least one timed round of each part).
  public static let secondsLimit = 60.0

  /// What is wrong with the request under the run's limits (nil: nothing): every sequence it makes must fit
  /// what the run's own sequences may reach.
  public func problem(_ l: RunLimits) -> String? {
    if decode.count + prefill.count == 0 { return "no point to time" }
    if decode.count > Self.maxPoints || prefill.count > Self.maxPoints {
      return "at most \(Self.maxPoints) decode and \(Self.maxPoints) prompt points"
    }
    if !(1...Self.repetitionLimit).contains(minRepetitions)
      || !(minRepetitions...Self.repetitionLimit).contains(maxRepetitions)
    {
      return "repetitions must be 1 ≤ min ≤ max ≤ \(Self.repetitionLimit), not \(minRepetitions)…\(maxRepetitions)"
    }
    if !(seconds >= 0 && seconds <= Self.secondsLimit) { return "seconds must be in [0, \(Self.secondsLimit)]" }
    if !(0...Self.maxColdBytes).contains(coldBytes) {
      return "cold bytes must be in [0, \(Self.maxColdBytes)], not \(coldBytes)"
    }
    let batch = max(1, min(l.maxBatch, l.requests))
    for d in decode {
      if !(1...batch).contains(d.batch) {
        return "a decode batch of \(d.batch) is outside the run's 1…\(batch)"
      }
      if !(1..<l.maxContextTokens).contains(d.context) {
        return
          "a decode context of \(d.context) leaves no room for its token in the run's longest (\(l.maxContextTokens))"
      }
    }
    // The decode points' sequences are held together: at most twice the run's largest batch.
    if decode.reduce(0, { $0 + $1.batch }) > 2 * batch {
      return "the decode points hold more than \(2 * batch) sequences at once"
    }
    if let t = prefill.first(where: { !(1...l.maxPromptTokens).contains($0) }) {
      return "a prompt of \(t) tokens is outside the run's 1…\(l.maxPromptTokens)"
    }
    return nil
  }
}

/// Worker → coordinator: what a calibration timed, per part of the model the worker computes.
public struct WorkerCalibration: Codable, Sendable, Hashable {
  public struct Part: Codable, Sendable, Hashable {
    /// The stage it belongs to; nil for a speculative source's draft.
    public var stage: Int?
    /// The model's layers it runs (a group member: its share of these blocks).
    public var layers: [Int]
    /// Mean seconds per point, in the request's order.
    public var decode: [Double]
    public var prefill: [Double]

    public init(stage: Int?, layers: [Int], decode: [Double], prefill: [Double]) {
      self.stage = stage
      self.layers = layers
      self.decode = decode
      self.prefill = prefill
    }
  }
  /// Empty where the worker does not compute at its own speed (paced to an emulated device, or reading layers
  /// from storage).
  public var parts: [Part]

  public init(parts: [Part]) { self.parts = parts }
}

/// Control messages (JSON in `control` frames).
public enum ControlMessage: Codable, Sendable {
  /// Coordinator → worker: your part of the run.
  case assign(Assignment)
  /// Worker → coordinator: weights loaded.
  case ready(weightBytes: Int, loadSeconds: Double)
  /// Coordinator → worker: open the data connections to your successors.
  case link
  /// Worker → coordinator: data connections open.
  case linked
  /// Coordinator → source worker: requests of the run (several messages, before `start`).
  case workload([RequestMessage])
  /// Coordinator → source worker: the run starts now.
  case start
  /// Source worker → coordinator: requests arrived.
  case arrivals([ArrivalEvent])
  /// Source worker → coordinator: tokens reached the source.
  case tokens([TokenEvent])
  /// Source worker → coordinator: requests that have all their tokens.
  case finished([Int])
  /// Source worker → coordinator: verifications of a speculative run.
  case verifications([VerificationEvent])
  /// Source worker → coordinator: a request can never be admitted (it needs more KV cache than allowed).
  case refusedRequest(id: Int, reason: String)
  /// Coordinator → every worker: drop these sequences' KV caches.
  case release([Int])
  /// Coordinator → worker (not while work is in flight): time your layers; answered with `calibrated`.
  case calibrate(CalibrationRequest)
  case calibrated(WorkerCalibration)
  /// Worker → coordinator, every heartbeat: how far work has gone.
  case progress(WorkerProgress)
  case collect
  case stats(WorkerStats)
  case shutdown
  /// Worker → coordinator: something went wrong that stops the run.
  case failure(String)
  /// Worker → coordinator: something went wrong that the worker survived (a refused message).
  case warning(String)

  /// The message's name ("assign", "tokens", …), for logs and errors.
  public var kind: String { String(describing: self).split(separator: "(").first.map(String.init) ?? "?" }

  public func frame() throws -> [UInt8] { Array(try JSONCoder.encoder.encode(self)) }
  public static func decode(_ payload: [UInt8]) throws -> ControlMessage {
    try JSONCoder.decoder.decode(ControlMessage.self, from: Data(payload))
  }
}

/// Largest control frame either side accepts: an assignment or a chunk of the workload.
public let maxControlPayload = 32 << 20

enum JSONCoder {
  static let encoder = JSONEncoder()
  static let decoder = JSONDecoder()
}
