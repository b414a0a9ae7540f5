import Catalog
import Collaboration
import CostModel
import EdgeLabCore
import Execution
import Metrics
import Pipeline
import Spec

/// Edge–cloud strategies in virtual time: speculative decoding (the edge model drafts, the target's pipeline
/// verifies) and query routing (the edge model or the target answers), timed with the same per-layer time model
/// and the same link model (`Simulation.sendingSeconds`, jitter, per-message costs) as split runs.
///
/// What is its own: requests are served one at a time in arrival order (a single user's assistant; strategies do
/// not batch requests), each device runs one step at a time (a device that both drafts and holds a target stage
/// serialises the two), and a device's network interface sends one message at a time. Per query, what each
/// model generates comes from the real measurement (`TaskEvaluation`): the reply lengths, and for speculation
/// either the measured agreement of draft and target (`MatchTrace`, replayed exactly as greedy verification
/// accepts) or an i.i.d. acceptance rate.
struct Cooperation {
  let job: RunJob
  let collaboration: CollaborationJob
  let x: ResolvedExperiment
  let target: ModelLayers
  let edgeLayers: ModelLayers
  let precision: Precision
  let edge: String
  var deviceFree: [String: Double] = [:]
  var interfaceFree: [String: Double] = [:]
  var lastDelivery: [String: Double] = [:]
  var computeSeconds: [String: Double] = [:]
  var transferSeconds: [String: Double] = [:]
  var linkStats: [String: LinkRecord] = [:]
  var rng: SeededRandom
  var acceptance: SeededRandom
  /// Bytes to and from the cloud in the current query.
  var toCloud = 0.0
  var fromCloud = 0.0

  init(_ job: RunJob, _ c: CollaborationJob) {
    self.job = job
    collaboration = c
    x = job.experiment
    precision = x.spec.model.precision
    target = ModelLayers(config: x.model, precision: precision, wirePrecision: x.spec.execution.wirePrecision)
    edgeLayers = ModelLayers(config: c.edgeModel, precision: precision, wirePrecision: x.spec.execution.wirePrecision)
    edge = c.edgeDevice
    rng = SeededRandom.derived(seed: job.seed, 17)
    acceptance = SeededRandom.derived(seed: job.seed, 23)
  }

  /// Runs `work` through `range` of `model`'s layers on `device`, from when the input is there and the device
  /// free; returns when it is done.
  mutating func compute(_ device: String, _ model: ModelLayers, _ range: Range<Int>, _ work: Work, at t: Double)
    -> Double
  {
    guard let d = x.device(device) else { return .infinity }
    var seconds = 0.0
    for l in range {
      seconds +=
        job.timeModel.time(model.layers[l], device: d.name, on: d.profile, work: work, precision: precision)
        .value
    }
    let start = max(t, deviceFree[device] ?? 0)
    deviceFree[device] = start + seconds
    computeSeconds[device, default: 0] += seconds
    return start + seconds
  }

  /// A message of `bytes` from `a` to `b` ready at `t`; returns its delivery time.
  mutating func send(_ a: String, _ b: String, bytes: Double, at t: Double) -> Double {
    if a == b { return t }
    guard let link = x.link(from: a, to: b) else { return .infinity }
    let wire = Simulation.wireBytes(payload: bytes)
    let start = max(t, interfaceFree[a] ?? 0)
    let duration = Simulation.sendingSeconds(wire: wire, start: start, link: link)
    interfaceFree[a] = start + duration
    var delay = link.spec.latency.value
    if link.spec.jitter.value > 0 { delay = max(0, delay + rng.nextGaussian() * link.spec.jitter.value) }
    let idle = max(0, start + duration + delay - (deviceFree[b] ?? 0))
    delay += job.timeModel.messageSeconds(from: a, to: b, bytes: wire, idle: idle)
    let key = a + "\u{1}" + b
    let delivery = max(start + duration + delay, lastDelivery[key] ?? 0)
    lastDelivery[key] = delivery
    var record =
      linkStats[key] ?? LinkRecord(from: a, to: b, bytes: 0, messages: 0, busySeconds: 0, mechanism: "simulated")
    record.bytes += bytes
    record.messages += 1
    record.busySeconds += duration
    linkStats[key] = record
    transferSeconds[a, default: 0] += duration
    if a == edge { toCloud += bytes }
    if b == edge { fromCloud += bytes }
    return delivery
  }

  /// One pass of `tokens` tokens through the target's pipeline, from the edge device and back to it (the
  /// chosen token ids of the last `returned` positions).
  mutating func targetPass(_ work: Work, tokens: Int, returned: Int, at t: Double) -> Double {
    targetPass(work, tokens: tokens, returned: returned, from: edge, to: edge, at: t)
  }

  /// One pass of `tokens` tokens through the target's pipeline: their ids sent from `source` to the first
  /// stage, the activations through every stage, and the chosen ids of the last `returned` positions from the
  /// last stage to `sink` (nothing is sent where the two are one device).
  mutating func targetPass(
    _ work: Work, tokens: Int, returned: Int, from source: String, to sink: String, at t: Double
  ) -> Double {
    let stages = job.plan.stages
    guard let first = stages.first else { return .infinity }
    var time = send(source, first.device, bytes: 4 * Double(tokens), at: t)
    for (i, s) in stages.enumerated() {
      time = compute(s.device, target, s.layers, work, at: time)
      let outPerToken = target.layers[s.endLayer - 1].outputBytesPerToken.value
      if i + 1 < stages.count {
        time = send(s.device, stages[i + 1].device, bytes: outPerToken * Double(tokens), at: time)
      } else {
        time = send(s.device, sink, bytes: 4 * Double(returned), at: time)
      }
    }
    return time
  }

  /// One step of the edge model (all its layers on the edge device).
  mutating func edgeStep(_ work: Work, at t: Double) -> Double {
    compute(edge, edgeLayers, 0..<edgeLayers.layers.count, work, at: t)
  }

  mutating func run() -> RunOutcome {
    let evaluations = Dictionary(
      collaboration.evaluation.queries.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    var records: [RequestRecord] = []
    var queries: [QueryRecord] = []
    var previousEnd = 0.0
    for (i, r) in job.requests.enumerated() {
      if i & 0xFF == 0 && job.cancellation.isRequested {
        return outcome(.incomplete, "interrupted", records, queries)
      }
      guard let q = evaluations[r.id] else {
        return outcome(.failed, "request \(r.id) has no measured answers", records, queries)
      }
      let arrival = r.arrival?.value ?? previousEnd
      let start = max(arrival, previousEnd)
      toCloud = 0
      fromCloud = 0
      var record = RequestRecord(id: r.id, arrival: arrival, promptTokens: q.promptTokens, outputTokens: 0)
      var query: QueryRecord
      switch collaboration.mode {
      case .split:
        return outcome(.failed, "a split run is simulated by the pipeline simulator", records, queries)
      case .speculative(let k, let acc):
        (record.tokenTimes, query) = speculative(q, lookahead: k, acceptance: acc, at: start)
      case .route(let decisions, let probe):
        let decision = i < decisions.count ? decisions[i] : .cloud
        (record.tokenTimes, query) = route(q, decision, probe: probe, at: start)
      }
      query.id = r.id
      query.bytesToCloud = toCloud
      query.bytesFromCloud = fromCloud
      record.outputTokens = record.tokenTimes.count
      record.firstToken = record.tokenTimes.first
      record.completion = record.tokenTimes.last
      previousEnd = record.completion ?? start
      guard previousEnd.isFinite else {
        return outcome(.failed, "request \(r.id) cannot reach the target's devices from \(edge)", records, queries)
      }
      records.append(record)
      queries.append(query)
    }
    return outcome(.complete, nil, records, queries)
  }

  /// The edge model drafts, the target verifies; the reply is the target's.
  mutating func speculative(_ q: QueryEvaluation, lookahead k: Int, acceptance acc: Acceptance, at start: Double)
    -> ([Double], QueryRecord)
  {
    let p = q.promptTokens
    let n = q.cloud.outputTokens
    var times: [Double] = []
    var record = QueryRecord(
      id: q.id, servedBy: .cloud, correct: q.cloud.correct, edgePromptTokens: p, cloudPromptTokens: p,
      cloudCompletionTokens: n)
    // The draft reads the prompt while the target does.
    var draftReady = edgeStep(.prefill(tokens: p), at: start)
    var t = targetPass(.prefill(tokens: p), tokens: p, returned: 1, at: start)
    guard n > 0 else { return (times, record) }
    times.append(t)
    var produced = 1
    var replay = acc == .measured ? SpeculationMath.replay(q.trace, lookahead: k)[...] : []
    var catchUp = 1
    while produced < n {
      let proposed: Int
      let accepted: Int
      switch acc {
      case .measured:
        guard let v = replay.popFirst() else { return (times, record) }
        (proposed, accepted) = (v.proposed, v.accepted)
      case .rate(let alpha):
        proposed = min(k, n - produced)
        accepted = SpeculationMath.sampleAccepted(acceptance: alpha, proposed: proposed, &acceptance)
      }
      let context = p + produced
      var ready = max(t, draftReady)
      if proposed > 0 {
        // The tokens the draft has not seen (the target's last, and the last accepted draft when all were),
        // then one step per further drafted token.
        ready = edgeStep(.prefill(tokens: catchUp, past: context - catchUp), at: ready)
        for j in 1..<max(1, proposed) where j < proposed {
          ready = edgeStep(.decode(contexts: [context + j - 1]), at: ready)
        }
      }
      draftReady = ready
      // A verification computes its tokens as decode steps do, together (the engine's per-row kernels read each
      // weight once for all of them): a decode micro-batch of proposed + 1 rows.
      t = targetPass(
        .decode(contexts: (0...proposed).map { context - 1 + $0 }), tokens: proposed + 1, returned: proposed + 1,
        at: ready)
      let made = min(accepted + 1, n - produced)
      times += Array(repeating: t, count: made)
      produced += made
      record.proposed.append(proposed)
      record.accepted.append(accepted)
      record.edgeCompletionTokens += proposed
      catchUp = proposed > 0 && accepted == proposed ? 2 : 1
    }
    return (times, record)
  }

  /// The query answered by the edge model, or by the target's pipeline (after the edge model's probe tokens
  /// when the router needs them).
  mutating func route(_ q: QueryEvaluation, _ decision: RouteDecision, probe: Int?, at start: Double)
    -> ([Double], QueryRecord)
  {
    let p = q.promptTokens
    var times: [Double] = []
    var record = QueryRecord(id: q.id, servedBy: decision == .edge ? .edge : .cloud, correct: false)
    var t = start
    // The edge model's tokens: all of its reply when it answers, its probe when it only informs the router.
    let edgeTokens = decision == .edge ? q.edge.outputTokens : min(probe ?? 0, q.edge.outputTokens)
    if edgeTokens > 0 {
      t = edgeStep(.prefill(tokens: p), at: t)
      var edgeTimes = [t]
      for j in 1..<max(1, edgeTokens) where j < edgeTokens {
        t = edgeStep(.decode(contexts: [p + j - 1]), at: t)
        edgeTimes.append(t)
      }
      record.edgePromptTokens = p
      record.edgeCompletionTokens = edgeTokens
      if decision == .edge { times = edgeTimes }
    }
    if decision == .edge {
      record.correct = q.edge.correct
      return (times, record)
    }
    let n = q.cloud.outputTokens
    record.correct = q.cloud.correct
    record.cloudPromptTokens = p
    record.cloudCompletionTokens = n
    guard n > 0 else { return (times, record) }
    // The target generates on its own devices: each token goes from its last stage back to its first (nothing
    // to send when one device holds both) and is streamed to the edge, which does not gate the next step.
    guard let last = job.plan.stages.last?.device else { return ([.infinity], record) }
    t = targetPass(.prefill(tokens: p), tokens: p, returned: 1, from: edge, to: last, at: t)
    times.append(send(last, edge, bytes: 4, at: t))
    for j in 1..<max(1, n) where j < n {
      t = targetPass(.decode(contexts: [p + j - 1]), tokens: 1, returned: 1, from: last, to: last, at: t)
      times.append(send(last, edge, bytes: 4, at: t))
    }
    return (times, record)
  }

  func outcome(_ status: RunStatus, _ message: String?, _ requests: [RequestRecord], _ queries: [QueryRecord])
    -> RunOutcome
  {
    let links = linkStats.values.sorted { ($0.from, $0.to) < ($1.from, $1.to) }
    var devices: [DeviceRecord] = []
    let makespan = requests.compactMap(\.completion).max() ?? 0
    for d in x.devices {
      var weights = 0.0
      for s in job.plan.stages where s.device == d.name {
        for l in s.layers { weights += target.layers[l].weightBytes.value }
      }
      if d.name == edge { weights += edgeLayers.layers.reduce(0) { $0 + $1.weightBytes.value } }
      let busy = computeSeconds[d.name] ?? 0
      devices.append(
        DeviceRecord(
          name: d.name, peakMemoryBytes: weights, computeSeconds: busy, transferSeconds: transferSeconds[d.name] ?? 0,
          loadStallSeconds: 0, idleSeconds: max(0, makespan - busy)))
    }
    var o = RunOutcome(status: status, message: message, requests: requests, links: links, devices: devices)
    o.queries = queries
    return o
  }
}
