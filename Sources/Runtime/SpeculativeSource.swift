public import Transport

/// The source worker's driver of speculative decoding, in device time: requests one at a time in arrival order;
/// each is a prefill through the target's pipeline, then rounds of a draft (computed by the worker, which asks
/// with `.draft`) and a verification of the last token and the drafted ones. Greedy acceptance: the longest
/// prefix of the draft that equals the target's choices, then the target's own next token; the next
/// verification starts right after the accepted tokens, so every stage forgets the rejected ones first.
/// Pure: the worker passes the time, the drafts and the returned tokens in.
public struct SpeculativeSource: Sendable {
  public enum Action: Equatable, Sendable {
    /// Send this message (stage 0's input) to the device that runs stage 0.
    case dispatch(ActivationMessage)
    /// Draft up to `count` tokens after `context` for `request`, then call `drafted`; with `count` 0, only read
    /// the context into the draft's cache (the prompt, while the target reads it too) and call nothing.
    case draft(request: Int, context: [Int32], count: Int)
    case arrived(request: Int, at: Double)
    case token(request: Int, index: Int, token: Int32, at: Double)
    case finished(request: Int, at: Double)
    case verified(VerificationEvent)
  }

  /// A returned message that does not answer the verification or prefill in flight.
  public struct Mismatch: Error, Equatable, Sendable {
    public var why: String
  }

  struct Current: Sendable {
    var request: RequestMessage
    var context: [Int32]
    var produced = 0
    /// The drafted tokens of the verification in flight.
    var draft: [Int32] = []
    var batch: UInt64
    var spans: [ActivationMessage.Span]
    var awaitingDraft = false
  }

  public let lookahead: Int
  public let closedLoop: Bool
  private var queue: [RequestMessage]
  private var head = 0
  private var current: Current?
  private var nextBatch: UInt64 = 0
  private var lastEnd = 0.0

  public init(lookahead: Int, closedLoop: Bool, requests: [RequestMessage]) {
    self.lookahead = max(1, lookahead)
    self.closedLoop = closedLoop
    queue = requests.sorted { ($0.arrival, $0.id) < ($1.arrival, $1.id) }
  }

  public var isFinished: Bool { current == nil && head == queue.count }

  /// When `tick` should next be called: the next arrival, while idle and open-loop.
  public var nextWake: Double? {
    guard current == nil, head < queue.count, !closedLoop else { return nil }
    return queue[head].arrival
  }

  /// Whether the message in flight is batch `batch` with exactly these spans.
  public func matches(batch: UInt64, spans: [ActivationMessage.Span]) -> Bool {
    guard let c = current, !c.awaitingDraft else { return false }
    return c.batch == batch && c.spans == spans
  }

  public mutating func start(at now: Double) -> [Action] { begin(at: now) }

  public mutating func tick(at now: Double) -> [Action] { begin(at: now) }

  /// The next request, when none is in flight and one has arrived.
  private mutating func begin(at now: Double) -> [Action] {
    guard current == nil, head < queue.count else { return [] }
    let r = queue[head]
    guard closedLoop || r.arrival <= now else { return [] }
    head += 1
    let arrival = closedLoop ? max(now, lastEnd) : r.arrival
    let spans = [ActivationMessage.Span(id: UInt64(r.id), start: 0, count: UInt32(r.prompt.count))]
    let batch = nextBatch
    nextBatch += 1
    current = Current(request: r, context: r.prompt, batch: batch, spans: spans)
    return [
      .arrived(request: r.id, at: arrival),
      .dispatch(ActivationMessage(batch: batch, stage: 0, prefill: true, spans: spans, tokens: r.prompt)),
      .draft(request: r.id, context: r.prompt, count: 0),
    ]
  }

  /// The worker's draft for the request in flight: verify it (with none, the last token alone: a decode step).
  public mutating func drafted(request: Int, tokens: [Int32], at now: Double) throws(Mismatch) -> [Action] {
    guard var c = current, c.awaitingDraft, c.request.id == request else {
      throw Mismatch(why: "a draft for request \(request), which is not waiting for one")
    }
    let room = c.request.outputLength - c.produced
    c.draft = Array(tokens.prefix(min(lookahead, room)))
    c.awaitingDraft = false
    let start = c.context.count - 1
    c.spans = [ActivationMessage.Span(id: UInt64(request), start: UInt32(start), count: UInt32(1 + c.draft.count))]
    c.batch = nextBatch
    nextBatch += 1
    current = c
    return [
      .dispatch(
        ActivationMessage(
          batch: c.batch, stage: 0, prefill: false, verify: true, spans: c.spans, tokens: [c.context.last!] + c.draft))
    ]
  }

  /// The target's tokens for the message in flight: one after a prefill, one per position after a verification.
  public mutating func tokensReturned(tokens: [Int32], at now: Double) throws(Mismatch) -> [Action] {
    guard var c = current, !c.awaitingDraft else { throw Mismatch(why: "tokens with nothing in flight") }
    var out: [Action] = []
    let id = c.request.id
    if c.produced == 0 {
      guard tokens.count == 1 else { throw Mismatch(why: "a prefill returns one token, not \(tokens.count)") }
      out.append(.token(request: id, index: 0, token: tokens[0], at: now))
      c.context.append(tokens[0])
      c.produced = 1
    } else {
      guard tokens.count == c.draft.count + 1 else {
        throw Mismatch(
          why: "a verification of \(c.draft.count) drafted tokens returns \(c.draft.count + 1), not \(tokens.count)")
      }
      var accepted = 0
      while accepted < c.draft.count && c.draft[accepted] == tokens[accepted] { accepted += 1 }
      out.append(.verified(VerificationEvent(request: id, proposed: c.draft.count, accepted: accepted)))
      for t in tokens[0...accepted] where c.produced < c.request.outputLength {
        out.append(.token(request: id, index: c.produced, token: t, at: now))
        c.context.append(t)
        c.produced += 1
      }
      c.draft = []
    }
    if c.produced >= c.request.outputLength {
      current = nil
      lastEnd = now
      out.append(.finished(request: id, at: now))
      return out + begin(at: now)
    }
    c.awaitingDraft = true
    current = c
    out.append(.draft(request: id, context: c.context, count: min(lookahead, c.request.outputLength - c.produced)))
    return out
  }
}
