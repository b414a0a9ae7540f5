import Catalog
import CostModel
import EdgeLabCore
import Engine
import Execution
import Foundation
public import Logging
import Metrics
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
    case controlLost(String)
    /// The source's next wake moved earlier than the run loop's: look again.
    case recheck
  }

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
  /// When the run loop will look at the scheduler next (CLOCK_MONOTONIC ns; nil: not until an event).
  var mainWakesAt: UInt64?
  var nextConnection = 0
  var progress = WorkerProgress()
  var startedAt: UInt64?
  // Owned by whoever holds `runLock` (the run loop, or a connection's reader handling a data frame).
  let runLock = NSLock()
  var outbound: [String: Connection] = [:]
  var stages: [Int: LlamaStage] = [:]
  /// Stages this worker shares as a member of a group it does not lead, with its place in the group.
  var memberStages: [Int: (stage: LlamaStage, shard: ShardAssignment)] = [:]
  /// Held while a member stage computes or releases (a group message on a reader thread, or a calibration on
  /// the run loop): its KV caches are not for two threads at once.
  let memberLock = NSLock()
  /// Round a ring, chunks from the previous member when it is not the leader (guarded by `lock`; nil: gone).
  var ringInbox: [String: BlockingQueue<ActivationMessage?>] = [:]
  /// The source's draft model of a speculative run, and a drafter (its KV cache) per request being served.
  var draftModel: LocalPipeline?
  var drafters: [Int: ModelDrafter] = [:]
  var store: OffloadStore?
  var residency: ResidencyTracker?
  var stageCompute: [Int: (seconds: Double, batches: Int)] = [:]
  var computeSeconds = 0.0
  /// The model's layers as the emulated device's time model costs them (`Assignment.pace`), and the paced
  /// computations that took longer than the device would have.
  var pacedLayers: [LayerCost] = []
  var paceOverruns = 0
  var paceOverrunSeconds = 0.0
  /// This worker's timeline (stage computations, arriving transfers), when the run records one.
  var timeline: [TimelineEvent] = []
  var failedOnMemory = false
  var weightBytes = 0
  /// The peak resident size before a calibration reset it (`stats` reports the larger).
  var peakFloor = 0

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
  ///
  /// This thread takes control messages and wakes the source's scheduler when an arrival is due; data frames
  /// are handled on the thread of the connection they arrive on (`readData`), one input at a time under
  /// `runLock`, so a micro-batch goes from the socket to the engine without a hand-off between threads.
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
      let wake = runLock.withLock { machine.nextWake }
      let timeout = wake.map { max(0, ($0 - deviceNow()) * (assignment?.dilation ?? 1)) }
      lock.withLock { mainWakesAt = timeout.map { monotonicNanoseconds() &+ UInt64(min($0, 1) * 1e9) } }
      let e = events.pop(timeout: timeout.map { min($0, 1) })
      let code: Int32? = runLock.withLock {
        switch e {
        case nil, .recheck?:
          return tickIfDue()
        case .controlLost(let why)?:
          logger.error("lost the coordinator (\(why)); exiting")
          shutdown()
          return 1
        case .control(let m)?:
          if case .start = m { lock.withLock { startedAt = monotonicNanoseconds() } }
          return feed(.control(m)) ?? tickIfDue()
        }
      }
      if let code { return code }
    }
  }

  /// Wakes the source's scheduler if an arrival is due (under `runLock`).
  func tickIfDue() -> Int32? {
    guard let w = machine.nextWake, w <= deviceNow() else { return nil }
    return feed(.tick(now: deviceNow()))
  }

  /// Hands an input to the machine and carries out its actions (and the inputs they lead to: a micro-batch for a
  /// stage this worker also runs is handled here at once). Call under `runLock`. Returns an exit status when the
  /// worker is to stop.
  func feed(_ input: WorkerMachine.Input) -> Int32? {
    var queue = [input]
    // Reports to the coordinator go out once the micro-batches this input led to are on their way: encoding
    // them is then off the pipeline's critical path.
    var replies: [ControlMessage] = []
    defer { for m in replies { send(m) } }
    while !queue.isEmpty {
      let actions = machine.handle(queue.removeFirst())
      lock.withLock { progress = machine.progress }
      for a in actions {
        switch a {
        case .load(let assignment): queue.append(load(assignment))
        case .connect(let targets): queue.append(connect(targets))
        case .reply(let m): replies.append(m)
        case .compute(let stage, let m, let route):
          let (out, to, type) = compute(stage: stage, m, route: route)
          // Counted as computed before it is sent: a send that blocks (a link that takes nothing) then shows as
          // a micro-batch between two stages, which names the link, not as one the stage still holds.
          _ = machine.handle(.computed(stage: stage))
          lock.withLock { progress = machine.progress }
          if let out { queue += deliver(out, to: to, type: type) }
        case .deliver(let m, let to, let type): queue += deliver(m, to: to, type: type)
        case .draft(let r, let context, let count):
          if let next = draft(request: r, context: context, count: count) { queue.append(next) }
        case .release(let ids):
          for id in ids {
            for s in stages.values { s.release(sequence: id) }
            drafters[id] = nil
          }
          releaseInGroups(ids)
        case .calibrate(let r): replies.append(calibrate(r))
        case .reportStats: replies.append(.stats(stats()))
        case .refuse(let c, let from, let error):
          logger.warning("refused a message; closing its connection", metadata: ["from": "\(from)", "why": "\(error)"])
          lock.withLock { connections.removeValue(forKey: c) }?.close()
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
    let ringPeer = a?.stages.contains { $0.shard?.members.contains(c.peerName) ?? false } ?? false
    guard let a, a.stageDevices.contains(c.peerName) || c.peerName == a.source || ringPeer else {
      logger.notice(
        "refused a data connection from an unknown device", metadata: ["peer": "\(c.peer)", "name": "\(c.peerName)"])
      c.close()
      return
    }
    c.limitPayload(to: a.limits.maxActivationPayload)
    Self.emulateDelay(on: c, from: c.peerName, a)
    lock.withLock { connections[id] = c }
    spawnThread("data-\(c.peerName)") { [self] in readData(c, id: id) }
  }

  /// Delays what arrives on `c` from `sender` as the emulated link from it would: normal jitter around the
  /// latency (as netem's "distribution normal"), never below zero delay; the release queue keeps frames in
  /// order. With a rate, each frame first takes its serialization time on a link that serves frames in order
  /// from their send times (`LinkDelay`).
  static func emulateDelay(on c: Connection, from sender: String, _ a: Assignment) {
    guard let d = a.delays[sender] else { return }
    var rng = SeededRandom.derived(seed: a.seed, SyntheticWeights.nameHash(sender))
    let jitter = LockedRandom(rng: rng)
    _ = rng.next()
    let serial = LinkSerialization(bytesPerSecond: d.bytesPerSecond)
    c.delay = { f in
      let queued = serial.delay(frame: f)
      return queued + (d.jitter > 0 ? max(0, d.latency + jitter.gaussian() * d.jitter) : d.latency)
    }
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

  /// Reads a data connection and handles each frame on this thread (under `runLock`). While a frame is being
  /// handled the next one is not read, so TCP pushes back on a sender faster than this worker.
  func readData(_ c: Connection, id: Int) {
    defer {
      _ = lock.withLock { connections.removeValue(forKey: id) }
      // A ring's exchange waiting on this peer learns that it is gone.
      lock.withLock { ringInbox[c.peerName] }?.push(nil)
    }
    while true {
      do {
        let f = try c.receive()
        switch f.type {
        case .activation, .tokens:
          let m = try ActivationMessage.decode(f.payload)
          runLock.withLock {
            if recording && timeline.count < WorkerStats.maxEvents { recordArrival(m, frame: f, from: c.peerName) }
            _ = feed(.data(connection: id, from: c.peerName, type: f.type, m, now: deviceNow()))
            _ = tickIfDue()
            // A closed loop's next arrival may now be due before the run loop looks again.
            if let w = machine.nextWake {
              let at = monotonicNanoseconds() &+ UInt64(max(0, (w - deviceNow()) * (assignment?.dilation ?? 1)) * 1e9)
              if lock.withLock({ mainWakesAt.map { at < $0 } ?? true }) { events.push(.recheck) }
            }
          }
        case .group:
          let m = try ActivationMessage.decode(f.payload)
          if let inbox = lock.withLock({ ringInbox[c.peerName] }) {
            // The previous member round a ring: its chunks wait for this member's exchange.
            inbox.push(m)
          } else {
            try serveGroup(m, from: c)
          }
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

  /// Seconds between two heartbeats.
  public static let heartbeatInterval = 0.2

  /// Every `heartbeatInterval`: how far work has gone (also proves the process lives).
  func heartbeat(_ c: Connection) {
    while !c.isClosed {
      let p = lock.withLock { progress }
      if let payload = try? ControlMessage.progress(p).frame() { try? c.send(.control, payload) }
      usleep(UInt32(Self.heartbeatInterval * 1e6))
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
      if let p = a.pace { pacedLayers = ModelLayers(config: c, precision: p.precision).layers }
      let initial = a.stages.flatMap(\.offloaded)
      if let policy = a.residency {
        store = try OffloadStore(
          directory: a.storageDirectory, bytesPerSecond: a.storageBytesPerSecond,
          slots: policy.stagingSlots, keepsEveryBlock: policy.adaptive, prefetch: policy.prefetch)
        residency = ResidencyTracker(policy: policy, initial: initial)
      }
      for s in a.stages {
        if let g = s.shard, !s.leads {
          // A member holds its share of the stage's blocks; its leader the embedding and the head.
          let blocks = max(s.firstLayer, 1)..<max(min(s.endLayer, c.numHiddenLayers + 1), max(s.firstLayer, 1))
          guard !blocks.isEmpty else { return .loadFailed("stage \(s.index) has no decoder block to share") }
          if g.ring && g.member >= 2 {
            let inbox = BlockingQueue<ActivationMessage?>()
            lock.withLock { ringInbox[g.predecessor] = inbox }
          }
          memberStages[s.index] = (
            try LlamaStage(
              weights: weights, layers: blocks, threads: a.threads, arithmetic: a.weights.rounding, shard: g.shard), g
          )
          continue
        }
        stages[s.index] = try LlamaStage(
          weights: weights, layers: s.firstLayer..<s.endLayer, offloaded: Set(s.offloaded),
          store: store, threads: a.threads, arithmetic: a.weights.rounding, shard: s.shard?.shard)
      }
      if let spec = a.speculation {
        draftModel = try LocalPipeline.earlyExit(
          weights: weights, blocks: spec.draftBlocks, threads: a.threads, arithmetic: a.weights.rounding)
      }
      store?.setOrder(initial)
    } catch {
      stages = [:]
      memberStages = [:]
      draftModel = nil
      store?.stop()
      store = nil
      residency = nil
      lock.withLock { assignment = nil }
      return .loadFailed("\(error)")
    }
    // The draft of a speculative source is weights this worker holds too.
    weightBytes =
      stages.values.reduce(0) { $0 + $1.weightBytes } + memberStages.values.reduce(0) { $0 + $1.stage.weightBytes }
      + (draftModel?.stages.reduce(0) { $0 + $1.weightBytes } ?? 0)
    return .loaded(weightBytes: weightBytes, seconds: Double(monotonicNanoseconds() - t0) * 1e-9)
  }

  func connect(_ targets: [String]) -> WorkerMachine.Input {
    guard let a = assignment else { return .linkFailed("link before assign") }
    for t in targets {
      guard let ep = a.peers[t] else { return .linkFailed("\(a.device): no address for \(t)") }
      do {
        let c = try Connection.connect(to: ep, token: token, name: a.device, maxPayload: maxControlPayload)
        c.pacing = a.pacing[t]
        // The members of a group this worker leads answer on this connection: their partial sums cross the
        // emulated link back.
        Self.emulateDelay(on: c, from: t, a)
        outbound[t] = c
      } catch {
        return .linkFailed("\(a.device): cannot connect to \(t) at \(ep): \(error)")
      }
    }
    return .linkDone
  }

  /// Sends a message to `device`; for this worker itself, returns it as the next input instead.
  func deliver(_ m: ActivationMessage, to device: String, type: FrameType) -> [WorkerMachine.Input] {
    guard let a = assignment else { return [] }
    if device == a.device { return [.data(connection: -1, from: a.device, type: type, m, now: deviceNow())] }
    guard let c = outbound[device] else {
      send(.failure("\(a.device): no connection to \(device)"))
      return []
    }
    do { try c.send(type, m.encoded(halfPrecision: a.halfPrecisionWire && type == .activation)) } catch {
      send(.failure("\(a.device): sending to \(device) failed: \(error)"))
    }
    return []
  }

  /// The source's draft for a request: its draft model, greedily, from its own KV cache of the request (with
  /// `count` 0, the context read into that cache and nothing proposed).
  func draft(request r: Int, context: [Int32], count: Int) -> WorkerMachine.Input? {
    guard let model = draftModel else { return count == 0 ? nil : .drafted(request: r, tokens: [], now: deviceNow()) }
    let drafter = drafters[r] ?? ModelDrafter(model: model, sequence: r)
    drafters[r] = drafter
    let t0 = monotonicNanoseconds()
    let tokens = count == 0 ? [] : drafter.propose(after: context, count: count)
    if count == 0 { drafter.read(context) }
    let t1 = monotonicNanoseconds()
    computeSeconds += Double(t1 - t0) * 1e-9
    if recording && timeline.count < WorkerStats.maxEvents {
      // The draft is stage −1 of the run's timeline: it precedes the target's first stage.
      timeline.append(
        TimelineEvent(
          .compute, device: assignment?.device ?? "", stage: -1, batch: r, start: Double(t0) * 1e-9,
          end: Double(t1) * 1e-9))
    }
    return count == 0 ? nil : .drafted(request: r, tokens: tokens, now: deviceNow())
  }

  /// Wall seconds the emulated device takes for stage `s` on `spans` (its time model's seconds × the dilation),
  /// as the simulator costs a micro-batch: one token per sequence is a decode step at the sequences' contexts,
  /// a span of several tokens a prompt written after its cached tokens. Nil where the worker is not paced so: no
  /// pace, a stage it shares with a group, or a device that keeps layers in storage (those keep the CPU stretch).
  func pacedSeconds(stage s: Int, _ spans: [SequenceSpan]) -> Double? {
    guard let a = assignment, let p = a.pace, store == nil, let st = a.stages.first(where: { $0.index == s }),
      st.shard == nil, st.firstLayer >= 0, st.endLayer <= pacedLayers.count, st.firstLayer < st.endLayer
    else { return nil }
    let layers = Array(pacedLayers[st.firstLayer..<st.endLayer])
    let seconds: Double
    if spans.allSatisfy({ $0.count == 1 }) {
      seconds = p.model.seconds(layers, work: .decode(contexts: spans.map(\.start)), precision: p.precision)
    } else {
      seconds = spans.reduce(0) {
        $0 + p.model.seconds(layers, work: .prefill(tokens: $1.count, past: $1.start), precision: p.precision)
      }
    }
    let wall = seconds * a.dilation
    return wall.isFinite && wall >= 0 ? wall : nil
  }

  /// Runs a stage on a micro-batch; returns its output message and where it goes.
  func compute(stage s: Int, _ m: ActivationMessage, route: WorkerMachine.Route) -> (
    ActivationMessage?, String, FrameType
  ) {
    guard let stage = stages[s] else { return (nil, "", .activation) }
    Failpoint.exitOnCompute(device: lock.withLock { assignment?.device })
    let spans = m.spans.map { SequenceSpan(id: Int($0.id), start: Int($0.start), count: Int($0.count)) }
    let input: StageInput = m.tokens.map { .tokens($0) } ?? .hidden(m.values)
    let t0 = monotonicNanoseconds()
    let cpu0 = CPUTime.now(threads: stage.threads)
    if m.verify, let first = spans.first {
      // The drafts the previous verification rejected are forgotten before this one is computed.
      stage.truncate(sequence: first.id, to: first.start)
    }
    let out: StageOutput
    if let g = assignment?.stages.first(where: { $0.index == s })?.shard {
      // The leader of a group: its members compute their shares of the same spans.
      let members = g.members.dropFirst().compactMap { d in outbound[d].map { (name: d, connection: $0) } }
      guard members.count == g.members.count - 1 else {
        send(.failure("\(assignment?.device ?? "worker"): stage \(s)'s group has no connection to every member"))
        return (nil, "", .activation)
      }
      var header = m
      header.values = []
      header.tokens = nil
      let star = LeaderExchange(stage: s, members: members, header: header, maxWait: 600_000_000_000)
      do {
        if g.ring {
          let next = members[0].connection
          let previous = members[members.count - 1].connection
          let ring = RingExchange(
            stage: s, position: 0, count: g.members.count, successor: g.successor, predecessor: g.predecessor,
            send: { try next.send(.group, $0) },
            receive: {
              try ActivationMessage.decode(
                previous.receive(deadline: monotonicNanoseconds() &+ 600_000_000_000).payload)
            },
            leader: star)
          out = try stage.forward(spans, input, allLogits: m.verify, decodeArithmetic: m.verify, exchange: ring)
        } else {
          out = try stage.forward(spans, input, allLogits: m.verify, decodeArithmetic: m.verify, exchange: star)
        }
      } catch {
        send(.failure("\(assignment?.device ?? "worker"): \(error)"))
        return (nil, "", .activation)
      }
    } else {
      out = stage.forward(spans, input, allLogits: m.verify, decodeArithmetic: m.verify)
    }
    if let target = pacedSeconds(stage: s, spans) {
      // As long as the emulated device takes for this work, in wall time.
      let due = t0 &+ UInt64(min(target, 3600) * 1e9)
      let now = monotonicNanoseconds()
      if due > now {
        sleepNanoseconds(due - now)
      } else if Double(now - t0) * 1e-9 > target * 1.05 {
        paceOverruns += 1
        paceOverrunSeconds += Double(now - t0) * 1e-9 - target
      }
    } else if let stretch = assignment?.computeStretch, stretch > 1 {
      // As long as the device would have taken: this host's CPU time × the stretch, counted from the start.
      let due = t0 &+ UInt64(min((CPUTime.now(threads: stage.threads) - cpu0) * stretch, 3600) * 1e9)
      let now = monotonicNanoseconds()
      if due > now { sleepNanoseconds(due - now) }
    }
    let t1 = monotonicNanoseconds()
    let dt = Double(t1 - t0) * 1e-9
    if recording && timeline.count < WorkerStats.maxEvents {
      timeline.append(
        TimelineEvent(
          .compute, device: assignment?.device ?? "", stage: s, batch: Int(m.batch), start: Double(t0) * 1e-9,
          end: Double(t1) * 1e-9))
    }
    computeSeconds += dt
    stageCompute[s, default: (0, 0)].seconds += dt
    stageCompute[s, default: (0, 0)].batches += 1
    adapt()
    switch (out, route) {
    case (.hidden(let h), .stage(let next, let device)):
      return (
        ActivationMessage(
          batch: m.batch, stage: UInt32(next), prefill: m.prefill, verify: m.verify, spans: m.spans, values: h),
        device,
        .activation
      )
    case (.logits(let l, let rows), .source(let device)):
      let vocab = l.count / max(rows, 1)
      let tokens = (0..<rows).map { r in
        l.withUnsafeBufferPointer { Sampler.argmax(UnsafeBufferPointer(rebasing: $0[(r * vocab)..<((r + 1) * vocab)])) }
      }
      return (
        ActivationMessage(
          batch: m.batch, stage: m.stage + 1, prefill: m.prefill, verify: m.verify, spans: m.spans, tokens: tokens),
        device,
        .tokens
      )
    default:
      send(.failure("\(assignment?.device ?? "worker"): stage \(s) produced \(out) but the plan routes it to \(route)"))
      return (nil, "", .activation)
    }
  }

  /// A member's side of its group: its leader's step (compute this member's share of the spans, exchanging
  /// partial sums on the same connection) or release. Checked against the run's limits before it reaches the
  /// engine; what fails closes the connection, and the leader then fails the run by this member's name.
  func serveGroup(_ m: ActivationMessage, from c: Connection) throws {
    guard let a = lock.withLock({ assignment }), let (stage, g) = memberStages[Int(m.stage)],
      a.stageDevices[Int(m.stage)] == c.peerName
    else {
      throw WireError.malformed("a group message for stage \(m.stage), which \(c.peerName) does not lead here")
    }
    let l = a.limits
    for s in m.spans {
      guard s.id < UInt64(l.requests), UInt64(s.start) + UInt64(s.count) <= UInt64(l.maxContextTokens) else {
        throw WireError.malformed("group message: sequence \(s.id) at \(s.start)+\(s.count) is outside the run")
      }
    }
    memberLock.lock()
    defer { memberLock.unlock() }
    switch m.batch {
    case GroupMessage.release:
      for s in m.spans { stage.release(sequence: Int(s.id)) }
    case GroupMessage.step:
      let tokens = m.spans.reduce(0) { $0 + Int($1.count) }
      guard !m.spans.isEmpty, tokens <= l.maxTokensPerBatch, m.values.count == tokens * l.hiddenSize else {
        throw WireError.malformed("group step: \(m.values.count) values for \(tokens) tokens")
      }
      Failpoint.exitOnCompute(device: a.device)
      let spans = m.spans.map { SequenceSpan(id: Int($0.id), start: Int($0.start), count: Int($0.count)) }
      if m.verify, let first = spans.first { stage.truncate(sequence: first.id, to: first.start) }
      let t0 = monotonicNanoseconds()
      if g.ring {
        let last = g.member + 1 == g.members.count
        guard let next = last ? c : runLock.withLock({ outbound[g.successor] }) else {
          throw WireError.malformed("no connection to \(g.successor), the next member round the ring")
        }
        let inbox = lock.withLock { ringInbox[g.predecessor] }
        let ring = RingExchange(
          stage: Int(m.stage), position: g.member, count: g.members.count, successor: g.successor,
          predecessor: g.predecessor, send: { try next.send(.group, $0) },
          receive: {
            if let inbox {
              guard let m = inbox.pop(timeout: 600), let m else { throw WireError.closed }
              return m
            }
            return try ActivationMessage.decode(c.receive().payload)
          }, leader: nil)
        _ = try stage.forward(
          spans, .hidden(m.values), allLogits: m.verify, decodeArithmetic: m.verify, exchange: ring)
      } else {
        _ = try stage.forward(
          spans, .hidden(m.values), allLogits: m.verify, decodeArithmetic: m.verify,
          exchange: MemberExchange(stage: Int(m.stage), leader: c.peerName, connection: c))
      }
      let dt = Double(monotonicNanoseconds() - t0) * 1e-9
      runLock.withLock {
        computeSeconds += dt
        stageCompute[Int(m.stage), default: (0, 0)].seconds += dt
        stageCompute[Int(m.stage), default: (0, 0)].batches += 1
      }
    default:
      throw WireError.malformed("group message of kind \(m.batch) outside a step")
    }
  }

  /// Times this worker's own layers on the request's points, as the profiler times a host: every round visits
  /// every point once, after one untimed round, and each point's time is the mean of its rounds. Each part is
  /// timed alone (a group's part without its exchanges). Before each timed pass the worker reads the request's
  /// `coldBytes` through, as the other workers' computations would pass through the shared caches between two of
  /// its own in the run. Sequences are numbered past the run's requests and released after. Nothing where the
  /// worker does not compute at its own speed (paced to an emulated device, or reading layers from storage): its
  /// time is not its own computing.
  func calibrate(_ r: CalibrationRequest) -> ControlMessage {
    guard let a = assignment else { return .failure("calibrate before assign") }
    guard a.computesAtOwnSpeed else { return .calibrated(WorkerCalibration(parts: [])) }
    var parts: [(stage: Int?, chain: [LlamaStage], member: Bool)] = stages.sorted { $0.key < $1.key }.map {
      ($0.key, [$0.value], false)
    }
    parts += memberStages.sorted { $0.key < $1.key }.map { ($0.key, [$0.value.stage], true) }
    if let d = draftModel { parts.append((nil, d.stages, false)) }
    let h = a.limits.hiddenSize
    let chunk = max(1, a.limits.maxTokensPerBatch)
    var rng = SeededRandom(seed: 29)
    var next = a.limits.requests
    func fresh() -> Int {
      next += 1
      return next
    }
    func input(_ chain: [LlamaStage], tokens n: Int) -> StageInput {
      chain[0].startsAtEmbedding
        ? .tokens((0..<n).map { _ in Int32(rng.next() % UInt64(a.limits.vocabSize)) })
        : .hidden((0..<(n * h)).map { _ in Float(rng.nextUnit() * 2 - 1) })
    }
    func pass(_ chain: [LlamaStage], _ spans: [SequenceSpan], cold: Bool = false) -> Double {
      var x = input(chain, tokens: spans.reduce(0) { $0 + $1.count })
      if cold { sweep?.sweep() }
      let t0 = monotonicNanoseconds()
      for s in chain { x = .hidden(s.forward(spans, x).floats) }
      return Double(monotonicNanoseconds() - t0) * 1e-9
    }
    // However the request reads, the whole calibration ends after this (each part timed at least once).
    let deadline = monotonicNanoseconds() &+ UInt64(CalibrationRequest.secondsLimit * 1e9)
    // The sweep's memory is the calibration's, not the run's: the peak the worker reports leaves it out.
    if r.coldBytes > 0 { peakFloor = max(peakFloor, ProcessMemory.peakResidentBytes()) }
    var sweep = CacheSweep(bytes: r.coldBytes)
    defer {
      sweep = nil
      if r.coldBytes > 0 && !ProcessMemory.resetPeak() {
        logger.notice("cannot reset the peak memory after calibrating: it includes \(r.coldBytes) bytes read through")
      }
    }
    if r.coldBytes > 0 && sweep == nil {
      logger.warning("cannot map \(r.coldBytes) bytes to read through: calibrating with warm caches")
    }
    var out: [WorkerCalibration.Part] = []
    for (stage, chain, member) in parts {
      if member { memberLock.lock() }
      defer { if member { memberLock.unlock() } }
      // Each decode point's sequences, their caches filled to its context first, in pieces no larger than the
      // run's own micro-batches.
      let sets: [[Int]] = r.decode.map { d in
        let ids = (0..<d.batch).map { _ in fresh() }
        for id in ids {
          for start in stride(from: 0, to: d.context, by: chunk) {
            _ = pass(chain, [SequenceSpan(id: id, start: start, count: min(chunk, d.context - start))])
          }
        }
        return ids
      }
      var decode = [Double](repeating: 0, count: r.decode.count)
      var prefill = [Double](repeating: 0, count: r.prefill.count)
      var rounds = 0
      var start = monotonicNanoseconds()
      for round in 0...r.maxRepetitions {
        if round == 1 { start = monotonicNanoseconds() }
        if round > 1 {
          let now = monotonicNanoseconds()
          let elapsed = Double(now - start) * 1e-9
          if (round > r.minRepetitions && elapsed >= r.seconds) || now >= deadline { break }
        }
        for (i, t) in r.prefill.enumerated() {
          let id = fresh()
          let s = pass(chain, [SequenceSpan(id: id, start: 0, count: t)], cold: true)
          for st in chain { st.release(sequence: id) }
          if round > 0 { prefill[i] += s }
        }
        for (i, ids) in sets.enumerated() {
          let c = r.decode[i].context
          let s = pass(chain, ids.map { SequenceSpan(id: $0, start: c, count: 1) }, cold: true)
          for id in ids { for st in chain { st.truncate(sequence: id, to: c) } }
          if round > 0 { decode[i] += s }
        }
        rounds = round
      }
      for ids in sets { for id in ids { for st in chain { st.release(sequence: id) } } }
      let n = Double(max(1, rounds))
      out.append(
        WorkerCalibration.Part(
          stage: stage, layers: chain.flatMap { Array($0.layers) }, decode: decode.map { $0 / n },
          prefill: prefill.map { $0 / n }))
    }
    return .calibrated(WorkerCalibration(parts: out))
  }

  /// Tells the members of every group this worker leads that sequences ended.
  func releaseInGroups(_ ids: [Int]) {
    guard let a = assignment, !ids.isEmpty else { return }
    for s in a.stages where s.leads {
      guard let g = s.shard else { continue }
      let m = ActivationMessage(
        batch: GroupMessage.release, stage: UInt32(s.index), prefill: false,
        spans: ids.map { .init(id: UInt64($0), start: 0, count: 0) })
      for d in g.members.dropFirst() { try? outbound[d]?.send(.group, m.encoded()) }
    }
  }

  /// Whether this run records its timeline (read under `runLock`).
  var recording: Bool { assignment?.recordEvents ?? false }

  /// A message arrived: a transfer from when its sender sent it (the frame's send time, on the host clock all
  /// loopback workers share) to now. Timeline times are this host's monotonic seconds; the coordinator turns
  /// them into device seconds since the run started.
  func recordArrival(_ m: ActivationMessage, frame f: Frame, from peer: String) {
    timeline.append(
      TimelineEvent(
        .transfer, device: peer, peer: assignment?.device ?? "", stage: Int(m.stage) - 1, batch: Int(m.batch),
        start: Double(f.sentAt) * 1e-9, end: Double(monotonicNanoseconds()) * 1e-9))
  }

  /// Online memory adaptation: the residency policy, as the simulator runs it, applied to this worker's KV cache;
  /// without one, the device's memory account when the run is to fail once the KV cache outgrows it.
  func adapt() {
    if let account = assignment?.failsBeyond, !failedOnMemory, machine.kvBytes > account.kvBytes {
      failedOnMemory = true
      send(.failure(MemoryBudget.outOfMemory(device: account, kvBytes: machine.kvBytes, at: deviceNow())))
    }
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
      peakResidentBytes: max(peakFloor, ProcessMemory.peakResidentBytes()), weightBytes: weightBytes,
      computeSeconds: computeSeconds,
      loadStallSeconds: store?.stallSeconds ?? 0, offloadReads: store?.reads ?? 0,
      adaptations: residency?.adaptations ?? 0,
      refusedMessages: machine.refused, events: recording ? timeline : nil,
      paceOverruns: assignment?.pace == nil ? nil : paceOverruns,
      paceOverrunSeconds: assignment?.pace == nil ? nil : paceOverrunSeconds)
  }
}

/// CPU seconds used so far: by this thread when the engine computes on it alone, else by the whole process.
enum CPUTime {
  static func now(threads: Int) -> Double {
    var ts = timespec()
    clock_gettime(threads <= 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
  }
}

/// A link's serialization, as the receiver sees it: frames leave in order from their send times, each taking
/// its bytes on the wire / rate; returns how long after its send time a frame is through.
final class LinkSerialization: @unchecked Sendable {
  private let rate: Double?
  private let lock = NSLock()
  private var free: UInt64 = 0

  init(bytesPerSecond: Double?) { rate = bytesPerSecond.flatMap { $0 > 0 && $0.isFinite ? $0 : nil } }

  func delay(frame f: Frame) -> Double {
    guard let rate else { return 0 }
    let seconds = WireModel.onWire(frameBytes: Double(Wire.headerSize + f.payload.count)) / rate
    let nanos = UInt64(min(seconds, 3600) * 1e9)
    return lock.withLock {
      // A send time from the peer in the future counts as now.
      let sent = min(f.sentAt, monotonicNanoseconds())
      free = max(free, sent).addingReportingOverflow(nanos).partialValue
      return Double(free - sent) * 1e-9
    }
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

/// Fault injection for tests and drills: `EDGELAB_FAILPOINT=worker-exit-on-compute:DEVICE` makes the worker of
/// DEVICE end at once (status 86, no goodbye, nothing flushed) when it is about to compute its first micro-batch,
/// as a board losing power mid-run would. Read from the environment, which a coordinator passes to the workers
/// it starts; unset, nothing happens. docs/robustness.md lists it.
enum Failpoint {
  static let variable = "EDGELAB_FAILPOINT"
  /// Read once per process: the environment does not change under a running worker.
  static let setting = ProcessInfo.processInfo.environment[variable]

  /// `device` is evaluated only when the failpoint is set: unset, the compute path pays one nil check.
  static func exitOnCompute(device: @autoclosure () -> String?) {
    guard let setting, let device = device(), setting == "worker-exit-on-compute:" + device else { return }
    _exit(86)
  }
}
