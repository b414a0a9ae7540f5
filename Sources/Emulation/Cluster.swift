import EdgeLabCore
import Foundation
import Spec
import Transport

#if canImport(Glibc)
import Glibc
#endif

/// An emulated cluster: one network namespace per device, each attached by a veth pair to a bridge (the
/// switch) with its own address; the bridge has the coordinator's address. Names carry the run id so parallel
/// runs and leftovers can be told apart: namespaces `edgelab-<id>-<device>`, bridge `el<id>br`, host-side veths
/// `el<id>h<n>`.
///
/// Links (A → B) are shaped where the kernel allows:
/// - rate: an HTB class per destination on A's `eth0` egress (u32 filter on B's address) and one per source on
///   B's host-side veth egress (filter on A's address), so both ends shape like switch ports; burst =
///   max(rate/100, 2 MTU), which is ≥ rate/HZ for any kernel HZ ≥ 100; GSO, TSO and GRO off on both ends;
/// - loss: `netem` where present, else an nftables rule on B's input, `ip saddr A numgen random mod 10000 < k
///   drop` (on arrival, so TCP sees real loss);
/// - delay and jitter: `netem` where present, else in the transport (a receive-side release queue; frames are
///   stamped at send time with CLOCK_MONOTONIC, shared by all namespaces);
/// - bandwidth traces: `tc class change` at the trace's times.
/// Traffic to and from the coordinator goes through an unshaped default class.
final class Cluster: @unchecked Sendable {
  struct Host: Codable, Sendable {
    var device: String
    var netns: String
    var address: String
    var hostVeth: String
    var index: Int
  }
  struct Link: Sendable {
    var from: String
    var to: String
    /// Bytes per second of wall time (already divided by the dilation factor).
    var rate: Double
    var loss: Double
    var latency: Double
    var jitter: Double
    var trace: [(at: Double, rate: Double)]
  }

  let id: String
  let features: KernelFeatures
  let shell = Shell()
  let subnet: String
  private(set) var hosts: [String: Host] = [:]
  let bridge: String
  var bridgeAddress: String { subnet + ".1" }
  private var links: [Link] = []
  private let stopTraces = NSCondition()
  private var stopped = false
  private var traceRunning = false
  private var removed = false

  /// Reserves a fresh run id (its state file is created exclusively, so concurrent runs never share one) and
  /// records what the cluster will create before anything is created.
  init(devices: [String], features: KernelFeatures) throws {
    self.features = features
    id = try Self.reserveID()
    bridge = "el\(id)br"
    do { subnet = try Self.freeSubnet(seed: id) } catch {
      try? FileManager.default.removeItem(atPath: Self.stateDirectory + "/\(id).json")
      throw error
    }
    for (i, d) in devices.enumerated() {
      hosts[d] = Host(
        device: d, netns: "edgelab-\(id)-\(Self.safe(d))", address: "\(subnet).\(i + 2)", hostVeth: "el\(id)h\(i)",
        index: i)
    }
    saveRecord()
  }

  static func reserveID() throws -> String {
    try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
    let namespaces = Shell.namespaces()
    let links = Shell.linkNames()
    for _ in 0..<1000 {
      let id = String(format: "%04x", UInt32.random(in: 0...0xFFFF))
      if namespaces.contains(where: { $0.hasPrefix("edgelab-\(id)-") })
        || links.contains(where: { $0.hasPrefix("el\(id)") })
      {
        continue
      }
      let fd = open(stateDirectory + "/\(id).json", O_CREAT | O_EXCL | O_WRONLY, 0o644)
      if fd >= 0 {
        close(fd)
        return id
      }
    }
    throw EmulationError("no free emulation run id in \(stateDirectory); run `edgelab emulation clean`")
  }

  static func safe(_ s: String) -> String { String(s.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" }) }

  /// A 10.x.y.0/24 subnet no interface of this host uses.
  static func freeSubnet(seed: String) throws -> String {
    let used = Shell.capture(["ip", "-4", "-o", "addr", "show"]).1
    var h = UInt64(seed.utf8.reduce(7) { $0 &* 31 &+ UInt64($1) })
    for _ in 0..<500 {
      h = SeededRandom.mix(h)
      let candidate = "10.\(180 + Int(h % 60)).\(Int((h >> 8) % 256))"
      if !used.contains(candidate + ".") { return candidate }
    }
    throw EmulationError("no free 10.x.y.0/24 subnet for the emulated network")
  }

  /// What this run creates, for `edgelab emulation clean` after a hard kill.
  struct Record: Codable {
    var id: String
    var bridge: String
    var hosts: [Host]
    var pidOfCoordinator: Int32
    /// The coordinator's start time (clock ticks since boot, /proc/PID/stat field 22): a recycled pid is not it.
    var coordinatorStart: UInt64?

    var coordinatorAlive: Bool {
      guard kill(pidOfCoordinator, 0) == 0 else { return false }
      guard let start = coordinatorStart else { return true }
      return Cluster.startTime(of: pidOfCoordinator) == start
    }
  }

  static func startTime(of pid: Int32) -> UInt64? {
    guard let raw = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
    let s = String(decoding: raw, as: UTF8.self)
    // Fields after the command name (which may contain spaces) start at the last ')'.
    guard let close = s.lastIndex(of: ")") else { return nil }
    let fields = s[s.index(after: close)...].split(separator: " ")
    return fields.count > 19 ? UInt64(fields[19]) : nil
  }
  static let stateDirectory = "/run/edgelab/emulation"

  func saveRecord() {
    try? FileManager.default.createDirectory(atPath: Self.stateDirectory, withIntermediateDirectories: true)
    let r = Record(
      id: id, bridge: bridge, hosts: Array(hosts.values), pidOfCoordinator: getpid(),
      coordinatorStart: Self.startTime(of: getpid()))
    if let data = try? JSONEncoder().encode(r) {
      try? data.write(to: URL(fileURLWithPath: Self.stateDirectory + "/\(id).json"))
    }
  }

  // MARK: Up

  func up(links: [Link]) throws {
    try shell.run(["ip", "link", "add", bridge, "type", "bridge"])
    try shell.run(["ip", "addr", "add", bridgeAddress + "/24", "dev", bridge])
    try shell.run(["ip", "link", "set", bridge, "up"])
    for h in hosts.values.sorted(by: { $0.index < $1.index }) {
      let peer = "el\(id)n\(h.index)"
      try shell.run(["ip", "netns", "add", h.netns])
      try shell.run(["ip", "link", "add", h.hostVeth, "type", "veth", "peer", "name", peer])
      try shell.run(["ip", "link", "set", h.hostVeth, "master", bridge])
      try shell.run(["ip", "link", "set", peer, "netns", h.netns])
      try shell.run(["ip", "-n", h.netns, "link", "set", peer, "name", "eth0"])
      try shell.run(["ip", "-n", h.netns, "addr", "add", h.address + "/24", "dev", "eth0"])
      try shell.run(["ip", "-n", h.netns, "link", "set", "eth0", "up"])
      try shell.run(["ip", "-n", h.netns, "link", "set", "lo", "up"])
      try shell.run(["ip", "link", "set", h.hostVeth, "up"])
      if features.ethtool {
        try shell.run(
          ["ip", "netns", "exec", h.netns, "ethtool", "-K", "eth0", "gso", "off", "tso", "off", "gro", "off"],
          check: false)
        try shell.run(["ethtool", "-K", h.hostVeth, "gso", "off", "tso", "off", "gro", "off"], check: false)
      }
      // Root HTB on both ends; unshaped default class for coordinator traffic.
      for c in LinkShaping.root(interface: "eth0", handle: "1") { try shell.run(inNamespace(h, c)) }
      try shell.run([
        "tc", "qdisc", "add", "dev", h.hostVeth, "root", "handle", "1:", "htb", "default", "9999", "r2q", "1000",
      ])
      try shell.run([
        "tc", "class", "add", "dev", h.hostVeth, "parent", "1:", "classid", "1:9999", "htb", "rate", "10gbit",
      ])
    }
    var nftTables = Set<String>()
    for l in links {
      guard let a = hosts[l.from], let b = hosts[l.to] else { continue }
      try shape(l, a, b)
      if l.loss > 0 && !features.netem {
        // Dropped on arrival at B, as a lossy wire would: a drop in A's output hook is reported to A's TCP
        // as a local failure and retransmitted at once, which hides the loss from congestion control.
        if !nftTables.contains(b.netns) {
          try shell.run(["ip", "netns", "exec", b.netns, "nft", "add", "table", "inet", "edgelab"])
          try shell.run([
            "ip", "netns", "exec", b.netns, "nft", "add", "chain", "inet", "edgelab", "in",
            "{ type filter hook input priority 0; }",
          ])
          nftTables.insert(b.netns)
        }
        let k = Int((l.loss * 10000).rounded())
        try shell.run([
          "ip", "netns", "exec", b.netns, "nft", "add", "rule", "inet", "edgelab", "in", "ip", "saddr", a.address,
          "numgen", "random", "mod", "10000", "lt", String(k), "drop",
        ])
      }
    }
    self.links = links
  }

  func classID(_ h: Host) -> String { "1:\(10 + h.index)" }

  static func rateArg(_ bytesPerSecond: Double) -> String { LinkShaping.rateArg(bytesPerSecond) }
  static func burst(_ bytesPerSecond: Double) -> String { LinkShaping.burst(bytesPerSecond) }

  /// A `tc` command run in host `h`'s namespace (`tc -n NS …`).
  func inNamespace(_ h: Host, _ command: [String]) -> [String] { ["tc", "-n", h.netns] + command.dropFirst() }

  func shape(_ l: Link, _ a: Host, _ b: Host) throws {
    let rate = Self.rateArg(l.rate)
    let burst = Self.burst(l.rate)
    // A's egress to B; delay and loss go on B's switch port below, not on A's own egress.
    let egress = LinkShaping.Egress(destination: b.address, minor: 10 + b.index, rate: l.rate)
    for c in LinkShaping.egress(interface: "eth0", handle: "1", egress, netem: false) {
      try shell.run(inNamespace(a, c))
    }
    try shell.run([
      "tc", "class", "add", "dev", b.hostVeth, "parent", "1:", "classid", classID(a), "htb",
      "rate", rate, "ceil", rate, "burst", burst, "cburst", burst,
    ])
    try shell.run([
      "tc", "filter", "add", "dev", b.hostVeth, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
      "match", "ip", "src", a.address + "/32", "flowid", classID(a),
    ])
    // netem on B's switch port, not on A's own egress: a drop there is real loss to A's TCP, not a local one.
    if features.netem && (l.latency > 0 || l.jitter > 0 || l.loss > 0) {
      var args = [
        "tc", "qdisc", "add", "dev", b.hostVeth, "parent", classID(a), "handle", "\(10 + a.index):", "netem",
        "delay", "\(l.latency * 1e3)ms",
      ]
      if l.jitter > 0 { args += ["\(l.jitter * 1e3)ms", "distribution", "normal"] }
      if l.loss > 0 { args += ["loss", "\(l.loss * 100)%"] }
      args += ["limit", "100000"]
      try shell.run(args)
    }
  }

  /// How a link is realised, e.g. "tc-htb+nft-loss+transport-delay".
  func mechanism(_ l: Link) -> String {
    var m = "tc-htb"
    if features.netem && (l.latency > 0 || l.jitter > 0 || l.loss > 0) { return m + "+tc-netem" }
    if l.loss > 0 { m += "+nft-loss" }
    if l.latency > 0 || l.jitter > 0 { m += "+transport-delay" }
    return m
  }

  /// The rate changes of a trace after time zero (the rate at zero is the link's own), in wall time: times × D,
  /// rates ÷ D. Periodic traces repeat for up to 6 hours of device time.
  static func traceChanges(_ trace: BandwidthTrace?, dilation d: Double) -> [(at: Double, rate: Double)] {
    guard let trace else { return [] }
    return trace.changes(from: .zero, to: Seconds(6 * 3600)).prefix(100_000).map {
      (at: $0.value * d, rate: trace.bandwidth(at: $0).bytesPerSecond / d)
    }
  }

  /// Follows bandwidth traces from now (the run's time zero): changes the HTB classes at the trace's (wall) times.
  func startTraces() {
    let changes = links.flatMap { l in l.trace.map { (at: $0.at, link: l, rate: $0.rate) } }.sorted { $0.at < $1.at }
    stopTraces.lock()
    defer { stopTraces.unlock() }
    guard !changes.isEmpty, !stopped, !traceRunning else { return }
    traceRunning = true
    let start = monotonicNanoseconds()  // immune to wall-clock steps
    let t = Thread { [self] in
      defer {
        stopTraces.lock()
        traceRunning = false
        stopTraces.broadcast()
        stopTraces.unlock()
      }
      for c in changes {
        stopTraces.lock()
        while !stopped {
          let elapsed = Double(monotonicNanoseconds() - start) * 1e-9
          if elapsed >= c.at { break }
          _ = stopTraces.wait(until: Date().addingTimeInterval(c.at - elapsed))
        }
        let done = stopped
        stopTraces.unlock()
        if done { return }
        try? setRate(c.link, bytesPerSecond: c.rate)
      }
    }
    t.start()
  }

  /// Changes a shaped link's rate now, on both its ends (a step of a bandwidth trace).
  func setRate(_ link: Link, bytesPerSecond: Double) throws {
    guard let a = hosts[link.from], let b = hosts[link.to] else { return }
    let rate = Self.rateArg(bytesPerSecond)
    let burst = Self.burst(bytesPerSecond)
    try shell.run([
      "tc", "-n", a.netns, "class", "change", "dev", "eth0", "parent", "1:", "classid", classID(b), "htb",
      "rate", rate, "ceil", rate, "burst", burst, "cburst", burst,
    ])
    try shell.run([
      "tc", "class", "change", "dev", b.hostVeth, "parent", "1:", "classid", classID(a), "htb",
      "rate", rate, "ceil", rate, "burst", burst, "cburst", burst,
    ])
  }

  // MARK: Down

  /// Removes everything (idempotent): processes in the namespaces, namespaces (with their veths, qdiscs and
  /// nft tables), the bridge, and the state record; waits until the kernel has let go of the links.
  func down() {
    stopTraces.lock()
    // Once removed, the id may be reserved by another run: never remove twice.
    if removed {
      stopTraces.unlock()
      return
    }
    removed = true
    stopped = true
    stopTraces.broadcast()
    while traceRunning { stopTraces.wait() }
    stopTraces.unlock()
    Self.remove(Record(id: id, bridge: bridge, hosts: Array(hosts.values), pidOfCoordinator: getpid()))
  }

  static func remove(_ r: Record) {
    for h in r.hosts { Shell.deleteNamespace(h.netns) }
    _ = Shell.capture(["ip", "link", "del", r.bridge])
    // Deleting a namespace frees its veths asynchronously; wait until none of this run's links is left.
    for _ in 0..<200 {
      let left = Shell.linkNames().filter { $0.hasPrefix("el\(r.id)") }
      if left.isEmpty { break }
      for name in left { _ = Shell.capture(["ip", "link", "del", name]) }
      usleep(20_000)
    }
    DeviceCgroup.remove(run: r.id)
    try? FileManager.default.removeItem(atPath: stateDirectory + "/\(r.id).json")
    try? FileManager.default.removeItem(atPath: stateDirectory + "/\(r.id).playground")
  }

  var commands: [String] { shell.commands }
}

extension Cluster.Link {
  /// A declared link in wall time under dilation `d`: bandwidth ÷ d, latency and jitter × d, the trace's changes.
  init(_ l: ResolvedLink, dilation d: Double) {
    self.init(
      from: l.from, to: l.to, rate: l.spec.bandwidth.bytesPerSecond / d, loss: l.spec.loss,
      latency: l.spec.latency.value * d,
      jitter: l.spec.jitter.value * d, trace: Cluster.traceChanges(l.trace, dilation: d))
  }
}
