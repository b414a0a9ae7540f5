public import EdgeLabCore

/// Which model produced a plan's predicted value.
public enum ValueModel: String, Codable, Hashable, Sendable {
  /// The standard semantics every algorithm is judged by: stage compute plus transfers, everything resident.
  case standard
  /// The offload timeline: stages in order, offloaded layers read from storage through staging slots
  /// (`OffloadTimeline`), for plans the standard semantics cannot express.
  case timeline

  public init(from decoder: any Decoder) throws {
    let raw = try decoder.singleValueContainer().decode(String.self)
    switch raw {
    case "standard": self = .standard
    // Results files written before the offload timeline was shared called it after LIME, its first user.
    case "timeline", "lime": self = .timeline
    default:
      throw DecodingError.dataCorrupted(
        .init(
          codingPath: decoder.codingPath,
          debugDescription: "unknown value model '\(raw)'; expected standard or timeline"))
    }
  }
}

/// A partition: stages in pipeline order, each a device and the contiguous layer range it runs, and how each
/// device keeps its layers in memory.
///
/// Standard plans have one stage per device. Interleaved plans (LIME's) may visit a device several times (one
/// stage per chunk); plans with offloading mark layers as read from storage on use instead of resident, and
/// say in `residency` how that follows the KV cache during the run. Backends execute exactly this data: no
/// backend knows which algorithm made a plan.
public struct Plan: Codable, Hashable, Sendable {
  public struct Stage: Codable, Hashable, Sendable {
    public var device: String
    public var firstLayer: Int
    /// One past the last layer (half-open range).
    public var endLayer: Int
    /// Layers of this stage that are not resident when the run starts, read from storage just before use.
    public var offloadedLayers: [Int]
    /// The devices that share this stage's decoder blocks (tensor parallelism), `device` first; nil: `device`
    /// alone.
    public var group: TensorGroup?

    public init(
      device: String, firstLayer: Int, endLayer: Int, offloadedLayers: [Int] = [], group: TensorGroup? = nil
    ) {
      self.device = device
      self.firstLayer = firstLayer
      self.endLayer = endLayer
      self.offloadedLayers = offloadedLayers
      self.group = group
    }

    /// Every device that computes this stage.
    public var devices: [String] { group?.members ?? [device] }
    public var layers: Range<Int> { firstLayer..<endLayer }

    enum CodingKeys: String, CodingKey {
      case device
      case firstLayer = "first_layer"
      case endLayer = "end_layer"
      case offloadedLayers = "offloaded_layers"
      case group
    }
    public init(from decoder: any Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      device = try c.decode(String.self, forKey: .device)
      firstLayer = try c.decode(Int.self, forKey: .firstLayer)
      endLayer = try c.decode(Int.self, forKey: .endLayer)
      offloadedLayers = try c.decodeIfPresent([Int].self, forKey: .offloadedLayers) ?? []
      group = try c.decodeIfPresent(TensorGroup.self, forKey: .group)
    }
    public func encode(to encoder: any Encoder) throws {
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(device, forKey: .device)
      try c.encode(firstLayer, forKey: .firstLayer)
      try c.encode(endLayer, forKey: .endLayer)
      if !offloadedLayers.isEmpty { try c.encode(offloadedLayers, forKey: .offloadedLayers) }
      try c.encodeIfPresent(group, forKey: .group)
    }
  }

  public var algorithm: String
  public var objective: Objective
  public var stages: [Stage]
  /// Micro-batches the plan expects in flight (1 for a latency plan; the stage count for pipelines).
  public var microBatches: Int
  /// The predicted objective value in seconds: per-token latency, or the bottleneck step time.
  public var valueSeconds: Double
  /// Which model produced `valueSeconds`.
  public var valueModel: ValueModel
  /// How devices keep layers resident or offloaded, and how that follows KV-cache growth; nil when every
  /// layer stays resident.
  public var residency: ResidencyPolicy?
  /// Whether the algorithm proved the plan optimal under the standard semantics.
  public var exact: Bool
  /// One line for humans: "3 stages; bottleneck: link agx0→nx1, 41% of step time".
  public var explanation: String
  /// Further remarks, e.g. a fallback to a heuristic.
  public var notes: [String]

  public init(
    algorithm: String, objective: Objective, stages: [Stage], microBatches: Int = 1, valueSeconds: Double,
    valueModel: ValueModel = .standard, exact: Bool, explanation: String = "", notes: [String] = [],
    residency: ResidencyPolicy? = nil
  ) {
    self.algorithm = algorithm
    self.objective = objective
    self.stages = stages
    self.microBatches = microBatches
    self.valueSeconds = valueSeconds
    self.valueModel = valueModel
    self.exact = exact
    self.explanation = explanation
    self.notes = notes
    self.residency = residency
  }

  enum CodingKeys: String, CodingKey {
    case algorithm, objective, stages
    case microBatches = "micro_batches"
    case valueSeconds = "value_s"
    case valueModel = "value_model"
    case exact, explanation, notes, residency
  }

  /// Devices in the order they first appear (every member of a tensor-parallel group).
  public var devices: [String] {
    var seen = Set<String>()
    return stages.flatMap(\.devices).compactMap { seen.insert($0).inserted ? $0 : nil }
  }
  /// Whether the plan fits the standard semantics: contiguous stages, one per device, nothing offloaded, no
  /// tensor-parallel group.
  public var isStandard: Bool {
    Set(stages.map(\.device)).count == stages.count
      && stages.allSatisfy { $0.offloadedLayers.isEmpty && $0.group == nil }
  }

  /// Whether a stage is shared by a group of devices.
  public var hasGroups: Bool { stages.contains { $0.group != nil } }

  /// Indices of the stages `device` runs, in pipeline order.
  public func stageIndices(of device: String) -> [Int] { stages.indices.filter { stages[$0].device == device } }

  /// The residency of `device`: the policy's entry, or the stages' fixed offloaded layers (no adaptation) when
  /// the plan has no policy for it; nil when the device keeps every layer resident.
  public func residency(of device: String) -> ResidencyPolicy.Device? {
    if let d = residency?.devices.first(where: { $0.device == device }) { return d }
    let mine = stageIndices(of: device).map { stages[$0] }
    let offloaded = mine.flatMap(\.offloadedLayers)
    guard !offloaded.isEmpty else { return nil }
    return ResidencyPolicy.Device(fixed: device, layers: mine.flatMap { Array($0.layers) }, offloaded: offloaded)
  }
}
