import Catalog
public import EdgeLabCore
public import Spec

/// Time dilation (Gupta et al., "To Infinity and Beyond", NSDI 2006; DieCast, NSDI 2008): a host slower than
/// the devices it emulates runs them in dilated time. With factor D, every worker gets the CPU share that
/// makes it D times slower than its device, links get bandwidth / D and delays × D, storage reads are paced
/// to bandwidth / D, so every ratio of compute to communication holds; results report device time = wall / D.
///
/// Speeds come from the decode roofline, which is what the engine is bound by: a device decodes at its memory
/// bandwidth × the calibration's memory efficiency; one core of this host at `hostBandwidth` (the host
/// profile, measured with the engine's decode kernel). A device is r = device / host times as fast as one host
/// core, so its worker needs r / D cores. D is the smallest factor ≥ 1 such that every worker needs at most
/// one core (workers are single-threaded) and all of them fit the host's cores less the coordinator's share.
public struct DilationPlan: Sendable, Hashable {
  public var factor: Double
  /// The smallest factor at which the devices fit the host (`factor` unless one was fixed).
  public var minimum: Double
  /// CPU share of each device's worker, in cores.
  public var cpuShares: [String: Double]
  /// Speed of each device relative to one host core.
  public var speedups: [String: Double]
  public var hostBandwidth: Bandwidth
  public var availableCores: Double

  public static func plan(
    devices: [ResolvedDevice], calibration: Calibration, hostBandwidth: Bandwidth, cores: Int,
    coordinatorShare: Double, fixed: Double? = nil
  ) -> DilationPlan {
    let host = hostBandwidth.bytesPerSecond
    var r: [String: Double] = [:]
    for d in devices { r[d.name] = d.profile.memoryBandwidth.bytesPerSecond * calibration.memoryEfficiency / host }
    let available = max(0.1, Double(cores) - coordinatorShare)
    let total = r.values.reduce(0, +)
    let largest = r.values.max() ?? 1
    let needed = max(1, total / available, largest)
    let factor = fixed ?? needed
    var shares: [String: Double] = [:]
    for (name, speed) in r { shares[name] = min(1, speed / factor) }
    return DilationPlan(
      factor: factor, minimum: needed, cpuShares: shares, speedups: r, hostBandwidth: hostBandwidth,
      availableCores: available)
  }
}
