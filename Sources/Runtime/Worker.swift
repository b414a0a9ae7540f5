import Engine
import EdgeLabCore
import Partitioning
import Foundation
public import Transport
#if canImport(Glibc)
import Glibc
#endif

/// A worker process: runs its pipeline stages of the model with the engine, receives activations from its
/// predecessors, sends them on to its successors, and (on the source device) schedules requests.
///
/// Lifecycle: listen → the coordinator connects and sends `assign` → load weights → `ready` → on `link`, connect
/// to successors → `linked` → requests, activations and tokens flow → `collect` → `stats` → `shutdown`.
/// A connection with the wrong token, or that sends malformed, truncated, oversized or out-of-order frames, is
/// closed with a logged reason; the worker carries on. Losing the coordinator ends the worker.
public final class Worker: @unchecked Sendable {
  enum Event {
    case control(ControlMessage)
    case activation(ActivationMessage)
    case tokens(ActivationMessage)
    case controlLost(String)
  }

  let listener: Listener
  let token: [UInt8]
  let log: @Sendable (String) -> Void
  let events = BlockingQueue<Event>()
  var control: Connection?
  var assignment: Assignment?
  var stages: [Int: LlamaStage] = [:]
  var outbound: [String: Connection] = [:]
  var stageCompute: [Int: (seconds: Double, batches: Int)] = [:]
  var computeSeconds = 0.0
  var weightBytes = 0
  var adapter: LimeMemoryAdapter?
  var adaptedAtKV = -1.0
  var adaptations = 0
  let lock = NSLock()

  // Source-side scheduling.
  struct Pending {
    var prompt: [Int32]
    var outputLength: Int
    var produced = 0
    var context = 0
    var last: Int32 = 0
  }
  var requests: [Int: Pending] = [:]
  var ready: [(id: Int, prefill: Bool)] = []
  var inFlight = 0
  var nextBatch: UInt64 = 0

  public init(listen: Endpoint, token: [UInt8], log: @escaping @Sendable (String) -> Void) throws {
    self.token = token
    self.log = log
    listener = try Listener(host: listen.host, port: listen.port, token: token)
  }

  public var endpoint: Endpoint { listener.endpoint }

  /// Serves until the coordinator says `shutdown` or goes away. Returns the exit status.
  public func run() -> Int32 {
    spawnThread("accept") { [self] in acceptLoop() }
    while true {
      guard let e = events.pop() else { continue }
      switch e {
      case .controlLost(let why):
        log("lost the coordinator (\(why)); exiting")
        return 1
      case .control(let m):
        if case .shutdown = m {
          for c in outbound.values { c.close() }
          control?.close()
          listener.close()
          return 0
        }
        handle(m)
      case .activation(let m):
        process(m)
      case .tokens(let m):
        tokensArrived(m)
      }
    }
  }

  func acceptLoop() {
    while true {
      let raw: Connection
      do { raw = try listener.acceptSocket() } catch {
        if "\(error)".contains("Bad file descriptor") || "\(error)".contains("Invalid argument") { return }
        log("refused a connection: \(error)")
        continue
      }
      // Each handshake on its own thread: a peer that connects and stays silent only delays itself.
      spawnThread("handshake") { [self] in
        do { adopt(try listener.handshake(raw)) } catch { log("refused a connection: \(error)") }
      }
    }
  }

  /// Serves a connection that passed the handshake: the coordinator's control connection, or a data
  /// connection from another stage.
  func adopt(_ c: Connection) {
    if c.peerName == "coordinator" {
      lock.lock()
      let first = control == nil
      if first { control = c }
      lock.unlock()
      if !first {
        log("refused a second coordinator connection from \(c.peer)")
        c.close()
        return
      }
      spawnThread("control") { [self] in readControl(c) }
      spawnThread("heartbeat") { [self] in heartbeat(c) }
    } else {
      lock.lock()
      if let d = assignment?.delays[c.peerName] {
        let delay = d
        var rng = SeededRandom.derived(seed: assignment?.seed ?? 0, SyntheticWeights.nameHash(c.peerName))
        let jitter = LockedRandom(rng: rng)
        _ = rng.next()
        // Normal jitter around the latency (as netem's "distribution normal"), never below zero delay; the
        // release queue keeps frames in order.
        c.delay = { _ in delay.jitter > 0 ? max(0, delay.latency + jitter.gaussian() * delay.jitter) : delay.latency }
      }
      lock.unlock()
      spawnThread("data-\(c.peerName)") { [self] in readData(c) }
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

  func readData(_ c: Connection) {
    while true {
      do {
        let f = try c.receive()
        switch f.type {
        case .activation: events.push(.activation(try ActivationMessage.decode(f.payload)))
        case .tokens: events.push(.tokens(try ActivationMessage.decode(f.payload)))
        case .goodbye: c.close(); return
        default: throw WireError.malformed("a \(f.type) frame on a data connection")
        }
      } catch WireError.closed {
        c.close()
        return
      } catch {
        log("closed the data connection from \(c.peerName.isEmpty ? c.peer : c.peerName): \(error)")
        c.close()
        return
      }
    }
  }

  func heartbeat(_ c: Connection) {
    while !c.isClosed {
      try? c.send(.heartbeat, [])
      usleep(200_000)
    }
  }

  func send(_ m: ControlMessage) {
    guard let control, let payload = try? m.frame() else { return }
    do { try control.send(.control, payload) } catch { events.push(.controlLost("\(error)")) }
  }

  func handle(_ m: ControlMessage) {
    switch m {
    case .assign(let a):
      lock.lock()
      assignment = a
      lock.unlock()
      Kernels.setThreads(a.threads)
      let t0 = monotonicNanoseconds()
      do {
        let weights = try a.weights.source().open()
        let offload = LlamaStage.OffloadOptions(directory: a.storageDirectory, bytesPerSecond: a.storageBytesPerSecond, depth: 2,
                                                adaptive: a.lime != nil)
        for s in a.stages {
          stages[s.index] = try LlamaStage(weights: weights, layers: s.firstLayer..<s.endLayer, offloaded: Set(s.offloaded), offload: offload)
        }
        if let lime = a.lime {
          var params = Parameters(algorithm: Lime.name, lime.parameters)
          adapter = try LimeMemoryAdapter(plan: lime.plan, problem: lime.problem, lime: Lime(parameters: &params))
        }
      } catch {
        send(.failure("\(a.device): cannot load its weights: \(error)"))
        return
      }
      weightBytes = Set(stages.values.map { ObjectIdentifier($0) }).count > 0 ? stages.values.reduce(0) { $0 + $1.weightBytes } : 0
      send(.ready(weightBytes: weightBytes, loadSeconds: Double(monotonicNanoseconds() - t0) * 1e-9))
    case .link:
      guard let a = assignment else { return send(.failure("link before assign")) }
      var targets = Set<String>()
      for s in a.stages {
        let next = s.index + 1 < a.stageCount ? a.stageDevices[s.index + 1] : a.source
        if next != a.device { targets.insert(next) }
      }
      for t in targets.sorted() {
        guard let ep = a.peers[t] else { return send(.failure("\(a.device): no address for \(t)")) }
        do {
          let c = try Connection.connect(to: ep, token: token, name: a.device)
          c.pacing = a.pacing[t]
          outbound[t] = c
        } catch {
          return send(.failure("\(a.device): cannot connect to \(t) at \(ep): \(error)"))
        }
      }
      send(.linked)
    case .request(let r):
      requests[r.id] = Pending(prompt: r.prompt, outputLength: r.outputLength)
      ready.append((r.id, true))
      dispatch()
    case .release(let ids):
      for id in ids { for s in stages.values { s.release(sequence: id) } }
    case .collect:
      send(.stats(stats()))
    default:
      send(.failure("unexpected control message \(m)"))
    }
  }

  /// Forms micro-batches at the source while fewer than `microBatches` are in flight.
  func dispatch() {
    guard let a = assignment else { return }
    while inFlight < max(1, a.microBatches) && !ready.isEmpty {
      let head = ready.removeFirst()
      var spans: [ActivationMessage.Span] = []
      var tokens: [Int32] = []
      var prefill = false
      if head.prefill {
        let r = requests[head.id]!
        spans = [.init(id: UInt64(head.id), start: 0, count: UInt32(r.prompt.count))]
        tokens = r.prompt
        prefill = true
      } else {
        var batch = [head.id]
        while batch.count < a.maxBatch, let i = ready.firstIndex(where: { !$0.prefill }), i == 0 {
          batch.append(ready.removeFirst().id)
        }
        for id in batch {
          let r = requests[id]!
          spans.append(.init(id: UInt64(id), start: UInt32(r.context), count: 1))
          tokens.append(r.last)
        }
      }
      inFlight += 1
      nextBatch += 1
      deliver(ActivationMessage(batch: nextBatch, stage: 0, prefill: prefill, spans: spans, tokens: tokens), to: a.stageDevices[0], type: .activation)
    }
  }

  func deliver(_ m: ActivationMessage, to device: String, type: FrameType) {
    guard let a = assignment else { return }
    if device == a.device {
      events.push(type == .tokens ? .tokens(m) : .activation(m))
      return
    }
    guard let c = outbound[device] else { return send(.failure("\(a.device): no connection to \(device)")) }
    do { try c.send(type, m.encoded(halfPrecision: a.halfPrecisionWire && type == .activation)) } catch {
      send(.failure("\(a.device): sending to \(device) failed: \(error)"))
    }
  }

  func process(_ m: ActivationMessage) {
    guard let a = assignment, let stage = stages[Int(m.stage)] else {
      return send(.failure("\(assignment?.device ?? "worker") received a micro-batch for stage \(m.stage), which it does not run"))
    }
    let spans = m.spans.map { SequenceSpan(id: Int($0.id), start: Int($0.start), count: Int($0.count)) }
    let input: StageInput = m.tokens.map { .tokens($0) } ?? .hidden(m.values)
    let t0 = monotonicNanoseconds()
    let out = stage.forward(spans, input)
    let dt = Double(monotonicNanoseconds() - t0) * 1e-9
    computeSeconds += dt
    stageCompute[Int(m.stage), default: (0, 0)].seconds += dt
    stageCompute[Int(m.stage), default: (0, 0)].batches += 1
    let s = Int(m.stage)
    adapt()
    switch out {
    case .hidden(let h):
      deliver(ActivationMessage(batch: m.batch, stage: UInt32(s + 1), prefill: m.prefill, spans: m.spans, values: h),
              to: a.stageDevices[s + 1], type: .activation)
    case .logits(let l, let rows):
      let vocab = l.count / max(rows, 1)
      let tokens = (0..<rows).map { r in l.withUnsafeBufferPointer { Sampler.argmax(UnsafeBufferPointer(rebasing: $0[(r * vocab)..<((r + 1) * vocab)])) } }
      deliver(ActivationMessage(batch: m.batch, stage: UInt32(a.stageCount), prefill: m.prefill, spans: m.spans, tokens: tokens),
              to: a.source, type: .tokens)
    }
  }

  /// On the source: tokens came back; record them and schedule each request's next step.
  func tokensArrived(_ m: ActivationMessage) {
    let now = monotonicNanoseconds()
    var events: [TokenEvent] = []
    for (i, span) in m.spans.enumerated() {
      let id = Int(span.id)
      guard var r = requests[id], let token = m.tokens?[i] else { continue }
      r.context = Int(span.start) + Int(span.count)
      r.last = token
      events.append(TokenEvent(request: id, index: r.produced, token: token, time: now))
      r.produced += 1
      if r.produced < r.outputLength {
        ready.append((id, false))
        requests[id] = r
      } else {
        requests[id] = nil
      }
    }
    inFlight -= 1
    send(.tokens(events))
    dispatch()
  }

  /// LIME's online memory adaptation: as this worker's KV cache grows or shrinks by more than 1% of its budget,
  /// recompute which blocks stay resident.
  func adapt() {
    guard let adapter, let a = assignment else { return }
    let kv = Double(stages.values.reduce(0) { $0 + $1.kvBytes })
    guard abs(kv - adaptedAtKV) > 0.01 * a.memoryBudgetBytes else { return }
    adaptedAtKV = kv
    guard let off = adapter.offloadedLayers(device: a.device, kvBytes: kv) else {
      return send(.failure("\(a.device): the KV cache (\(Int(kv)) bytes) no longer fits its memory budget even with every layer offloaded"))
    }
    let wanted = Set(off)
    var changed = 0
    for stage in stages.values { changed += stage.setOffloaded(wanted.intersection(stage.layers)) }
    if changed > 0 { adaptations += 1 }
  }

  func stats() -> WorkerStats {
    WorkerStats(
      device: assignment?.device ?? "",
      stages: stageCompute.keys.sorted().map { WorkerStats.Stage(index: $0, computeSeconds: stageCompute[$0]!.seconds, microBatches: stageCompute[$0]!.batches) },
      links: outbound.keys.sorted().map { WorkerStats.Link(to: $0, counters: outbound[$0]!.counters) },
      peakResidentBytes: ProcessMemory.peakResidentBytes(), weightBytes: weightBytes, computeSeconds: computeSeconds,
      loadStallSeconds: stages.values.reduce(0) { $0 + $1.offloadStallSeconds },
      offloadReads: stages.values.reduce(0) { $0 + $1.offloadReads }, adaptations: adaptations)
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
