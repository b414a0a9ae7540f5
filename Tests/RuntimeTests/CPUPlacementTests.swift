import EdgeLabCore
import Foundation
import Metrics
import Results
import TestSupport
import Testing

@testable import Runtime

@Suite("Worker CPU placement", .serialized)
struct CPUPlacementTests {
  @Test func workersGetDisjointCoresWhenThereAreEnoughAndShareOtherwise() {
    let cpus = [0, 1, 2, 3, 5]
    #expect(CPUPlacement.assign(["a", "b"], threads: 1, cpus: cpus) == ["a": [0], "b": [1]])
    #expect(CPUPlacement.assign(["a", "b"], threads: 2, cpus: cpus) == ["a": [0, 1], "b": [2, 3]])
    #expect(CPUPlacement.assign(["a", "b", "c"], threads: 2, cpus: cpus) == nil)
    #expect(CPUPlacement.assign(["a", "b", "c", "d", "e", "f"], threads: 1, cpus: cpus) == nil)
    #expect(CPUPlacement.assign([], threads: 1, cpus: cpus) == nil)
    #expect(CPUPlacement.assign(["a"], threads: 0, cpus: cpus) == nil)
    #expect(CPUPlacement.assign(["a"], threads: Int.max, cpus: cpus) == nil)
  }

  @Test func aCPUListIsParsedStrictly() {
    #expect(CPUPlacement.parse("0,1") == [0, 1])
    #expect(CPUPlacement.parse(" 3 ") == [3])
    for bad in ["", "0,,1", "-1", "1024", "a", "0,0", "1-2"] { #expect(CPUPlacement.parse(bad) == nil, "\(bad)") }
    #expect(CPUPlacement.format([2, 0]) == "2,0")
    #expect(!CPUPlacement.available().isEmpty)
  }

  /// Each worker of a two-stage run computes on a core of its own where the machine has two, and on every core
  /// otherwise; the run records which.
  @Test func aLoopbackRunPlacesItsWorkersAndRecordsWhere() throws {
    let pids = Pids()
    let allowed = Captured()
    var options = Runs.options(pids: pids)
    options.onServing = {
      var lists: [String: [Int]] = [:]
      for (d, pid) in pids.all { lists[d] = Self.allowedCPUs(pid) }
      allowed.set(lists)
    }
    let (_, file) = try Runs.run(Runs.spec(devices: 2, requests: 1, output: 2), options)
    let run = try #require(file.runs.first)
    #expect(run.outcome.status == .complete, "\(run.outcome.message ?? "")")
    let expected = CPUPlacement.assign(["d0", "d1"], threads: 1, cpus: CPUPlacement.available())
    let seen = allowed.value
    if let expected {
      #expect(seen == expected)
      #expect(run.outcome.facts["worker_cpus"] == .string("d0:\(expected["d0"]![0]) d1:\(expected["d1"]![0])"))
    } else {
      #expect(seen.values.allSatisfy { $0 == CPUPlacement.available() }, "\(seen)")
      #expect(run.outcome.facts["worker_cpus"] == .string("shared"))
    }
  }

  /// The CPUs process `pid` may run on (`Cpus_allowed_list` of /proc/PID/status, ranges expanded).
  static func allowedCPUs(_ pid: Int32) -> [Int] {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
      let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
    else { return [] }
    var out: [Int] = []
    for part in line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces).split(separator: ",") {
      let ends = part.split(separator: "-").compactMap { Int($0) }
      if let a = ends.first { out += Array(a...(ends.last ?? a)) }
    }
    return out
  }
}

/// A value set from another thread.
final class Captured: @unchecked Sendable {
  private var lists: [String: [Int]] = [:]
  private let lock = NSLock()
  func set(_ v: [String: [Int]]) { lock.withLock { lists = v } }
  var value: [String: [Int]] { lock.withLock { lists } }
}
