import DSL
import Execution
import Foundation
import Metrics
import Pipeline
import Results
import Runner
import TestSupport
import Testing

@testable import Runtime

#if canImport(Glibc)
import Glibc
#endif

/// Group plans on real worker processes: each member computes its share of every block and the partial sums
/// cross TCP to the leader and back; the tokens equal the unsplit model's (the run's lossless check compares
/// them with a reference computed in one process), and a member that dies fails the run by name.
@Suite("Tensor-parallel groups on loopback workers", .serialized)
struct TensorParallelLoopbackTests {
  static func spec(devices: Int, algorithm: String, parameters: [String: JSONValue] = [:], requests: Int = 3)
    -> ExperimentSpec
  {
    Experiment("tp-loopback") {
      Model(.small, precision: .fp32)
      Device("d", .orinNano8GB, count: devices).source()
      Workload(requests: requests, prompt: .uniform(min: 3, max: 9), output: .fixed(6))
      Algorithm(algorithm, parameters)
      Backend(.loopback)
      Emulation(.none)
      Seed(11)
    }.spec
  }

  @Test(arguments: [("tp", 2), ("tp", 4), ("tp-star", 4)])
  func groupsGiveTheUnsplitTokens(algorithm: String, devices: Int) throws {
    let pids = Pids()
    let (report, file) = try Runs.run(
      Self.spec(devices: devices, algorithm: algorithm, parameters: ["devices": .number(Double(devices))]),
      Runs.options(pids: pids))
    #expect(report.statusCounts == [.complete: 1], "\(file.runs.first?.outcome.message ?? "")")
    let run = try #require(file.runs.first)
    #expect(run.plan?.stages.first?.group?.members.count == devices)
    #expect(run.outcome.facts["lossless"] == .number(1))
    #expect(run.outcome.requests.allSatisfy { $0.isComplete && $0.tokenTimes.count == 6 })
    // The leader sent hidden states and sums to every member, and every member computed.
    let links = Set(run.outcome.links.filter { $0.bytes > 0 }.map { "\($0.from)→\($0.to)" })
    for m in 1..<devices { #expect(links.contains("d0→d\(m)"), "\(links)") }
    // Round a ring of four, partial sums also pass from member to member; a star sends them to the leader only.
    let ring = algorithm == "tp" && devices > 2
    #expect(links.contains("d1→d2") == ring && links.contains("d2→d3") == ring, "\(links)")
    #expect(run.outcome.devices.allSatisfy { $0.computeSeconds > 0 }, "\(run.outcome.devices)")
    #expect(pids.allGone)
  }

  /// A member calibrates its share of the blocks as the leader does its own (with the embedding and the head),
  /// before the workload and after it, without disturbing the group's tokens.
  @Test func membersCalibrateTheirShares() throws {
    let run = try Runs.calibrated(
      Self.spec(devices: 2, algorithm: "tp-star", parameters: ["devices": .number(2)], requests: 2),
      devices: ["d0", "d1"])
    #expect(run.plan?.stages.first?.group?.members == ["d0", "d1"])
  }

  /// Uneven shares chosen by an algorithm: `galaxy` sizes an AGX Orin's share to its speed beside an Orin Nano.
  @Test func unevenSharesGiveTheUnsplitTokens() throws {
    let spec = Experiment("tp-uneven") {
      Model(.small, precision: .fp32)
      Device("nano", .orinNano8GB).source()
      Device("agx", .agxOrin32GB)
      Workload(requests: 2, prompt: .uniform(min: 3, max: 9), output: .fixed(6))
      Algorithm("galaxy")
      Backend(.loopback)
      Emulation(.none)
      Seed(11)
    }.spec
    let pids = Pids()
    let (report, file) = try Runs.run(spec, Runs.options(pids: pids))
    #expect(report.statusCounts == [.complete: 1], "\(file.runs.first?.outcome.message ?? "")")
    let run = try #require(file.runs.first)
    let g = try #require(run.plan?.stages.first?.group)
    #expect(g.members == ["nano", "agx"] && g.kvHeads[0] < g.kvHeads[1] && g.ffnColumns[0] < g.ffnColumns[1])
    #expect(run.outcome.facts["lossless"] == .number(1))
    #expect(pids.allGone)
  }

  /// A star of two (the member killed answers the leader) and a ring of four (the member killed sits between
  /// two others).
  @Test(arguments: [(2, "d1"), (4, "d2")])
  func aKilledMemberFailsTheRunByName(devices: Int, victim: String) throws {
    let pids = Pids()
    let spec = Self.spec(
      devices: devices, algorithm: "tp", parameters: ["devices": .number(Double(devices))], requests: 40)
    let options = Runs.options(pids: pids, onTokens: Runs.onFirstTokens(pids, signal: SIGKILL, to: victim))
    do {
      _ = try Runs.run(spec, options)
      Issue.record("the run survived a killed group member")
    } catch BackendError.fatal(let failure, _, _) {
      #expect("\(failure)".contains(victim), "\(failure)")
    }
    #expect(pids.allGone, "workers left running: \(pids.all)")
  }
}
