import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where this machine's cgroups are and which hierarchy they follow.
///
/// - **v1** (one hierarchy per controller): `ROOT/cpu/edgelab-<run>/<device>` with `cpu.cfs_period_us` and
///   `cpu.cfs_quota_us`, `ROOT/memory/edgelab-<run>/<device>` with `memory.limit_in_bytes`.
/// - **v2** (unified): `BASE/edgelab-<run>/<device>` with `cpu.max` ("QUOTA PERIOD") and `memory.max`, the
///   controllers enabled by writing `+cpu +memory` to `cgroup.subtree_control` of BASE and of the run's group
///   (a group with controllers for its children holds no processes itself, so workers go in the leaves). BASE is
///   the cgroup root for root, or a delegated subtree (`EDGELAB_CGROUP_BASE`, e.g. a systemd unit with
///   `Delegate=yes`).
public struct CgroupLayout: Codable, Sendable, Hashable {
  public enum Version: Int, Codable, Sendable {
    case v1 = 1
    case v2 = 2
  }
  public var version: Version
  /// v1: the mount point of the controller hierarchies; v2: the subtree runs are created under.
  public var base: String
  public var cpu: Bool
  public var memory: Bool

  public init(version: Version, base: String, cpu: Bool, memory: Bool) {
    self.version = version
    self.base = base
    self.cpu = cpu
    self.memory = memory
  }

  /// The layout of this machine, or nil when it offers no cpu controller to use. `root` and `environment` are
  /// parameters so tests can point them at a directory laid out like a hierarchy.
  public static func detect(root: String = "/sys/fs/cgroup", environment: [String: String]? = nil) -> CgroupLayout? {
    let environment = environment ?? ProcessInfo.processInfo.environment
    let fm = FileManager.default
    if fm.fileExists(atPath: root + "/cpu/cpu.cfs_quota_us") {
      return CgroupLayout(
        version: .v1, base: root, cpu: true, memory: fm.fileExists(atPath: root + "/memory/memory.limit_in_bytes"))
    }
    let base = environment["EDGELAB_CGROUP_BASE"] ?? root
    // v2: the controllers the base's parent grants it (`cgroup.controllers` of the base itself).
    guard let text = try? String(contentsOfFile: base + "/cgroup.controllers", encoding: .utf8) else { return nil }
    let controllers = Set(text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
    guard controllers.contains("cpu") else { return nil }
    return CgroupLayout(version: .v2, base: base, cpu: true, memory: controllers.contains("memory"))
  }

  var description: String { version == .v1 ? "cgroup v1 at \(base)" : "cgroup v2 under \(base)" }
}

/// A cgroup per emulated device: CPU bandwidth (a quota of `period` µs) and a memory limit, in either hierarchy.
struct DeviceCgroup: Sendable {
  static let period = 100_000
  /// A worker's quota over its CPU share: the worker paces its own computations to the share, and the quota only
  /// bounds the average.
  static let quotaHeadroom = 1.25

  let layout: CgroupLayout
  let run: String
  let device: String
  /// Fraction of one CPU.
  let cpuShare: Double
  let memoryLimit: Int?

  var runGroup: String { layout.base + "/edgelab-\(run)" }
  var cpuPath: String {
    layout.version == .v1 ? "\(layout.base)/cpu/edgelab-\(run)/\(device)" : "\(runGroup)/\(device)"
  }
  var memoryPath: String {
    layout.version == .v1 ? "\(layout.base)/memory/edgelab-\(run)/\(device)" : "\(runGroup)/\(device)"
  }

  /// Creates the cgroups; returns the memory limit the kernel applied (it rounds down to whole pages).
  @discardableResult
  func create(_ shell: Shell) throws -> Int? {
    let fm = FileManager.default
    let limitFile = layout.version == .v1 ? "/memory.limit_in_bytes" : "/memory.max"
    switch layout.version {
    case .v1:
      try fm.createDirectory(atPath: cpuPath, withIntermediateDirectories: true)
      try write(String(Self.period), cpuPath + "/cpu.cfs_period_us", shell)
      try write(String(Self.quota(cpuShare)), cpuPath + "/cpu.cfs_quota_us", shell)
      if memoryLimit != nil { try fm.createDirectory(atPath: memoryPath, withIntermediateDirectories: true) }
    case .v2:
      let controllers = "+cpu" + (layout.memory && memoryLimit != nil ? " +memory" : "")
      try enable(controllers, in: layout.base, shell)
      if !fm.fileExists(atPath: runGroup) {
        try fm.createDirectory(atPath: runGroup, withIntermediateDirectories: false)
      }
      try enable(controllers, in: runGroup, shell)
      try fm.createDirectory(atPath: cpuPath, withIntermediateDirectories: true)
      try write("\(Self.quota(cpuShare)) \(Self.period)", cpuPath + "/cpu.max", shell)
    }
    if let memoryLimit {
      try write(String(memoryLimit), memoryPath + limitFile, shell)
      let applied = (try? String(contentsOfFile: memoryPath + limitFile, encoding: .utf8))
        .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
      return applied ?? memoryLimit
    }
    return nil
  }

  /// v2: lets `group`'s children use `controllers`, unless it already does.
  func enable(_ controllers: String, in group: String, _ shell: Shell) throws {
    let file = group + "/cgroup.subtree_control"
    let current = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
    let have = Set(current.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
    let wanted = controllers.split(separator: " ").map { String($0.dropFirst()) }
    if wanted.allSatisfy(have.contains) { return }
    do { try write(controllers, file, shell) } catch {
      throw EmulationError(
        "cannot enable \(controllers) for the children of \(group) (cgroup v2): \(error); run as root, or set EDGELAB_CGROUP_BASE to a subtree delegated to you (e.g. a systemd unit with Delegate=yes) whose own processes live in a leaf"
      )
    }
  }

  /// The quota for a share of one core, in µs per period (the kernel's minimum is 1000 µs).
  static func quota(_ share: Double) -> Int { max(1000, Int(share * Double(period))) }

  /// The share of one core a device whose worker paces itself to `share` is capped at.
  static func cap(share: Double) -> Double { min(1, share * quotaHeadroom) }

  func attach(_ pid: Int32, _ shell: Shell) throws {
    try write(String(pid), cpuPath + "/cgroup.procs", shell)
    if memoryLimit != nil && layout.version == .v1 { try write(String(pid), memoryPath + "/cgroup.procs", shell) }
  }

  func write(_ value: String, _ path: String, _ shell: Shell) throws {
    shell.note("echo \(value) > \(path)")
    do { try value.write(toFile: path, atomically: false, encoding: .utf8) } catch {
      throw EmulationError("cannot write \(value) to \(path): \(error)")
    }
  }

  /// Kills what is left in this run's cgroups and removes them (both hierarchies, wherever they are).
  static func remove(run: String, layout: CgroupLayout? = CgroupLayout.detect()) {
    guard let layout else { return }
    let bases =
      layout.version == .v1
      ? ["cpu", "memory"].map { "\(layout.base)/\($0)/edgelab-\(run)" } : ["\(layout.base)/edgelab-\(run)"]
    for base in bases {
      guard let devices = try? FileManager.default.contentsOfDirectory(atPath: base) else { continue }
      for d in devices {
        let dir = base + "/" + d
        guard (try? FileManager.default.attributesOfItem(atPath: dir)[.type] as? FileAttributeType) == .typeDirectory
        else { continue }
        killAll(in: dir)
        rmdir(dir)
      }
      rmdir(base)
    }
  }

  /// Run ids with cgroups left under the layout (for `emulation clean`).
  static func runs(_ layout: CgroupLayout) -> [(id: String, place: String)] {
    let places = layout.version == .v1 ? ["cpu", "memory"].map { layout.base + "/" + $0 } : [layout.base]
    return places.flatMap { place in
      ((try? FileManager.default.contentsOfDirectory(atPath: place)) ?? []).filter { $0.hasPrefix("edgelab-") }.map {
        (id: String($0.dropFirst(8)), place: place + "/" + $0)
      }
    }
  }

  static func killAll(in dir: String) {
    for _ in 0..<100 {
      let pids = ((try? String(contentsOfFile: dir + "/cgroup.procs", encoding: .utf8)) ?? "").split(separator: "\n")
        .compactMap { Int32($0) }
      if pids.isEmpty { return }
      for p in pids { kill(p, SIGKILL) }
      usleep(10_000)
    }
  }
}
