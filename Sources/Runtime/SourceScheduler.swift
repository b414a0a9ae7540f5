import HeapModule
public import Pipeline
public import Transport

/// The source worker's driver of `PipelineScheduler`, in device time (wall time ÷ dilation): keeps the prompts
/// and each request's last token, turns dispatched micro-batches into activation messages for the first stage,
/// and knows when the scheduler next needs waking. Pure: the worker passes the time in.
public struct SourceScheduler: Sendable {
  /// What the worker does next.
  public enum Action: Equatable, Sendable {
    /// Send this message (stage 0's input) to the device that runs stage 0.
    case dispatch(ActivationMessage)
    case arrived(request: Int, at: Double)
    case token(request: Int, index: Int, token: Int32, at: Double)
    case finished(request: Int, at: Double)
    case refused(request: Int, reason: String)
  }

  public private(set) var scheduler: PipelineScheduler
  private var prompts: [Int: [Int32]] = [:]
  private var last: [Int: Int32] = [:]
  private var wakes = Heap<Double>()
  /// The micro-batches dispatched so far, in order (for tests and traces).
  public private(set) var dispatched: [PipelineScheduler.MicroBatch] = []
  private let keepHistory: Bool

  /// - Parameters:
  ///   - keepHistory: record every dispatched micro-batch in `dispatched`.
  public init(configuration: PipelineScheduler.Configuration, requests: [RequestMessage], keepHistory: Bool = false) {
    scheduler = PipelineScheduler(
      configuration: configuration,
      requests: requests.map {
        .init(id: $0.id, arrival: $0.arrival, promptLength: $0.prompt.count, outputLength: $0.outputLength)
      })
    for r in requests { prompts[r.id] = r.prompt }
    self.keepHistory = keepHistory
  }

  /// When `tick` should next be called (device time), if anything is waiting for time to pass.
  public var nextWake: Double? { wakes.min }
  public var isFinished: Bool { scheduler.isFinished }

  /// Whether micro-batch `batch` is in flight with exactly these spans.
  public func matches(batch: UInt64, spans: [ActivationMessage.Span]) -> Bool {
    guard let id = Int(exactly: batch), let b = scheduler.inFlightBatch(id), b.entries.count == spans.count else {
      return false
    }
    return zip(b.entries, spans).allSatisfy { e, s in
      UInt64(e.request) == s.id && UInt64(e.start) == UInt64(s.start) && UInt64(e.count) == UInt64(s.count)
    }
  }

  public mutating func start(at now: Double) -> [Action] {
    translate(scheduler.start(at: now))
  }

  /// Wakes the scheduler if an arrival is due by `now`.
  public mutating func tick(at now: Double) -> [Action] {
    guard let first = wakes.min, first <= now else { return [] }
    while let m = wakes.min, m <= now { wakes.removeMin() }
    return translate(scheduler.wake(at: now))
  }

  /// The tokens of micro-batch `batch` (one per entry, in entry order) reached the source at `now`.
  public mutating func tokensReturned(batch: Int, tokens: [Int32], at now: Double) throws(SchedulerError) -> [Action] {
    guard let b = scheduler.inFlightBatch(batch) else { throw .unknownBatch(batch) }
    let actions = try scheduler.tokensReturned(batch: batch, at: now)
    for (e, t) in zip(b.entries, tokens) { last[e.request] = t }
    return translate(actions)
  }

  private mutating func translate(_ actions: [PipelineScheduler.Action]) -> [Action] {
    var out: [Action] = []
    for a in actions {
      switch a {
      case .wake(let t): wakes.insert(t)
      case .arrived(let r, let t): out.append(.arrived(request: r, at: t))
      case .token(let r, let i, let t): out.append(.token(request: r, index: i, token: last[r] ?? 0, at: t))
      case .finished(let r, let t):
        out.append(.finished(request: r, at: t))
        prompts[r] = nil
        last[r] = nil
      case .refused(let r, let tokens, let budget):
        out.append(
          .refused(request: r, reason: "request \(r) needs \(tokens) tokens of KV cache; the budget is \(budget)"))
      case .dispatch(let b):
        if keepHistory { dispatched.append(b) }
        let spans = b.entries.map {
          ActivationMessage.Span(id: UInt64($0.request), start: UInt32($0.start), count: UInt32($0.count))
        }
        let tokens = b.prefill ? (prompts[b.entries[0].request] ?? []) : b.entries.map { last[$0.request] ?? 0 }
        out.append(
          .dispatch(ActivationMessage(batch: UInt64(b.id), stage: 0, prefill: b.prefill, spans: spans, tokens: tokens)))
      }
    }
    return out
  }
}
