public import Catalog
public import EdgeLabCore
public import Spec

/// How long a device takes for a layer's work. The roofline below is the default; measured profiles plug in
/// behind the same protocol.
public protocol LayerTimeModel: Sendable {
  func time(_ layer: LayerCost, on device: DeviceProfile, work: Work, precision: Precision) -> Seconds
}

/// Roofline: time = max(FLOPs / (peak · compute efficiency), bytes / (bandwidth · memory efficiency)) plus a
/// fixed per-layer overhead. The efficiencies are the named factors of `Calibration`.
public struct RooflineModel: LayerTimeModel {
  public var calibration: Calibration
  public init(calibration: Calibration = Calibration()) { self.calibration = calibration }

  public func time(_ layer: LayerCost, on device: DeviceProfile, work: Work, precision: Precision) -> Seconds {
    let compute = layer.flops(work) / (device.peak(for: precision).flopsPerSecond * calibration.computeEfficiency)
    let memory = layer.bytesMoved(work) / (device.memoryBandwidth.bytesPerSecond * calibration.memoryEfficiency)
    return Seconds(max(compute, memory)) + calibration.layerOverhead
  }
}
