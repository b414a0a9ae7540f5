/// The source's half of a pipelined run, as a pure state machine (events in, actions out, time passed in):
/// requests arrive, wait for admission, and are cut into micro-batches that enter the pipeline; tokens come back
/// and make the next decode step ready. The simulator drives it in virtual time, the source worker in (dilated)
/// wall time, so both backends form exactly the same micro-batches from the same events.
///
/// Rules:
/// - **Arrivals.** Open loop: each request arrives at its own time. Closed loop: `concurrency` requests arrive at
///   the start; each completion makes the next request arrive `think` seconds later.
/// - **Memory admission.** With a KV-token budget, an arrived request is admitted (in arrival order, the first
///   waiting one first) only when the context it can reach (prompt + output) fits next to those admitted; a
///   request that could never fit is refused.
/// - **Micro-batches.** While fewer than `microBatches` micro-batches are in flight, the first ready step goes
///   next: a prefill alone, or a decode step together with the decode steps queued right behind it, up to
///   `maxBatch`. With `rounds`, micro-batches enter only into an empty pipeline (up to `microBatches` at once),
///   so every round waits for its slowest micro-batch.
/// - **Tokens.** When a micro-batch's tokens are back at the source, each of its requests has one more token:
///   it is finished after its output length, else its next decode step is queued.
///
/// Arrivals are admitted only in `wake(at:)`, never inside `tokensReturned`: a driver gets a `wake` action for
/// every arrival time and calls `wake(at:)` when it is due, as any other event.
public struct PipelineScheduler: Sendable {
  public struct Configuration: Codable, Hashable, Sendable {
    public enum Arrivals: Codable, Hashable, Sendable {
      /// Every request at its own `arrival` time.
      case open
      /// `concurrency` requests outstanding; each completion releases the next after `think` seconds.
      case closedLoop(concurrency: Int, think: Double)
    }
    public var arrivals: Arrivals
    /// Most decode steps in one micro-batch.
    public var maxBatch: Int
    /// Most micro-batches in flight.
    public var microBatches: Int
    /// Most tokens of context the admitted requests may reach together (nil: no admission control).
    public var kvTokenBudget: Int?
    /// Rounds: micro-batches enter only when the pipeline is empty (every micro-batch of the last round is
    /// back), so it drains once per round — EdgeShard's "Bubbles" schedule. Otherwise a micro-batch enters as
    /// soon as there is room ("No-Bubbles").
    public var rounds: Bool

    public init(
      arrivals: Arrivals, maxBatch: Int, microBatches: Int, kvTokenBudget: Int? = nil, rounds: Bool = false
    ) {
      self.arrivals = arrivals
      self.maxBatch = max(1, maxBatch)
      self.microBatches = max(1, microBatches)
      self.kvTokenBudget = kvTokenBudget
      self.rounds = rounds
    }
  }

  /// A request as the scheduler sees it (lengths only; the tokens themselves are the driver's business).
  public struct Request: Codable, Hashable, Sendable {
    public var id: Int
    /// Arrival time (open loop); ignored in a closed loop.
    public var arrival: Double
    public var promptLength: Int
    public var outputLength: Int
    public init(id: Int, arrival: Double, promptLength: Int, outputLength: Int) {
      self.id = id
      self.arrival = arrival
      self.promptLength = promptLength
      self.outputLength = outputLength
    }
  }

  /// One request's part of a micro-batch: `count` tokens at positions start..<start+count.
  public struct Entry: Codable, Hashable, Sendable {
    public var request: Int
    public var start: Int
    public var count: Int
  }

  /// A group of steps that travels through the pipeline together.
  public struct MicroBatch: Codable, Hashable, Sendable {
    public var id: Int
    public var prefill: Bool
    public var entries: [Entry]
    public var tokenCount: Int { entries.reduce(0) { $0 + $1.count } }
  }

  public enum Action: Hashable, Sendable {
    /// Call `wake(at:)` at this time (an arrival is due).
    case wake(at: Double)
    /// A request arrived (it may still wait for admission).
    case arrived(request: Int, at: Double)
    /// Send this micro-batch into the pipeline's first stage.
    case dispatch(MicroBatch)
    /// A token of `request` reached the source (its `index`-th, from 0).
    case token(request: Int, index: Int, at: Double)
    /// A request has all its tokens.
    case finished(request: Int, at: Double)
    /// A request can never be admitted: it needs `tokens` of context, more than the budget.
    case refused(request: Int, tokens: Int, budget: Int)
  }

  struct RequestState: Sendable {
    var arrived = false
    var context = 0
    var produced = 0
    var done = false
  }

  public let configuration: Configuration
  public let requests: [Request]
  private var index: [Int: Int] = [:]
  private var state: [RequestState]
  /// Open loop: request positions sorted by (arrival, id); closed loop: positions in id order.
  private var upcoming: [(time: Double, request: Int)] = []
  private var upcomingHead = 0
  private var releasedClosedLoop = 0
  private var admission: [Int] = []
  private var admissionHead = 0
  private var reservedTokens = 0
  private var ready: [(request: Int, prefill: Bool)] = []
  private var readyHead = 0
  private var inFlight: [Int: MicroBatch] = [:]
  private var nextBatch = 0
  private var finishedCount = 0
  /// Σ context of admitted, unfinished requests: the tokens their KV caches hold.
  public private(set) var activeContextTokens = 0

  public init(configuration: Configuration, requests: [Request]) {
    self.configuration = configuration
    self.requests = requests
    state = [RequestState](repeating: RequestState(), count: requests.count)
    for (i, r) in requests.enumerated() { index[r.id] = i }
  }

  /// Whether every request has finished (or was refused).
  public var isFinished: Bool { finishedCount == requests.count }
  /// Micro-batches in the pipeline now.
  public var inFlightCount: Int { inFlight.count }
  /// The micro-batch `id`, while it is in flight.
  public func inFlightBatch(_ id: Int) -> MicroBatch? { inFlight[id] }
  /// Tokens of context `request` has in the KV cache.
  public func context(of request: Int) -> Int { index[request].map { state[$0].context } ?? 0 }

  /// The run starts at `t`: returns a `wake` for every arrival known now.
  public mutating func start(at t: Double) -> [Action] {
    switch configuration.arrivals {
    case .open:
      upcoming = requests.indices.map { (requests[$0].arrival, $0) }.sorted {
        $0.time != $1.time ? $0.time < $1.time : $0.request < $1.request
      }
      // One wake per request in id order, as arrivals are events of their own.
      return requests.map { .wake(at: $0.arrival) }
    case .closedLoop(let n, _):
      releasedClosedLoop = min(max(n, 0), requests.count)
      upcoming = (0..<releasedClosedLoop).map { (t, $0) }
      return upcoming.map { .wake(at: $0.time) }
    }
  }

  /// Time `t` has come: admits the arrivals due, then forms micro-batches.
  public mutating func wake(at t: Double) -> [Action] {
    var actions: [Action] = []
    while upcomingHead < upcoming.count && upcoming[upcomingHead].time <= t {
      let i = upcoming[upcomingHead].request
      upcomingHead += 1
      state[i].arrived = true
      actions.append(.arrived(request: requests[i].id, at: t))
      admission.append(i)
    }
    compact()
    admit(at: t, &actions)
    dispatch(&actions)
    return actions
  }

  /// The tokens of micro-batch `batch` reached the source at `t`.
  ///
  /// - Throws: `SchedulerError.unknownBatch` for a batch that is not in flight (nothing changes).
  public mutating func tokensReturned(batch: Int, at t: Double) throws(SchedulerError) -> [Action] {
    guard let b = inFlight.removeValue(forKey: batch) else { throw .unknownBatch(batch) }
    var actions: [Action] = []
    for e in b.entries {
      guard let i = index[e.request] else { continue }
      let r = requests[i]
      if b.prefill {
        state[i].context = r.promptLength
        activeContextTokens += r.promptLength
      } else {
        state[i].context += 1
        activeContextTokens += 1
      }
      actions.append(.token(request: r.id, index: state[i].produced, at: t))
      state[i].produced += 1
      if state[i].produced >= r.outputLength {
        finish(i, at: t, &actions)
      } else {
        ready.append((i, false))
      }
    }
    admit(at: t, &actions)
    dispatch(&actions)
    return actions
  }

  private mutating func finish(_ i: Int, at t: Double, _ actions: inout [Action]) {
    state[i].done = true
    finishedCount += 1
    activeContextTokens -= state[i].context
    if configuration.kvTokenBudget != nil { reservedTokens -= need(i) }
    actions.append(.finished(request: requests[i].id, at: t))
    releaseNext(at: t, &actions)
  }

  /// Closed loop: a request left (finished or refused), so the next one arrives after the think time.
  private mutating func releaseNext(at t: Double, _ actions: inout [Action]) {
    if case .closedLoop(_, let think) = configuration.arrivals, releasedClosedLoop < requests.count {
      upcoming.append((t + think, releasedClosedLoop))
      actions.append(.wake(at: t + think))
      releasedClosedLoop += 1
    }
  }

  private func need(_ i: Int) -> Int { requests[i].promptLength + requests[i].outputLength }

  private mutating func admit(at t: Double, _ actions: inout [Action]) {
    while admissionHead < admission.count {
      let i = admission[admissionHead]
      if let budget = configuration.kvTokenBudget {
        if need(i) > budget {
          admissionHead += 1
          state[i].done = true
          finishedCount += 1
          actions.append(.refused(request: requests[i].id, tokens: need(i), budget: budget))
          releaseNext(at: t, &actions)
          continue
        }
        if reservedTokens + need(i) > budget { break }
        reservedTokens += need(i)
      }
      admissionHead += 1
      ready.append((i, true))
    }
  }

  private mutating func dispatch(_ actions: inout [Action]) {
    if configuration.rounds && !inFlight.isEmpty { return }
    while inFlight.count < configuration.microBatches && readyHead < ready.count {
      let head = ready[readyHead]
      readyHead += 1
      var members = [head.request]
      if !head.prefill {
        while members.count < configuration.maxBatch && readyHead < ready.count && !ready[readyHead].prefill {
          members.append(ready[readyHead].request)
          readyHead += 1
        }
      }
      let entries = members.map { i in
        head.prefill
          ? Entry(request: requests[i].id, start: 0, count: requests[i].promptLength)
          : Entry(request: requests[i].id, start: state[i].context, count: 1)
      }
      let b = MicroBatch(id: nextBatch, prefill: head.prefill, entries: entries)
      nextBatch += 1
      inFlight[b.id] = b
      actions.append(.dispatch(b))
    }
    compact()
  }

  private mutating func compact() {
    if readyHead > 1024 && readyHead * 2 > ready.count {
      ready.removeFirst(readyHead)
      readyHead = 0
    }
    if admissionHead > 1024 && admissionHead * 2 > admission.count {
      admission.removeFirst(admissionHead)
      admissionHead = 0
    }
    if upcomingHead > 1024 && upcomingHead * 2 > upcoming.count {
      upcoming.removeFirst(upcomingHead)
      upcomingHead = 0
    }
  }
}

/// A driver fed the scheduler an event it cannot accept.
public enum SchedulerError: Error, Equatable, Sendable, CustomStringConvertible {
  case unknownBatch(Int)
  public var description: String {
    switch self {
    case .unknownBatch(let b): "tokens for micro-batch \(b), which is not in flight"
    }
  }
}
