public import EdgeLabCore
public import Engine
public import Partitioning
public import Transport

/// Where a worker gets its weights.
public struct WeightsSpec: Codable, Sendable, Hashable {
  /// A local Hugging Face checkpoint directory (on the worker's machine).
  public var checkpoint: String?
  /// A model preset for synthetic weights.
  public var preset: String?
  public var seed: UInt64
  /// "F32", "BF16" or "F16" for synthetic weights.
  public var dtype: String
  /// "native" or "fp32" for checkpoint 16-bit weights.
  public var storage: String

  public init(checkpoint: String? = nil, preset: String? = nil, seed: UInt64 = 1, dtype: String = "F32", storage: String = "native") {
    self.checkpoint = checkpoint
    self.preset = preset
    self.seed = seed
    self.dtype = dtype
    self.storage = storage
  }

  public func source() -> ModelSource {
    if let checkpoint { return .checkpoint(path: checkpoint, storage: WeightStorage(rawValue: storage) ?? .native) }
    return .synthetic(preset: preset ?? "tiny", seed: seed, dtype: WeightDType(rawValue: dtype) ?? .f32)
  }
}

/// One pipeline stage a worker runs.
public struct StageAssignment: Codable, Sendable, Hashable {
  /// Position in the pipeline (a device may run several: LIME's interleaved chunks).
  public var index: Int
  public var firstLayer: Int
  public var endLayer: Int
  /// Layers read from local storage before each use instead of kept resident.
  public var offloaded: [Int]
}

/// Emulated delay of the links into this worker (issue 7's transport-level delay), by sending device.
public struct LinkDelay: Codable, Sendable, Hashable {
  /// Added one-way delay and its jitter (standard deviation), seconds.
  public var latency: Double
  public var jitter: Double

  public init(latency: Double, jitter: Double) {
    self.latency = latency
    self.jitter = jitter
  }
}

/// Everything a worker needs to take part in a run.
public struct Assignment: Codable, Sendable {
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
  public var maxBatch: Int
  public var microBatches: Int
  public var halfPrecisionWire: Bool
  public var memoryBudgetBytes: Double
  /// Directory for this worker's offloaded-layer store.
  public var storageDirectory: String
  /// Storage read pacing for offloaded layers (bytes/s; nil: as fast as the disk).
  public var storageBytesPerSecond: Double?
  public var delays: [String: LinkDelay]
  /// Sender-side pacing of outbound links, bytes/s by destination device (userspace shaping).
  public var pacing: [String: Double]
  public var seed: UInt64
  /// For LIME plans: what the online memory adaptation needs.
  public var lime: LimeContext?
}

/// The plan and problem a LIME worker adapts its residency with (`LimeMemoryAdapter`).
public struct LimeContext: Codable, Sendable {
  public var plan: Plan
  public var problem: PartitionProblem
  public var parameters: [String: JSONValue]
}

/// A request handed to the source worker.
public struct RequestMessage: Codable, Sendable {
  public var id: Int
  public var prompt: [Int32]
  public var outputLength: Int
}

/// A token that reached the source.
public struct TokenEvent: Codable, Sendable {
  public var request: Int
  public var index: Int
  public var token: Int32
  /// CLOCK_MONOTONIC nanoseconds.
  public var time: UInt64
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
  /// Coordinator → source worker: a request arrives.
  case request(RequestMessage)
  /// Source worker → coordinator: tokens reached the source.
  case tokens([TokenEvent])
  /// Coordinator → every worker: drop these sequences' KV caches.
  case release([Int])
  case collect
  case stats(WorkerStats)
  case shutdown
  /// Worker → coordinator: something went wrong (the worker stays up unless it cannot).
  case failure(String)

  public func frame() throws -> [UInt8] { Array(try JSONCoder.encoder.encode(self)) }
  public static func decode(_ payload: [UInt8]) throws -> ControlMessage {
    try JSONCoder.decoder.decode(ControlMessage.self, from: Data(payload))
  }
}

import Foundation
enum JSONCoder {
  static let encoder = JSONEncoder()
  static let decoder = JSONDecoder()
}
