import Catalog
public import CostModel
public import EdgeLabCore
public import Execution
import Foundation
public import Logging
public import Spec
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What the launchers of one process share: the host profile (measured once, so every run of a sweep gets the
/// same dilation factor), warnings said once, and the logger.
public final class EmulationContext: Sendable {
  let logger: Logger
  private let probe: @Sendable () throws -> Bandwidth
  private let flopsProbe: (@Sendable () throws -> FlopRate)?
  private let state = Mutex<(host: Bandwidth?, flops: FlopRate?, warned: Set<String>)>((nil, nil, []))

  /// - Parameters:
  ///   - hostProbe: measures this host's decode bandwidth on one core (the engine's kernel does; the CLI passes
  ///     it in, so emulation does not depend on the engine).
  ///   - flopsProbe: measures this host's prefill compute rate on one core (nil: the dilation considers decode
  ///     only, unless the experiment gives the rate).
  public init(
    logger: Logger, hostProbe: @escaping @Sendable () throws -> Bandwidth,
    flopsProbe: (@Sendable () throws -> FlopRate)? = nil
  ) {
    self.logger = logger
    probe = hostProbe
    self.flopsProbe = flopsProbe
  }

  /// This host's prefill compute rate on one core, measured on first use; nil without a probe.
  public func hostPrefillFlops() throws -> FlopRate? {
    if let f = state.withLock({ $0.flops }) { return f }
    guard let flopsProbe else { return nil }
    let f = try flopsProbe()
    return state.withLock { s in
      if s.flops == nil { s.flops = f }
      return s.flops
    }
  }

  /// The host profile, measured on first use.
  public func hostBandwidth() throws -> Bandwidth {
    if let b = state.withLock({ $0.host }) { return b }
    let b = try probe()
    return state.withLock { s in
      if s.host == nil { s.host = b }
      return s.host!
    }
  }

  /// Logs a warning the first time `key` is seen in this process.
  func warnOnce(_ key: String, _ message: String) {
    if state.withLock({ $0.warned.insert(key).inserted }) { logger.warning("\(message)") }
  }
}

/// Starts workers in an emulated cluster (`emulation: namespaces`): namespaces and kernel shaping for the
/// network, cgroups for CPU and memory, time dilation. See `Cluster` and `DilationPlan`.
public final class NamespaceLauncher: WorkerLauncher, @unchecked Sendable {
  let options: EmulationOptions
  let context: EmulationContext
  var cluster: Cluster?
  var links: [String: Cluster.Link] = [:]
  var plan: DilationPlan?
  var memoryLimits: [String: Int] = [:]
  var features: KernelFeatures?
  var measured: [Fidelity.LinkMeasurement] = []
  public init(options: EmulationOptions, context: EmulationContext) {
    self.options = options
    self.context = context
  }

  public var mechanism: String { "namespaces" }

  public func mechanism(from: String, to: String) -> String {
    guard let l = links[from + "→" + to], let c = cluster else { return "namespaces-unshaped" }
    return c.mechanism(l)
  }

  public func prepare(devices: [String], experiment x: ResolvedExperiment, runID: String) throws -> [String:
    LaunchTarget]
  {
    try prepare(devices: devices, experiment: x, runID: runID, paces: [:])
  }

  public func prepare(devices: [String], experiment x: ResolvedExperiment, runID: String, paces: [String: DevicePace])
    throws -> [String: LaunchTarget]
  {
    let features = KernelFeatures.current
    self.features = features
    guard features.root else {
      throw EmulationError(
        "emulation: namespaces needs root (network namespaces, tc, cgroups); run as root, or set emulation to userspace (shaping in the transport) or none"
      )
    }
    guard features.htb else { throw EmulationError("the kernel has no htb qdisc; use emulation: userspace") }
    // Dilated time is only faithful when every worker really gets its CPU quota.
    guard let cgroups = features.cgroups else {
      throw EmulationError(
        "emulation: namespaces needs a cgroup cpu controller to give each device its CPU share: cgroup v1 (/sys/fs/cgroup/cpu/cpu.cfs_quota_us) or v2 (cpu in cgroup.controllers of /sys/fs/cgroup, or of the subtree EDGELAB_CGROUP_BASE names); this system has neither; use emulation: userspace or none"
      )
    }
    if !cgroups.memory {
      context.warnOnce(
        "memory-cgroup", "no cgroup memory controller: workers run without their devices' memory limits")
    }
    let host = try options.hostBandwidth ?? context.hostBandwidth()
    let used = x.devices.filter { devices.contains($0.name) }
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let flops = try options.hostPrefillFlops ?? context.hostPrefillFlops()
    let demands = DilationPlan.demands(
      paces: paces.filter { devices.contains($0.key) }, model: x.model, precision: x.spec.model.precision,
      hostBandwidth: host, hostFlops: flops)
    let plan = DilationPlan.plan(
      devices: used, calibration: x.spec.calibration, hostBandwidth: host,
      cores: cores, coordinatorShare: options.coordinatorShare, fixed: options.dilation, demands: demands)
    if let fixed = options.dilation {
      guard fixed >= plan.minimum * 0.999 else {
        throw EmulationError(
          "emulation.dilation \(fixed) is below \(String(format: "%.2f", plan.minimum)), the smallest factor at which these devices fit this host's \(cores) cores (host profile \(host.canonical) per core); raise it or leave it unset"
        )
      }
    }
    self.plan = plan
    let d = plan.factor
    let cluster = try Cluster(devices: devices, features: features)
    self.cluster = cluster
    var shaped: [Cluster.Link] = []
    for l in x.links where devices.contains(l.from) && devices.contains(l.to) {
      let link = Cluster.Link(l, dilation: d)
      links[l.from + "→" + l.to] = link
      shaped.append(link)
    }
    if !features.netem && shaped.contains(where: { $0.latency > 0 || $0.jitter > 0 }) {
      context.warnOnce(
        "netem",
        "this kernel has no netem; link delay and jitter are emulated in the transport (receive-side release queue)")
    }
    do {
      try cluster.up(links: shaped)
      // The links this run's pipeline uses (stage to stage, last back to first), measured before it starts.
      for (i, from) in devices.enumerated() where devices.count > 1 {
        let to = devices[(i + 1) % devices.count]
        guard let l = links[from + "→" + to] else { continue }
        measured.append(try Fidelity.measure(cluster: cluster, link: l, dilation: d))
      }
    } catch {
      cluster.down()
      throw error
    }
    var targets: [String: LaunchTarget] = [:]
    for dev in devices {
      guard let h = cluster.hosts[dev], let device = x.device(dev) else { continue }
      // The worker's memory limit: its budget, scaled from the declared weight bytes to the engine's (the engine
      // stores what the checkpoint or the precision says, so the scale is 1), plus headroom for the process.
      let limit = Int(device.profile.usableMemory.value + options.memoryHeadroom.value)

      // The worker pads each computation to its share (`computeStretch`); the quota caps the average above that,
      // so it limits a runaway process without throttling a burst the padding already paced.
      let share = plan.cpuShares[dev] ?? 1
      let cgroup = DeviceCgroup(
        layout: cgroups, run: cluster.id, device: Cluster.safe(dev), cpuShare: DeviceCgroup.cap(share: share),
        memoryLimit: cgroups.memory ? limit : nil)
      if let applied = try cgroup.create(cluster.shell) { memoryLimits[dev] = applied }
      var delays: [String: LinkDelay] = [:]
      for (_, l) in links where l.to == dev {
        // Delay where the kernel has no netem; every link's serialization, which HTB's burst would skip.
        delays[l.from] = LinkDelay(
          latency: features.netem ? 0 : l.latency, jitter: features.netem ? 0 : l.jitter,
          bytesPerSecond: l.trace.isEmpty ? l.rate : nil)
      }
      let shell = cluster.shell
      targets[dev] = LaunchTarget(
        listenHost: h.address, prefix: ["ip", "netns", "exec", h.netns], delays: delays, dilation: d,
        storageBytesPerSecond: device.profile.storageReadBandwidth.bytesPerSecond / d,
        attach: { pid in try cgroup.attach(pid, shell) })
      targets[dev]?.computeStretch = plan.stretch(dev)
      targets[dev]?.emulatesDevice = true
    }
    return targets
  }

  public func runStarted() { cluster?.startTraces() }

  public func teardown() {
    cluster?.down()
    cluster = nil
  }

  public func facts() -> [String: String] {
    guard let plan else { return ["emulation": "namespaces"] }
    var f: [String: String] = [
      "emulation": "namespaces", "dilation_factor": String(plan.factor),
      "host_bandwidth": plan.hostBandwidth.canonical, "kernel": features?.kernel ?? "",
      "kernel_features": (try? JSONCoding.compactString(features)) ?? "",
      "cgroups": features?.cgroups?.description ?? "none",
      "cpu_quotas": plan.cpuShares.sorted { $0.key < $1.key }.map {
        "\($0.key)=\(DeviceCgroup.quota(DeviceCgroup.cap(share: $0.value)))us/\(DeviceCgroup.period)us"
      }.joined(separator: ","),
      "compute_stretch": plan.speedups.keys.sorted().map {
        "\($0)=\(String(format: plan.stretch($0) ?? 1, digits: 3))"
      }.joined(separator: ","),
      "core_demands": plan.demands.keys.sorted().map {
        "\($0)=\(String(format: plan.demands[$0]!, digits: 3))"
      }.joined(separator: ","),
      "memory_limits": memoryLimits.isEmpty
        ? "not applied (no cgroup memory controller)"
        : memoryLimits.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
    ]
    if !measured.isEmpty { f["measured_links"] = (try? JSONCoding.compactString(measured)) ?? "" }
    if let c = cluster {
      f["link_mechanisms"] = links.keys.sorted().map { "\($0)=\(c.mechanism(links[$0]!))" }.joined(separator: ",")
      f["emulation_commands"] = c.commands.joined(separator: "\n")
    }
    return f
  }
}

/// Shaping inside the transport only (`emulation: userspace`): delays at the receiver, rate pacing at the
/// sender; no root needed, no CPU or memory limits, no loss (a reliable byte stream cannot drop).
public final class UserspaceLauncher: WorkerLauncher, @unchecked Sendable {
  var links: [String: (rate: Double, latency: Double, jitter: Double)] = [:]
  public init() {}
  public var mechanism: String { "transport-pacing+transport-delay" }
  public func prepare(devices: [String], experiment x: ResolvedExperiment, runID: String) throws -> [String:
    LaunchTarget]
  {
    var targets: [String: LaunchTarget] = [:]
    for d in devices {
      var delays: [String: LinkDelay] = [:]
      var pacing: [String: Double] = [:]
      for l in x.links where devices.contains(l.from) && devices.contains(l.to) {
        links[l.from + "→" + l.to] = (l.spec.bandwidth.bytesPerSecond, l.spec.latency.value, l.spec.jitter.value)
        if l.to == d && (l.spec.latency.value > 0 || l.spec.jitter.value > 0) {
          delays[l.from] = LinkDelay(latency: l.spec.latency.value, jitter: l.spec.jitter.value)
        }
        if l.from == d { pacing[l.to] = l.spec.bandwidth.bytesPerSecond }
      }
      var t = LaunchTarget(listenHost: "127.0.0.1", delays: delays)
      t.pacing = pacing
      targets[d] = t
    }
    return targets
  }
  public func teardown() {}
  public func facts() -> [String: String] { ["emulation": "userspace", "loss": "not emulated in userspace mode"] }
}
