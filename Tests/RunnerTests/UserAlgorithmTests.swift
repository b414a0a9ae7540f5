import Collaboration
import DSL
import Foundation
import Metrics
import Partitioning
import Results
import Runner
import Simulator
import TestSupport
import Testing
import UserAlgorithms

/// The researcher's extension folder: its algorithms run like the lab's, and the README shows its real text.
@Suite("User algorithms (algorithms/)")
struct UserAlgorithmTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

  /// The README's example is the file that compiles here, character for character.
  @Test func readmeShowsTheCompiledFile() throws {
    let file = try String(contentsOfFile: Self.root + "/algorithms/FastestFirst.swift", encoding: .utf8)
    let readme = try String(contentsOfFile: Self.root + "/README.md", encoding: .utf8)
    #expect(
      readme.contains("```swift\n" + file + "```\n"), "README.md must quote algorithms/FastestFirst.swift verbatim")
  }

  @Test func userAlgorithmsAreMarkedAndRun() throws {
    let registry = try PartitionerRegistry.standard.addingUser(UserAlgorithms.partitioners)
    #expect(registry.origin(of: "fastest-first") == .user)
    #expect(registry.origin(of: "even") == .lab)
    #expect(registry.origin(of: "no-such") == nil)
    // Two 8 GB boards and a 16 GB one cannot hold Llama-2-7B FP16 alone: the plan must spread, source first.
    let spec = Experiment("user-algorithm", "fastest-first on three boards") {
      Model(.llama2_7B, precision: .fp16)
      Device("nano", .orinNano8GB).source()
      Device("nx", .orinNX16GB)
      Device("agx", .agxOrin32GB)
      Network(bandwidth: .mbit(1000))
      Workload(requests: 2, prompt: 16, output: 4)
      Algorithm("fastest-first")
      Algorithm("fastest-first", label: "fastest-first-solo", ["max_devices": 1])
    }.spec
    let path = temporaryDirectory() + "/user.h5"
    let report = try ExperimentRunner(backends: [.simulated: SimulatedBackend()], partitioners: registry).run(
      spec, options: RunOptions(outputPath: path))
    #expect(report.statusCounts == [.complete: 1, .infeasible: 1])
    let file = try ResultsStore.read(path)
    let spread = try #require(file.runs.first { $0.outcome.status == .complete })
    let plan = try #require(spread.plan)
    #expect(plan.algorithm == "fastest-first" && plan.stages.first?.device == "nano" && plan.stages.count >= 2)
    #expect(spread.summary.requestsCompleted == 2)
  }

  /// A group plan from the folder (algorithms/NearestPair.swift): the source and the device behind its fastest
  /// link share every block, and the plan runs like the lab's own group plans.
  @Test func aUserGroupPlanRuns() throws {
    let registry = try PartitionerRegistry.standard.addingUser(UserAlgorithms.partitioners)
    let spec = Experiment("user-group-plan", "nearest-pair on three boards") {
      Model(.llama2_7B, precision: .q4_0)
      Device("nx", .orinNX16GB, count: 2).source()
      Device("agx", .agxOrin32GB)
      Network(bandwidth: .gbit(1), latency: .ms(2)) {
        Link(from: ["nx0"], to: ["agx"], latency: .us(100))
      }
      Workload(requests: 2, prompt: 16, output: 4)
      Algorithm("nearest-pair")
    }.spec
    let path = temporaryDirectory() + "/user-group.h5"
    let report = try ExperimentRunner(backends: [.simulated: SimulatedBackend()], partitioners: registry).run(
      spec, options: RunOptions(outputPath: path))
    #expect(report.statusCounts == [.complete: 1])
    let g = try #require(try ResultsStore.read(path).runs.first?.plan?.stages.first?.group)
    // The AGX is faster than the source: it takes the larger share.
    #expect(g.members == ["nx0", "agx"] && g.collective == .star && g.kvHeads[1] > g.kvHeads[0])
  }

  @Test func aUserAlgorithmCannotTakeALabName() {
    #expect(throws: PartitionError.duplicateAlgorithm("even", origin: .lab)) {
      try PartitionerRegistry.standard.addingUser([Shadow.self])
    }
    #expect(throws: PartitionError.duplicateAlgorithm("fastest-first", origin: .user)) {
      try PartitionerRegistry.standard.addingUser(UserAlgorithms.partitioners + UserAlgorithms.partitioners)
    }
  }

  /// Without the user list, the name is unknown: the algorithm really comes from the folder.
  @Test func theLabAloneDoesNotKnowIt() {
    #expect(PartitionerRegistry.standard.type(named: "fastest-first") == nil)
  }
}

private struct Shadow: Partitioner {
  static let name = "even"
  static let summary = "a user algorithm under a lab name"
  init(parameters: inout Parameters) throws(PartitionError) {}
  func partition(_ p: IndexedProblem) throws(PartitionError) -> Plan {
    throw .noPlanFound("never called")
  }
}

/// A researcher's own router (algorithms/ShortAndSure.swift) beside the lab's.
@Suite("User routers (algorithms/)")
struct UserRouterTests {
  @Test func userRoutersJoinTheLabsAndRoute() throws {
    let registry = try RouterRegistry.standard.adding(UserAlgorithms.routers)
    #expect(registry.names.contains("short-and-sure") && registry.names.contains("oracle"))
    let router = try registry.make("short-and-sure", parameters: ["max_edge_tokens": 100, "threshold": 0.5])
    #expect(router.probesEdge)
    func query(_ tokens: Int, _ p: Double) -> QueryFeatures {
      QueryFeatures(
        index: 0, promptTokens: tokens, edgeMinProbability: p, edgeMeanEntropy: 0, edgeCorrect: true,
        cloudCorrect: true)
    }
    #expect(router.route(query(50, 0.9)) == .edge)
    #expect(router.route(query(150, 0.9)) == .cloud)
    #expect(router.route(query(50, 0.3)) == .cloud)
    #expect(throws: RouterError.self) { try registry.make("short-and-sure", parameters: ["threshold": 2]) }
    // A second registration of a name is refused.
    #expect(throws: RouterError.self) { try registry.adding(UserAlgorithms.routers) }
  }
}
