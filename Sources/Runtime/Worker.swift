import Catalog
import EdgeLabCore
import Engine
import Execution
import Foundation
public import Logging
import Pipeline
public import Transport

#if canImport(Glibc)
import Glibc
#endif

/// A worker process: the I/O shell around `WorkerMachine`. It accepts connections, reads frames, runs its
/// pipeline stages with the engine, sends activations on to its successors and (on the source device) drives
/// the scheduler; every decision about what a message means, and whether it is acceptable, is the machine's.
///
/// Threads: the accept loop (`Listener.serve`: handshakes with a deadline, a cap on handshakes in progress,
/// backoff when descriptors run out); one reader per connection; a heartbeat that reports progress to the
/// coordinator; the offload store's reader; and this one, which owns the machine and the engine. A connection
/// that sends a bad frame or message is closed with a logged reason and the worker carries on. Losing the
/// coordinator ends the worker.
public final class Worker: @unchecked Sendable {
  enum Event {
    case control(ControlMessage)
    case data(connection: Int, from: String, type: FrameType, ActivationMessage, receivedAt: UInt64)
    case controlLost(String)
  }

  /// Frames a data connection may have decoded and waiting for the run loop; its reader stops reading (and TCP
  /// pushes back on the sender) until the loop catches up, so a fast or hostile peer cannot grow memory.
  static let framesInFlightPerConnection = 16

  let listener: Listener
  let token: [UInt8]
  var logger: Logger
  let events = BlockingQueue<Event>()
  var machine = WorkerMachine()
  let lock = NSLock()
  // Guarded by `lock` (read by the accept, reader and heartbeat threads).
  var control: Connection?
  var assignment: Assignment?
  var connections: [Int: Connection] = [:]
  var credits: [Int: Credits] = [:]
  var nextConnection = 0
  var progress = WorkerProgress()
  var startedAt: UInt64?
  // Owned by the run loop.
  var outbound: [String: Connection] = [:]
  var stages: [Int: LlamaStage] = [:]
  var store: OffloadStore?
  var residency: ResidencyTracker?
  var stageCompute: [Int: (seconds: Double, batches: Int)] = [:]
  var computeSeconds = 0.0
  var weightBytes = 0

  public init(listen: Endpoint, token: [UInt8], logger: Logger) throws {
    self.token = token
    self.logger = logger
    listener = try Listener(host: listen.host, port: listen.port, token: token)
  }

  public var endpoint: Endpoint { listener.endpoint }

  /// Device seconds since the source started the run (0 before).
  func deviceNow() -> Double {
    let (start, dilation) = lock.withLock { (startedAt, assignment?.dilation ?? 1) }
    guard let start else { return 0 }
    return Double(monotonicNanoseconds() &- start) * 1e-9 / dilation
  }

  /// Serves until the coordinator says `shutdown` or goes away. Returns the exit status.
  public func run() -> Int32 {
    spawnThread("accept") { [self] in
      listener.serve { [self] event in
        switch event {
        case .connected(let c): adopt(c)
        case .refused(let e):
          logger.notice("refused a connection", metadata: ["peer": "\(e.peer)", "why": "\(e.reason)"])
        case .shortage(let e, _): logger.warning("accept is failing (\(e.reason)); retrying with backoff")
        case .recovered(let n): logger.notice("accept works again after \(n) failures")
        }
      }
    }
    while true {
      let wake = machine.nextWake
      let timeout = wake.map { max(0, ($0 - deviceNow()) * (assignment?.dilation ?? 1)) }
      guard let e = events.pop(timeout: timeout.map { min($0, 1) }) else {
        if let code = feed(.tick(now: deviceNow())) { return code }
        continue
      }
      let input: WorkerMachine.Input
      switch e {
      case .controlLost(let why):
        logger.error("lost the coordinator (\(why)); exiting")
        shutdown()
        return 1
      case .control(let m):
        if case .start = m { lock.withLock { startedAt = monotonicNanoseconds() } }
        input = .control(m)
      case .data(let c, let from, let type, let m, let at):
        let now = lock.withLock { startedAt }.map { Double(at &- $0) * 1e-9 / (assignment?.dilation ?? 1) } ?? 0
        lock.withLock { credits[c] }?.give()
        input = .data(connection: c, from: from, type: type, m, now: now)
      }
      if let code = feed(input) { return code }
      if let w = machine.nextWake, w <= deviceNow(), let code = feed(.tick(now: deviceNow())) { return code }
    }
  }

  /// Hands an input to the machine and carries out its actions (and the inputs they lead to). Returns an exit
  /// status when the worker is to stop.
  func feed(_ input: WorkerMachine.Input) -> Int32? {
    var queue = [input]
    while !queue.isEmpty {
      let actions = machine.handle(queue.removeFirst())
      lock.withLock { progress = machine.progress }
      for a in actions {
        switch a {
        case .load(let assignment): queue.append(load(assignment))
        case .connect(let targets): queue.append(connect(targets))
        case .reply(let m): send(m)
        case .compute(let stage, let m, let route):
          compute(stage: stage, m, route: route)
          queue.append(.computed(stage: stage))
        case .deliver(let m, let to, let type): deliver(m, to: to, type: type)
        case .release(let ids): for id in ids { for s in stages.values { s.release(sequence: id) } }
        case .reportStats: send(.stats(stats()))
        case .refuse(let c, let from, let error):
          logger.warning("refused a message; closing its connection", metadata: ["from": "\(from)", "why": "\(error)"])
          let (connection, credit) = lock.withLock {
            (connections.removeValue(forKey: c), credits.removeValue(forKey: c))
          }
          connection?.close()
          credit?.give()  // a reader waiting for credit sees the connection closed
        case .exit(let code):
          shutdown()
          return code
        }
      }
    }
    return nil
  }

  func shutdown() {
    for c in outbound.values { c.close() }
    lock.withLock { control }?.close()
    for c in lock.withLock({ Array(connections.values) }) { c.close() }
    store?.stop()
    listener.close()
  }

  // MARK: Connections

  /// Serves a connection that passed the handshake: the coordinator's control connection, or a data
  /// connection from another stage (refused before the assignment: nobody may send data yet).
  func adopt(_ c: Connection) {
    if c.peerName == "coordinator" {
      let first = lock.withLock {
        if control != nil { return false }
        control = c
        return true
      }
      guard first else {
        logger.notice("refused a second coordinator connection", metadata: ["peer": "\(c.peer)"])
        c.close()
        return
      }
      c.limitPayload(to: maxControlPayload)
      spawnThread("control") { [self] in readControl(c) }
      spawnThread("heartbeat") { [self] in heartbeat(c) }
      return
    }
    let (a, id): (Assignment?, Int) = lock.withLock {
      nextConnection += 1
      return (assignment, nextConnection)
    }
    guard let a, a.stageDevices.contains(c.peerName) || c.peerName == a.source else {
      logger.notice(
        "refused a data connection from an unknown device", metadata: ["peer": "\(c.peer)", "name": "\(c.peerName)"])
      c.close()
      return
    }
    c.limitPayload(to: a.limits.maxActivationPayload)
    if let d = a.delays[c.peerName] {
      var rng = SeededRandom.derived(seed: a.seed, SyntheticWeights.nameHash(c.peerName))
      let jitter = LockedRandom(rng: rng)
      _ = rng.next()
      // Normal jitter around the latency (as netem's "distribution normal"), never below zero delay; the
      // release queue keeps frames in order.
      c.delay = { _ in d.jitter > 0 ? max(0, d.latency + jitter.gaussian() * d.jitter) : d.latency }
    }
    let credit = Credits(Self.framesInFlightPerConnection)
    lock.withLock {
      connections[id] = c
      credits[id] = credit
    }
    spawnThread("data-\(c.peerName)") { [self] in readData(c, id: id, credit: credit) }
  }

  func readControl(_ c: Connection) {
    while true {
      do {
        let f = try c.receive()
        switch f.type {
        case .control: events.push(.control(try ControlMessage.decode(f.payload)))
        case .heartbeat: continue
        default: throw WireError.malformed("a \(f.type) frame on the control connection")
        }
      } catch {
        c.close()
        events.push(.controlLost("\(error)"))
        return
      }
    }
  }

  func readData(_ c: Connection, id: Int, credit: Credits) {
    defer {
      lock.withLock {
        connections[id] = nil
        credits[id] = nil
      }
    }
    while true {
      do {
        let f = try c.receive()
        switch f.type {
        case .activation, .tokens:
          let m = try ActivationMessage.decode(f.payload)
          credit.take()
          if c.isClosed { return }
          events.push(.data(connection: id, from: c.peerName, type: f.type, m, receivedAt: monotonicNanoseconds()))
        case .goodbye:
          c.close()
          return
        default: throw WireError.malformed("a \(f.type) frame on a data connection")
        }
      } catch WireError.closed {
        c.close()
        return
      } catch {
        if !c.isClosed {
          logger.warning(
            "closed a data connection",
            metadata: ["from": "\(c.peerName.isEmpty ? c.peer : c.peerName)", "why": "\(error)"])
        }
        c.close()
        return
      }
    }
  }

  /// Every 200 ms: how far work has gone (also proves the process lives).
  func heartbeat(_ c: Connection) {
    while !c.isClosed {
      let p = lock.withLock { progress }
      if let payload = try? ControlMessage.progress(p).frame() { try? c.send(.control, payload) }
      usleep(200_000)
    }
  }

  func send(_ m: ControlMessage) {
    guard let c = lock.withLock({ control }), let payload = try? m.frame() else { return }
    do { try c.send(.control, payload) } catch { events.push(.controlLost("\(error)")) }
  }

  // MARK: Actions

  func load(_ a: Assignment) -> WorkerMachine.Input {
    lock.withLock { assignment = a }
    logger[metadataKey: "device"] = "\(a.device)"
    logger[metadataKey: "run"] = "\(a.run)"
    let t0 = monotonicNanoseconds()
    do {
      let weights = try a.weights.source().open()
      let c = weights.config
      guard c.hiddenSize == a.limits.hiddenSize, c.vocabSize == a.limits.vocabSize else {
        return .loadFailed(
          "the weights have hidden size \(c.hiddenSize) and vocabulary \(c.vocabSize); the run expects \(a.limits.hiddenSize) and \(a.limits.vocabSize)"
        )
      }
      let initial = a.stages.flatMap(\.offloaded)
      if let policy = a.residency {
        store = try OffloadStore(
          directory: a.storageDirectory, bytesPerSecond: a.storageBytesPerSecond,
          slots: policy.stagingSlots, keepsEveryBlock: policy.adaptive)
        residency = ResidencyTracker(policy: policy, initial: initial)
      }
      for s in a.stages {
        stages[s.index] = try LlamaStage(
          weights: weights, layers: s.firstLayer..<s.endLayer, offloaded: Set(s.offloaded),
          store: store, threads: a.threads)
      }
      store?.setOrder(initial)
    } catch {
      stages = [:]
      store?.stop()
      store = nil
      residency = nil
      lock.withLock { assignment = nil }
      return .loadFailed("\(error)")
    }
    weightBytes = stages.values.reduce(0) { $0 + $1.weightBytes }
    return .loaded(weightBytes: weightBytes, seconds: Double(monotonicNanoseconds() - t0) * 1e-9)
  }

  func connect(_ targets: [String]) -> WorkerMachine.Input {
    guard let a = assignment else { return .linkFailed("link before assign") }
    for t in targets {
      guard let ep = a.peers[t] else { return .linkFailed("\(a.device): no address for \(t)") }
      do {
        let c = try Connection.connect(to: ep, token: token, name: a.device, maxPayload: maxControlPayload)
        c.pacing = a.pacing[t]
        outbound[t] = c
      } catch {
        return .linkFailed("\(a.device): cannot connect to \(t) at \(ep): \(error)")
      }
    }
    return .linkDone
  }

  func deliver(_ m: ActivationMessage, to device: String, type: FrameType) {
    guard let a = assignment else { return }
    if device == a.device {
      events.push(.data(connection: -1, from: a.device, type: type, m, receivedAt: monotonicNanoseconds()))
      return
    }
    guard let c = outbound[device] else { return send(.failure("\(a.device): no connection to \(device)")) }
    do { try c.send(type, m.encoded(halfPrecision: a.halfPrecisionWire && type == .activation)) } catch {
      send(.failure("\(a.device): sending to \(device) failed: \(error)"))
    }
  }

  func compute(stage s: Int, _ m: ActivationMessage, route: WorkerMachine.Route) {
    guard let stage = stages[s] else { return }
    let spans = m.spans.map { SequenceSpan(id: Int($0.id), start: Int($0.start), count: Int($0.count)) }
    let input: StageInput = m.tokens.map { .tokens($0) } ?? .hidden(m.values)
    let t0 = monotonicNanoseconds()
    let out = stage.forward(spans, input)
    let dt = Double(monotonicNanoseconds() - t0) * 1e-9
    computeSeconds += dt
    stageCompute[s, default: (0, 0)].seconds += dt
    stageCompute[s, default: (0, 0)].batches += 1
    adapt()
    switch (out, route) {
    case (.hidden(let h), .stage(let next, let device)):
      deliver(
        ActivationMessage(batch: m.batch, stage: UInt32(next), prefill: m.prefill, spans: m.spans, values: h),
        to: device, type: .activation)
    case (.logits(let l, let rows), .source(let device)):
      let vocab = l.count / max(rows, 1)
      let tokens = (0..<rows).map { r in
        l.withUnsafeBufferPointer { Sampler.argmax(UnsafeBufferPointer(rebasing: $0[(r * vocab)..<((r + 1) * vocab)])) }
      }
      deliver(
        ActivationMessage(batch: m.batch, stage: m.stage + 1, prefill: m.prefill, spans: m.spans, tokens: tokens),
        to: device, type: .tokens)
    default:
      send(.failure("\(assignment?.device ?? "worker"): stage \(s) produced \(out) but the plan routes it to \(route)"))
    }
  }

  /// Online memory adaptation: the residency policy, as the simulator runs it, applied to this worker's KV cache.
  func adapt() {
    guard var tracker = residency else { return }
    let kv = machine.kvBytes
    switch tracker.update(kvBytes: kv) {
    case .unchanged: break
    case .changed(let offloaded):
      let wanted = Set(offloaded)
      for stage in stages.values { stage.setOffloaded(wanted.intersection(stage.layers)) }
      store?.setOrder(offloaded)
    case .exhausted:
      send(.failure(tracker.outOfMemory(kvBytes: kv)))
    }
    residency = tracker
  }

  func stats() -> WorkerStats {
    WorkerStats(
      device: assignment?.device ?? "",
      stages: stageCompute.keys.sorted().map {
        WorkerStats.Stage(index: $0, computeSeconds: stageCompute[$0]!.seconds, microBatches: stageCompute[$0]!.batches)
      },
      links: outbound.keys.sorted().map { WorkerStats.Link(to: $0, counters: outbound[$0]!.counters) },
      peakResidentBytes: ProcessMemory.peakResidentBytes(), weightBytes: weightBytes, computeSeconds: computeSeconds,
      loadStallSeconds: store?.stallSeconds ?? 0, offloadReads: store?.reads ?? 0,
      adaptations: residency?.adaptations ?? 0,
      refusedMessages: machine.refused)
  }
}

/// A seeded generator shared by a connection's reader thread.
final class LockedRandom: @unchecked Sendable {
  private var rng: SeededRandom
  private let lock = NSLock()
  init(rng: SeededRandom) { self.rng = rng }
  func gaussian() -> Double {
    lock.lock()
    defer { lock.unlock() }
    return rng.nextGaussian()
  }
}
