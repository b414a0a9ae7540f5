import Foundation
import TestSupport
import Testing

@testable import Emulation

/// The cgroup v2 path, against directories laid out like a v2 hierarchy (this machine mounts v1): what is
/// written where. On a real v2 kernel the same files are the kernel's interface files.
@Suite("Cgroups v1 and v2")
struct CgroupTests {
  func write(_ path: String, _ text: String) throws { try text.write(toFile: path, atomically: false, encoding: .utf8) }
  func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "<missing>" }

  @Test func v2WritesCpuMaxAndMemoryMaxUnderTheRunsGroupWithControllersEnabled() throws {
    let root = temporaryDirectory("fake-cgroup2")
    defer { try? FileManager.default.removeItem(atPath: root) }
    try write(root + "/cgroup.controllers", "cpuset cpu io memory pids\n")
    try write(root + "/cgroup.subtree_control", "")
    let layout = try #require(CgroupLayout.detect(root: root, environment: [:]))
    #expect(layout == CgroupLayout(version: .v2, base: root, cpu: true, memory: true))
    let group = DeviceCgroup(layout: layout, run: "ab12", device: "nano0", cpuShare: 0.25, memoryLimit: 1_000_000)
    let shell = Shell()
    #expect(try group.create(shell) == 1_000_000)
    #expect(read(root + "/cgroup.subtree_control") == "+cpu +memory")
    #expect(read(root + "/edgelab-ab12/cgroup.subtree_control") == "+cpu +memory")
    #expect(read(root + "/edgelab-ab12/nano0/cpu.max") == "25000 100000")
    #expect(read(root + "/edgelab-ab12/nano0/memory.max") == "1000000")
    try group.attach(4242, shell)
    // One leaf holds the worker for both controllers.
    #expect(read(root + "/edgelab-ab12/nano0/cgroup.procs") == "4242")
    #expect(shell.commands.contains("echo 25000 100000 > \(root)/edgelab-ab12/nano0/cpu.max"))
    #expect(DeviceCgroup.runs(layout).map(\.id) == ["ab12"])
  }

  @Test func aDelegatedSubtreeIsUsedAndItsControllersDecideWhatIsLimited() throws {
    let root = temporaryDirectory("fake-cgroup2")
    defer { try? FileManager.default.removeItem(atPath: root) }
    try write(root + "/cgroup.controllers", "cpu memory\n")
    let delegated = root + "/user.slice/lab.service"
    try FileManager.default.createDirectory(atPath: delegated, withIntermediateDirectories: true)
    try write(delegated + "/cgroup.controllers", "cpu\n")
    let layout = try #require(CgroupLayout.detect(root: root, environment: ["EDGELAB_CGROUP_BASE": delegated]))
    #expect(layout == CgroupLayout(version: .v2, base: delegated, cpu: true, memory: false))
    let group = DeviceCgroup(layout: layout, run: "cd34", device: "agx", cpuShare: 2, memoryLimit: nil)
    #expect(try group.create(Shell()) == nil)
    #expect(read(delegated + "/edgelab-cd34/agx/cpu.max") == "200000 100000")
    #expect(read(delegated + "/edgelab-cd34/cgroup.subtree_control") == "+cpu")
  }

  @Test func v1IsDetectedFirstAndNoCpuControllerMeansNone() throws {
    let v1 = temporaryDirectory("fake-cgroup1")
    defer { try? FileManager.default.removeItem(atPath: v1) }
    try FileManager.default.createDirectory(atPath: v1 + "/cpu", withIntermediateDirectories: true)
    try write(v1 + "/cpu/cpu.cfs_quota_us", "-1\n")
    #expect(
      CgroupLayout.detect(root: v1, environment: [:]) == CgroupLayout(version: .v1, base: v1, cpu: true, memory: false))
    let group = DeviceCgroup(
      layout: CgroupLayout(version: .v1, base: v1, cpu: true, memory: false), run: "ef56", device: "d", cpuShare: 0.5,
      memoryLimit: nil)
    try group.create(Shell())
    #expect(read(v1 + "/cpu/edgelab-ef56/d/cpu.cfs_quota_us") == "50000")
    #expect(read(v1 + "/cpu/edgelab-ef56/d/cpu.cfs_period_us") == "100000")
    let none = temporaryDirectory("fake-cgroup0")
    defer { try? FileManager.default.removeItem(atPath: none) }
    try write(none + "/cgroup.controllers", "memory pids\n")
    #expect(CgroupLayout.detect(root: none, environment: [:]) == nil)
  }
}
