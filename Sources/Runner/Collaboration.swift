import Catalog
public import Collaboration
import EdgeLabCore
public import Execution
import Foundation
import Metrics
import Pipeline
public import Spec

extension ExperimentRunner {
  /// What identifies a measurement: the target model, the edge model, the questions and the lengths.
  static func evaluationKey(_ x: ResolvedExperiment) -> String {
    let c = x.spec.collaboration
    let parts: [String] = [
      (try? JSONCoding.compactString(x.spec.model)) ?? "", (try? JSONCoding.compactString(c?.edgeModel)) ?? "",
      (try? JSONCoding.compactString(c?.tasks)) ?? "", "\(c?.maxAnswerTokens ?? 0)|\(c?.probeTokens ?? 0)",
      "\(c?.traceDepth ?? 0)",
    ]
    return parts.joined(separator: "\u{1}")
  }

  /// Both models measured on the experiment's questions: from this invocation's cache, or by `evaluator`.
  public func evaluation(_ x: ResolvedExperiment, evaluator: (any TaskEvaluator)?) throws -> TaskEvaluation {
    let key = Self.evaluationKey(x)
    if let e = evaluations.get(key) { return e }
    guard let evaluator else { throw RunnerError.noEvaluator(experiment: x.spec.name) }
    let e = try evaluator.evaluate(x)
    guard !e.queries.isEmpty else {
      throw RunnerError.internalError("the measurement of '\(x.spec.name)' returned no questions")
    }
    evaluations.set(key, e)
    progress.note(
      String(
        format: "measured %d questions (%@) in %.1f s: edge model (%@) %.1f%% right, target (%@) %.1f%%",
        e.queries.count, e.tasks, e.seconds, e.edgeModel, e.edgeAccuracy * 100, e.cloudModel, e.cloudAccuracy * 100))
    return e
  }

  /// The draft's agreement with the target on a run's own prompts, for a simulated speculative run of an
  /// experiment without questions and without an assumed acceptance rate: measured once per workload.
  func traceEvaluation(_ x: ResolvedExperiment, requests: [RequestPlan]) throws -> TaskEvaluation {
    var hasher = Hasher()
    for r in requests {
      hasher.combine(r.promptTokens)
      hasher.combine(r.outputLength)
    }
    let key = Self.evaluationKey(x) + "\u{1}trace\u{1}\(hasher.finalize())\u{1}\(requests.count)"
    if let e = evaluations.get(key) { return e }
    guard let evaluator = evaluations.evaluator, let e = try evaluator.trace(x, requests: requests) else {
      throw RunnerError.noEvaluator(experiment: x.spec.name)
    }
    evaluations.set(key, e)
    progress.note(
      String(
        format: "measured the draft's agreement on %d prompts in %.1f s (%@)", e.queries.count, e.seconds, e.edgeModel))
    return e
  }

  /// The workload of an edge–cloud experiment: one request per question, with its prompt's length and the
  /// target's reply's (the plan is sized for them).
  static func sizeWorkload(_ w: inout WorkloadSpec, for e: TaskEvaluation) {
    w.requests = e.queries.count
    w.prompts = nil
    w.promptTokens = .choice(e.queries.map { max(1, $0.promptTokens) })
    w.outputTokens = .choice(e.queries.map { max(1, $0.cloud.outputTokens) })
  }

  /// Request i is question i: its id, prompt length and reply length.
  static func assign(_ requests: inout [RequestPlan], _ e: TaskEvaluation) {
    for i in requests.indices where i < e.queries.count {
      let q = e.queries[i]
      requests[i].id = q.id
      requests[i].promptLength = max(1, q.promptTokens)
      requests[i].outputLength = max(1, q.cloud.outputTokens)
      // The question's own tokens where they were measured (real runs compute on them).
      requests[i].promptTokens = q.promptIDs ?? Array(repeating: 0, count: max(1, q.promptTokens))
    }
  }

  /// The strategy of a run of an edge–cloud experiment, with what the backend needs to time it.
  func collaborationJob(_ run: RunDescriptor, evaluation e: TaskEvaluation) throws -> CollaborationJob {
    let x = run.point.experiment
    guard let c = x.spec.collaboration else { throw RunnerError.internalError("no collaboration") }
    let edgeModel = try c.edgeModel.config(target: x.model)
    var mode = CollaborationJob.Mode.split
    if let s = run.strategy?.speculative {
      let rate = s.acceptanceRate ?? c.acceptanceRate
      mode = .speculative(lookahead: s.lookahead, acceptance: rate.map(Acceptance.rate) ?? .measured)
    } else if let r = run.strategy?.route {
      let router = try routers.make(r.router.name, parameters: r.router.parameters)
      mode = .route(
        decisions: e.queries.map { router.route($0.features) }, probe: router.probesEdge ? c.probeTokens : nil)
    }
    return CollaborationJob(
      mode: mode, edgeDevice: c.edge, edgeModel: edgeModel, evaluation: e, draftBlocks: c.edgeModel.earlyExit)
  }

  /// What a run did with the questions, and the measured accuracy of both models (facts).
  static func recordCollaboration(
    _ outcome: inout RunOutcome, evaluation e: TaskEvaluation, job: CollaborationJob, plan: Plan
  ) {
    outcome.facts["edge_model"] = .string(e.edgeModel)
    outcome.facts["tasks"] = .string(e.tasks)
    if e.isMeasured {
      outcome.facts["edge_model_accuracy"] = .number(e.edgeAccuracy)
      outcome.facts["target_model_accuracy"] = .number(e.cloudAccuracy)
      outcome.facts["measurement_s"] = .number(e.seconds)
    }
    if case .speculative(_, .rate(let a)) = job.mode { outcome.facts["assumed_acceptance_rate"] = .number(a) }
    guard job.isSplit else { return }
    // A split run answers every question with the target model (lossless). Its traffic is the pipeline's, shared
    // evenly among the questions (the pipeline simulator counts bytes per link, not per request).
    let edge = job.edgeDevice
    let usesCloud = plan.stages.contains { $0.device != edge }
    let n = Double(max(1, e.queries.count))
    let toCloud = outcome.links.filter { $0.from == edge }.reduce(0) { $0 + $1.bytes } / n
    let fromCloud = outcome.links.filter { $0.to == edge }.reduce(0) { $0 + $1.bytes } / n
    outcome.queries = e.queries.map { q in
      QueryRecord(
        id: q.id, servedBy: usesCloud ? .cloud : .edge, correct: q.cloud.correct,
        edgePromptTokens: usesCloud ? 0 : q.promptTokens, edgeCompletionTokens: usesCloud ? 0 : q.cloud.outputTokens,
        cloudPromptTokens: usesCloud ? q.promptTokens : 0, cloudCompletionTokens: usesCloud ? q.cloud.outputTokens : 0,
        bytesToCloud: toCloud, bytesFromCloud: fromCloud)
    }
  }
}

/// Measurements by experiment key (shared by the threads of a parallel sweep).
final class EvaluationCache: @unchecked Sendable {
  private let lock = NSLock()
  private var entries: [String: TaskEvaluation] = [:]
  private var _evaluator: (any TaskEvaluator)?
  /// The invocation's evaluator, for traces measured while runs execute.
  var evaluator: (any TaskEvaluator)? {
    get { lock.withLock { _evaluator } }
    set { lock.withLock { _evaluator = newValue } }
  }
  func get(_ key: String) -> TaskEvaluation? { lock.withLock { entries[key] } }
  func set(_ key: String, _ value: TaskEvaluation) { lock.withLock { entries[key] = value } }
}
