public import Catalog
public import EdgeLabCore
public import Spec

/// How long a device takes for a layer's work. The roofline below is the default; measured profiles plug in
/// behind the same protocol.
public protocol LayerTimeModel: Sendable {
  func time(_ layer: LayerCost, on device: DeviceProfile, work: Work, precision: Precision) -> Seconds
  /// The same for the experiment's device `name` (a model may bind a measured profile to a device by name).
  func time(_ layer: LayerCost, device name: String, on device: DeviceProfile, work: Work, precision: Precision)
    -> Seconds
  /// Which model produced the times, for results files: "roofline", or each profile's name and content hash.
  var provenance: String { get }
  /// Fixed one-way cost of a message of `bytes` between two devices besides its transmission and latency
  /// (encoding, system calls, waking the receiver), in device seconds, for a receiver that had waited `idle`
  /// seconds for it (nil: unknown, the model's reference wait, a pipeline stage's; a receiver asleep longer
  /// takes longer to wake); 0 unless measured.
  func messageSeconds(from: String, to: String, bytes: Double, idle: Double?) -> Double
  /// Bytes per second device `name` reads offloaded layers from its storage.
  func storageBytesPerSecond(device name: String, on device: DeviceProfile) -> Double
  /// The machine device `name` shares with the other devices that name it (their workers run on it and share its
  /// memory bandwidth, as a loopback run's do), or nil when the device has hardware of its own.
  func sharedHost(of name: String) -> String?
  /// How many times longer `work` takes on device `name` while `workers` workers compute at once on its shared
  /// host (the device's own among them); 1 unless measured.
  func sharedSlowdown(device name: String, workers: Int, work: Work) -> Double
  /// How many times longer device `name` takes for `share` (0…1) of `layer`'s heads or FFN columns, as a
  /// tensor-parallel member, than `share` × the whole layer (`ModelProfile.shardRatio`); 1 unless measured.
  func shardRatio(_ layer: LayerCost, device name: String, share: Double, work: Work, precision: Precision) -> Double
  /// Device `name`'s time model as a value a worker can pace to (`DevicePace`); nil where the model has none.
  func pace(device name: String, on device: DeviceProfile) -> DevicePace?
}

extension LayerTimeModel {
  public func messageSeconds(from: String, to: String, bytes: Double, idle: Double?) -> Double { 0 }
  /// The cost at the model's reference wait.
  public func messageSeconds(from: String, to: String, bytes: Double) -> Double {
    messageSeconds(from: from, to: to, bytes: bytes, idle: nil)
  }
  public func storageBytesPerSecond(device name: String, on device: DeviceProfile) -> Double {
    device.storageReadBandwidth.bytesPerSecond
  }
  public func sharedHost(of name: String) -> String? { nil }
  public func sharedSlowdown(device name: String, workers: Int, work: Work) -> Double { 1 }
  public func shardRatio(_ layer: LayerCost, device name: String, share: Double, work: Work, precision: Precision)
    -> Double
  { 1 }
  public func pace(device name: String, on device: DeviceProfile) -> DevicePace? { nil }

  public func time(_ layer: LayerCost, device name: String, on device: DeviceProfile, work: Work, precision: Precision)
    -> Seconds
  {
    time(layer, on: device, work: work, precision: precision)
  }
}

/// Roofline: time = max(FLOPs / (peak · compute efficiency), bytes / (bandwidth · memory efficiency)) plus a
/// fixed per-layer overhead. The efficiencies are the named factors of `Calibration`.
/// Devices named in `perDevice` (instance names) use their own factors.
public struct RooflineModel: LayerTimeModel {
  public var calibration: Calibration
  /// Factors of particular devices by instance name (`Calibration.forGroup` of their group).
  public var perDevice: [String: Calibration]
  public init(calibration: Calibration = Calibration(), perDevice: [String: Calibration] = [:]) {
    self.calibration = calibration
    self.perDevice = perDevice
  }

  public func time(_ layer: LayerCost, on device: DeviceProfile, work: Work, precision: Precision) -> Seconds {
    Self.time(layer, on: device, work: work, precision: precision, calibration)
  }

  public func time(_ layer: LayerCost, device name: String, on device: DeviceProfile, work: Work, precision: Precision)
    -> Seconds
  {
    Self.time(layer, on: device, work: work, precision: precision, perDevice[name] ?? calibration)
  }

  static func time(_ layer: LayerCost, on device: DeviceProfile, work: Work, precision: Precision, _ c: Calibration)
    -> Seconds
  {
    let compute = layer.flops(work) / (device.peak(for: precision).flopsPerSecond * c.computeEfficiency)
    let memory = layer.bytesMoved(work) / (device.memoryBandwidth.bytesPerSecond * c.memoryEfficiency)
    return Seconds(max(compute, memory)) + c.layerOverhead
  }

  /// The sender's fitted per-message overhead, whatever the receiver waited.
  public func messageSeconds(from: String, to: String, bytes: Double, idle: Double?) -> Double {
    (perDevice[from] ?? calibration).messageOverhead.value
  }

  public var provenance: String {
    let base =
      "roofline (compute efficiency \(calibration.computeEfficiency), memory efficiency "
      + "\(calibration.memoryEfficiency), layer overhead \(calibration.layerOverhead), message overhead "
      + "\(calibration.messageOverhead))"
    let own = calibration.devices.sorted { $0.key < $1.key }.map { name, d in
      "\(name): "
        + [
          d.computeEfficiency.map { "compute efficiency \($0)" }, d.memoryEfficiency.map { "memory efficiency \($0)" },
          d.layerOverhead.map { "layer overhead \($0)" }, d.messageOverhead.map { "message overhead \($0)" },
        ].compactMap { $0 }.joined(separator: ", ")
    }
    return own.isEmpty ? base : base + "; " + own.joined(separator: "; ")
  }
}

/// Measured profiles bound to devices by name, each scaled (a device `scale` times slower than the profiled
/// host takes `scale` × the host's time); the roofline for every other device.
public struct ProfiledTimeModel: LayerTimeModel {
  public struct Binding: Hashable, Sendable {
    public var profile: HostProfile
    /// The profile file's content hash (`FNV1a`), for provenance.
    public var hash: String
    public var scale: Double
    /// The device is the profiled host itself, and shares it with every other device bound so to the same
    /// profile (a loopback run's workers).
    public var sharesHost: Bool
    /// How the device's own worker computes relative to the profile (`calibration.worker_speeds`); nil: as the
    /// profile says.
    public var speed: WorkerSpeed?
    public init(
      profile: HostProfile, hash: String, scale: Double, sharesHost: Bool = false, speed: WorkerSpeed? = nil
    ) {
      self.profile = profile
      self.hash = hash
      self.scale = scale
      self.sharesHost = sharesHost
      self.speed = speed
    }
  }
  public var bindings: [String: Binding]
  public var fallback: RooflineModel

  public init(bindings: [String: Binding], fallback: RooflineModel) {
    self.bindings = bindings
    self.fallback = fallback
  }

  public func time(_ layer: LayerCost, on device: DeviceProfile, work: Work, precision: Precision) -> Seconds {
    fallback.time(layer, on: device, work: work, precision: precision)
  }

  public func time(_ layer: LayerCost, device name: String, on device: DeviceProfile, work: Work, precision: Precision)
    -> Seconds
  {
    guard let b = bindings[name] else {
      return fallback.time(layer, device: name, on: device, work: work, precision: precision)
    }
    var seconds = b.profile.time(layer, work: work, precision: precision) * b.scale
    if let speed = b.speed { seconds *= speed.ratio(prefill: work.isPrefill, size: work.tokenCount) }
    return Seconds(seconds)
  }

  /// The sender's measured message cost, where its profile's times are taken as they are (scale 1): a scaled
  /// (emulated or simulated) device's network stack is not the profiled host's.
  public func messageSeconds(from: String, to: String, bytes: Double, idle: Double?) -> Double {
    guard let b = bindings[from] else { return fallback.messageSeconds(from: from, to: to, bytes: bytes, idle: idle) }
    guard b.scale == 1 else { return 0 }
    return b.profile.message.seconds(bytes: bytes, idle: idle)
  }

  /// The measured offload store of a device that is the profiled host (scale 1); a scaled device's storage is
  /// its declared one (an emulated device's reads are paced to it).
  public func storageBytesPerSecond(device name: String, on device: DeviceProfile) -> Double {
    guard let b = bindings[name], b.scale == 1 else { return device.storageReadBandwidth.bytesPerSecond }
    return b.profile.storageReadBandwidth.bytesPerSecond
  }

  public func sharedHost(of name: String) -> String? {
    guard let b = bindings[name], b.sharesHost else { return nil }
    return "profiled host " + b.hash
  }

  /// Decode reads the weights once per step: co-located workers decoding at once share the host's memory
  /// bandwidth as the profile measured it (`HostProfile.sharedSlowdown`). Prefill is taken as compute-bound, each
  /// worker on its own core while there are cores enough; more workers than cores take turns on them.
  public func sharedSlowdown(device name: String, workers: Int, work: Work) -> Double {
    guard let b = bindings[name], b.sharesHost else { return 1 }
    let turns = max(1, Double(workers) / Double(max(1, b.profile.host.cores)))
    guard case .decode = work else { return turns }
    return max(turns, b.profile.sharedSlowdown(workers: workers))
  }

  /// The kernels' efficiency on narrower matrices is the host's, scaled or not: an emulated device runs them.
  public func shardRatio(_ layer: LayerCost, device name: String, share: Double, work: Work, precision: Precision)
    -> Double
  {
    bindings[name]?.profile.model(layer.config, precision)?.shardRatio(share: share, work: work) ?? 1
  }

  /// The profile bound to `device`, if any.
  public func profile(of device: String) -> Binding? { bindings[device] }

  public var provenance: String {
    let used = Set(bindings.values.map { "profile \($0.profile.name) (\($0.hash))" }).sorted()
    let scaled = bindings.sorted { $0.key < $1.key }.map { name, b in
      "\(name) ×\(String(format: b.scale, digits: 4))"
        + (b.speed.map {
          " (worker: decode ×\(String(format: $0.decode, digits: 4)), prefill ×\(String(format: $0.prefill, digits: 4)))"
        } ?? "")
    }
    return (used + ["scales: " + scaled.joined(separator: ", "), "others: " + fallback.provenance]).joined(
      separator: "; ")
  }
}
