import Catalog
import CostModel
import EdgeLabCore
import Execution
import Logging
import Pipeline
import Spec

/// A worker's calibration against the run's time model: how its own process computes relative to what the model
/// (a host profile, for devices that are this host) says for the same parts of the model and the same work.
///
/// A process lands on a speed of its own — where its weights lie in memory, which core it runs on, what else the
/// host does at that time — that a profile measured in another process does not see (up to ±10% on a shared
/// virtual machine). The worker times its layers before the workload and after it (`Worker.calibrate`); the
/// ratios let a prediction use the worker's own speed without timing anything of the workload.
enum WorkerCalibrationPlan {
  /// The points a run's workers time: the workload's median prompt (and a verification's tokens in a
  /// speculative run), and decode steps at the median context halfway through the output, one sequence and,
  /// where the run batches, its largest batch.
  static func request(
    requests: [RequestPlan], limits l: RunLimits, maxBatch: Int, seconds: Double, coldBytes: Int = 0
  ) -> CalibrationRequest {
    func median(_ v: [Int]) -> Int { v.isEmpty ? 1 : v.sorted()[v.count / 2] }
    let prompt = min(max(1, median(requests.map(\.promptLength))), l.maxPromptTokens)
    let output = median(requests.map(\.outputLength))
    let context = max(1, min(prompt + output / 2, l.maxContextTokens - 1))
    let batch = max(1, min(maxBatch, l.maxBatch, requests.count))
    var prefill = [prompt]
    if let v = l.verifyTokens, v > 0, v <= l.maxPromptTokens, v != prompt { prefill.append(v) }
    // A run whose sequences end at one token has no room for a decode step after a cached context.
    let batches = l.maxContextTokens < 2 ? [] : batch > 1 ? [1, batch] : [1]
    return CalibrationRequest(
      decode: batches.map { .init(batch: $0, context: context) }, prefill: prefill,
      seconds: seconds, minRepetitions: 3, maxRepetitions: CalibrationRequest.repetitionLimit,
      coldBytes: min(max(0, coldBytes), CalibrationRequest.maxColdBytes))
  }

  /// The weight bytes the plan's other devices read as they compute (`CalibrationRequest.coldBytes` for device
  /// `d`): those of every stage `d` has no part in, and the other members' shares (even ones) of a group's stage
  /// it belongs to; not the embedding table, of which a step reads one row per token.
  static func othersWeightBytes(of d: String, plan: Plan, layers: [LayerCost]) -> Int {
    var total = 0.0
    for s in plan.stages {
      let bytes = s.layers.reduce(0.0) { acc, l in
        guard layers.indices.contains(l), layers[l].kind != .embedding else { return acc }
        return acc + layers[l].weightBytes.value
      }
      let members = Double(s.devices.count)
      let mine = s.devices.contains(d) ? 1.0 : 0.0
      total += bytes * (members - mine) / members
    }
    return total.isFinite ? Int(min(total, Double(CalibrationRequest.maxColdBytes))) : 0
  }

  /// What went wrong with a worker's calibration reply.
  struct Invalid: Error, CustomStringConvertible {
    var description: String
  }

  /// Device `d`'s speed from its reply: measured ÷ predicted seconds summed over its parts and points, for
  /// decode steps and for prompts; nil when it timed nothing.
  ///
  /// - Throws: `Invalid` naming what in the reply does not fit the request or the plan.
  static func speed(
    of d: String, _ reply: WorkerCalibration, request r: CalibrationRequest, plan: Plan,
    experiment x: ResolvedExperiment,
    timeModel: any LayerTimeModel
  ) throws(Invalid) -> WorkerSpeed? {
    guard let device = x.device(d) else { throw Invalid(description: "\(d) is not a device of the experiment") }
    let precision = x.spec.model.precision
    let layers = ModelLayers(config: x.model, precision: precision).layers
    let c = x.model
    // Per size of each phase (decode batch, prompt tokens): measured and predicted seconds.
    var decodeAt: [Int: (measured: Double, predicted: Double)] = [:]
    var prefillAt: [Int: (measured: Double, predicted: Double)] = [:]
    guard reply.parts.count <= layers.count + 1 else { throw Invalid(description: "\(reply.parts.count) parts") }
    for p in reply.parts {
      guard p.decode.count == r.decode.count, p.prefill.count == r.prefill.count,
        (p.decode + p.prefill).allSatisfy({ $0 > 0 && $0.isFinite })
      else { throw Invalid(description: "a part's times do not answer the request's points") }
      guard !p.layers.isEmpty, p.layers.count <= layers.count, p.layers.allSatisfy({ layers.indices.contains($0) })
      else { throw Invalid(description: "a part names layers outside the model") }
      if let s = p.stage, !plan.stages.indices.contains(s) {
        throw Invalid(description: "a part of stage \(s), which the plan does not have")
      }
      // A group's member computes its share of the stage's blocks.
      let group = p.stage.flatMap { plan.stages[$0].group }
      let member = group?.members.firstIndex(of: d)
      func seconds(_ work: Work) -> Double {
        p.layers.reduce(0) { acc, l in
          let whole = timeModel.time(layers[l], device: d, on: device.profile, work: work, precision: precision).value
          guard let g = group, let i = member, case .block = layers[l].kind else { return acc + whole }
          var alone = [Double](repeating: 0, count: g.members.count)
          alone[i] = whole
          return acc
            + g.blockSeconds(
              alone, attention: Double(c.attentionParametersPerBlock), ffn: Double(c.ffnParametersPerBlock)
            ) { _, share in
              timeModel.shardRatio(layers[l], device: d, share: share, work: work, precision: precision)
            }
        }
      }
      for (k, point) in r.decode.enumerated() {
        let model = seconds(.decode(contexts: Array(repeating: point.context, count: point.batch)))
        decodeAt[point.batch, default: (0, 0)].measured += p.decode[k]
        decodeAt[point.batch, default: (0, 0)].predicted += model
      }
      for (k, tokens) in r.prefill.enumerated() {
        let model = seconds(.prefill(tokens: tokens))
        prefillAt[tokens, default: (0, 0)].measured += p.prefill[k]
        prefillAt[tokens, default: (0, 0)].predicted += model
      }
    }
    func total(_ at: [Int: (measured: Double, predicted: Double)]) -> (measured: Double, predicted: Double) {
      at.values.reduce((0, 0)) { ($0.measured + $1.measured, $0.predicted + $1.predicted) }
    }
    let decode = total(decodeAt)
    let prefill = total(prefillAt)
    guard decode.measured + prefill.measured > 0 else { return nil }
    // Beyond WorkerSpeed.bounds is recorded as measured: against a roofline device (no profile) the ratio says
    // how far this host is from it; a spec refuses such a ratio as a worker speed.
    func points(_ at: [Int: (measured: Double, predicted: Double)]) -> [WorkerSpeed.Point]? {
      guard at.count > 1 else { return nil }
      return at.map { WorkerSpeed.Point(size: $0.key, ratio: $0.value.measured / $0.value.predicted) }
        .sorted { $0.size < $1.size }
    }
    let speed = WorkerSpeed(
      decode: r.decode.isEmpty ? 1 : decode.measured / decode.predicted,
      prefill: r.prefill.isEmpty ? 1 : prefill.measured / prefill.predicted,
      decodePoints: points(decodeAt), prefillPoints: points(prefillAt))
    let ratios =
      [speed.decode, speed.prefill] + (speed.decodePoints ?? []).map(\.ratio)
      + (speed.prefillPoints ?? []).map(\.ratio)
    guard ratios.allSatisfy({ $0 > 0 && $0.isFinite }) else {
      throw Invalid(description: "the time model predicts no time for its parts")
    }
    return speed
  }
}

extension CoordinatedRun {
  /// Has every worker that computes at its own speed (`Assignment.computesAtOwnSpeed`) time its layers, one
  /// worker at a time (none computes meanwhile), and returns each one's speed against the profile (or roofline)
  /// its device is bound to: a speed the spec already gave it (`calibration.worker_speeds`) is multiplied back
  /// in. `moment` names when, in the run's logs.
  func calibrateWorkers(_ moment: String) throws -> [String: WorkerSpeed] {
    let x = job.experiment
    let layers = ModelLayers(config: x.model, precision: x.spec.model.precision).layers
    var speeds: [String: WorkerSpeed] = [:]
    for d in devices where assignments[d]?.computesAtOwnSpeed == true {
      let request = WorkerCalibrationPlan.request(
        requests: job.requests, limits: limits, maxBatch: x.spec.execution.maxBatch,
        seconds: options.calibrationSeconds,
        coldBytes: WorkerCalibrationPlan.othersWeightBytes(of: d, plan: job.plan, layers: layers))
      try send(d, .calibrate(request))
      var reply: WorkerCalibration?
      // The worker ends its calibration by itself within the limit; loading its caches and the reply on top.
      try awaitMessages(1, timeout: CalibrationRequest.secondsLimit + 60, what: "calibrating \(d)") { from, m in
        guard from == d, case .calibrated(let c) = m else { return false }
        reply = c
        return true
      }
      guard let reply else { continue }
      var speed: WorkerSpeed?
      do {
        speed = try WorkerCalibrationPlan.speed(
          of: d, reply, request: request, plan: job.plan, experiment: x, timeModel: job.timeModel)
      } catch {
        throw fault(d, .reported("its calibration (\(moment)) is not usable: \(error)"))
      }
      guard var s = speed else { continue }
      if let given = x.spec.calibration.workerSpeeds[d] { s = s.compounded(with: given) }
      speeds[d] = s
      logger.info("\(d) \(moment): \(s.summary) of its profile")
    }
    return speeds
  }
}
