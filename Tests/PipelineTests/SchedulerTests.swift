import EdgeLabCore
import Pipeline
import PropertyBased
import TestSupport
import Testing

/// Drives a scheduler the way both backends do: wakes when due, tokens back a fixed delay after dispatch.
struct SchedulerHarness {
  var scheduler: PipelineScheduler
  var wakes: [Double] = []
  var inFlight: [(batch: PipelineScheduler.MicroBatch, returnsAt: Double)] = []
  var log: [PipelineScheduler.Action] = []
  var maxInFlight = 0

  init(_ c: PipelineScheduler.Configuration, _ requests: [PipelineScheduler.Request]) {
    scheduler = PipelineScheduler(configuration: c, requests: requests)
  }

  mutating func apply(
    _ actions: [PipelineScheduler.Action], at t: Double, stepTime: (PipelineScheduler.MicroBatch) -> Double
  ) {
    for a in actions {
      log.append(a)
      switch a {
      case .wake(let w): wakes.append(w)
      case .dispatch(let b): inFlight.append((b, t + stepTime(b)))
      default: break
      }
    }
    maxInFlight = max(maxInFlight, scheduler.inFlightCount)
  }

  /// Runs to the end (or `limit` events); ties go to wakes first.
  mutating func run(stepTime: (PipelineScheduler.MicroBatch) -> Double, limit: Int = 100_000) throws {
    apply(scheduler.start(at: 0), at: 0, stepTime: stepTime)
    var events = 0
    while !scheduler.isFinished && events < limit {
      events += 1
      let nextWake = wakes.min()
      let nextReturn = inFlight.min { $0.returnsAt < $1.returnsAt }
      if let w = nextWake, nextReturn == nil || w <= nextReturn!.returnsAt {
        wakes.remove(at: wakes.firstIndex(of: w)!)
        apply(scheduler.wake(at: w), at: w, stepTime: stepTime)
      } else if let r = nextReturn {
        inFlight.removeAll { $0.batch.id == r.batch.id }
        apply(try scheduler.tokensReturned(batch: r.batch.id, at: r.returnsAt), at: r.returnsAt, stepTime: stepTime)
      } else {
        return
      }
    }
  }

  var batches: [PipelineScheduler.MicroBatch] { log.compactMap { if case .dispatch(let b) = $0 { b } else { nil } } }
}

@Suite("Pipeline scheduler")
struct SchedulerTests {
  static func requests(_ n: Int, prompt: Int = 4, output: Int = 3, every: Double = 0) -> [PipelineScheduler.Request] {
    (0..<n).map { .init(id: $0, arrival: Double($0) * every, promptLength: prompt, outputLength: output) }
  }

  @Test func closedLoopOfOneRunsRequestsBackToBackAfterTheThinkTime() throws {
    var h = SchedulerHarness(
      .init(arrivals: .closedLoop(concurrency: 1, think: 0.5), maxBatch: 8, microBatches: 1), Self.requests(2))
    try h.run { _ in 1 }
    // r0: prefill at 0, decode at 1 and 2, done at 3; r1 arrives at 3.5: prefill, two decodes, done at 6.5.
    #expect(h.batches.map(\.prefill) == [true, false, false, true, false, false])
    #expect(h.batches.map { $0.entries.map(\.start) } == [[0], [4], [5], [0], [4], [5]])
    #expect(h.log.contains(.arrived(request: 1, at: 3.5)))
    #expect(h.log.contains(.finished(request: 1, at: 6.5)))
    #expect(h.log.filter { if case .token = $0 { true } else { false } }.count == 6)
  }

  @Test func decodeStepsOfConcurrentRequestsShareMicroBatchesUpToMaxBatch() throws {
    var h = SchedulerHarness(.init(arrivals: .open, maxBatch: 2, microBatches: 1), Self.requests(3, output: 3))
    try h.run { _ in 1 }
    // Prefills go alone; the decode steps of r0, r1, r2 queue behind each other and go two at a time.
    let decodes = h.batches.filter { !$0.prefill }
    #expect(h.batches.filter(\.prefill).allSatisfy { $0.entries.count == 1 })
    #expect(decodes.allSatisfy { $0.entries.count <= 2 })
    #expect(decodes.contains { $0.entries.count == 2 })
    #expect(h.maxInFlight == 1)
  }

  @Test func theInFlightCapHolds() throws {
    var h = SchedulerHarness(.init(arrivals: .open, maxBatch: 1, microBatches: 3), Self.requests(10, output: 4))
    try h.run { _ in 1 }
    #expect(h.maxInFlight == 3)
    #expect(h.scheduler.isFinished)
  }

  @Test func memoryAdmissionMakesRequestsWaitAndRefusesOnesThatCanNeverFit() throws {
    // Each request needs 4 + 3 = 7 tokens of context; a budget of 15 admits two at a time.
    var reqs = Self.requests(4)
    reqs.append(.init(id: 4, arrival: 0, promptLength: 20, outputLength: 1))
    var h = SchedulerHarness(.init(arrivals: .open, maxBatch: 8, microBatches: 4, kvTokenBudget: 15), reqs)
    try h.run { _ in 1 }
    #expect(h.log.contains(.refused(request: 4, tokens: 21, budget: 15)))
    // r2 is dispatched only after r0 or r1 finished (at t = 3).
    let firstOfR2 = h.batches.firstIndex { $0.entries.contains { $0.request == 2 } }!
    let finishes = h.log.firstIndex { if case .finished = $0 { true } else { false } }!
    let dispatchOfR2 = h.log.firstIndex { if case .dispatch(let b) = $0 { b == h.batches[firstOfR2] } else { false } }!
    #expect(finishes < dispatchOfR2)
    #expect(h.scheduler.isFinished)
  }

  @Test func aRefusedRequestInAClosedLoopReleasesTheNext() throws {
    let reqs =
      [PipelineScheduler.Request(id: 0, arrival: 0, promptLength: 50, outputLength: 1)]
      + Self.requests(2).map {
        PipelineScheduler.Request(
          id: $0.id + 1, arrival: 0, promptLength: $0.promptLength, outputLength: $0.outputLength)
      }
    var h = SchedulerHarness(
      .init(arrivals: .closedLoop(concurrency: 1, think: 0), maxBatch: 1, microBatches: 1, kvTokenBudget: 20), reqs)
    try h.run { _ in 1 }
    #expect(h.log.contains(.refused(request: 0, tokens: 51, budget: 20)))
    #expect(h.scheduler.isFinished)
    #expect(h.log.filter { if case .finished = $0 { true } else { false } }.count == 2)
  }

  @Test func roundsLetMicroBatchesEnterOnlyAnEmptyPipeline() throws {
    // Two requests, one micro-batch each, two in flight; the second request's steps take twice as long.
    let reqs = Self.requests(2, output: 3)
    let step = { (b: PipelineScheduler.MicroBatch) in b.entries[0].request == 0 ? 1.0 : 2.0 }
    var free = SchedulerHarness(.init(arrivals: .open, maxBatch: 1, microBatches: 2), reqs)
    try free.run(stepTime: step)
    var rounds = SchedulerHarness(.init(arrivals: .open, maxBatch: 1, microBatches: 2, rounds: true), reqs)
    try rounds.run(stepTime: step)
    func finish(_ h: SchedulerHarness, _ r: Int) -> Double? {
      h.log.lazy.compactMap { if case .finished(r, let t) = $0 { t } else { nil } }.first
    }
    // No bubbles: each request goes at its own pace (3 steps of 1 s, 3 of 2 s).
    #expect(finish(free, 0) == 3)
    #expect(finish(free, 1) == 6)
    // Bubbles: every round waits for the slower micro-batch, so request 0's tokens come at 1, 3 and 5 s.
    #expect(finish(rounds, 0) == 5)
    #expect(finish(rounds, 1) == 6)
    #expect(rounds.maxInFlight == 2)
  }

  @Test func tokensForABatchNotInFlightAreRefused() throws {
    var s = PipelineScheduler(
      configuration: .init(arrivals: .open, maxBatch: 1, microBatches: 1), requests: Self.requests(1))
    _ = s.start(at: 0)
    _ = s.wake(at: 0)
    #expect(throws: SchedulerError.unknownBatch(7)) { try s.tokensReturned(batch: 7, at: 1) }
    _ = try s.tokensReturned(batch: 0, at: 1)
    #expect(throws: SchedulerError.unknownBatch(0)) { try s.tokensReturned(batch: 0, at: 2) }
  }

  /// Conservation: every request gets exactly its output length of tokens, in order, and finishes once; caps
  /// hold; the same events give the same batches.
  @Test func everyRequestCompletesExactlyOnce() async {
    await propertyCheck(
      count: 300, input: Gen.int(in: 0...1_000_000), Gen.int(in: 1...30), Gen.int(in: 1...6), Gen.int(in: 1...4),
      Gen.bool
    ) {
      seed, n, maxBatch, cap, closed in
      var g = SeededRandom(seed: UInt64(seed))
      let reqs = (0..<n).map {
        PipelineScheduler.Request(
          id: $0, arrival: g.nextUnit() * 5, promptLength: 1 + Int(g.next() % 9), outputLength: 1 + Int(g.next() % 6))
      }
      let arrivals: PipelineScheduler.Configuration.Arrivals =
        closed ? .closedLoop(concurrency: 1 + Int(g.next() % 4), think: g.nextUnit()) : .open
      let config = PipelineScheduler.Configuration(arrivals: arrivals, maxBatch: maxBatch, microBatches: cap)
      let step = { (b: PipelineScheduler.MicroBatch) in 0.1 + 0.01 * Double(b.tokenCount) }
      var h = SchedulerHarness(config, reqs)
      var again = SchedulerHarness(config, reqs)
      do {
        try h.run(stepTime: step)
        try again.run(stepTime: step)
      } catch {
        Issue.record("seed \(seed): \(error)")
        return
      }
      #expect(h.scheduler.isFinished, "seed \(seed)")
      #expect(h.maxInFlight <= cap)
      #expect(h.batches.allSatisfy { $0.prefill ? $0.entries.count == 1 : $0.entries.count <= maxBatch })
      #expect(h.batches == again.batches)
      for r in reqs {
        let tokens = h.log.compactMap { if case .token(r.id, let i, _) = $0 { i } else { nil } }
        #expect(tokens == Array(0..<r.outputLength), "seed \(seed): request \(r.id)")
        #expect(h.log.filter { if case .finished(r.id, _) = $0 { true } else { false } }.count == 1)
      }
      #expect(h.scheduler.activeContextTokens == 0)
    }
  }
}
