public import EdgeLabCore
import Foundation
public import Spec

#if canImport(Glibc)
import Glibc
#endif

/// `edgelab emulation up/down/clean`: emulated hosts for users' own tools, and cleanup after hard kills.
public enum Playground {
  public struct HostInfo: Codable, Sendable {
    public var name: String
    public var netns: String
    public var address: String
  }
  public struct Created: Codable, Sendable {
    public var id: String
    public var hosts: [HostInfo]
    public var bridge: String
    public var mechanism: String
    public var warnings: [String]
  }

  /// Creates `hosts` hosts h0… joined by symmetric links, and leaves them up.
  public static func up(hosts n: Int, bandwidth: Bandwidth, delay: Seconds, jitter: Seconds, loss: Double) throws
    -> Created
  {
    let names = (0..<n).map { "h\($0)" }
    var links: [Cluster.Link] = []
    for a in names {
      for b in names where a != b {
        links.append(
          Cluster.Link(
            from: a, to: b, rate: bandwidth.bytesPerSecond, loss: loss, latency: delay.value, jitter: jitter.value,
            trace: []))
      }
    }
    return try up(hosts: names, links: links)
  }

  /// Creates one host per device of an experiment (its first sweep point), with the experiment's links, in real
  /// time (no dilation: the playground has no devices to slow down). Bandwidth traces are followed only while
  /// this process lives (the tests); `edgelab emulation up` returns at once and warns that they are not.
  public static func up(experiment x: ResolvedExperiment) throws -> Created {
    try up(hosts: x.devices.map(\.name), links: x.links.map { Cluster.Link($0, dilation: 1) })
  }

  static func up(hosts names: [String], links declared: [Cluster.Link]) throws -> Created {
    let features = KernelFeatures.current
    guard features.root else { throw EmulationError("emulation up needs root (network namespaces)") }
    let cluster = try Cluster(devices: names, features: features)
    let id = cluster.id
    // Without netem, delay lives in EdgeLab's transport and cannot be applied to other tools' traffic.
    let links = declared.map { l in
      var l = l
      if !features.netem { (l.latency, l.jitter) = (0, 0) }
      return l
    }
    let delayed = declared.contains { $0.latency > 0 || $0.jitter > 0 }
    do { try cluster.up(links: links) } catch {
      cluster.down()
      throw error
    }
    Cluster.markPlayground(id)
    cluster.startTraces()
    var warnings: [String] = []
    if links.contains(where: { !$0.trace.isEmpty }) {
      warnings.append("bandwidth traces are not followed in the playground: links keep their rate at time zero")
    }
    if !features.netem && delayed {
      warnings.append(
        "this kernel has no netem: delay and jitter are not applied to traffic of other tools (EdgeLab's transport emulates them in runs)"
      )
    }
    return Created(
      id: id,
      hosts: names.map { n in HostInfo(name: n, netns: cluster.hosts[n]!.netns, address: cluster.hosts[n]!.address) },
      bridge: cluster.bridge, mechanism: links.first.map(cluster.mechanism) ?? "none", warnings: warnings)
  }

  /// Removes a cluster made by `up` (or left by a run).
  public static func down(id: String) throws {
    guard let r = Cluster.record(id) else {
      throw EmulationError("no emulated cluster '\(id)' (see /run/edgelab/emulation)")
    }
    Cluster.remove(r)
  }

  /// Removes what runs that were killed hard left behind: clusters whose coordinator is gone, then anything
  /// carrying EdgeLab's names (namespaces edgelab-*, links el<id>…, cgroups edgelab-*) that no live run owns.
  /// Playground clusters (from `up`) are kept unless `all`. Returns what was removed.
  public static func clean(all: Bool = false) -> [String] {
    var removed: [String] = []
    var live = Set<String>()
    // A state file that does not decode is a run killed between reserving its id and recording it.
    for file in (try? FileManager.default.contentsOfDirectory(atPath: Cluster.stateDirectory)) ?? []
    where file.hasSuffix(".json") {
      let path = Cluster.stateDirectory + "/" + file
      let age =
        (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date).map {
          -$0.timeIntervalSinceNow
        } ?? 0
      if Cluster.record(String(file.dropLast(5))) == nil && age > 60 {
        try? FileManager.default.removeItem(atPath: path)
        removed.append("state file \(file)")
      }
    }
    for r in Cluster.records() {
      let playground = Cluster.isPlayground(r.id)
      let owner = !playground && r.coordinatorAlive
      if owner || (playground && !all) {
        live.insert(r.id)
        continue
      }
      Cluster.remove(r)
      removed.append("cluster \(r.id)")
    }
    // Leftovers without a record.
    for ns in Shell.namespaces()
    where ns.hasPrefix("edgelab-") && !live.contains(where: { ns.hasPrefix("edgelab-\($0)-") }) {
      // A feature probe of a live process (edgelab-probe-PID-…) is its own business.
      let parts = ns.split(separator: "-")
      if ns.hasPrefix("edgelab-probe-"), parts.count > 2, let pid = Int32(parts[2]), kill(pid, 0) == 0 { continue }
      Shell.deleteNamespace(ns)
      removed.append("netns \(ns)")
    }
    for l in Shell.linkNames()
    where l.count >= 7 && l.hasPrefix("el") && l.dropFirst(2).prefix(4).allSatisfy(\.isHexDigit) {
      let id = String(l.dropFirst(2).prefix(4))
      if live.contains(id) { continue }
      _ = Shell.capture(["ip", "link", "del", l])
      removed.append("link \(l)")
    }
    if let layout = CgroupLayout.detect() {
      for (id, place) in DeviceCgroup.runs(layout) where !live.contains(id) {
        DeviceCgroup.remove(run: id, layout: layout)
        removed.append("cgroup \(place)")
      }
    }
    return removed
  }
}

extension Cluster {
  static func records() -> [Record] {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: stateDirectory)) ?? []
    return files.filter { $0.hasSuffix(".json") }.compactMap { record(String($0.dropLast(5))) }
  }
  static func record(_ id: String) -> Record? {
    guard let data = FileManager.default.contents(atPath: stateDirectory + "/\(id).json") else { return nil }
    return try? JSONDecoder().decode(Record.self, from: data)
  }
  static func markPlayground(_ id: String) {
    _ = FileManager.default.createFile(atPath: stateDirectory + "/\(id).playground", contents: Data())
  }
  static func isPlayground(_ id: String) -> Bool {
    FileManager.default.fileExists(atPath: stateDirectory + "/\(id).playground")
  }
}
