import Testing
import Transport

@testable import Runtime

/// The source's speculative driver, and the workers' rules for verifications, as pure state machines.
@Suite("Speculative source")
struct SpeculativeSourceTests {
  static func dispatched(_ actions: [SpeculativeSource.Action]) -> ActivationMessage? {
    for a in actions { if case .dispatch(let m) = a { return m } }
    return nil
  }

  @Test func draftsVerifiesAcceptsAPrefixAndRollsBack() throws {
    let r = RequestMessage(id: 0, prompt: [1, 2, 3], outputLength: 6)
    var s = SpeculativeSource(lookahead: 3, closedLoop: true, requests: [r])
    let prefill = try #require(Self.dispatched(s.start(at: 0)))
    #expect(prefill.prefill && prefill.spans == [.init(id: 0, start: 0, count: 3)] && prefill.tokens == [1, 2, 3])
    // The prefill's token: the first output; then a draft of three is asked for.
    var out = try s.tokensReturned(tokens: [10], at: 1)
    #expect(out.contains(.token(request: 0, index: 0, token: 10, at: 1)))
    #expect(out.contains(.draft(request: 0, context: [1, 2, 3, 10], count: 3)))
    // The last token and the draft, from position 3.
    let v1 = try #require(Self.dispatched(try s.drafted(request: 0, tokens: [11, 99, 13], at: 2)))
    #expect(v1.verify && v1.spans == [.init(id: 0, start: 3, count: 4)] && v1.tokens == [10, 11, 99, 13])
    // The target agrees on 11, not on 99 (it says 12): two tokens, 11 and 12.
    out = try s.tokensReturned(tokens: [11, 12, 7, 7], at: 3)
    #expect(out.contains(.verified(VerificationEvent(request: 0, proposed: 3, accepted: 1))))
    #expect(out.contains(.token(request: 0, index: 2, token: 12, at: 3)))
    #expect(out.contains(.draft(request: 0, context: [1, 2, 3, 10, 11, 12], count: 3)))
    // The next verification starts right after the accepted tokens (position 5): the stages forget 99 and 13.
    let v2 = try #require(Self.dispatched(try s.drafted(request: 0, tokens: [13, 14, 15], at: 4)))
    #expect(v2.spans == [.init(id: 0, start: 5, count: 4)])
    // All accepted: 13, 14, 15 and the target's 16 — but only three tokens remain (6 in all).
    out = try s.tokensReturned(tokens: [13, 14, 15, 16], at: 5)
    let tokens = out.compactMap { a -> Int32? in
      if case .token(_, _, let t, _) = a { return t }
      return nil
    }
    #expect(tokens == [13, 14, 15])
    #expect(out.contains(.finished(request: 0, at: 5)) && s.isFinished)
  }

  @Test func theDraftIsCutToWhatTheRequestStillNeeds() throws {
    var s = SpeculativeSource(
      lookahead: 8, closedLoop: true, requests: [RequestMessage(id: 0, prompt: [1], outputLength: 3)])
    _ = s.start(at: 0)
    let out = try s.tokensReturned(tokens: [5], at: 1)
    #expect(out.contains(.draft(request: 0, context: [1, 5], count: 2)))
    let v = try #require(Self.dispatched(try s.drafted(request: 0, tokens: [6, 7, 8, 9], at: 1)))
    #expect(v.tokens == [5, 6, 7])
    // A reply of the wrong length is a named mismatch, not a trap.
    #expect(throws: SpeculativeSource.Mismatch.self) { try s.tokensReturned(tokens: [1], at: 2) }
  }

  @Test func openLoopRequestsWaitForTheirArrivalAndThePreviousOne() throws {
    let requests = [
      RequestMessage(id: 0, prompt: [1], outputLength: 1, arrival: 0),
      RequestMessage(id: 1, prompt: [2], outputLength: 1, arrival: 0.5),
    ]
    var s = SpeculativeSource(lookahead: 2, closedLoop: false, requests: requests)
    _ = s.start(at: 0)
    #expect(s.nextWake == nil)  // busy with request 0
    let out = try s.tokensReturned(tokens: [3], at: 0.2)
    #expect(out.contains(.finished(request: 0, at: 0.2)))
    #expect(Self.dispatched(out) == nil && s.nextWake == 0.5)
    let next = s.tick(at: 0.5)
    #expect(next.contains(.arrived(request: 1, at: 0.5)) && Self.dispatched(next)?.prefill == true)
  }

  /// A worker running the target's first stage: verifications may start before where the stage is (rollback),
  /// never after it; a run that does not speculate refuses them.
  @Test func workersTakeVerificationsOnlyWhereTheRunSpeculates() {
    func machine(verifyTokens: Int?) -> WorkerMachine {
      var limits = Machines.limits
      limits.verifyTokens = verifyTokens
      var a = Machines.assignment(scheduler: nil)
      a.device = "x"
      a.stages = [StageAssignment(index: 1, firstLayer: 2, endLayer: 3)]
      a.limits = limits
      var m = WorkerMachine()
      _ = m.handle(.control(.assign(a)))
      _ = m.handle(.loaded(weightBytes: 1, seconds: 0))
      _ = m.handle(.control(.link))
      _ = m.handle(.linkDone)
      return m
    }
    func message(start: UInt32, count: UInt32, verify: Bool, prefill: Bool = false) -> WorkerMachine.Input {
      .data(
        connection: 1, from: "w", type: .activation,
        ActivationMessage(
          batch: 0, stage: 1, prefill: prefill, verify: verify, spans: [.init(id: 0, start: start, count: count)],
          values: [Float](repeating: 0, count: Int(count) * 8)), now: 0)
    }
    var m = machine(verifyTokens: 4)
    #expect(Machines.refusal(m.handle(message(start: 0, count: 3, verify: false, prefill: true))) == nil)
    // Position 3 now: a verification of 4 from 2 (one rejected token forgotten) is fine, reaching 6.
    #expect(Machines.refusal(m.handle(message(start: 2, count: 4, verify: true))) == nil)
    // Past where the stage is: refused by name.
    #expect(
      Machines.refusal(m.handle(message(start: 7, count: 1, verify: true)))
        == .position(sequence: 0, stage: 1, expected: 6, got: 7))
    // More tokens than the lookahead allows.
    if case .badSpans = Machines.refusal(m.handle(message(start: 6, count: 5, verify: true))) {
    } else {
      Issue.record("a verification of 5 tokens with verify_tokens 4 was not refused")
    }
    var plain = machine(verifyTokens: nil)
    _ = plain.handle(message(start: 0, count: 3, verify: false, prefill: true))
    if case .badSpans = Machines.refusal(plain.handle(message(start: 2, count: 2, verify: true))) {
    } else {
      Issue.record("a verification in a run that does not speculate was not refused")
    }
  }
}
