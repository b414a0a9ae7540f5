import EdgeLabCore
import Execution
import Pipeline
import PropertyBased
import TestSupport
import Testing
import Transport

@testable import Runtime

/// A worker machine in a known state: device "w" runs stages 0 and 2 of a three-stage pipeline
/// (w → x → w), is the source, and serves a run of `requests` requests.
enum Machines {
  static let limits = RunLimits(
    hiddenSize: 8, vocabSize: 100, requests: 4, maxPromptTokens: 6, maxContextTokens: 10, maxBatch: 2)

  static func assignment(
    scheduler: PipelineScheduler.Configuration? = .init(
      arrivals: .closedLoop(concurrency: 2, think: 0), maxBatch: 2, microBatches: 1)
  ) -> Assignment {
    Assignment(
      run: "test", device: "w", weights: WeightsSpec(preset: "tiny"), threads: 1,
      stages: [
        StageAssignment(index: 0, firstLayer: 0, endLayer: 2), StageAssignment(index: 2, firstLayer: 3, endLayer: 6),
      ],
      stageCount: 3, stageDevices: ["w", "x", "w"], peers: [:], source: "w", limits: limits, halfPrecisionWire: false,
      residency: nil, storageDirectory: "/nonexistent", storageBytesPerSecond: nil, delays: [:], pacing: [:], seed: 1,
      dilation: 1, scheduler: scheduler)
  }

  static let workload = (0..<4).map {
    RequestMessage(id: $0, prompt: [Int32](repeating: 5, count: 3 + $0 % 2), outputLength: 3)
  }

  /// A machine that has started serving; returns the micro-batches it dispatched at the start.
  static func serving() -> (WorkerMachine, [WorkerMachine.Action]) {
    var m = WorkerMachine(keepHistory: true)
    _ = m.handle(.control(.assign(assignment())))
    _ = m.handle(.loaded(weightBytes: 1, seconds: 0))
    _ = m.handle(.control(.link))
    _ = m.handle(.linkDone)
    _ = m.handle(.control(.workload(workload)))
    let start = m.handle(.control(.start))
    return (m, start)
  }

  static func refusal(_ actions: [WorkerMachine.Action]) -> WorkerError? {
    for a in actions { if case .refuse(_, _, let e) = a { return e } }
    return nil
  }
}

@Suite("Worker state machine")
struct WorkerMachineTests {
  @Test func theLifecycleGoesAssignLoadLinkStart() {
    var m = WorkerMachine()
    #expect(m.phase == .awaitingAssignment)
    let load = m.handle(.control(.assign(Machines.assignment())))
    guard case .load = load.first else {
      Issue.record("expected a load, got \(load)")
      return
    }
    #expect(m.phase == .loading)
    guard case .reply(.ready) = m.handle(.loaded(weightBytes: 1, seconds: 0)).first else {
      Issue.record("no ready")
      return
    }
    guard case .connect(let targets) = m.handle(.control(.link)).first else {
      Issue.record("no connect")
      return
    }
    #expect(targets == ["x"])  // stage 0's output goes to x; stage 2's tokens stay here (the source)
    guard case .reply(.linked) = m.handle(.linkDone).first else {
      Issue.record("no linked")
      return
    }
    _ = m.handle(.control(.workload(Machines.workload)))
    let start = m.handle(.control(.start))
    #expect(m.phase == .serving)
    // Closed loop of 2: both requests arrive; one micro-batch in flight, so r0's prefill goes to stage 0 (here).
    let delivered = start.compactMap { a -> ActivationMessage? in
      if case .deliver(let msg, "w", .activation) = a { msg } else { nil }
    }
    #expect(delivered.count == 1 && delivered[0].prefill && delivered[0].tokens == [5, 5, 5])
    guard case .reply(.arrivals(let arrivals)) = start.first else {
      Issue.record("arrivals first: \(start)")
      return
    }
    #expect(arrivals.map(\.request) == [0, 1])
  }

  @Test func aSecondAssignmentAndOutOfOrderControlAreRefused() {
    var m = WorkerMachine()
    guard case .reply(.failure(let why)) = m.handle(.control(.link)).first else {
      Issue.record("link before assign accepted")
      return
    }
    #expect(why.contains("link while awaiting an assignment"))
    _ = m.handle(.control(.assign(Machines.assignment())))
    guard case .reply(.failure(let again)) = m.handle(.control(.assign(Machines.assignment()))).first else {
      Issue.record("second assign")
      return
    }
    #expect(again.contains("a second assignment"))
    guard case .reply(.failure(let start)) = m.handle(.control(.start)).first else {
      Issue.record("start while loading")
      return
    }
    #expect(start.contains("unexpected start"))
  }

  @Test(arguments: ["stages", "stage index", "foreign stage", "limits", "huge", "threads", "scheduler"])
  func badAssignmentsAreRefusedByName(_ name: String) {
    var a = Machines.assignment()
    let expected: String
    switch name {
    case "stages": (a.stages, expected) = ([], "no stages")
    case "stage index": (a.stages[0].index, expected) = (7, "outside 0..<3")
    case "foreign stage": (a.stages[0].index, expected) = (1, "belongs to x")
    case "limits": (a.limits.maxContextTokens, expected) = (1, "max_context_tokens 1 below max_prompt_tokens 6")
    case "huge": (a.limits.hiddenSize, expected) = (1 << 40, "hidden_size 1099511627776 outside")
    case "threads": (a.threads, expected) = (0, "threads 0")
    default: (a.scheduler, expected) = (nil, "only the source schedules")
    }
    var m = WorkerMachine()
    guard case .reply(.failure(let why)) = m.handle(.control(.assign(a))).first else {
      Issue.record("\(name) accepted")
      return
    }
    #expect(why.contains(expected), "\(why)")
    #expect(m.phase == .awaitingAssignment)
  }

  @Test func aBadWorkloadIsRefusedByName() {
    var m = WorkerMachine()
    _ = m.handle(.control(.assign(Machines.assignment())))
    _ = m.handle(.loaded(weightBytes: 1, seconds: 0))
    _ = m.handle(.control(.link))
    _ = m.handle(.linkDone)
    for (bad, expected) in [
      ([RequestMessage(id: 9, prompt: [1], outputLength: 1)], "request id 9 outside 0..<4"),
      ([RequestMessage(id: 0, prompt: [Int32](repeating: 1, count: 7), outputLength: 1)], "7 prompt tokens"),
      ([RequestMessage(id: 0, prompt: [1, 2], outputLength: 9)], "at most 10"),
      ([RequestMessage(id: 0, prompt: [100], outputLength: 1)], "token 100 is outside the vocabulary"),
      (
        [RequestMessage(id: 0, prompt: [1], outputLength: 1), RequestMessage(id: 0, prompt: [1], outputLength: 1)],
        "request 0 twice"
      ),
    ] {
      guard case .reply(.failure(let why)) = m.handle(.control(.workload(bad))).first else {
        Issue.record("\(bad) accepted")
        return
      }
      #expect(why.contains(expected), "\(why)")
    }
  }

  /// The messages a hostile peer holding the run token sent, each refused with its reason, the machine still
  /// serving afterwards.
  @Test(
    arguments: [
      // An activation whose span covers 5 tokens but carries values for 1.
      (
        "x", FrameType.activation,
        ActivationMessage(
          batch: 0, stage: 2, prefill: true, spans: [.init(id: 0, start: 0, count: 5)],
          values: [Float](repeating: 0, count: 8)), .kind("payload")
      ),
      // A tokens frame with 2 spans and 0 tokens (and from the wrong device).
      (
        "x", .tokens,
        ActivationMessage(
          batch: 0, stage: 3, prefill: false,
          spans: [.init(id: 0, start: 3, count: 1), .init(id: 1, start: 3, count: 1)], tokens: []),
        .exactly(.wrongSender(stage: 3, expected: "w", got: "x"))
      ),
      (
        "w", .tokens,
        ActivationMessage(
          batch: 0, stage: 3, prefill: false,
          spans: [.init(id: 0, start: 3, count: 1), .init(id: 1, start: 3, count: 1)], tokens: []),
        .kind("payload")
      ),
      // A span starting at position 4·10⁹.
      (
        "x", .activation,
        ActivationMessage(
          batch: 0, stage: 2, prefill: false, spans: [.init(id: 0, start: 4_000_000_000, count: 1)],
          values: [Float](repeating: 0, count: 8)),
        .exactly(.beyondContext(sequence: 0, end: 4_000_000_001, limit: 10))
      ),
      (
        "x", .activation,
        ActivationMessage(
          batch: 0, stage: 0, prefill: true, spans: [.init(id: 0, start: 0, count: 3)], tokens: [1, 2, 3]),
        .exactly(.wrongSender(stage: 0, expected: "w", got: "x"))
      ),
      (
        "x", .activation,
        ActivationMessage(batch: 0, stage: 1, prefill: true, spans: [.init(id: 0, start: 0, count: 3)], values: []),
        .exactly(.wrongStage(1, runs: [0, 2]))
      ),
      (
        "x", .activation,
        ActivationMessage(batch: 0, stage: 2, prefill: true, spans: [.init(id: 9, start: 0, count: 3)], values: []),
        .exactly(.unknownSequence(9, requests: 4))
      ),
      (
        "x", .activation,
        ActivationMessage(
          batch: 0, stage: 2, prefill: false, spans: [.init(id: 0, start: 2, count: 1)],
          values: [Float](repeating: 0, count: 8)),
        .exactly(.position(sequence: 0, stage: 2, expected: 0, got: 2))
      ),
      (
        "x", .activation,
        ActivationMessage(
          batch: 0, stage: 2, prefill: false,
          spans: [
            .init(id: 0, start: 0, count: 1), .init(id: 1, start: 0, count: 1), .init(id: 2, start: 0, count: 1),
          ], values: [Float](repeating: 0, count: 24)), .kind("badSpans")
      ),
      (
        "w", .tokens,
        ActivationMessage(batch: 5, stage: 3, prefill: false, spans: [.init(id: 0, start: 0, count: 3)], tokens: [1]),
        .exactly(.unknownBatch(5))
      ),
      (
        "w", .tokens,
        ActivationMessage(batch: 0, stage: 3, prefill: true, spans: [.init(id: 0, start: 0, count: 3)], tokens: [1000]),
        .exactly(.tokenOutOfRange(1000, vocabulary: 100))
      ),
    ] as [(String, FrameType, ActivationMessage, ExpectedRefusal)])
  func hostileMessagesAreRefusedByName(
    from: String, type: FrameType, message: ActivationMessage, expected: ExpectedRefusal
  )
    throws
  {
    var (m, _) = Machines.serving()
    let actions = m.handle(.data(connection: 3, from: from, type: type, message, now: 1))
    let error = try #require(Machines.refusal(actions), "accepted: \(actions)")
    switch expected {
    case .exactly(let e): #expect(error == e)
    case .kind(let name): #expect(ExpectedRefusal.kind(of: error) == name, "\(error)")
    }
    guard case .refuse(3, _, _) = actions[0] else {
      Issue.record("the connection is not closed: \(actions)")
      return
    }
    #expect(m.phase == .serving && m.refused == 1)
  }

  @Test func theRealPipelineFlowIsAccepted() throws {
    var (m, start) = Machines.serving()
    let prefill = try #require(
      start.compactMap { a -> ActivationMessage? in if case .deliver(let msg, _, _) = a { msg } else { nil } }.first)
    // Stage 0 here, stage 1 on x, stage 2 here, tokens back here.
    guard
      case .compute(0, _, .stage(1, device: "x")) = m.handle(
        .data(connection: -1, from: "w", type: .activation, prefill, now: 0)
      ).first
    else {
      Issue.record("stage 0 refused the source's prefill")
      return
    }
    let fromX = ActivationMessage(
      batch: prefill.batch, stage: 2, prefill: true, spans: prefill.spans, values: [Float](repeating: 0.5, count: 3 * 8)
    )
    guard
      case .compute(2, _, .source("w")) = m.handle(.data(connection: 4, from: "x", type: .activation, fromX, now: 0))
        .first
    else {
      Issue.record("stage 2 refused x's activation")
      return
    }
    let tokens = ActivationMessage(batch: prefill.batch, stage: 3, prefill: true, spans: prefill.spans, tokens: [42])
    let back = m.handle(.data(connection: -1, from: "w", type: .tokens, tokens, now: 0.25))
    guard case .reply(.tokens(let events)) = back.first else {
      Issue.record("no token event: \(back)")
      return
    }
    #expect(events == [TokenEvent(request: 0, index: 0, token: 42, time: 0.25)])
    // The next micro-batch: r1's prefill (it was queued before r0's first decode step).
    let next = back.compactMap { a -> ActivationMessage? in if case .deliver(let msg, _, _) = a { msg } else { nil } }
    #expect(next.count == 1 && next[0].spans.map(\.id) == [1])
    // A replay of the same activation is refused: the sequence has moved on.
    #expect(Machines.refusal(m.handle(.data(connection: 4, from: "x", type: .activation, fromX, now: 0))) != nil)
  }

  /// Property: whatever arrives — random stages, senders, spans, lengths and payloads — the machine never traps;
  /// it either refuses with a named error, or passes the engine a message the engine can take.
  @Test func randomMessagesNeverReachTheEngineMalformed() async {
    await propertyCheck(count: 2000, input: Gen.int(in: 0...Int(Int32.max))) { seed in
      var g = SeededRandom(seed: UInt64(seed))
      func pick<T>(_ xs: [T]) -> T { xs[Int(g.next() % UInt64(xs.count))] }
      var (m, _) = Machines.serving()
      for _ in 0..<8 {
        let n = Int(g.next() % 4)
        let spans = (0..<n).map { _ in
          ActivationMessage.Span(
            id: pick([0, 1, 3, 4, 1 << 40]), start: pick([0, 1, 3, 9, 10, UInt32.max]),
            count: pick([0, 1, 3, 5, UInt32.max]))
        }
        let tokenCount = Int(g.next() % 6)
        let tokens: [Int32]? =
          g.next() % 2 == 0 ? (0..<tokenCount).map { _ in pick([0, 5, 99, 100, -1, Int32.max]) } : nil
        let values = [Float](repeating: 1, count: pick([0, 8, 24, 40]))
        let msg = ActivationMessage(
          batch: pick([0, 1, 2, UInt64.max]), stage: pick([0, 1, 2, 3, UInt32.max]), prefill: g.next() % 2 == 0,
          spans: spans, values: tokens == nil ? values : [], tokens: tokens)
        let type: FrameType = pick([.activation, .tokens, .control])
        let from = pick(["w", "x", "y", ""])
        let actions = m.handle(.data(connection: 1, from: from, type: type, msg, now: 1))
        // A stage this worker does not run, or a sender that does not feed it, is always refused.
        let feeders: [UInt32: String] = [0: "w", 2: "x"]
        if type == .activation && feeders[msg.stage] != from {
          #expect(Machines.refusal(actions) != nil, "seed \(seed): \(msg) from \(from) was not refused")
        }
        for a in actions {
          switch a {
          case .refuse(_, _, let e):
            // The refusal names what really is wrong with this message.
            #expect(
              Self.explains(e, msg, from: from, type: type, feeders: feeders), "seed \(seed): \(e) for \(msg)")
          case .compute(let s, let c, _):
            // What the engine gets: a stage of this worker, one id per token or hidden × tokens values,
            // positions inside the run's context.
            let total = c.spans.reduce(0) { $0 + Int($1.count) }
            #expect([0, 2].contains(s))
            #expect(
              s == 0 ? c.tokens?.count == total : c.values.count == total * Machines.limits.hiddenSize, "seed \(seed)")
            #expect(
              c.spans.allSatisfy { UInt64($0.start) + UInt64($0.count) <= UInt64(Machines.limits.maxContextTokens) })
            #expect((c.tokens ?? []).allSatisfy { $0 >= 0 && $0 < 100 })
          default: break
          }
        }
      }
      #expect(m.phase == .serving)
    }
  }

  /// Whether refusal `e` is true of the message: the stage, sender, sequence, position, token or payload it
  /// names is the message's own and is wrong (for the machine of `Machines.serving`).
  static func explains(
    _ e: WorkerError, _ m: ActivationMessage, from: String, type: FrameType, feeders: [UInt32: String]
  ) -> Bool {
    let l = Machines.limits
    let counts = m.spans.map { Int($0.count) }
    switch e {
    case .unexpected: return type != .activation
    case .wrongStage(let stage, let runs):
      return type == .activation && stage == m.stage && feeders[stage] == nil && runs == [0, 2]
    case .wrongSender(_, let expected, let got): return got == from && expected != from
    case .badSpans:
      let ids = m.spans.map(\.id)
      return m.spans.isEmpty || Set(ids).count != ids.count || (m.prefill && m.spans.count != 1)
        || (!m.prefill && (m.spans.count > l.maxBatch || counts.contains { $0 != 1 }))
        || (m.prefill && counts.contains { $0 < 1 || $0 > l.maxPromptTokens })
    case .unknownSequence(let id, let n): return n == l.requests && id >= UInt64(n) && m.spans.contains { $0.id == id }
    case .beyondContext(let id, let end, let limit):
      return limit == l.maxContextTokens && end > UInt64(limit)
        && m.spans.contains { $0.id == id && UInt64($0.start) + UInt64($0.count) == end }
    case .position(let id, _, let expected, let got):
      return Int(got) != expected && m.spans.contains { $0.id == id && $0.start == got }
    case .payload:
      let total = counts.reduce(0, +)
      if type == .tokens { return m.tokens?.count != m.spans.count }
      return m.stage == 0 ? m.tokens?.count != total : (m.tokens != nil || m.values.count != total * l.hiddenSize)
    case .tokenOutOfRange(let t, let v):
      return v == l.vocabSize && (t < 0 || Int(t) >= v) && m.tokens?.contains(t) == true
    case .unknownBatch: return type == .tokens
    case .badAssignment, .badWorkload: return false
    }
  }

  /// Property: random bytes never trap the frame and message decoders; they decode or throw `WireError`.
  @Test func randomBytesNeverTrapTheDecoders() async {
    await propertyCheck(count: 3000, input: Gen.int(in: 0...Int(Int32.max)), Gen.int(in: 0...200)) { seed, length in
      var g = SeededRandom(seed: UInt64(seed))
      var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: g.next()) }
      // Half the time, start from a valid message and flip bytes.
      if g.next() % 2 == 0 {
        bytes = ActivationMessage(
          batch: 1, stage: 2, prefill: false, spans: [.init(id: 1, start: 2, count: 1)], values: [1, 2]
        ).encoded()
        for _ in 0..<3 where !bytes.isEmpty {
          bytes[Int(g.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: g.next())
        }
      }
      _ = try? ActivationMessage.decode(bytes)
      _ = try? ControlMessage.decode(bytes)
      var d = FrameDecoder(maxPayload: 64)
      d.feed(bytes)
      _ = try? d.next()
    }
  }
}

@Suite("Progress deadline")
struct ProgressMonitorTests {
  static let devices = ["a", "b", "c"]

  @Test func nothingIsStuckWhileWorkMoves() {
    var m = ProgressMonitor(bound: 10, stageDevices: Self.devices, source: "a", start: 0)
    m.observe(WorkerProgress(stages: [.init(index: 0, received: 1, completed: 1)], dispatched: 1), from: "a", at: 5)
    #expect(m.verdict(at: 14, outstanding: true) == nil)
    #expect(m.verdict(at: 100, outstanding: false) == nil)
  }

  @Test func aBlackholedLinkIsNamed() throws {
    var m = ProgressMonitor(bound: 10, stageDevices: Self.devices, source: "a", start: 0)
    m.observe(
      WorkerProgress(stages: [.init(index: 0, received: 3, completed: 3)], dispatched: 3, returned: 2), from: "a", at: 1
    )
    m.observe(WorkerProgress(stages: [.init(index: 1, received: 3, completed: 3)]), from: "b", at: 1)
    m.observe(WorkerProgress(stages: [.init(index: 2, received: 2, completed: 2)]), from: "c", at: 1)
    // The same reports keep arriving: nothing moves.
    m.observe(
      WorkerProgress(stages: [.init(index: 0, received: 3, completed: 3)], dispatched: 3, returned: 2), from: "a", at: 9
    )
    m.observe(WorkerProgress(stages: [.init(index: 1, received: 3, completed: 3)]), from: "b", at: 9)
    m.observe(WorkerProgress(stages: [.init(index: 2, received: 2, completed: 2)]), from: "c", at: 9)
    #expect(m.verdict(at: 10.5, outstanding: true) == nil)
    let why = try #require(m.verdict(at: 11.5, outstanding: true))
    #expect(why.contains("never reached stage 2 on c (link b→c)"), "\(why)")
  }

  @Test func aStageThatHoldsWorkIsNamed() throws {
    var m = ProgressMonitor(bound: 10, stageDevices: Self.devices, source: "a", start: 0)
    // Heartbeats repeat the same counters until the verdict.
    for t in [0.0, 15] {
      m.observe(WorkerProgress(stages: [.init(index: 0, received: 1, completed: 1)], dispatched: 1), from: "a", at: t)
      m.observe(WorkerProgress(stages: [.init(index: 1, received: 1, completed: 0)]), from: "b", at: t)
    }
    let why = try #require(m.verdict(at: 20, outstanding: true))
    #expect(why.contains("stage 1 on b has held 1 micro-batch"), "\(why)")
  }

  /// A worker whose reports stopped coming (starved on a loaded host) may have finished what its last report
  /// held: the verdict waits for its next report, which says where the work really is.
  @Test func aStaleReportIsNotJudged() throws {
    var m = ProgressMonitor(bound: 10, stageDevices: ["a", "b"], source: "a", start: 0)
    m.observe(WorkerProgress(stages: [.init(index: 0, received: 1, completed: 0)], dispatched: 1), from: "a", at: 0)
    m.observe(WorkerProgress(stages: [.init(index: 1, received: 0, completed: 0)]), from: "b", at: 15)
    #expect(m.verdict(at: 20, outstanding: true) == nil)
    // Its next report: the micro-batch was computed and sent, and never reached b.
    m.observe(WorkerProgress(stages: [.init(index: 0, received: 1, completed: 1)], dispatched: 1), from: "a", at: 21)
    m.observe(WorkerProgress(stages: [.init(index: 1, received: 0, completed: 0)]), from: "b", at: 21)
    #expect(m.verdict(at: 25, outstanding: true) == nil)
    m.observe(WorkerProgress(stages: [.init(index: 0, received: 1, completed: 1)], dispatched: 1), from: "a", at: 30)
    m.observe(WorkerProgress(stages: [.init(index: 1, received: 0, completed: 0)]), from: "b", at: 30)
    let why = try #require(m.verdict(at: 31.5, outstanding: true))
    #expect(why.contains("never reached stage 1 on b (link a→b)"), "\(why)")
  }

  @Test func tokensThatNeverCameBackAreNamed() throws {
    var m = ProgressMonitor(bound: 10, stageDevices: Self.devices, source: "a", start: 0)
    m.observe(
      WorkerProgress(stages: [.init(index: 0, received: 1, completed: 1)], dispatched: 1, returned: 0), from: "a", at: 0
    )
    m.observe(WorkerProgress(stages: [.init(index: 1, received: 1, completed: 1)]), from: "b", at: 0)
    m.observe(WorkerProgress(stages: [.init(index: 2, received: 1, completed: 1)]), from: "c", at: 0)
    #expect(m.verdict(at: 20, outstanding: true) == nil, "reports 20 s old are not judged")
    m.observe(
      WorkerProgress(stages: [.init(index: 0, received: 1, completed: 1)], dispatched: 1, returned: 0), from: "a",
      at: 19
    )
    m.observe(WorkerProgress(stages: [.init(index: 1, received: 1, completed: 1)]), from: "b", at: 19)
    m.observe(WorkerProgress(stages: [.init(index: 2, received: 1, completed: 1)]), from: "c", at: 19)
    let why = try #require(m.verdict(at: 20, outstanding: true))
    #expect(why.contains("never reached the source (link c→a)"), "\(why)")
  }
}

/// What a hostile-message case expects: the exact refusal, or its case where the case carries a sentence.
enum ExpectedRefusal: Sendable, CustomTestStringConvertible {
  case exactly(WorkerError)
  case kind(String)

  /// The case's name (`payload`, `badSpans`, …).
  static func kind(of e: WorkerError) -> String {
    Mirror(reflecting: e).children.first?.label ?? "\(e)"
  }

  var testDescription: String {
    switch self {
    case .exactly(let e): "\(e)"
    case .kind(let k): k
    }
  }
}

/// Liveness: silence is measured against the peers' heartbeats as well as the clock, so a loaded machine that
/// stalls every process declares no one hung.
@Suite("Worker liveness")
struct LivenessTests {
  @Test func aWorkerSilentWhilePeersBeatIsNamed() {
    var l = Liveness()
    l.heard(from: "d0", at: 0)
    l.heard(from: "d1", at: 0)
    for i in 1...30 { l.heard(from: "d0", at: Double(i) * 0.2) }
    #expect(l.silent(at: 4.5, timeout: 4, interval: 0.2) == "d1")
    #expect(l.silent(at: 3.9, timeout: 4, interval: 0.2) == nil)
  }

  @Test func aStalledMachineDeclaresNoOneHungUntilTheClockAloneDecides() {
    var l = Liveness()
    for d in ["d0", "d1", "d2"] { l.heard(from: d, at: 0) }
    // Ten seconds pass, then one reader drains its peer's queued frames at once: every process was starved.
    for _ in 0..<40 { l.heard(from: "d0", at: 10) }
    #expect(l.silent(at: 10.01, timeout: 4, interval: 0.2) == nil)
    // Nobody vouches for anyone for three timeouts: the clock decides, naming the longest silent.
    #expect(l.silent(at: 12.5, timeout: 4, interval: 0.2) == "d1")
  }

  @Test func theLongestSilentIsNamedAndOneWorkerUsesTheClock() {
    var l = Liveness()
    l.heard(from: "a", at: 0)
    l.heard(from: "b", at: 1)
    for i in 0..<60 { l.heard(from: "c", at: 1 + Double(i) * 0.2) }
    #expect(l.silent(at: 13, timeout: 4, interval: 0.2) == "a")
    var one = Liveness()
    one.heard(from: "solo", at: 0)
    #expect(one.silent(at: 4.1, timeout: 4, interval: 0.2) == "solo")
    #expect(one.silent(at: 3.9, timeout: 4, interval: 0.2) == nil)
  }

  /// A majority that goes quiet at once (a switch cutting several boards off) is still named, by the peers that
  /// go on beating.
  @Test func aQuietMajorityIsNamed() {
    var l = Liveness()
    for d in ["a", "b", "c", "d"] { l.heard(from: d, at: 0) }
    for i in 1...30 { l.heard(from: "a", at: Double(i) * 0.2) }
    #expect(l.silent(at: 4.5, timeout: 4, interval: 0.2) == "b")
  }
}
