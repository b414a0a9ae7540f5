import Catalog
public import CostModel
import EdgeLabCore
public import Execution
import HeapModule
public import Metrics
public import Pipeline
public import Spec

/// Everything one simulated run needs.
public struct SimulationInput: Sendable {
  public var experiment: ResolvedExperiment
  public var plan: Plan
  public var requests: [RequestPlan]
  public var timeModel: any LayerTimeModel
  public var seed: UInt64
  /// Polled every 65536 events: true ends the run early (status incomplete, message "interrupted").
  public var cancellation: Cancellation

  public init(
    experiment: ResolvedExperiment, plan: Plan, requests: [RequestPlan], timeModel: any LayerTimeModel,
    seed: UInt64, cancellation: Cancellation = .never
  ) {
    self.experiment = experiment
    self.plan = plan
    self.requests = requests
    self.timeModel = timeModel
    self.seed = seed
    self.cancellation = cancellation
  }

  public init(_ job: RunJob) {
    self.init(
      experiment: job.experiment, plan: job.plan, requests: job.requests, timeModel: job.timeModel, seed: job.seed,
      cancellation: job.cancellation)
  }
}

/// The simulated backend: a single-threaded discrete-event simulation in virtual time.
///
/// The source runs `PipelineScheduler` (admission in arrival order, the in-flight cap, micro-batches up to
/// `max_batch`, closed-loop think time, tokens back at the source) — the same state machine the source worker
/// runs in wall time — and devices read offloaded layers through `OffloadTimeline`, whose residency follows the
/// plan's `ResidencyPolicy` as the workers' does. What is the simulator's own:
/// - Each device is a FIFO server that runs one micro-batch through one stage at a time; a stage's time is the
///   sum of its layers' times from the `LayerTimeModel` for the micro-batch's work (a prefill of one request,
///   or a decode step of up to `max_batch` requests at their current contexts), plus waits for offloaded reads.
///   Devices on one shared host (`LayerTimeModel.sharedHost`: a loopback run's, which are this machine) share
///   its memory bandwidth: a job's decode layers take `sharedSlowdown` times longer for the workers computing
///   on that host when it starts (its own — a group's members for its shared blocks — and every busy device's).
/// - A message of b bytes goes on the wire as b plus the frame's header, in TCP segments of 1448 bytes each with
///   66 bytes of TCP/IP/Ethernet headers. It waits for the sender's network interface (one transfer at a time,
///   whichever link it is for) and for every shared segment it crosses, occupies them for its wire bytes / rate,
///   and arrives after the link's latency plus jitter (normal, truncated at 0; delivery order per link is kept,
///   as TCP would) plus the per-message cost of the sender's profile, if it has one. The rate is the link's
///   bandwidth (integrated over a bandwidth trace), capped by the segments' and, under loss p, by TCP's
///   steady-state bound (Mathis et al. 1997: 1448 B · √(3/2) / (RTT · √p), RTT = twice the latency) and by
///   bandwidth · (1 − p) for the lost segments sent again.
/// - Memory: each device holds its resident weights, staging slots and the KV cache of every admitted request
///   (`MemoryBudget`). With `memory_admission` "wait" the scheduler admits a request only when the context it
///   can reach fits; with "fail" the run fails naming the device and time when the cache outgrows it.
/// - Events are ordered by (time, insertion sequence), so the same input and seed give the same trace.
public enum Simulator {
  public static func run(_ input: SimulationInput) -> RunOutcome {
    var sim = Simulation(input)
    return sim.run()
  }
}

/// The calibrated simulator as an execution backend.
public struct SimulatedBackend: ExecutionBackend {
  public let kind = BackendKind.simulated
  public init() {}

  public func execute(_ job: RunJob) throws -> RunOutcome {
    let started = MonotonicClock.now()
    var outcome: RunOutcome
    if let c = job.collaboration, !c.isSplit {
      var cooperation = Cooperation(job, c)
      outcome = cooperation.run()
    } else {
      outcome = Simulator.run(SimulationInput(job))
    }
    outcome.wallSeconds = MonotonicClock.now() - started
    if outcome.status == .incomplete && job.cancellation.isRequested {
      throw BackendError.interrupted(partial: outcome)
    }
    return outcome
  }
}

struct Simulation {
  enum EventKind {
    case wake
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
  struct Job {
    var batch: Int
    var stage: Int
  }
  struct DeviceState {
    var queue: [Job] = []
    var queueHead = 0
    var busy = false
    var current: Job?
    var compute = 0.0
    var blockLayers = 0
    var peak = 0.0
    /// Resident weight bytes and staging-slot bytes now.
    var residentWeights = 0.0
    var staging = 0.0
    var offloaded: Set<Int> = []
    var storage: VirtualOffloadTimeline?
    var residency: ResidencyTracker?
    /// When the device's last job started ends: a message arriving later finds it waiting since then.
    var busyUntil = 0.0
    /// When a group stage's members finished their last shared block (they wait for the leader's next input
    /// from then on).
    var membersIdleSince: Double?
  }
  struct LinkState {
    var lastDelivery = 0.0
    var bytes = 0.0
    var messages = 0
    var busy = 0.0
  }
  struct RequestState {
    var arrival: Double?
    var tokens: [Double] = []
    var done = false
  }

  let input: SimulationInput
  let job: RunJob
  let layers: ModelLayers
  let devices: [ResolvedDevice]
  let stageDevice: [Int]
  let sourceIndex: Int
  var heap = Heap<Event>()
  var seq = 0
  var now = 0.0
  var scheduler: PipelineScheduler
  var batches: [Int: PipelineScheduler.MicroBatch] = [:]
  var deviceStates: [DeviceState]
  /// Index into the experiment's links by [from][to] device index.
  let linkIndex: [[Int?]]
  /// Device index by name.
  let deviceIndex: [String: Int]
  /// The machine each device shares with others (`LayerTimeModel.sharedHost`), by device index.
  let sharedHost: [String?]
  var links: [LinkState]
  /// When each device's network interface is free again.
  var interfaceFree: [Double]
  /// Segments each link crosses, and when each segment is free again.
  let linkSegments: [[Int]]
  var segmentFree: [Double]
  let memory: MemoryBudget
  /// Per device (index into `memory.devices`), or nil for devices without stages.
  let memoryIndex: [Int?]
  let failOnMemory: Bool
  /// With `record_events`: what each device and link did, in order.
  var events: [TimelineEvent]?
  var requests: [RequestState]
  var requestIndex: [Int: Int] = [:]
  var stageCompute: [Double]
  var stageBatches: [Int]
  var rng: SeededRandom
  var failure: String?
  /// With `recordBatches`: every micro-batch in dispatch order, and when its tokens reached the source.
  var recordBatches = false
  var dispatched: [(batch: PipelineScheduler.MicroBatch, at: Double)] = []
  var returned: [Int: Double] = [:]

  init(_ input: SimulationInput) {
    self.input = input
    let x = input.experiment
    layers = ModelLayers(
      config: x.model, precision: x.spec.model.precision, wirePrecision: x.spec.execution.wirePrecision)
    devices = x.devices
    let index = Dictionary(uniqueKeysWithValues: x.devices.enumerated().map { ($1.name, $0) })
    deviceIndex = index
    sharedHost = x.devices.map { input.timeModel.sharedHost(of: $0.name) }
    stageDevice = input.plan.stages.map { index[$0.device]! }
    sourceIndex = index[x.source]!
    let job = RunJob(
      experiment: x, plan: input.plan, requests: input.requests, seed: input.seed, timeModel: input.timeModel)
    self.job = job
    scheduler = PipelineScheduler(configuration: job.schedulerConfiguration, requests: job.schedulerRequests)
    deviceStates = [DeviceState](repeating: DeviceState(), count: x.devices.count)
    var li = [[Int?]](repeating: [Int?](repeating: nil, count: x.devices.count), count: x.devices.count)
    for (i, l) in x.links.enumerated() {
      if let a = index[l.from], let b = index[l.to] { li[a][b] = i }
    }
    linkIndex = li
    links = [LinkState](repeating: LinkState(), count: x.links.count)
    interfaceFree = [Double](repeating: 0, count: x.devices.count)
    var crossing = [[Int]](repeating: [], count: x.links.count)
    for (g, segment) in x.segments.enumerated() {
      for p in segment.pairs {
        if let a = index[p.from], let b = index[p.to], let l = li[a][b] { crossing[l].append(g) }
      }
    }
    linkSegments = crossing
    segmentFree = [Double](repeating: 0, count: x.segments.count)
    memory = job.memoryBudget
    let memoryByName = Dictionary(uniqueKeysWithValues: memory.devices.enumerated().map { ($1.name, $0) })
    memoryIndex = x.devices.map { memoryByName[$0.name] }
    failOnMemory = x.spec.execution.memoryAdmission == .fail
    events = x.spec.execution.recordEvents ? [] : nil
    requests = [RequestState](repeating: RequestState(), count: input.requests.count)
    for (i, r) in input.requests.enumerated() { requestIndex[r.id] = i }
    stageCompute = [Double](repeating: 0, count: input.plan.stages.count)
    stageBatches = [Int](repeating: 0, count: input.plan.stages.count)
    rng = SeededRandom.derived(seed: input.seed, 17)
    for (s, stage) in input.plan.stages.enumerated() {
      let d = stageDevice[s]
      let offloaded = Set(stage.offloadedLayers)
      deviceStates[d].offloaded.formUnion(offloaded)
      for l in stage.layers {
        if layers.layers[l].kind.isBlock { deviceStates[d].blockLayers += 1 }
        if !offloaded.contains(l) { deviceStates[d].residentWeights += layers.layers[l].weightBytes.value }
      }
    }
    for (d, dev) in devices.enumerated() {
      guard let policy = input.plan.residency(of: dev.name) else { continue }
      let initial = input.plan.stageIndices(of: dev.name).flatMap { input.plan.stages[$0].offloadedLayers }
      deviceStates[d].residency = ResidencyTracker(policy: policy, initial: initial)
      let storage = input.timeModel.storageBytesPerSecond(device: dev.name, on: dev.profile)
      let read = layers.layers.map { $0.weightBytes.value / storage }
      deviceStates[d].storage = VirtualOffloadTimeline(
        order: initial, slots: policy.stagingSlots, readSeconds: read, prefetch: policy.prefetch)
      recomputeStaging(d)
    }
  }

  mutating func recomputeStaging(_ d: Int) {
    let depth = deviceStates[d].residency?.policy.stagingSlots ?? 0
    let maxOffloaded = deviceStates[d].offloaded.map { layers.layers[$0].weightBytes.value }.max() ?? 0
    deviceStates[d].staging = Double(depth) * maxOffloaded
  }

  mutating func schedule(_ time: Double, _ kind: EventKind) {
    heap.insert(Event(time: time, seq: seq, kind: kind))
    seq += 1
  }

  mutating func run() -> RunOutcome {
    apply(scheduler.start(at: 0))
    var events = 0
    let limit = 200_000_000
    while let e = heap.popMin() {
      now = e.time
      events += 1
      if events > limit { return outcome(status: .failed, message: "simulation stopped after \(limit) events") }
      if events & 0xFFFF == 0 && input.cancellation.isRequested {
        return outcome(status: .incomplete, message: "interrupted")
      }
      switch e.kind {
      case .wake:
        apply(scheduler.wake(at: now))
      case .stageInput(let b, let s):
        let d = stageDevice[s]
        deviceStates[d].queue.append(Job(batch: b, stage: s))
        startNext(d)
      case .deviceDone(let d):
        finishJob(d)
        startNext(d)
      case .tokensAtSource(let b):
        if recordBatches { returned[b] = now }
        batches[b] = nil
        // Only batches the scheduler dispatched travel, so it knows every one that returns.
        let actions = (try? scheduler.tokensReturned(batch: b, at: now)) ?? []
        apply(actions)
        trackMemory()
      }
      if let failure { return outcome(status: .failed, message: failure) }
    }
    let allDone = requests.allSatisfy(\.done)
    return outcome(
      status: allDone ? .complete : .incomplete,
      message: allDone ? nil : "the simulation ran out of events before every request finished")
  }

  /// Carries out the scheduler's decisions.
  mutating func apply(_ actions: [PipelineScheduler.Action]) {
    for a in actions {
      switch a {
      case .wake(let t): schedule(t, .wake)
      case .arrived(let r, let t): requests[requestIndex[r]!].arrival = t
      case .token(let r, _, let t): requests[requestIndex[r]!].tokens.append(t)
      case .finished(let r, _): requests[requestIndex[r]!].done = true
      case .refused(let r, let tokens, let budget):
        failure = job.refusal(request: r, tokens: tokens, budget: budget)
      case .dispatch(let b):
        batches[b.id] = b
        if recordBatches { dispatched.append((b, now)) }
        schedule(now, .stageInput(batch: b.id, stage: 0))
      }
    }
  }

  func work(_ b: PipelineScheduler.MicroBatch) -> Work {
    if b.prefill { return .prefill(tokens: b.entries[0].count) }
    return .decode(contexts: b.entries.map(\.start))
  }

  /// A decoder block shared by a tensor-parallel group: its attention and its FFN each as slow as the slowest
  /// member's share (`TensorGroup.blockSeconds`), then two
  /// all-reduces of the batch's hidden states over the group's slowest link (`TensorGroup.allReduceSeconds`,
  /// the partition algorithms' model too). The members serve only this stage, so the stage's device stands for
  /// them in the queue.
  func groupBlockSeconds(_ g: TensorGroup, layer l: Int, work w: Work, slowdown: Double = 1) -> Double {
    let x = input.experiment
    let precision = x.spec.model.precision
    let c = x.model
    let attention = Double(c.attentionParametersPerBlock)
    let ffn = Double(c.ffnParametersPerBlock)
    var whole: [Double] = []
    for m in g.members {
      guard let d = x.device(m) else { return .infinity }
      whole.append(
        input.timeModel.time(layers.layers[l], device: m, on: d.profile, work: w, precision: precision).value)
    }
    let compute =
      g.blockSeconds(whole, attention: attention, ffn: ffn) { i, share in
        input.timeModel.shardRatio(
          layers.layers[l], device: g.members[i], share: share, work: w, precision: precision)
      } * slowdown
    let n = g.members.count
    let bytes = Double(w.tokenCount * c.hiddenSize) * g.wireBytesPerValue
    // A ring's step carries 1/n of the values, a star's all of them.
    // The members reach each all-reduce together: every message's receiver has just started waiting.
    guard
      let (latency, bandwidth) = groupLinks(
        g, g.collective, stepBytes: g.collective == .ring ? bytes / Double(n) : bytes, idle: 0)
    else { return .infinity }
    let reduce = TensorGroup.allReduceSeconds(
      g.collective, members: n, bytes: bytes, latency: latency, bandwidth: bandwidth)
    return compute + Double(TensorGroup.allReducesPerBlock) * reduce
  }

  /// The slowest latency (the link's plus the sender's per-message cost for a message of `stepBytes` to a
  /// receiver that waited `idle` seconds) and the narrowest bandwidth among the links a collective uses; nil
  /// when one is missing.
  func groupLinks(_ g: TensorGroup, _ collective: TensorGroup.Collective, stepBytes: Double, idle: Double?)
    -> (Double, Double)?
  {
    var latency = 0.0
    var bandwidth = Double.infinity
    for (a, b) in TensorGroup.links(g.members, collective) {
      guard let link = input.experiment.link(from: a, to: b) else { return nil }
      let message = input.timeModel.messageSeconds(from: a, to: b, bytes: stepBytes, idle: idle)
      latency = max(latency, link.spec.latency.value + message)
      bandwidth = min(bandwidth, link.spec.bandwidth.bytesPerSecond)
    }
    return (latency, bandwidth)
  }

  /// Puts a group's messages for one micro-batch on its links' counters: the leader's input to every member,
  /// then per block two all-reduces (a ring's 2(n − 1) steps of 1/n of the values on every link of the ring; a
  /// star's partial sums to the leader and the total back). Their time is the stage's (`groupBlockSeconds`);
  /// they do not occupy the interfaces the pipeline's messages queue on.
  mutating func countGroupTraffic(_ g: TensorGroup, blocks: Int, tokens: Int) {
    let bytes = Double(tokens * input.experiment.model.hiddenSize) * g.wireBytesPerValue
    let n = g.members.count
    func add(_ a: String, _ b: String, bytes: Double, messages: Int) {
      guard let i = deviceIndex[a], let j = deviceIndex[b], let li = linkIndex[i][j] else { return }
      links[li].bytes += bytes
      links[li].messages += messages
    }
    for m in g.members.dropFirst() { add(g.members[0], m, bytes: bytes, messages: 1) }
    let reduces = blocks * TensorGroup.allReducesPerBlock
    for (a, b) in TensorGroup.links(g.members, g.collective) {
      switch g.collective {
      case .ring:
        let steps = 2 * (n - 1) * reduces
        add(a, b, bytes: Double(steps) * bytes / Double(n), messages: steps)
      case .star: add(a, b, bytes: Double(reduces) * bytes, messages: reduces)
      }
    }
  }

  /// The leader sending a micro-batch's hidden states to every member before the stage's first block: one
  /// message per member, one after the other from the leader's interface. The members have waited since they
  /// finished their previous shared block (`idle`; nil before the first).
  func groupBroadcastSeconds(_ g: TensorGroup, work w: Work, idle: Double?) -> Double {
    let bytes = Double(w.tokenCount * input.experiment.model.hiddenSize) * g.wireBytesPerValue
    guard let (latency, bandwidth) = groupLinks(g, .star, stepBytes: bytes, idle: idle) else { return .infinity }
    return latency + Double(g.members.count - 1) * bytes / bandwidth
  }

  /// Workers of the other busy devices on device `d`'s shared host (a group's members on it, else one each), nil
  /// for a device with hardware of its own. A job's slowdown is fixed when it starts.
  func othersComputing(beside d: Int) -> Int? {
    guard let host = sharedHost[d] else { return nil }
    var n = 0
    for e in devices.indices where e != d && deviceStates[e].busy && sharedHost[e] == host {
      n += deviceStates[e].current.flatMap { input.plan.stages[$0.stage].group }.map { membersOn(host, $0) } ?? 1
    }
    return n
  }

  /// Members of `g` on `host`.
  func membersOn(_ host: String?, _ g: TensorGroup) -> Int {
    g.members.filter { m in deviceIndex[m].map { host != nil && sharedHost[$0] == host } ?? false }.count
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
    let w = work(batches[job.batch]!)
    let device = devices[d]
    let precision = input.experiment.spec.model.precision
    var t = now
    var computeTime = 0.0
    let sharedBlocks = stage.group == nil ? 0 : stage.layers.filter { layers.layers[$0].kind.isBlock }.count
    var lastShared: Double?
    // The workers computing at once: the job's own (a group's members on the host for its shared blocks, the
    // leader alone for its other layers) and the other busy devices' there.
    let others = othersComputing(beside: d)
    func slowdown(computing own: Int) -> Double {
      input.timeModel.sharedSlowdown(device: device.name, workers: others.map { $0 + own } ?? 1, work: w)
    }
    let alone = slowdown(computing: 1)
    let groupSlowdown = stage.group.map { slowdown(computing: max(1, membersOn(sharedHost[d], $0))) }
    if let g = stage.group, sharedBlocks > 0 {
      let b = groupBroadcastSeconds(g, work: w, idle: deviceStates[d].membersIdleSince.map { max(0, now - $0) })
      t += b
      computeTime += b
      countGroupTraffic(g, blocks: sharedBlocks, tokens: w.tokenCount)
    }
    for l in stage.layers {
      var c =
        input.timeModel.time(
          layers.layers[l], device: device.name, on: device.profile, work: w, precision: precision
        )
        .value * alone
      let shared = stage.group != nil && layers.layers[l].kind.isBlock
      if let g = stage.group, shared { c = groupBlockSeconds(g, layer: l, work: w, slowdown: groupSlowdown ?? 1) }
      if deviceStates[d].offloaded.contains(l), var storage = deviceStates[d].storage {
        let ready = storage.acquire(l, at: t)
        if ready > t {
          events?.append(
            TimelineEvent(
              .load, device: device.name, stage: job.stage, batch: job.batch, layer: l, start: t, end: ready))
        }
        t = ready + c
        storage.release(l, at: t)
        deviceStates[d].storage = storage
      } else {
        t += c
      }
      if shared { lastShared = t }
      computeTime += c
    }
    if let lastShared { deviceStates[d].membersIdleSince = lastShared }
    deviceStates[d].busyUntil = t
    events?.append(
      TimelineEvent(.compute, device: device.name, stage: job.stage, batch: job.batch, start: now, end: t))
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
    let b = batches[job.batch]!
    let stage = input.plan.stages[job.stage]
    if job.stage + 1 < input.plan.stages.count {
      let next = stageDevice[job.stage + 1]
      let bytes = layers.layers[stage.endLayer - 1].outputBytesPerToken.value * Double(b.tokenCount)
      let at = send(from: d, to: next, bytes: bytes, stage: job.stage, batch: job.batch)
      schedule(at, .stageInput(batch: job.batch, stage: job.stage + 1))
    } else {
      let returns = input.experiment.spec.execution.returnToSource && d != sourceIndex
      let at =
        returns
        ? send(from: d, to: sourceIndex, bytes: 4 * Double(b.entries.count), stage: job.stage, batch: job.batch)
        : now
      schedule(at, .tokensAtSource(batch: job.batch))
    }
  }

  /// Bytes a frame carries besides its payload (the wire header and one span), as the transport encodes an
  /// activation message; `RuntimeTests` checks it against the encoder.
  public static let frameOverheadBytes = 58.0

  /// Bytes a message of `payload` bytes puts on the wire.
  public static func wireBytes(payload: Double) -> Double {
    WireModel.onWire(frameBytes: payload + frameOverheadBytes)
  }

  /// Sends a message; returns its delivery time.
  mutating func send(from a: Int, to b: Int, bytes: Double, stage: Int, batch: Int) -> Double {
    if a == b { return now }
    // The partitioner checked links; an unlinked hop cannot be simulated.
    guard let li = linkIndex[a][b] else { return .infinity }
    let link = input.experiment.links[li]
    let wire = Self.wireBytes(payload: bytes)
    var start = max(now, interfaceFree[a])
    var cap = Double.infinity
    for g in linkSegments[li] {
      start = max(start, segmentFree[g])
      cap = min(cap, input.experiment.segments[g].bandwidth.bytesPerSecond)
    }
    let duration = Self.sendingSeconds(wire: wire, start: start, link: link, cap: cap)
    let end = start + duration
    interfaceFree[a] = end
    for g in linkSegments[li] { segmentFree[g] = end }
    // Normal jitter around the latency, never below zero delay, in order: as the runtime's release queue.
    var delay = link.spec.latency.value
    if link.spec.jitter.value > 0 { delay = max(0, delay + rng.nextGaussian() * link.spec.jitter.value) }
    // The receiver has waited since its last job ended (0 if it is still computing when the message lands).
    let idle = max(0, end + delay - deviceStates[b].busyUntil)
    delay += input.timeModel.messageSeconds(from: devices[a].name, to: devices[b].name, bytes: wire, idle: idle)
    var st = links[li]
    let delivery = max(end + delay, st.lastDelivery)
    st.lastDelivery = delivery
    st.bytes += bytes
    st.messages += 1
    st.busy += duration
    links[li] = st
    if events != nil {
      let e = TimelineEvent(
        .transfer, device: devices[a].name, peer: devices[b].name, stage: stage, batch: batch, start: start,
        end: delivery)
      events?.append(e)
    }
    return delivery
  }

  /// Seconds a message of `wire` bytes occupies a link from `start`: its bandwidth (trace) capped at `cap`, the
  /// lost segments sent again, and TCP's steady-state bound under loss.
  static func sendingSeconds(wire: Double, start: Double, link: ResolvedLink, cap: Double = .infinity) -> Double {
    let loss = link.spec.loss
    var duration = transmitTime(bytes: wire, start: start, link: link, cap: cap) / (1 - loss)
    if loss > 0 && link.spec.latency.value > 0 {
      let mathis =
        WireModel.segmentPayloadBytes * (1.5).squareRoot() / (2 * link.spec.latency.value * loss.squareRoot())
      duration = max(duration, wire / mathis)
    }
    return duration
  }

  /// Seconds to push `bytes` through a link starting at `start`, following its bandwidth trace.
  static func transmitTime(bytes: Double, start: Double, link: ResolvedLink, cap: Double = .infinity) -> Double {
    guard let trace = link.trace else { return bytes / min(cap, link.spec.bandwidth.bytesPerSecond) }
    var remaining = bytes
    var t = start
    var guardCount = 0
    while remaining > 0 && guardCount < 100_000 {
      guardCount += 1
      let bw = min(cap, trace.bandwidth(at: Seconds(t)).bytesPerSecond)
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

  /// Updates peak memory per device and, where the plan's residency policy adapts, residency as the KV cache
  /// grows and shrinks (`ResidencyTracker`, as the workers run it).
  mutating func trackMemory() {
    let activeTokens = scheduler.activeContextTokens
    let kvPerTokenPerBlock = layers.layers.count > 2 ? layers.layers[1].kvBytesPerToken.value : 0
    for d in deviceStates.indices where deviceStates[d].blockLayers > 0 || deviceStates[d].residentWeights > 0 {
      let kv = Double(activeTokens) * kvPerTokenPerBlock * Double(deviceStates[d].blockLayers)
      if var tracker = deviceStates[d].residency {
        switch tracker.update(kvBytes: kv) {
        case .unchanged: break
        case .exhausted: failure = tracker.outOfMemory(kvBytes: kv) + " (at t = \(Seconds(now)))"
        case .changed(let off):
          let newSet = Set(off)
          deviceStates[d].offloaded = newSet
          deviceStates[d].residentWeights = input.plan.stageIndices(of: devices[d].name)
            .flatMap { input.plan.stages[$0].layers }.filter { !newSet.contains($0) }
            .reduce(0.0) { $0 + layers.layers[$1].weightBytes.value }
          recomputeStaging(d)
          deviceStates[d].storage?.setOrder(off, at: now)
        }
        deviceStates[d].residency = tracker
      }
      let total = deviceStates[d].residentWeights + deviceStates[d].staging + kv
      deviceStates[d].peak = max(deviceStates[d].peak, total)
      if failOnMemory, failure == nil, let m = memoryIndex[d], !memory.devices[m].adaptive,
        kv > memory.devices[m].kvBytes
      {
        failure = MemoryBudget.outOfMemory(device: memory.devices[m], kvBytes: kv, at: now)
      }
    }
  }

  func outcome(status: RunStatus, message: String?) -> RunOutcome {
    var records: [RequestRecord] = []
    for (i, r) in requests.enumerated() {
      let plan = input.requests[i]
      records.append(
        RequestRecord(
          id: plan.id, arrival: r.arrival ?? .nan, firstToken: r.tokens.first, completion: r.done ? r.tokens.last : nil,
          promptTokens: plan.promptLength, outputTokens: plan.outputLength, tokenTimes: r.tokens))
    }
    let end = records.compactMap { $0.completion ?? $0.tokenTimes.last }.max() ?? now
    var linkRecords: [LinkRecord] = []
    for (i, l) in input.experiment.links.enumerated() where links[i].messages > 0 {
      let st = links[i]
      linkRecords.append(
        LinkRecord(
          from: l.from, to: l.to, bytes: st.bytes, messages: st.messages, busySeconds: st.busy, mechanism: "simulated"))
    }
    var deviceRecords: [DeviceRecord] = []
    for (d, dev) in devices.enumerated() {
      let st = deviceStates[d]
      let stall = st.storage?.stallSeconds ?? 0
      let outgoing = linkRecords.filter { $0.from == dev.name }.reduce(0.0) { $0 + $1.busySeconds }
      deviceRecords.append(
        DeviceRecord(
          name: dev.name, peakMemoryBytes: max(st.peak, st.residentWeights + st.staging), computeSeconds: st.compute,
          transferSeconds: outgoing, loadStallSeconds: stall, idleSeconds: max(0, end - st.compute - stall)))
    }
    let stageRecords = input.plan.stages.enumerated().map { s, stage in
      StageRecord(
        index: s, device: stage.device, firstLayer: stage.firstLayer, endLayer: stage.endLayer,
        offloadedLayers: stage.offloadedLayers.count, computeSeconds: stageCompute[s], microBatches: stageBatches[s])
    }
    var facts: [String: JSONValue] = ["simulated_events": .number(Double(seq))]
    let trackers = deviceStates.compactMap(\.residency)
    if trackers.contains(where: \.policy.adaptive) {
      facts["residency_adaptations"] = .number(Double(trackers.reduce(0) { $0 + $1.adaptations }))
    }
    var outcome = RunOutcome(
      status: status, message: message, requests: records, links: linkRecords, devices: deviceRecords,
      stages: stageRecords, facts: facts)
    outcome.events = events
    return outcome
  }
}
