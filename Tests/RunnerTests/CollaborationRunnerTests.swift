import Collaboration
import DSL
import Execution
import Foundation
import Metrics
import Results
import Runner
import Simulator
import TestSupport
import Testing

/// Answers without a model: question i's prompt has 20 + i tokens; the edge model is right on even questions,
/// the target on multiples of 3 and on question 1; the edge is confident on questions below 4; the draft agrees
/// with the target for two tokens at every position.
struct FixedEvaluator: TaskEvaluator {
  var questions = 12
  func evaluate(_ x: ResolvedExperiment) throws -> TaskEvaluation {
    let queries = (0..<questions).map { i in
      QueryEvaluation(
        id: i, promptTokens: 20 + i, multipleChoice: false,
        edge: ModelAnswer(
          reply: "e", outputTokens: 6, correct: i % 2 == 0, minProbability: i < 4 ? 0.9 : 0.2, meanEntropy: 1),
        cloud: ModelAnswer(
          reply: "c", outputTokens: 8, correct: i % 3 == 0 || i == 1, minProbability: .nan, meanEntropy: .nan),
        trace: MatchTrace(runs: Array(repeating: 2, count: 7), depth: 8, maxNewTokens: 8, outputTokens: 8))
    }
    return TaskEvaluation(queries: queries, edgeModel: "edge", cloudModel: "cloud", tasks: "fixed", seconds: 0)
  }
}

@Suite("Runner: edge–cloud strategies")
struct CollaborationRunnerTests {
  static func spec(backend: BackendKind = .simulated) -> ExperimentSpec {
    Experiment("collab-test") {
      Model(.smolLM2_135M, precision: .q4_1)
      Device("nano", .orinNano8GB)
      Device("server", .rtx3090Server)
      Network(bandwidth: .mbit(10), latency: .ms(20))
      Workload(requests: 1, prompt: 8, output: 4)
      Collaboration(edge: "nano", model: .earlyExit(20), tasks: .builtin(.arithmetic, count: 12))
      Algorithm("edgeshard-latency", label: "split")
      Strategy("spec-2", .speculative(lookahead: 2, target: "edgeshard-latency"))
      Strategy("spec-2-assumed", .speculative(lookahead: 2, target: "edgeshard-latency", acceptanceRate: 0.5))
      Strategy("edge-only", .route(.edgeOnly, cloud: "edgeshard-latency"))
      Strategy("cloud-only", .route(.cloudOnly, cloud: "edgeshard-latency"))
      Strategy("confident", .route(.confidence(threshold: 0.5), cloud: "edgeshard-latency"))
      Strategy("oracle", .route(.oracle, cloud: "edgeshard-latency"))
      Sweep(.lookahead(of: "spec-2"), [1, 2], label: "k")
      Backend(backend)
    }.spec
  }

  @Test func strategiesRunBesideAlgorithmsAndRecordWhatIanvsReports() throws {
    let path = temporaryDirectory() + "/collab.h5"
    var options = RunOptions(outputPath: path)
    options.taskEvaluator = FixedEvaluator()
    let report = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(Self.spec(), options: options)
    #expect(report.runsTotal == 14 && report.statusCounts == [.complete: 14])
    let file = try ResultsStore.read(path)
    func run(_ label: String, k: Int = 2) throws -> RunRecord {
      try #require(file.runs.first { $0.label == label && $0.parameters[0].value == .number(Double(k)) })
    }
    let edgeAccuracy = 6.0 / 12  // 0, 2, …, 10
    let cloudAccuracy = 5.0 / 12  // 0, 1, 3, 6, 9
    #expect(isClose(try run("edge-only").summary.collaboration.accuracy, edgeAccuracy))
    #expect(isClose(try run("cloud-only").summary.collaboration.accuracy, cloudAccuracy))
    #expect(isClose(try run("split").summary.collaboration.accuracy, cloudAccuracy))
    #expect(isClose(try run("spec-2").summary.collaboration.accuracy, cloudAccuracy))
    let oracle = try run("oracle").summary.collaboration
    // Right wherever either is: 0, 1, 2, 3, 4, 6, 8, 9, 10.
    #expect(isClose(oracle.accuracy, 9.0 / 12) && oracle.accuracy >= max(edgeAccuracy, cloudAccuracy))
    // The oracle sends only questions 1, 3 and 9 to the cloud.
    #expect(isClose(oracle.edgeRatio, 9.0 / 12))
    let confident = try run("confident").summary.collaboration
    #expect(isClose(confident.edgeRatio, 4.0 / 12))
    // Its confident questions (0…3) answered on the edge: 0 and 2 right; the rest by the cloud: 6 and 9.
    #expect(isClose(confident.accuracy, 4.0 / 12))
    // Speculation replays the measured agreement: with k = 2, two drafts accepted, twice, then one (the room
    // left in an 8-token reply): 8 tokens in 3 verifications.
    let spec = try run("spec-2").summary.collaboration
    #expect(isClose(spec.tokensPerVerification, 8.0 / 3) && isClose(spec.acceptanceRate, 1))
    let k1 = try run("spec-2", k: 1).summary.collaboration
    #expect(isClose(k1.tokensPerVerification, 2))
    #expect(try run("spec-2-assumed").outcome.facts["assumed_acceptance_rate"] == .number(0.5))
    // Tokens and bytes on each side.
    let edgeOnly = try run("edge-only").summary.collaboration
    #expect(edgeOnly.bytesToCloud == 0 && edgeOnly.cloudPromptTokens == 0 && edgeOnly.edgeCompletionTokens == 72)
    let cloudOnly = try run("cloud-only").summary.collaboration
    #expect(cloudOnly.cloudCompletionTokens == 96 && cloudOnly.bytesToCloud > 0 && cloudOnly.bytesFromCloud > 0)
    // The queries table round-trips through the file, per query and per verification.
    let queries = try #require(try run("spec-2").outcome.queries)
    #expect(queries.count == 12 && queries.allSatisfy { $0.proposed.count == 3 && $0.accepted == [2, 2, 1] })
    #expect(try run("spec-2").outcome.facts["target_model_accuracy"] == .number(cloudAccuracy))
    // One request per question, with its prompt.
    #expect(try run("cloud-only").outcome.requests.map(\.promptTokens) == (0..<12).map { 20 + $0 })
  }

  @Test func withoutAnEvaluatorTheRunIsRefused() throws {
    #expect {
      _ = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
        Self.spec(), options: RunOptions(outputPath: temporaryDirectory() + "/x.h5"))
    } throws: { error in
      guard let e = error as? RunnerError, case .noEvaluator("collab-test") = e else { return false }
      return e.code == "no_evaluator"
    }
  }

  @Test func badStrategiesAreNamedInTheSpec() throws {
    func fields(_ edit: (inout ExperimentSpec) -> Void) -> [String] {
      var s = Self.spec()
      edit(&s)
      do {
        _ = try ExperimentRunner.expand(s)
        return []
      } catch {
        return error.issues.map(\.field)
      }
    }
    #expect(fields { _ in } == [])
    #expect(
      fields { $0.strategies[1].speculative?.lookahead = 9 } == ["strategies[spec-2-assumed].speculative.lookahead"])
    #expect(fields { $0.strategies[0].speculative?.target.name = "nope" } == ["strategies[spec-2].speculative.target"])
    #expect(fields { $0.strategies[1].name = "split" } == ["strategies[split]"])
    #expect(fields { $0.collaboration?.edge = "phone" } == ["collaboration.edge"])
    // On real workers: speculation with the early exit, measured by the run; routing and assumed rates refused.
    #expect(
      fields { $0.backend = .loopback } == [
        "strategies[spec-2-assumed].speculative.acceptance_rate", "strategies[edge-only].route",
        "strategies[cloud-only].route", "strategies[confident].route", "strategies[oracle].route",
      ])
    #expect(fields { $0.collaboration = nil } == ["strategies"])
    #expect(
      fields { $0.strategies[3].route?.router = RouterChoice("random") } == ["strategies[cloud-only].route.router"])
    // Without questions an early-exit draft's agreement is measured on the workload's prompts; a separate draft's
    // cannot be, so it needs an assumed rate.
    #expect(
      fields {
        $0.collaboration?.tasks = nil
        $0.strategies.removeAll { $0.route?.router.name == "confidence" || $0.route?.router.name == "oracle" }
      } == [])
    #expect(
      fields {
        $0.collaboration?.tasks = nil
        $0.collaboration?.edgeModel = .separate(ModelChoice(preset: "SmolLM2-135M", precision: .q4_1))
        $0.strategies.removeAll { $0.route?.router.name == "confidence" || $0.route?.router.name == "oracle" }
      } == ["strategies[spec-2].speculative.acceptance_rate"])
    #expect(fields { $0.collaboration?.tasks = TaskSetSpec(builtin: .units) } == ["collaboration.tasks.count"])
  }
}
