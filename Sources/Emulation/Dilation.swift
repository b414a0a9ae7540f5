public import Catalog
public import CostModel
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
///
/// Workers paced to their devices' time models take each phase's own time (a compute-bound prompt and a
/// memory-bound token alike), so a device needs as many cores as its most demanding phase asks (`demands`).
public struct DilationPlan: Sendable, Hashable {
  public var factor: Double
  /// The smallest factor at which the devices fit the host (`factor` unless one was fixed).
  public var minimum: Double
  /// CPU share of each device's worker, in cores.
  public var cpuShares: [String: Double]
  /// Speed of each device relative to one host core (decode: memory bandwidth).
  public var speedups: [String: Double]
  /// Cores of this host each device needs to take its own time in its most demanding phase (`demands`); the
  /// speed-up where not known.
  public var demands: [String: Double]
  public var hostBandwidth: Bandwidth
  public var availableCores: Double

  /// Wall seconds per second of this host's CPU for a worker paced by its CPU time (D / its speed-up).
  public func stretch(_ device: String) -> Double? {
    guard let r = speedups[device], r > 0 else { return nil }
    return factor / r > 1 ? factor / r : nil
  }

  /// - Parameters:
  ///   - demands: cores each device needs to take its own time, per `demands(…)`, for devices paced to their
  ///     time model (phase by phase); the decode speed-up stands for a device not listed.
  ///   - headroom: the factor is this much above the least that fits, where demands are given: co-located
  ///     workers computing at once share the memory bandwidth and the scheduler, and a paced worker whose
  ///     computation outgrows its device's time runs late.
  public static func plan(
    devices: [ResolvedDevice], calibration: Calibration, hostBandwidth: Bandwidth, cores: Int,
    coordinatorShare: Double, fixed: Double? = nil, demands: [String: Double] = [:], headroom: Double = 1.2
  ) -> DilationPlan {
    let host = hostBandwidth.bytesPerSecond
    var r: [String: Double] = [:]
    var q: [String: Double] = [:]
    for d in devices {
      r[d.name] = d.profile.memoryBandwidth.bytesPerSecond * calibration.memoryEfficiency / host
      q[d.name] = demands[d.name].map { max($0, 0) } ?? r[d.name]!
    }
    let available = max(0.1, Double(cores) - coordinatorShare)
    let total = q.values.reduce(0, +)
    let largest = q.values.max() ?? 1
    let needed = max(1, total / available, largest) * (demands.isEmpty ? 1 : max(1, headroom))
    let factor = fixed ?? needed
    var shares: [String: Double] = [:]
    for (name, need) in q { shares[name] = min(1, max(need, r[name] ?? 0) / factor) }
    return DilationPlan(
      factor: factor, minimum: needed, cpuShares: shares, speedups: r, demands: q, hostBandwidth: hostBandwidth,
      availableCores: available)
  }

  /// Cores of this host each device needs to take its own time, from its time model (`DevicePace`): for a decode
  /// step and prompts of 1, 32 and 256 tokens on one decoder block of `model`, this host's time — the larger of
  /// the block's FLOPs at `hostFlops` and its bytes at `hostBandwidth`, one core — over the device's; the largest.
  /// Without `hostFlops` only the decode step counts.
  public static func demands(
    paces: [String: DevicePace], model: ModelConfig, precision: Precision, hostBandwidth: Bandwidth,
    hostFlops: FlopRate?
  ) -> [String: Double] {
    let layers = ModelLayers(config: model, precision: precision).layers
    guard layers.count > 2 else { return [:] }
    let block = [layers[1]]
    var works: [Work] = [.decode(contexts: [64])]
    if hostFlops != nil { works += [.prefill(tokens: 1), .prefill(tokens: 32), .prefill(tokens: 256)] }
    var out: [String: Double] = [:]
    for (name, pace) in paces {
      var need = 0.0
      for w in works {
        let compute = hostFlops.map { block[0].flops(w) / $0.flopsPerSecond } ?? 0
        let hostSeconds = max(compute, block[0].bytesMoved(w) / hostBandwidth.bytesPerSecond)
        let deviceSeconds = pace.seconds(block, work: w, precision: precision)
        if deviceSeconds > 0 && deviceSeconds.isFinite { need = max(need, hostSeconds / deviceSeconds) }
      }
      if need > 0 && need.isFinite { out[name] = need }
    }
    return out
  }
}
