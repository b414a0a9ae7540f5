import CostModel
import Pipeline
public import Transport

/// Why a worker refused a message. Each names what was wrong; the connection it came on is closed and the worker
/// keeps serving the run.
public enum WorkerError: Error, Equatable, Sendable, CustomStringConvertible {
  /// The message is not allowed now (`phase`), e.g. data before the run started.
  case unexpected(String, phase: String)
  /// A micro-batch for a stage this worker does not run.
  case wrongStage(UInt32, runs: [Int])
  /// A micro-batch from a device that does not feed this stage.
  case wrongSender(stage: UInt32, expected: String, got: String)
  /// Spans that do not describe a micro-batch of this run.
  case badSpans(String)
  /// A sequence id outside the run's requests.
  case unknownSequence(UInt64, requests: Int)
  /// A span that does not continue its sequence where this stage left it.
  case position(sequence: UInt64, stage: Int, expected: Int, got: UInt32)
  /// A span reaching past the longest context of the run.
  case beyondContext(sequence: UInt64, end: UInt64, limit: Int)
  /// A payload whose size does not match its spans.
  case payload(String)
  case tokenOutOfRange(Int32, vocabulary: Int)
  /// Tokens for a micro-batch that is not in flight (or with other spans).
  case unknownBatch(UInt64)
  case badAssignment(String)
  case badWorkload(String)

  public var description: String {
    switch self {
    case .unexpected(let what, let phase): "unexpected \(what) while \(phase)"
    case .wrongStage(let s, let runs):
      "a micro-batch for stage \(s), which this worker does not run (it runs \(runs.map(String.init).joined(separator: ", ")))"
    case .wrongSender(let s, let expected, let got): "stage \(s) takes its input from \(expected), not from \(got)"
    case .badSpans(let why): "bad spans: \(why)"
    case .unknownSequence(let id, let n): "sequence \(id) is not a request of this run (0..<\(n))"
    case .position(let id, let stage, let expected, let got):
      "sequence \(id) at stage \(stage) continues at position \(expected), the message starts at \(got)"
    case .beyondContext(let id, let end, let limit):
      "sequence \(id) would reach position \(end), past the run's longest context (\(limit))"
    case .payload(let why): "bad payload: \(why)"
    case .tokenOutOfRange(let t, let v): "token \(t) is outside the vocabulary (0..<\(v))"
    case .unknownBatch(let b): "tokens for micro-batch \(b), which is not in flight with these spans"
    case .badAssignment(let why): "bad assignment: \(why)"
    case .badWorkload(let why): "bad workload: \(why)"
    }
  }
}

/// A worker's protocol as a pure state machine: inputs (control messages, data messages, completions, the time)
/// in, actions out. The `Worker` shell does the I/O and the computing; everything that arrives from the network
/// is checked here against the assignment — stage, sender, spans, sequence ids and positions, payload sizes,
/// tokens — before it can reach the engine.
///
/// Phases: awaiting an assignment → loading → ready → linking → serving (the source: linked → receiving the
/// workload → serving, on `start`) → stopped.
public struct WorkerMachine: Sendable {
  public enum Phase: String, Sendable, Equatable {
    case awaitingAssignment = "awaiting an assignment"
    case loading = "loading weights"
    case ready = "ready"
    case linking = "connecting to peers"
    case linked = "linked"
    case serving = "serving"
    case stopped = "stopped"
  }

  public enum Input: Sendable {
    case control(ControlMessage)
    /// A data frame (activations or tokens) from device `from`, on connection `connection`, at `now` (device
    /// seconds since the run started; the source records token times with it).
    case data(connection: Int, from: String, type: FrameType, ActivationMessage, now: Double)
    /// The shell finished computing a micro-batch of `stage` and passed its output on.
    case computed(stage: Int)
    case loaded(weightBytes: Int, seconds: Double)
    case loadFailed(String)
    case linkDone
    case linkFailed(String)
    /// Device seconds since the source started the run (only the source needs the time).
    case tick(now: Double)
    /// The source's draft for `request` (speculative runs), at `now`.
    case drafted(request: Int, tokens: [Int32], now: Double)
  }

  /// Where a stage's output goes.
  public enum Route: Equatable, Sendable {
    /// Hidden states to stage `stage` on `device`.
    case stage(Int, device: String)
    /// Sampled tokens back to the source.
    case source(String)
  }

  public enum Action: Sendable {
    case load(Assignment)
    /// Open data connections to these devices, then input `.linkDone` (or `.linkFailed`).
    case connect([String])
    case reply(ControlMessage)
    /// Run `stage` on the message, then send its output along `route`.
    case compute(stage: Int, ActivationMessage, route: Route)
    /// Send a message to a device (this worker itself when it runs the target stage).
    case deliver(ActivationMessage, to: String, type: FrameType)
    /// Draft up to `count` tokens after `context` for `request` with the source's draft model, then input
    /// `.drafted`.
    case draft(request: Int, context: [Int32], count: Int)
    case release([Int])
    /// Time the worker's own layers on this work, then reply `calibrated` (the request is checked).
    case calibrate(CalibrationRequest)
    /// Report statistics (the shell measures them).
    case reportStats
    /// Close the connection the bad message came on, and log why.
    case refuse(connection: Int, from: String, WorkerError)
    case exit(Int32)
  }

  public private(set) var phase = Phase.awaitingAssignment
  public private(set) var assignment: Assignment?
  public private(set) var progress = WorkerProgress()
  /// Messages refused so far.
  public private(set) var refused = 0
  private var myStages: [Int: StageAssignment] = [:]
  /// Per stage: the next position of each sequence it has seen.
  private var positions: [Int: [UInt64: Int]] = [:]
  private var workload: [RequestMessage] = []
  private var workloadIDs: Set<Int> = []
  public private(set) var source: SourceScheduler?
  /// The source of a speculative run drives this instead.
  public private(set) var speculative: SpeculativeSource?
  private let keepHistory: Bool

  /// - Parameter keepHistory: the source keeps every dispatched micro-batch (tests).
  public init(keepHistory: Bool = false) { self.keepHistory = keepHistory }

  public var isSource: Bool { assignment.map { $0.device == $0.source } ?? false }
  /// When the source next needs a `.tick` (device seconds), if it is serving.
  public var nextWake: Double? { phase == .serving ? (source?.nextWake ?? speculative?.nextWake) : nil }

  /// KV-cache bytes this worker's stages hold, as the cost model counts them: every accepted token of every
  /// live sequence times its stage's KV bytes per token. Residency adapts to this number, as in the simulator.
  public var kvBytes: Double {
    positions.reduce(0.0) { acc, entry in
      acc + (myStages[entry.key]?.kvBytesPerToken ?? 0) * Double(entry.value.values.reduce(0, +))
    }
  }

  public mutating func handle(_ input: Input) -> [Action] {
    switch input {
    case .control(let m): return control(m)
    case .data(let c, let from, let type, let m, let now):
      do { return try data(from: from, type: type, m, now: now) } catch {
        refused += 1
        return [
          .refuse(connection: c, from: from, error),
          .reply(.warning("\(assignment?.device ?? "worker") refused a message from \(from): \(error)")),
        ]
      }
    case .loaded(let bytes, let seconds):
      guard phase == .loading else { return [] }
      phase = .ready
      return [.reply(.ready(weightBytes: bytes, loadSeconds: seconds))]
    case .loadFailed(let why):
      let device = assignment?.device ?? "worker"
      // Back to the start: a later assignment begins from nothing of this one.
      phase = .awaitingAssignment
      assignment = nil
      myStages = [:]
      positions = [:]
      progress = WorkerProgress()
      return [.reply(.failure("\(device): cannot load its weights: \(why)"))]
    case .linkDone:
      guard phase == .linking else { return [] }
      // Other workers serve as soon as they are linked: the source may send the first micro-batch before the
      // coordinator's `start` could reach them. The source serves when the workload has arrived and it starts.
      phase = isSource ? .linked : .serving
      return [.reply(.linked)]
    case .linkFailed(let why):
      phase = .ready
      return [.reply(.failure(why))]
    case .computed(let s):
      bump(stage: s) { $0.completed += 1 }
      return []
    case .tick(let now):
      if phase == .serving, var s = speculative {
        let out = s.tick(at: now)
        speculative = s
        return speculativeActions(out)
      }
      guard phase == .serving, var s = source else { return [] }
      let out = s.tick(at: now)
      source = s
      return sourceActions(out)
    case .drafted(let request, let tokens, let now):
      guard phase == .serving, var s = speculative, let a = assignment else { return [] }
      if let bad = tokens.first(where: { $0 < 0 || Int($0) >= a.limits.vocabSize }) {
        return [.reply(.failure("\(a.device): the draft proposed token \(bad), outside the vocabulary"))]
      }
      do {
        let out = try s.drafted(request: request, tokens: tokens, at: now)
        speculative = s
        return speculativeActions(out)
      } catch {
        return [.reply(.failure("\(a.device): \(error.why)"))]
      }
    }
  }

  private mutating func bump(stage: Int, _ change: (inout WorkerProgress.Stage) -> Void) {
    if let i = progress.stages.firstIndex(where: { $0.index == stage }) { change(&progress.stages[i]) }
  }

  /// The source scheduler's actions as the worker's: micro-batches into stage 0, events to the coordinator.
  private mutating func sourceActions(_ actions: [SourceScheduler.Action]) -> [Action] {
    guard let a = assignment else { return [] }
    var out: [Action] = []
    var arrivals: [ArrivalEvent] = []
    var tokens: [TokenEvent] = []
    var finished: [Int] = []
    for x in actions {
      switch x {
      case .dispatch(let m):
        progress.dispatched += 1
        out.append(.deliver(m, to: a.stageDevices[0], type: .activation))
      case .arrived(let r, let t): arrivals.append(ArrivalEvent(request: r, time: t))
      case .token(let r, let i, let token, let t):
        tokens.append(TokenEvent(request: r, index: i, token: token, time: t))
      case .finished(let r, _): finished.append(r)
      case .refused(let r, let why): out.append(.reply(.refusedRequest(id: r, reason: why)))
      }
    }
    return Self.reports(arrivals: arrivals, tokens: tokens, finished: finished) + out
  }

  /// Events first: the coordinator learns of arrivals, verifications, tokens and finished requests before the
  /// next micro-batch leaves.
  private static func reports(
    arrivals: [ArrivalEvent], verifications: [VerificationEvent] = [], tokens: [TokenEvent], finished: [Int]
  ) -> [Action] {
    var reports: [Action] = []
    if !arrivals.isEmpty { reports.append(.reply(.arrivals(arrivals))) }
    if !verifications.isEmpty { reports.append(.reply(.verifications(verifications))) }
    if !tokens.isEmpty { reports.append(.reply(.tokens(tokens))) }
    if !finished.isEmpty { reports.append(.reply(.finished(finished))) }
    return reports
  }

  /// The speculative source's actions as the worker's.
  private mutating func speculativeActions(_ actions: [SpeculativeSource.Action]) -> [Action] {
    guard let a = assignment else { return [] }
    var out: [Action] = []
    var arrivals: [ArrivalEvent] = []
    var tokens: [TokenEvent] = []
    var finished: [Int] = []
    var verifications: [VerificationEvent] = []
    for x in actions {
      switch x {
      case .dispatch(let m):
        progress.dispatched += 1
        out.append(.deliver(m, to: a.stageDevices[0], type: .activation))
      case .draft(let r, let context, let count): out.append(.draft(request: r, context: context, count: count))
      case .arrived(let r, let t): arrivals.append(ArrivalEvent(request: r, time: t))
      case .token(let r, let i, let token, let t):
        tokens.append(TokenEvent(request: r, index: i, token: token, time: t))
      case .finished(let r, _): finished.append(r)
      case .verified(let v): verifications.append(v)
      }
    }
    return Self.reports(arrivals: arrivals, verifications: verifications, tokens: tokens, finished: finished) + out
  }

  // MARK: Control

  private mutating func control(_ m: ControlMessage) -> [Action] {
    switch m {
    case .assign(let a):
      guard phase == .awaitingAssignment else {
        return [.reply(.failure("a second assignment while \(phase.rawValue)"))]
      }
      if let why = Self.check(a) { return [.reply(.failure(WorkerError.badAssignment(why).description))] }
      assignment = a
      // A member of a group that does not lead it computes when its leader asks (the shell serves that); the
      // pipeline's messages reach only the stages this worker leads.
      let led = a.stages.filter(\.leads)
      for s in led {
        myStages[s.index] = s
        positions[s.index] = [:]
      }
      progress = WorkerProgress(stages: led.map { .init(index: $0.index, received: 0, completed: 0) })
      phase = .loading
      return [.load(a)]
    case .link:
      guard phase == .ready, let a = assignment else { return [.reply(.failure("link while \(phase.rawValue)"))] }
      var targets = Set<String>()
      for s in a.stages where s.leads {
        let next = s.index + 1 < a.stageCount ? a.stageDevices[s.index + 1] : a.source
        if next != a.device { targets.insert(next) }
        // The leader of a group also reaches its members.
        for m in s.shard?.members.dropFirst() ?? [] { targets.insert(m) }
      }
      // Round a ring, a member sends to the next member (the last answers its leader on the leader's connection).
      for s in a.stages where !s.leads {
        if let g = s.shard, g.ring, g.member + 1 < g.members.count { targets.insert(g.successor) }
      }
      // A source that runs no stage of its own (the edge of a speculative run) feeds the first stage.
      if isSource && a.stageDevices[0] != a.device { targets.insert(a.stageDevices[0]) }
      phase = .linking
      return [.connect(targets.sorted())]
    case .workload(let requests):
      guard phase == .linked, isSource, let a = assignment else {
        return [.reply(.failure(WorkerError.unexpected("workload", phase: phase.rawValue).description))]
      }
      if let why = Self.check(requests, limits: a.limits, seen: workloadIDs, total: workload.count) {
        return [.reply(.failure(WorkerError.badWorkload(why).description))]
      }
      workload += requests
      for r in requests { workloadIDs.insert(r.id) }
      return []
    case .start:
      guard phase == .linked, isSource, let a = assignment, let config = a.scheduler else {
        return [.reply(.failure(WorkerError.unexpected("start", phase: phase.rawValue).description))]
      }
      phase = .serving
      guard workload.count == a.limits.requests else {
        return [
          .reply(
            .failure(
              WorkerError.badWorkload("\(workload.count) requests arrived, the run has \(a.limits.requests)")
                .description))
        ]
      }
      if let spec = a.speculation {
        var s = SpeculativeSource(lookahead: spec.lookahead, closedLoop: spec.closedLoop, requests: workload)
        workload = []
        let out = s.start(at: 0)
        speculative = s
        return speculativeActions(out)
      }
      var s = SourceScheduler(configuration: config, requests: workload, keepHistory: keepHistory)
      workload = []
      let out = s.start(at: 0) + s.tick(at: 0)
      source = s
      return sourceActions(out)
    case .release(let ids):
      for s in positions.keys { for id in ids { positions[s]?[UInt64(truncatingIfNeeded: id)] = nil } }
      return [.release(ids)]
    case .calibrate(let r):
      guard [.ready, .linked, .serving].contains(phase), let a = assignment else {
        return [.reply(.failure(WorkerError.unexpected("calibrate", phase: phase.rawValue).description))]
      }
      if let why = r.problem(a.limits) { return [.reply(.failure("\(a.device): bad calibration: \(why)"))] }
      // Its timings would wait behind the run's work, and the work behind them.
      if progress.stages.contains(where: { $0.received != $0.completed }) || progress.dispatched != progress.returned {
        return [.reply(.failure("\(a.device): calibrate while micro-batches are in flight"))]
      }
      return [.calibrate(r)]
    case .collect:
      return [.reportStats]
    case .shutdown:
      phase = .stopped
      return [.exit(0)]
    default:
      return [.reply(.failure("\(assignment?.device ?? "worker") cannot take a '\(m.kind)' message"))]
    }
  }

  /// What is wrong with an assignment, if anything.
  static func check(_ a: Assignment) -> String? {
    let l = a.limits
    if a.stageCount < 1 || a.stageDevices.count != a.stageCount {
      return "stage_count \(a.stageCount) and \(a.stageDevices.count) stage devices"
    }
    // Only the source of a speculative run (the edge, drafting) may run no stage.
    if a.stages.isEmpty && !(a.device == a.source && a.speculation != nil) { return "no stages for \(a.device)" }
    for s in a.stages {
      if s.index < 0 || s.index >= a.stageCount { return "stage \(s.index) outside 0..<\(a.stageCount)" }
      if let g = s.shard, let why = g.problem(device: a.device, leader: a.stageDevices[s.index]) {
        return "stage \(s.index) group: \(why)"
      }
      if s.leads && a.stageDevices[s.index] != a.device {
        return "stage \(s.index) belongs to \(a.stageDevices[s.index])"
      }
      if s.firstLayer < 0 || s.endLayer <= s.firstLayer {
        return "stage \(s.index) has layers \(s.firstLayer)..<\(s.endLayer)"
      }
    }
    // The source may run no stage only in a speculative run (it drafts and feeds the first stage).
    if !a.stageDevices.contains(a.source) && a.device != a.source && (l.verifyTokens ?? 0) == 0 {
      return "source \(a.source) runs no stage and is not this device"
    }
    if let p = l.problem { return "limits: \(p)" }
    if !(1...64).contains(a.threads) { return "threads \(a.threads) outside 1...64" }
    if a.stages.contains(where: { !($0.kvBytesPerToken >= 0 && $0.kvBytesPerToken.isFinite) }) {
      return "a stage's KV bytes per token"
    }
    if !(a.dilation > 0 && a.dilation.isFinite) { return "dilation \(a.dilation)" }
    if let p = a.pace?.model.problems().first { return p }
    if (a.device == a.source) != (a.scheduler != nil) { return "only the source schedules" }
    if let s = a.speculation {
      if a.device != a.source { return "only the source drafts" }
      if !(1...64).contains(s.lookahead) { return "lookahead \(s.lookahead) outside 1...64" }
      if (l.verifyTokens ?? 0) < s.lookahead + 1 {
        return "verify_tokens \(l.verifyTokens ?? 0) below the lookahead + 1 (\(s.lookahead + 1))"
      }
      if s.draftBlocks < 1 { return "a draft of \(s.draftBlocks) blocks" }
    }
    return nil
  }

  /// What is wrong with a chunk of the workload, if anything.
  static func check(_ requests: [RequestMessage], limits l: RunLimits, seen: Set<Int>, total: Int) -> String? {
    if total + requests.count > l.requests { return "more than the run's \(l.requests) requests" }
    var ids = seen
    for r in requests {
      if r.id < 0 || r.id >= l.requests { return "request id \(r.id) outside 0..<\(l.requests)" }
      if !ids.insert(r.id).inserted { return "request \(r.id) twice" }
      if r.prompt.isEmpty || r.prompt.count > l.maxPromptTokens {
        return "request \(r.id) has \(r.prompt.count) prompt tokens (1...\(l.maxPromptTokens))"
      }
      if r.outputLength < 1 || r.outputLength > l.maxContextTokens - r.prompt.count {
        return "request \(r.id) reaches \(r.prompt.count) + \(r.outputLength) tokens (at most \(l.maxContextTokens))"
      }
      if let t = r.prompt.first(where: { $0 < 0 || Int($0) >= l.vocabSize }) {
        return WorkerError.tokenOutOfRange(t, vocabulary: l.vocabSize).description
      }
      if !(r.arrival >= 0 && r.arrival.isFinite) { return "request \(r.id) arrives at \(r.arrival)" }
    }
    return nil
  }

  // MARK: Data

  private mutating func data(from: String, type: FrameType, _ m: ActivationMessage, now: Double) throws(WorkerError)
    -> [Action]
  {
    guard phase == .serving, let a = assignment else { throw .unexpected("a \(type) frame", phase: phase.rawValue) }
    switch type {
    case .activation: return try activation(from: from, m, a)
    case .tokens: return try tokens(from: from, m, a, now: now)
    default: throw .unexpected("a \(type) frame on a data connection", phase: phase.rawValue)
    }
  }

  private mutating func activation(from: String, _ m: ActivationMessage, _ a: Assignment) throws(WorkerError)
    -> [Action]
  {
    guard let s = Int(exactly: m.stage), let stage = myStages[s] else {
      throw .wrongStage(m.stage, runs: a.stages.map(\.index))
    }
    let feeder = s == 0 ? a.source : a.stageDevices[s - 1]
    guard from == feeder else { throw .wrongSender(stage: m.stage, expected: feeder, got: from) }
    let l = a.limits
    guard !m.spans.isEmpty else { throw .badSpans("no spans") }
    let verifyLimit = l.verifyTokens ?? 0
    if m.verify {
      guard verifyLimit > 0 else { throw .badSpans("a verification in a run that does not speculate") }
      guard !m.prefill, m.spans.count == 1 else {
        throw .badSpans("a verification carries one sequence's decode tokens, this one \(m.spans.count) spans")
      }
    } else if m.prefill {
      guard m.spans.count == 1 else { throw .badSpans("a prefill carries one sequence, this one \(m.spans.count)") }
    } else {
      guard m.spans.count <= l.maxBatch else {
        throw .badSpans("\(m.spans.count) sequences in a decode step, at most \(l.maxBatch)")
      }
    }
    var tokens = 0
    var ids = Set<UInt64>()
    var next = positions[s] ?? [:]
    for span in m.spans {
      guard span.id < UInt64(l.requests) else { throw .unknownSequence(span.id, requests: l.requests) }
      guard ids.insert(span.id).inserted else { throw .badSpans("sequence \(span.id) twice") }
      if m.verify {
        guard span.count >= 1 && Int(span.count) <= verifyLimit else {
          throw .badSpans("a verification of \(span.count) tokens (1...\(verifyLimit))")
        }
      } else if m.prefill {
        guard span.count >= 1 && Int(span.count) <= l.maxPromptTokens else {
          throw .badSpans("a prompt of \(span.count) tokens (1...\(l.maxPromptTokens))")
        }
      } else {
        guard span.count == 1 else { throw .badSpans("a decode step of \(span.count) tokens for sequence \(span.id)") }
      }
      let end = UInt64(span.start) + UInt64(span.count)
      guard end <= UInt64(l.maxContextTokens) else {
        throw .beyondContext(sequence: span.id, end: end, limit: l.maxContextTokens)
      }
      let expected = next[span.id] ?? 0
      // A verification may start before where the stage is (it forgets the rejected drafts), never after, and
      // never before the first position after the prompt's first token.
      let continues =
        m.verify ? (1...max(1, expected)).contains(Int(span.start)) && expected >= 1 : Int(span.start) == expected
      guard continues else {
        throw .position(sequence: span.id, stage: s, expected: expected, got: span.start)
      }
      next[span.id] = Int(end)
      tokens += Int(span.count)
    }
    if stage.firstLayer == 0 {
      guard let ids = m.tokens, ids.count == tokens else {
        throw .payload(
          "stage \(s) starts at the embedding and needs \(tokens) token ids, got \(m.tokens.map { String($0.count) } ?? "hidden states")"
        )
      }
      if let bad = ids.first(where: { $0 < 0 || Int($0) >= l.vocabSize }) {
        throw .tokenOutOfRange(bad, vocabulary: l.vocabSize)
      }
    } else {
      guard m.tokens == nil, m.values.count == tokens * l.hiddenSize else {
        throw .payload(
          "stage \(s) needs \(tokens) × \(l.hiddenSize) hidden values, got \(m.tokens.map { "\($0.count) token ids" } ?? "\(m.values.count) values")"
        )
      }
    }
    positions[s] = next
    bump(stage: s) { $0.received += 1 }
    let route: Route = s + 1 < a.stageCount ? .stage(s + 1, device: a.stageDevices[s + 1]) : .source(a.source)
    return [.compute(stage: s, m, route: route)]
  }

  private mutating func tokens(from: String, _ m: ActivationMessage, _ a: Assignment, now: Double) throws(WorkerError)
    -> [Action]
  {
    guard isSource else { throw .unexpected("tokens", phase: "not the source") }
    let last = a.stageDevices[a.stageCount - 1]
    guard from == last else { throw .wrongSender(stage: m.stage, expected: last, got: from) }
    if var spec = speculative {
      guard let tokens = m.tokens, spec.matches(batch: m.batch, spans: m.spans) else { throw .unknownBatch(m.batch) }
      if let bad = tokens.first(where: { $0 < 0 || Int($0) >= a.limits.vocabSize }) {
        throw .tokenOutOfRange(bad, vocabulary: a.limits.vocabSize)
      }
      let out: [SpeculativeSource.Action]
      do { out = try spec.tokensReturned(tokens: tokens, at: now) } catch { throw .payload(error.why) }
      speculative = spec
      progress.returned += 1
      return speculativeActions(out)
    }
    guard var src = source else { throw .unexpected("tokens", phase: "not the source") }
    guard let tokens = m.tokens, tokens.count == m.spans.count else {
      throw .payload(
        "one token per sequence: \(m.spans.count) sequences, \(m.tokens.map { String($0.count) } ?? "no") tokens")
    }
    if let bad = tokens.first(where: { $0 < 0 || Int($0) >= a.limits.vocabSize }) {
      throw .tokenOutOfRange(bad, vocabulary: a.limits.vocabSize)
    }
    guard src.matches(batch: m.batch, spans: m.spans), let batch = Int(exactly: m.batch) else {
      throw .unknownBatch(m.batch)
    }
    let out: [SourceScheduler.Action]
    do { out = try src.tokensReturned(batch: batch, tokens: tokens, at: now) } catch { throw .unknownBatch(m.batch) }
    source = src
    progress.returned += 1
    return sourceActions(out)
  }
}
