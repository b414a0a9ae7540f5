import Catalog
import CostModel
import EdgeLabCore
public import Pipeline
public import Spec

/// What each device of a plan holds besides its KV cache, and how many tokens of KV cache fit beside it: the
/// one account of memory every backend keeps (the scheduler's admission, the simulator's peaks and failures,
/// the workers' limits).
///
/// A device holds its stages' resident weights and, where its residency policy stages offloaded layers, that many
/// slots of its largest offloaded layer; each token of context takes `kvBytesPerToken` in its blocks. A device
/// whose residency adapts to the KV cache offloads more as the cache grows instead (`ResidencyTracker`), so it
/// sets no token limit of its own; it fails by name when even that no longer fits.
public struct MemoryBudget: Sendable, Hashable {
  public struct Device: Sendable, Hashable, Codable {
    public var name: String
    public var usableBytes: Double
    /// Resident weights and staging slots as the run starts.
    public var fixedBytes: Double
    /// KV-cache bytes per token of context in this device's blocks.
    public var kvBytesPerToken: Double
    public var adaptive: Bool

    /// Bytes left for the KV cache.
    public var kvBytes: Double { usableBytes - fixedBytes }

    /// Tokens of context that fit beside the fixed bytes; nil where the device holds no KV cache or adapts.
    public var kvTokens: Int? {
      guard kvBytesPerToken > 0, !adaptive else { return nil }
      let t = (kvBytes / kvBytesPerToken).rounded(.down)
      return t <= 0 ? 0 : (t >= Double(Int.max / 2) ? Int.max / 2 : Int(t))
    }
  }

  public var devices: [Device]

  /// The device with the fewest tokens of KV cache, and that count: the run's admission budget.
  public var tightest: (device: String, tokens: Int)? {
    devices.compactMap { d in d.kvTokens.map { (d.name, $0) } }.min { $0.1 < $1.1 }
  }

  public init(devices: [Device]) { self.devices = devices }

  /// The budget of `plan` for `experiment`'s devices and model.
  public init(plan: Plan, experiment x: ResolvedExperiment) {
    let layers = ModelLayers(
      config: x.model, precision: x.spec.model.precision, wirePrecision: x.spec.execution.wirePrecision)
    var result: [Device] = []
    let attention = Double(x.model.attentionParametersPerBlock)
    let ffn = Double(x.model.ffnParametersPerBlock)
    for d in x.devices {
      let stages = plan.stageIndices(of: d.name).map { plan.stages[$0] }
      // A member of a tensor-parallel group holds its share of the blocks: its heads' KV cache and its part of
      // the weights; the group's first member also the layers outside the blocks.
      let memberships = plan.stages.compactMap { s -> (TensorGroup, Int, Range<Int>)? in
        guard let g = s.group, let i = g.members.firstIndex(of: d.name) else { return nil }
        return (g, i, s.layers)
      }
      guard !stages.isEmpty || !memberships.isEmpty else { continue }
      let offloaded = Set(stages.flatMap(\.offloadedLayers))
      var resident = 0.0
      var kv = 0.0
      for s in stages where s.group == nil {
        for l in s.layers {
          if !offloaded.contains(l) { resident += layers.layers[l].weightBytes.value }
          kv += layers.layers[l].kvBytesPerToken.value
        }
      }
      for (g, i, range) in memberships {
        for l in range {
          let layer = layers.layers[l]
          if case .block = layer.kind {
            resident += g.share(i, attention: attention, ffn: ffn) * layer.weightBytes.value
            kv += g.headShare(i) * layer.kvBytesPerToken.value
          } else if i == 0 {
            resident += layer.weightBytes.value
            kv += layer.kvBytesPerToken.value
          }
        }
      }
      let policy = plan.residency(of: d.name)
      let largest = offloaded.map { layers.layers[$0].weightBytes.value }.max() ?? 0
      let staging = Double(policy?.stagingSlots ?? 0) * largest
      result.append(
        Device(
          name: d.name, usableBytes: d.profile.usableMemory.value, fixedBytes: resident + staging,
          kvBytesPerToken: kv, adaptive: policy?.adaptive ?? false))
    }
    devices = result
  }

  /// The failure of a device whose KV cache outgrew what is left beside its weights.
  public static func outOfMemory(device: Device, kvBytes: Double, at t: Double) -> String {
    "out of memory on device \(device.name) at t = \(Seconds(t)): its KV cache needs \(Bytes(kvBytes)) beside "
      + "\(Bytes(device.fixedBytes)) of weights, more than its usable \(Bytes(device.usableBytes)) (declare "
      + "execution.memory_admission \"wait\" to queue requests instead, or give the device more memory)"
  }
}

extension RunJob {
  /// This run's memory account.
  public var memoryBudget: MemoryBudget { MemoryBudget(plan: plan, experiment: experiment) }
}
