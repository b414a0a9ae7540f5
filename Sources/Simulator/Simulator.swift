import Catalog
public import CostModel
import EdgeLabCore
import HeapModule
public import Metrics
public import Partitioning
public import Spec

/// Everything one simulated run needs.
public struct SimulationInput: Sendable {
  public var experiment: ResolvedExperiment
  public var plan: Plan
  public var requests: [RequestPlan]
  public var timeModel: any LayerTimeModel
  public var seed: UInt64
  /// LIME's online memory adaptation, for plans with offloaded layers.
  public var adapter: LimeMemoryAdapter?
  /// Polled every 65536 events: true ends the run early (status incomplete, message "interrupted").
  public var stopRequested: @Sendable () -> Bool

  public init(experiment: ResolvedExperiment, plan: Plan, requests: [RequestPlan], timeModel: any LayerTimeModel,
              seed: UInt64, adapter: LimeMemoryAdapter? = nil, stopRequested: @escaping @Sendable () -> Bool = { false }) {
    self.stopRequested = stopRequested
    self.experiment = experiment
    self.plan = plan
    self.requests = requests
    self.timeModel = timeModel
    self.seed = seed
    self.adapter = adapter
  }
}

/// The simulated backend: a single-threaded discrete-event simulation in virtual time.
///
/// Model:
/// - Each device is a FIFO server that runs one micro-batch through one stage at a time; a stage's time is the
///   sum of its layers' times from the `LayerTimeModel` for the micro-batch's work (a prefill of one request,
///   or a decode step of up to `max_batch` requests at their current contexts).
/// - Each directed link is a FIFO server: a message of b bytes occupies it for b / bandwidth (integrated over a
///   bandwidth trace), then arrives after the link's latency plus jitter (normal, truncated at 0; delivery order
///   is kept, as TCP would). Loss p stretches transmission by 1/(1−p) (every lost segment is sent again).
/// - The source admits work in arrival order: a request's prefill, then one decode step each time its previous
///   token has returned to the source. At most `micro_batches` micro-batches are in flight (default: the plan's
///   count — 1 for latency plans, so concurrent requests share one micro-batch, about one per stage for
///   throughput plans); ready decode steps are batched, up to `max_batch`, into the next micro-batch.
/// - Offloaded layers load from storage into `prefetch_depth` staging slots, sequentially and in order of use,
///   as soon as a slot frees, so loading overlaps with other work; a layer computes once loaded. With LIME's
///   adapter, residency follows the device's KV cache as it grows and shrinks.
/// - Events are ordered by (time, insertion sequence), so the same input and seed give the same trace.
public enum Simulator {
  public static func run(_ input: SimulationInput) -> RunOutcome {
    var sim = Simulation(input)
    return sim.run()
  }
}

struct Simulation {
  enum EventKind {
    case arrival(request: Int)
    case stageInput(batch: Int, stage: Int)
    case deviceDone(device: Int)
    case tokensAtSource(batch: Int)
  }
  struct Event: Comparable {
    var time: Double
    var seq: Int
    var kind: EventKind
    static func < (a: Event, b: Event) -> Bool { a.time != b.time ? a.time < b.time : a.seq < b.seq }
    static func == (a: Event, b: Event) -> Bool { a.time == b.time && a.seq == b.seq }
  }
  struct MicroBatch {
    var requests: [Int]
    var prefill: Bool
  }
  struct Job { var batch: Int; var stage: Int }
  struct DeviceState {
    var queue: [Job] = []
    var queueHead = 0
    var busy = false
    var current: Job?
    var compute = 0.0
    var stall = 0.0
    var storageFree = 0.0
    var useEnds: [Double] = []
    var residentWeights = 0.0
    var staging = 0.0
    var blockLayers = 0
    var peak = 0.0
    var offloaded: Set<Int> = []
    var lastAdaptKV = -1.0
  }
  struct LinkState {
    var freeAt = 0.0
    var lastDelivery = 0.0
    var bytes = 0.0
    var messages = 0
    var busy = 0.0
  }
  struct RequestState {
    var arrival: Double?
    var tokens: [Double] = []
    var done = false
    var context = 0
  }

  let input: SimulationInput
  let layers: ModelLayers
  let devices: [ResolvedDevice]
  let deviceIndex: [String: Int]
  let stageDevice: [Int]
  let sourceIndex: Int
  let prefetchDepth: Int
  let cap: Int
  var heap = Heap<Event>()
  var seq = 0
  var now = 0.0
  var batches: [MicroBatch] = []
  var deviceStates: [DeviceState]
  var links: [String: LinkState] = [:]
  var requests: [RequestState]
  var ready: [(request: Int, prefill: Bool)] = []
  var readyHead = 0
  var inFlight = 0
  var released = 0
  var stageCompute: [Double]
  var stageBatches: [Int]
  var rng: SeededRandom
  var adaptations = 0

  init(_ input: SimulationInput) {
    self.input = input
    let x = input.experiment
    layers = ModelLayers(config: x.model, precision: x.spec.model.precision, wirePrecision: x.spec.execution.wirePrecision)
    devices = x.devices
    let index = Dictionary(uniqueKeysWithValues: x.devices.enumerated().map { ($1.name, $0) })
    deviceIndex = index
    stageDevice = input.plan.stages.map { index[$0.device]! }
    sourceIndex = index[x.source]!
    prefetchDepth = input.adapter?.prefetchDepth ?? 2
    cap = max(1, x.spec.execution.microBatches ?? input.plan.microBatches)
    deviceStates = [DeviceState](repeating: DeviceState(), count: x.devices.count)
    requests = [RequestState](repeating: RequestState(), count: input.requests.count)
    stageCompute = [Double](repeating: 0, count: input.plan.stages.count)
    stageBatches = [Int](repeating: 0, count: input.plan.stages.count)
    rng = SeededRandom.derived(seed: input.seed, 17)
    for (s, stage) in input.plan.stages.enumerated() {
      let d = stageDevice[s]
      let offloaded = Set(stage.offloadedLayers)
      deviceStates[d].offloaded.formUnion(offloaded)
      for l in stage.layers {
        if case .block = layers.layers[l].kind { deviceStates[d].blockLayers += 1 }
        if !offloaded.contains(l) { deviceStates[d].residentWeights += layers.layers[l].weightBytes.value }
      }
    }
    for d in deviceStates.indices { recomputeStaging(d) }
  }

  mutating func recomputeStaging(_ d: Int) {
    let maxOffloaded = deviceStates[d].offloaded.map { layers.layers[$0].weightBytes.value }.max() ?? 0
    deviceStates[d].staging = Double(prefetchDepth) * maxOffloaded
  }

  mutating func schedule(_ time: Double, _ kind: EventKind) {
    heap.insert(Event(time: time, seq: seq, kind: kind))
    seq += 1
  }

  mutating func run() -> RunOutcome {
    let x = input.experiment
    switch x.spec.workload.arrival {
    case .closedLoop(let n, _):
      for r in 0..<min(n, requests.count) { schedule(0, .arrival(request: r)) }
      released = min(n, requests.count)
    default:
      for r in input.requests.indices { schedule(input.requests[r].arrival?.value ?? 0, .arrival(request: r)) }
      released = requests.count
    }
    var events = 0
    let limit = 200_000_000
    while let e = heap.popMin() {
      now = e.time
      events += 1
      if events > limit { return outcome(status: .failed, message: "simulation stopped after \(limit) events") }
      if events & 0xFFFF == 0 && input.stopRequested() { return outcome(status: .incomplete, message: "interrupted") }
      switch e.kind {
      case .arrival(let r):
        requests[r].arrival = now
        requests[r].context = 0
        ready.append((r, true))
        dispatch()
      case .stageInput(let b, let s):
        let d = stageDevice[s]
        deviceStates[d].queue.append(Job(batch: b, stage: s))
        startNext(d)
      case .deviceDone(let d):
        finishJob(d)
        startNext(d)
      case .tokensAtSource(let b):
        tokensArrived(b)
        dispatch()
      }
    }
    let allDone = requests.allSatisfy(\.done)
    return outcome(status: allDone ? .complete : .incomplete, message: allDone ? nil : "the simulation ran out of events before every request finished")
  }

  /// Forms micro-batches at the source while the in-flight cap allows.
  mutating func dispatch() {
    let maxBatch = max(1, input.experiment.spec.execution.maxBatch)
    while inFlight < cap && readyHead < ready.count {
      let head = ready[readyHead]
      var batch = MicroBatch(requests: [head.request], prefill: head.prefill)
      readyHead += 1
      if !head.prefill {
        while batch.requests.count < maxBatch && readyHead < ready.count && !ready[readyHead].prefill {
          batch.requests.append(ready[readyHead].request)
          readyHead += 1
        }
      }
      batches.append(batch)
      inFlight += 1
      schedule(now, .stageInput(batch: batches.count - 1, stage: 0))
    }
    if readyHead > 1024 && readyHead * 2 > ready.count {
      ready.removeFirst(readyHead)
      readyHead = 0
    }
  }

  func work(_ b: MicroBatch) -> Work {
    if b.prefill { return .prefill(tokens: input.requests[b.requests[0]].promptLength) }
    return .decode(contexts: b.requests.map { requests[$0].context })
  }

  mutating func startNext(_ d: Int) {
    guard !deviceStates[d].busy, deviceStates[d].queueHead < deviceStates[d].queue.count else { return }
    let job = deviceStates[d].queue[deviceStates[d].queueHead]
    deviceStates[d].queueHead += 1
    if deviceStates[d].queueHead > 256 {
      deviceStates[d].queue.removeFirst(deviceStates[d].queueHead)
      deviceStates[d].queueHead = 0
    }
    let stage = input.plan.stages[job.stage]
    let w = work(batches[job.batch])
    let profile = devices[d].profile
    let precision = input.experiment.spec.model.precision
    let storage = profile.storageReadBandwidth.bytesPerSecond
    var t = now
    var computeTime = 0.0
    for l in stage.layers {
      let c = input.timeModel.time(layers.layers[l], on: profile, work: w, precision: precision).value
      if deviceStates[d].offloaded.contains(l) {
        let ends = deviceStates[d].useEnds
        let slotFree = ends.count >= prefetchDepth ? ends[ends.count - prefetchDepth] : 0
        let loadEnd = max(deviceStates[d].storageFree, slotFree) + layers.layers[l].weightBytes.value / storage
        deviceStates[d].storageFree = loadEnd
        if loadEnd > t { deviceStates[d].stall += loadEnd - t; t = loadEnd }
        t += c
        deviceStates[d].useEnds.append(t)
        if deviceStates[d].useEnds.count > 4 * prefetchDepth { deviceStates[d].useEnds.removeFirst(2 * prefetchDepth) }
      } else {
        t += c
      }
      computeTime += c
    }
    deviceStates[d].compute += computeTime
    stageCompute[job.stage] += computeTime
    stageBatches[job.stage] += 1
    deviceStates[d].busy = true
    deviceStates[d].current = job
    schedule(t, .deviceDone(device: d))
  }

  mutating func finishJob(_ d: Int) {
    guard let job = deviceStates[d].current else { return }
    deviceStates[d].busy = false
    deviceStates[d].current = nil
    let b = batches[job.batch]
    let stage = input.plan.stages[job.stage]
    let tokens = b.prefill ? input.requests[b.requests[0]].promptLength : b.requests.count
    if job.stage + 1 < input.plan.stages.count {
      let next = stageDevice[job.stage + 1]
      let bytes = layers.layers[stage.endLayer - 1].outputBytesPerToken.value * Double(tokens)
      let at = send(from: d, to: next, bytes: bytes)
      schedule(at, .stageInput(batch: job.batch, stage: job.stage + 1))
    } else {
      let returns = input.experiment.spec.execution.returnToSource && d != sourceIndex
      let at = returns ? send(from: d, to: sourceIndex, bytes: 4 * Double(b.requests.count)) : now
      schedule(at, .tokensAtSource(batch: job.batch))
    }
  }

  /// Sends a message; returns its delivery time.
  mutating func send(from a: Int, to b: Int, bytes: Double) -> Double {
    if a == b { return now }
    let key = devices[a].name + "\u{1}" + devices[b].name
    let x = input.experiment
    guard let link = x.link(from: devices[a].name, to: devices[b].name) else {
      // The partitioner checked links; an unlinked hop cannot be simulated.
      return .infinity
    }
    var st = links[key] ?? LinkState()
    let start = max(now, st.freeAt)
    let duration = transmitTime(bytes: bytes, start: start, link: link) / (1 - link.spec.loss)
    st.freeAt = start + duration
    // Normal jitter around the latency, never below zero delay, in order: as the runtime's release queue.
    var delay = link.spec.latency.value
    if link.spec.jitter.value > 0 { delay = max(0, delay + rng.nextGaussian() * link.spec.jitter.value) }
    let delivery = max(st.freeAt + delay, st.lastDelivery)
    st.lastDelivery = delivery
    st.bytes += bytes
    st.messages += 1
    st.busy += duration
    links[key] = st
    return delivery
  }

  /// Seconds to push `bytes` through a link starting at `start`, following its bandwidth trace.
  func transmitTime(bytes: Double, start: Double, link: ResolvedLink) -> Double {
    guard let trace = link.trace else { return bytes / link.spec.bandwidth.bytesPerSecond }
    var remaining = bytes
    var t = start
    var guardCount = 0
    while remaining > 0 && guardCount < 100_000 {
      guardCount += 1
      let bw = trace.bandwidth(at: Seconds(t)).bytesPerSecond
      let finish = t + remaining / bw
      if let change = trace.changes(from: Seconds(t), to: Seconds(finish)).first {
        remaining -= (change.value - t) * bw
        t = change.value
      } else {
        return finish - start
      }
    }
    return t - start
  }

  mutating func tokensArrived(_ b: Int) {
    inFlight -= 1
    let batch = batches[b]
    for r in batch.requests {
      let plan = input.requests[r]
      if batch.prefill { requests[r].context = plan.promptLength }
      requests[r].tokens.append(now)
      requests[r].context += batch.prefill ? 0 : 1
      if requests[r].tokens.count >= plan.outputLength {
        requests[r].done = true
        releaseNext()
      } else {
        ready.append((r, false))
      }
    }
    trackMemory()
  }

  mutating func releaseNext() {
    guard case .closedLoop(_, let think) = input.experiment.spec.workload.arrival, released < requests.count else { return }
    schedule(now + think.value, .arrival(request: released))
    released += 1
  }

  /// Updates peak memory per device and, with LIME's adapter, residency as KV caches change.
  mutating func trackMemory() {
    let activeTokens = requests.reduce(0) { $0 + ($1.done || $1.arrival == nil ? 0 : $1.context) }
    let kvPerTokenPerBlock = layers.layers.count > 2 ? layers.layers[1].kvBytesPerToken.value : 0
    for d in deviceStates.indices where deviceStates[d].blockLayers > 0 || deviceStates[d].residentWeights > 0 {
      let kv = Double(activeTokens) * kvPerTokenPerBlock * Double(deviceStates[d].blockLayers)
      if let adapter = input.adapter, !deviceStates[d].offloaded.isEmpty || deviceStates[d].lastAdaptKV >= 0,
        abs(kv - deviceStates[d].lastAdaptKV) > 0.01 * devices[d].profile.usableMemory.value,
        let off = adapter.offloadedLayers(device: devices[d].name, kvBytes: kv)
      {
        let newSet = Set(off)
        if newSet != deviceStates[d].offloaded {
          adaptations += 1
          deviceStates[d].offloaded = newSet
          deviceStates[d].residentWeights = input.plan.stages.indices.filter { stageDevice[$0] == d }
            .flatMap { input.plan.stages[$0].layers }.filter { !newSet.contains($0) }
            .reduce(0.0) { $0 + layers.layers[$1].weightBytes.value }
          recomputeStaging(d)
        }
        deviceStates[d].lastAdaptKV = kv
      }
      let total = deviceStates[d].residentWeights + deviceStates[d].staging + kv
      deviceStates[d].peak = max(deviceStates[d].peak, total)
    }
  }

  func outcome(status: RunStatus, message: String?) -> RunOutcome {
    var records: [RequestRecord] = []
    for (i, r) in requests.enumerated() {
      let plan = input.requests[i]
      records.append(RequestRecord(
        id: plan.id, arrival: r.arrival ?? .nan, firstToken: r.tokens.first, completion: r.done ? r.tokens.last : nil,
        promptTokens: plan.promptLength, outputTokens: plan.outputLength, tokenTimes: r.tokens))
    }
    let end = records.compactMap { $0.completion ?? $0.tokenTimes.last }.max() ?? now
    var linkRecords: [LinkRecord] = []
    for l in input.experiment.links {
      let key = l.from + "\u{1}" + l.to
      guard let st = links[key] else { continue }
      linkRecords.append(LinkRecord(from: l.from, to: l.to, bytes: st.bytes, messages: st.messages, busySeconds: st.busy, mechanism: "simulated"))
    }
    var deviceRecords: [DeviceRecord] = []
    for (d, dev) in devices.enumerated() {
      let st = deviceStates[d]
      let outgoing = linkRecords.filter { $0.from == dev.name }.reduce(0.0) { $0 + $1.busySeconds }
      deviceRecords.append(DeviceRecord(
        name: dev.name, peakMemoryBytes: max(st.peak, st.residentWeights + st.staging), computeSeconds: st.compute,
        transferSeconds: outgoing, loadStallSeconds: st.stall, idleSeconds: max(0, end - st.compute - st.stall)))
    }
    let stageRecords = input.plan.stages.enumerated().map { s, stage in
      StageRecord(index: s, device: stage.device, firstLayer: stage.firstLayer, endLayer: stage.endLayer,
                  offloadedLayers: stage.offloadedLayers.count, computeSeconds: stageCompute[s], microBatches: stageBatches[s])
    }
    var facts: [String: JSONValue] = ["simulated_events": .number(Double(seq))]
    if input.adapter != nil { facts["lime_adaptations"] = .number(Double(adaptations)) }
    return RunOutcome(status: status, message: message, requests: records, links: linkRecords, devices: deviceRecords,
                      stages: stageRecords, facts: facts)
  }
}
