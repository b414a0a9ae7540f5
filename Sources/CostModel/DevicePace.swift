public import Catalog
public import EdgeLabCore
public import Spec

/// The time model of one device as a value another process can hold: what an emulated worker paces its
/// computations to, so that the emulated device takes the time the simulator gives it, phase by phase (a prompt's
/// compute-bound prefill and a token's memory-bound decode alike). The same functions answer both.
public enum DevicePace: Codable, Hashable, Sendable {
  /// The roofline of the device's declared profile with its calibration (`RooflineModel`).
  case roofline(device: DeviceProfile, calibration: Calibration)
  /// A measured host's times × `scale` (`ProfiledTimeModel`).
  case profiled(profile: HostProfile, scale: Double)

  /// Seconds the device takes for `layers` (consecutive layers of one model) on `work`.
  public func seconds(_ layers: [LayerCost], work: Work, precision: Precision) -> Double {
    switch self {
    case .roofline(let device, let calibration):
      layers.reduce(0) { $0 + RooflineModel.time($1, on: device, work: work, precision: precision, calibration).value }
    case .profiled(let profile, let scale):
      layers.reduce(0) { $0 + profile.time($1, work: work, precision: precision) } * scale
    }
  }

  /// What is wrong with a pace read from a message, if anything.
  public func problems() -> [String] {
    switch self {
    case .roofline(let d, let c):
      var p: [String] = []
      for (field, v) in [
        ("memory_bandwidth", d.memoryBandwidth.bytesPerSecond), ("fp32_peak", d.fp32Peak.flopsPerSecond),
        ("fp16_peak", d.fp16Peak.flopsPerSecond), ("compute_efficiency", c.computeEfficiency),
        ("memory_efficiency", c.memoryEfficiency),
      ] where !(v > 0 && v.isFinite) {
        p.append("pace: \(field) must be positive and finite")
      }
      if !(c.layerOverhead.value >= 0 && c.layerOverhead.value.isFinite) {
        p.append("pace: layer_overhead must be finite and ≥ 0")
      }
      return p
    case .profiled(let profile, let scale):
      return profile.problems().map { "pace: " + $0 }
        + (scale > 0 && scale.isFinite ? [] : ["pace: scale must be positive"])
    }
  }
}

extension RooflineModel {
  public func pace(device name: String, on device: DeviceProfile) -> DevicePace? {
    .roofline(device: device, calibration: perDevice[name] ?? calibration)
  }
}

extension ProfiledTimeModel {
  public func pace(device name: String, on device: DeviceProfile) -> DevicePace? {
    guard let b = bindings[name] else { return fallback.pace(device: name, on: device) }
    return .profiled(profile: b.profile, scale: b.scale)
  }
}
