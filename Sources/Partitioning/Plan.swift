public import EdgeLabCore

/// A partition: stages in pipeline order, each a device and the contiguous layer range it runs.
///
/// Standard plans have one stage per device. LIME's interleaved plans may visit a device several times (one
/// stage per chunk) and mark layers as offloaded (loaded from storage on use instead of resident).
public struct Plan: Codable, Hashable, Sendable {
  public struct Stage: Codable, Hashable, Sendable {
    public var device: String
    public var firstLayer: Int
    /// One past the last layer (half-open range).
    public var endLayer: Int
    /// Layers of this stage that are not resident, loaded from storage just before use.
    public var offloadedLayers: [Int]

    public init(device: String, firstLayer: Int, endLayer: Int, offloadedLayers: [Int] = []) {
      self.device = device
      self.firstLayer = firstLayer
      self.endLayer = endLayer
      self.offloadedLayers = offloadedLayers
    }
    public var layers: Range<Int> { firstLayer..<endLayer }

    enum CodingKeys: String, CodingKey {
      case device, firstLayer = "first_layer", endLayer = "end_layer", offloadedLayers = "offloaded_layers"
    }
    public init(from decoder: any Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      device = try c.decode(String.self, forKey: .device)
      firstLayer = try c.decode(Int.self, forKey: .firstLayer)
      endLayer = try c.decode(Int.self, forKey: .endLayer)
      offloadedLayers = try c.decodeIfPresent([Int].self, forKey: .offloadedLayers) ?? []
    }
    public func encode(to encoder: any Encoder) throws {
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(device, forKey: .device)
      try c.encode(firstLayer, forKey: .firstLayer)
      try c.encode(endLayer, forKey: .endLayer)
      if !offloadedLayers.isEmpty { try c.encode(offloadedLayers, forKey: .offloadedLayers) }
    }
  }

  public var algorithm: String
  public var objective: Objective
  public var stages: [Stage]
  /// Micro-batches the plan expects in flight (1 for a latency plan; the stage count for pipelines).
  public var microBatches: Int
  /// The predicted objective value in seconds: per-token latency, or the bottleneck step time.
  public var valueSeconds: Double
  /// Which model produced `valueSeconds`: "standard" (the semantics shared by every algorithm) or an
  /// algorithm's own (e.g. "lime" for interleaving with offloading).
  public var valueModel: String
  /// Whether the algorithm proved the plan optimal under the standard semantics.
  public var exact: Bool
  /// One line for humans: "3 stages; bottleneck: link agx0→nx1, 41% of step time".
  public var explanation: String
  /// Further remarks, e.g. a fallback to a heuristic.
  public var notes: [String]

  public init(algorithm: String, objective: Objective, stages: [Stage], microBatches: Int = 1, valueSeconds: Double,
              valueModel: String = "standard", exact: Bool, explanation: String = "", notes: [String] = []) {
    self.algorithm = algorithm
    self.objective = objective
    self.stages = stages
    self.microBatches = microBatches
    self.valueSeconds = valueSeconds
    self.valueModel = valueModel
    self.exact = exact
    self.explanation = explanation
    self.notes = notes
  }

  enum CodingKeys: String, CodingKey {
    case algorithm, objective, stages, microBatches = "micro_batches", valueSeconds = "value_s"
    case valueModel = "value_model", exact, explanation, notes
  }

  /// Devices in the order they first appear.
  public var devices: [String] {
    var seen = Set<String>()
    return stages.compactMap { seen.insert($0.device).inserted ? $0.device : nil }
  }
  /// Whether the plan fits the standard semantics: contiguous stages, one per device, nothing offloaded.
  public var isStandard: Bool {
    Set(stages.map(\.device)).count == stages.count && stages.allSatisfy { $0.offloadedLayers.isEmpty }
  }
}
