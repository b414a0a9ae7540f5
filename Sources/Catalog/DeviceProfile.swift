public import EdgeLabCore

/// The hardware facts the cost model needs about one device.
public struct DeviceProfile: Codable, Hashable, Sendable {
  /// The product name, e.g. "Jetson AGX Orin 32GB".
  public var model: String
  /// Rated memory.
  public var memory: Bytes
  /// Memory available to the model (weights, KV cache, activations), below the rated size.
  public var usableMemory: Bytes
  public var memoryBandwidth: Bandwidth
  public var fp32Peak: FlopRate
  public var fp16Peak: FlopRate
  /// Sequential read bandwidth of the storage that offloaded layers are loaded from.
  public var storageReadBandwidth: Bandwidth
  /// A server in a data centre or closet, as opposed to a board at the edge (EdgeShard's "cloud" device).
  public var isServer: Bool

  public init(
    model: String, memory: Bytes, usableMemory: Bytes, memoryBandwidth: Bandwidth, fp32Peak: FlopRate,
    fp16Peak: FlopRate, storageReadBandwidth: Bandwidth, isServer: Bool = false
  ) {
    self.model = model
    self.memory = memory
    self.usableMemory = usableMemory
    self.memoryBandwidth = memoryBandwidth
    self.fp32Peak = fp32Peak
    self.fp16Peak = fp16Peak
    self.storageReadBandwidth = storageReadBandwidth
    self.isServer = isServer
  }

  enum CodingKeys: String, CodingKey {
    case model, memory
    case isServer = "is_server"
    case usableMemory = "usable_memory"
    case memoryBandwidth = "memory_bandwidth"
    case fp32Peak = "fp32_peak"
    case fp16Peak = "fp16_peak"
    case storageReadBandwidth = "storage_read_bandwidth"
  }

  /// Decodes a profile; `is_server` may be left out (a board).
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(
      model: try c.decode(String.self, forKey: .model), memory: try c.decode(Bytes.self, forKey: .memory),
      usableMemory: try c.decode(Bytes.self, forKey: .usableMemory),
      memoryBandwidth: try c.decode(Bandwidth.self, forKey: .memoryBandwidth),
      fp32Peak: try c.decode(FlopRate.self, forKey: .fp32Peak),
      fp16Peak: try c.decode(FlopRate.self, forKey: .fp16Peak),
      storageReadBandwidth: try c.decode(Bandwidth.self, forKey: .storageReadBandwidth),
      isServer: try c.decodeIfPresent(Bool.self, forKey: .isServer) ?? false)
  }

  /// Peak arithmetic rate for a weight precision (16-bit formats use the FP16 rate).
  public func peak(for precision: Precision) -> FlopRate { precision == .fp32 ? fp32Peak : fp16Peak }

  public func problems() -> [String] {
    var p: [String] = []
    for (name, v) in [
      ("memory", memory.value), ("usable_memory", usableMemory.value),
      ("memory_bandwidth", memoryBandwidth.bitsPerSecond),
      ("fp32_peak", fp32Peak.flopsPerSecond), ("fp16_peak", fp16Peak.flopsPerSecond),
      ("storage_read_bandwidth", storageReadBandwidth.bitsPerSecond),
    ] where !(v > 0 && v.isFinite) {
      p.append("\(name) must be a positive, finite quantity (it is \(v))")
    }
    if usableMemory > memory { p.append("usable_memory \(usableMemory) exceeds memory \(memory)") }
    return p
  }
}
