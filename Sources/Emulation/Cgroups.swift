import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A cgroup (v1) per emulated device: CPU bandwidth (`cpu.cfs_quota_us` over `cpu.cfs_period_us`) and a memory
/// limit (`memory.limit_in_bytes`). Directories are `/sys/fs/cgroup/{cpu,memory}/edgelab-<run>/<device>`.
struct DeviceCgroup: Sendable {
  static let root = "/sys/fs/cgroup"
  static let period = 100_000
  /// A worker's quota over its CPU share: the worker paces its own computations to the share, and the quota only
  /// bounds the average.
  static let quotaHeadroom = 1.25

  let run: String
  let device: String
  /// Fraction of one CPU.
  let cpuShare: Double
  let memoryLimit: Int?

  var cpuPath: String { "\(Self.root)/cpu/edgelab-\(run)/\(device)" }
  var memoryPath: String { "\(Self.root)/memory/edgelab-\(run)/\(device)" }

  /// Creates the cgroups; returns the memory limit the kernel applied (it rounds down to whole pages).
  @discardableResult
  func create(_ shell: Shell) throws -> Int? {
    let fm = FileManager.default
    try fm.createDirectory(atPath: cpuPath, withIntermediateDirectories: true)
    try write(String(Self.period), cpuPath + "/cpu.cfs_period_us", shell)
    try write(String(Self.quota(cpuShare)), cpuPath + "/cpu.cfs_quota_us", shell)
    if let memoryLimit {
      try fm.createDirectory(atPath: memoryPath, withIntermediateDirectories: true)
      try write(String(memoryLimit), memoryPath + "/memory.limit_in_bytes", shell)
      let applied = (try? String(contentsOfFile: memoryPath + "/memory.limit_in_bytes", encoding: .utf8))
        .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
      return applied ?? memoryLimit
    }
    return nil
  }

  /// The quota for a share of one core, in µs per period (the kernel's minimum is 1000 µs).
  static func quota(_ share: Double) -> Int { max(1000, Int(share * Double(period))) }

  /// The share of one core a device whose worker paces itself to `share` is capped at.
  static func cap(share: Double) -> Double { min(1, share * quotaHeadroom) }

  func attach(_ pid: Int32, _ shell: Shell) throws {
    try write(String(pid), cpuPath + "/cgroup.procs", shell)
    if memoryLimit != nil { try write(String(pid), memoryPath + "/cgroup.procs", shell) }
  }

  func write(_ value: String, _ path: String, _ shell: Shell) throws {
    shell.note("echo \(value) > \(path)")
    do { try value.write(toFile: path, atomically: false, encoding: .utf8) } catch {
      throw EmulationError("cannot write \(value) to \(path): \(error)")
    }
  }

  /// Kills what is left in this run's cgroups and removes them.
  static func remove(run: String) {
    for controller in ["cpu", "memory"] {
      let base = "\(root)/\(controller)/edgelab-\(run)"
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
