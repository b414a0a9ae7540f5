import EdgeLabCore

/// How each device keeps its layers in memory: which stay resident, which are read from storage through staging
/// slots before each use, and how that follows the KV cache as it grows and shrinks (online memory adaptation).
///
/// This is data: a partitioner writes it into its plan, and the simulator and the workers execute it with the
/// same functions (`Device.residency(kvBytes:)`, `ResidencyTracker`), so no backend needs to know the algorithm.
public struct ResidencyPolicy: Codable, Hashable, Sendable {
  /// One device's residency rule.
  public struct Device: Codable, Hashable, Sendable {
    public var device: String
    /// The device's layers in order of use (pipeline order of its stages).
    public var layers: [Int]
    /// Weight bytes of each layer in `layers`.
    public var weightBytes: [Double]
    /// Memory for weights, staging slots and KV cache together.
    public var budgetBytes: Double
    /// Layers in the order they are made resident while memory lasts; the others are offloaded.
    public var priority: [Int]
    /// Layer-sized staging slots that offloaded layers are read into (the prefetch depth).
    public var stagingSlots: Int
    /// Whether this device can read layers from storage at all; without storage every layer must fit.
    public var canOffload: Bool
    /// Whether offloaded layers are read ahead of their use (false: on demand, when a computation needs one).
    public var prefetch: Bool = true
    /// Whether residency follows the KV cache during the run; false keeps the plan's offloaded layers.
    public var adaptive: Bool
    /// Residency is re-evaluated when the KV cache has moved by more than this fraction of `budgetBytes`.
    public var adaptThreshold: Double

    public init(
      device: String, layers: [Int], weightBytes: [Double], budgetBytes: Double, priority: [Int],
      stagingSlots: Int, canOffload: Bool = true, adaptive: Bool = true, adaptThreshold: Double = 0.01
    ) {
      self.device = device
      self.layers = layers
      self.weightBytes = weightBytes
      self.budgetBytes = budgetBytes
      self.priority = priority
      self.stagingSlots = stagingSlots
      self.canOffload = canOffload
      self.adaptive = adaptive
      self.adaptThreshold = adaptThreshold
    }

    /// A fixed rule: `offloaded` stay offloaded whatever the KV cache holds, with two staging slots.
    public init(fixed device: String, layers: [Int], offloaded: [Int]) {
      let off = Set(offloaded)
      self.init(
        device: device, layers: layers, weightBytes: layers.map { _ in 0 }, budgetBytes: 0,
        priority: layers.filter { !off.contains($0) } + layers.filter { off.contains($0) }, stagingSlots: 2,
        adaptive: false)
      fixedOffloaded = offloaded
    }

    /// Offloaded layers of a fixed rule (nil for an adaptive one).
    public var fixedOffloaded: [Int]?
    /// Layers that can never be offloaded (the embedding and the head: the engine reads only decoder blocks
    /// from storage); when they do not fit, the device cannot hold its share at all.
    public var pinned: [Int] = []

    enum CodingKeys: String, CodingKey {
      case device, layers
      case weightBytes = "weight_bytes"
      case budgetBytes = "budget_bytes"
      case priority
      case stagingSlots = "staging_slots"
      case canOffload = "can_offload"
      case adaptive
      case adaptThreshold = "adapt_threshold"
      case fixedOffloaded = "fixed_offloaded"
      case pinned
      case prefetch
    }

    public init(from decoder: any Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      device = try c.decode(String.self, forKey: .device)
      layers = try c.decode([Int].self, forKey: .layers)
      weightBytes = try c.decode([Double].self, forKey: .weightBytes)
      budgetBytes = try c.decode(Double.self, forKey: .budgetBytes)
      priority = try c.decode([Int].self, forKey: .priority)
      stagingSlots = try c.decode(Int.self, forKey: .stagingSlots)
      canOffload = try c.decodeIfPresent(Bool.self, forKey: .canOffload) ?? true
      adaptive = try c.decodeIfPresent(Bool.self, forKey: .adaptive) ?? true
      adaptThreshold = try c.decodeIfPresent(Double.self, forKey: .adaptThreshold) ?? 0.01
      fixedOffloaded = try c.decodeIfPresent([Int].self, forKey: .fixedOffloaded)
      pinned = try c.decodeIfPresent([Int].self, forKey: .pinned) ?? []
      prefetch = try c.decodeIfPresent(Bool.self, forKey: .prefetch) ?? true
    }

    /// What the device holds for a KV cache of `kvBytes`, or nil if even the KV cache and the staging slots do
    /// not fit (the run must shed load). Layers are made resident in priority order while they fit next to
    /// the staging slots the remaining offloaded layers need; the rest are offloaded, listed in order of use.
    ///
    /// - Complexity: O(n log n) for n layers.
    public func residency(kvBytes: Double) -> Residency? {
      if let fixedOffloaded {
        let off = Set(fixedOffloaded)
        return Residency(
          resident: Set(layers.filter { !off.contains($0) }), offloaded: layers.filter { off.contains($0) },
          residentBytes: 0, stagingBytes: 0)
      }
      var weight: [Int: Double] = [:]
      for (l, w) in zip(layers, weightBytes) { weight[l] = w }
      let ordered = priority.map { weight[$0] ?? 0 }
      guard
        let mask = Self.residentMask(
          priorityWeights: ordered, budget: budgetBytes - kvBytes, slots: stagingSlots,
          canOffload: canOffload)
      else { return nil }
      if !pinned.isEmpty {
        let pins = Set(pinned)
        if zip(priority, mask).contains(where: { pins.contains($0) && !$1 }) { return nil }
      }
      var resident = Set<Int>()
      var residentBytes = 0.0
      var largestOffloaded = 0.0
      for (i, l) in priority.enumerated() {
        if mask[i] {
          resident.insert(l)
          residentBytes += ordered[i]
        } else {
          largestOffloaded = max(largestOffloaded, ordered[i])
        }
      }
      return Residency(
        resident: resident, offloaded: layers.filter { !resident.contains($0) },
        residentBytes: residentBytes, stagingBytes: Double(stagingSlots) * largestOffloaded)
    }

    /// The residency rule on its own: which entries of a priority-ordered list of layer weights stay resident
    /// within `budget` bytes, each offloaded layer needing room in one of `slots` slots the size of the largest
    /// offloaded layer. Nil when nothing fits (or when `canOffload` is false and not everything fits).
    ///
    /// Greedy in priority order: after deciding entry i, the offloaded entries are the skipped ones before i
    /// and all after i, so the staging need is `slots` × max(largest skipped, largest after i).
    ///
    /// - Complexity: O(n).
    public static func residentMask(priorityWeights w: [Double], budget: Double, slots: Int, canOffload: Bool)
      -> [Bool]?
    {
      let all = w.reduce(0, +)
      if all <= budget { return [Bool](repeating: true, count: w.count) }
      guard canOffload else { return nil }
      var suffixMax = [Double](repeating: 0, count: w.count + 1)
      for i in stride(from: w.count - 1, through: 0, by: -1) { suffixMax[i] = max(w[i], suffixMax[i + 1]) }
      var mask = [Bool](repeating: false, count: w.count)
      var used = 0.0
      var skippedMax = 0.0
      for i in w.indices {
        let staging = Double(slots) * max(skippedMax, suffixMax[i + 1])
        if used + w[i] + staging <= budget {
          mask[i] = true
          used += w[i]
        } else {
          skippedMax = max(skippedMax, w[i])
        }
      }
      if used + Double(slots) * skippedMax > budget { return nil }
      return mask
    }
  }

  public var devices: [Device]

  public init(devices: [Device]) { self.devices = devices }

  public func device(_ name: String) -> Device? { devices.first { $0.device == name } }
}

/// What a device holds at one KV-cache size.
public struct Residency: Hashable, Sendable {
  public var resident: Set<Int>
  /// Offloaded layers in order of use.
  public var offloaded: [Int]
  /// Bytes of resident weights and of staging slots (0 for a fixed rule, which does not track bytes).
  public var residentBytes: Double
  public var stagingBytes: Double
}

/// Online memory adaptation as both backends run it: residency starts as the plan made it and is re-evaluated
/// whenever the device's KV cache has moved by more than the policy's threshold since the last evaluation.
public struct ResidencyTracker: Sendable {
  public let policy: ResidencyPolicy.Device
  /// Offloaded layers now, in order of use.
  public private(set) var offloaded: [Int]
  /// Times residency changed.
  public private(set) var adaptations = 0
  private var evaluatedAt = -1.0

  /// - Parameter initial: the offloaded layers the plan starts with, in order of use.
  public init(policy: ResidencyPolicy.Device, initial: [Int]) {
    self.policy = policy
    offloaded = initial
  }

  /// A change of the offloaded layers (in order of use), or nil when residency stays as it is.
  public enum Update: Equatable, Sendable {
    case unchanged
    case changed(offloaded: [Int])
    /// Even the KV cache and the staging slots no longer fit the budget.
    case exhausted
  }

  /// Why a run stops when `update` says `.exhausted` (the same sentence from every backend).
  public func outOfMemory(kvBytes: Double) -> String {
    "out of memory on device \(policy.device): its KV cache (\(Bytes(kvBytes))) and \(policy.stagingSlots) staging slot(s) no longer fit its \(Bytes(policy.budgetBytes)) budget even with every layer offloaded"
  }

  /// The KV cache now holds `kvBytes`.
  public mutating func update(kvBytes: Double) -> Update {
    guard policy.adaptive, !offloaded.isEmpty || evaluatedAt >= 0,
      abs(kvBytes - evaluatedAt) > policy.adaptThreshold * policy.budgetBytes
    else { return .unchanged }
    // An exhausted budget is reported and evaluated again at the next update, as the cache may shrink.
    guard let r = policy.residency(kvBytes: kvBytes) else { return .exhausted }
    evaluatedAt = kvBytes
    guard r.offloaded != offloaded else { return .unchanged }
    offloaded = r.offloaded
    adaptations += 1
    return .changed(offloaded: r.offloaded)
  }
}
