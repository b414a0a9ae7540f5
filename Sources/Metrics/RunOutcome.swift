public import EdgeLabCore

/// One request as it ran. Times are seconds since the run started (device time for emulated runs).
public struct RequestRecord: Hashable, Sendable, Codable {
  public var id: Int
  public var arrival: Double
  /// When the first output token reached the source; nil if it never did.
  public var firstToken: Double?
  public var completion: Double?
  public var promptTokens: Int
  public var outputTokens: Int
  /// When each output token reached the source, in order.
  public var tokenTimes: [Double]

  public init(
    id: Int, arrival: Double, firstToken: Double? = nil, completion: Double? = nil, promptTokens: Int,
    outputTokens: Int, tokenTimes: [Double] = []
  ) {
    self.id = id
    self.arrival = arrival
    self.firstToken = firstToken
    self.completion = completion
    self.promptTokens = promptTokens
    self.outputTokens = outputTokens
    self.tokenTimes = tokenTimes
  }

  public var isComplete: Bool { completion != nil }
  public var ttft: Double? { firstToken.map { $0 - arrival } }
  /// Time per output token after the first: (completion − first token) / (tokens − 1).
  public var tpot: Double? {
    guard let f = firstToken, let c = completion, tokenTimes.count > 1 else { return nil }
    return (c - f) / Double(tokenTimes.count - 1)
  }
  public var endToEnd: Double? { completion.map { $0 - arrival } }
}

/// Traffic on one directed link.
public struct LinkRecord: Hashable, Sendable, Codable {
  public var from: String
  public var to: String
  public var bytes: Double
  public var messages: Int
  /// Time the link spent transmitting.
  public var busySeconds: Double
  /// How the link was realised: "simulated", "loopback-tcp", "tc-htb+nft-loss+transport-delay", …
  public var mechanism: String

  public init(from: String, to: String, bytes: Double, messages: Int, busySeconds: Double, mechanism: String) {
    self.from = from
    self.to = to
    self.bytes = bytes
    self.messages = messages
    self.busySeconds = busySeconds
    self.mechanism = mechanism
  }
}

/// Where one device's time and memory went.
public struct DeviceRecord: Hashable, Sendable, Codable {
  public var name: String
  public var peakMemoryBytes: Double
  public var computeSeconds: Double
  /// Time spent sending and receiving activations (blocking on the network).
  public var transferSeconds: Double
  /// Time spent waiting for offloaded layers to load (not hidden behind other work).
  public var loadStallSeconds: Double
  public var idleSeconds: Double

  public init(
    name: String, peakMemoryBytes: Double, computeSeconds: Double, transferSeconds: Double,
    loadStallSeconds: Double, idleSeconds: Double
  ) {
    self.name = name
    self.peakMemoryBytes = peakMemoryBytes
    self.computeSeconds = computeSeconds
    self.transferSeconds = transferSeconds
    self.loadStallSeconds = loadStallSeconds
    self.idleSeconds = idleSeconds
  }
}

/// One pipeline stage's share of the run.
public struct StageRecord: Hashable, Sendable, Codable {
  public var index: Int
  public var device: String
  public var firstLayer: Int
  public var endLayer: Int
  public var offloadedLayers: Int
  public var computeSeconds: Double
  public var microBatches: Int

  public init(
    index: Int, device: String, firstLayer: Int, endLayer: Int, offloadedLayers: Int, computeSeconds: Double,
    microBatches: Int
  ) {
    self.index = index
    self.device = device
    self.firstLayer = firstLayer
    self.endLayer = endLayer
    self.offloadedLayers = offloadedLayers
    self.computeSeconds = computeSeconds
    self.microBatches = microBatches
  }
}

/// How a run ended.
public enum RunStatus: String, Hashable, Sendable, Codable {
  case complete
  /// Stopped early (a fault or an interrupt); what finished is kept.
  case incomplete
  /// The algorithm found no plan (the reason is in `message`).
  case infeasible
  case failed
}

/// Everything a backend reports about one run.
public struct RunOutcome: Hashable, Sendable, Codable {
  public var status: RunStatus
  public var message: String?
  public var requests: [RequestRecord]
  public var links: [LinkRecord]
  public var devices: [DeviceRecord]
  public var stages: [StageRecord]
  /// Wall-clock seconds the backend took (the simulator's own run time; the real run's duration).
  public var wallSeconds: Double
  /// Backend-specific scalar facts (e.g. the lossless check, dilation factor), stored as attributes.
  public var facts: [String: JSONValue]
  /// What each device and link did, when the experiment asked for it (`execution.record_events`).
  public var events: [TimelineEvent]?
  /// The tokens each request generated (request id → ids), from backends that run the model; not stored in
  /// results files.
  public var generated: [Int: [Int32]]?
  /// Edge–cloud runs: how each query was served and whether its answer was right.
  public var queries: [QueryRecord]?

  public init(
    status: RunStatus, message: String? = nil, requests: [RequestRecord] = [], links: [LinkRecord] = [],
    devices: [DeviceRecord] = [], stages: [StageRecord] = [], wallSeconds: Double = 0,
    facts: [String: JSONValue] = [:]
  ) {
    self.status = status
    self.message = message
    self.requests = requests
    self.links = links
    self.devices = devices
    self.stages = stages
    self.wallSeconds = wallSeconds
    self.facts = facts
  }

  public static func infeasible(_ message: String) -> RunOutcome { RunOutcome(status: .infeasible, message: message) }
}

/// One span of a run's timeline: a stage computing a micro-batch, a message on its way, a wait for an offloaded
/// layer. Times are seconds since the run started, in device time, as every other record.
public struct TimelineEvent: Hashable, Sendable, Codable {
  public enum Kind: String, Hashable, Sendable, Codable, CaseIterable {
    /// A stage ran a micro-batch (`device`, `stage`, `batch`).
    case compute
    /// A message from `device` to `peer`: from when it could start sending to when it was delivered.
    case transfer
    /// A stage waited for an offloaded layer (`layer`) to be read.
    case load
  }
  public var kind: Kind
  public var device: String
  public var peer: String?
  public var stage: Int
  public var batch: Int
  public var layer: Int?
  public var start: Double
  public var end: Double

  public init(
    _ kind: Kind, device: String, peer: String? = nil, stage: Int, batch: Int, layer: Int? = nil, start: Double,
    end: Double
  ) {
    self.kind = kind
    self.device = device
    self.peer = peer
    self.stage = stage
    self.batch = batch
    self.layer = layer
    self.start = start
    self.end = end
  }
}
