import Catalog
import Collaboration
import CostModel
import EdgeLabCore
import Engine
public import Execution
import Foundation
public import Logging
public import Metrics
import Pipeline
public import Spec
import Synchronization
import Transport

#if canImport(Glibc)
import Glibc
#endif

/// Options of real runs.
public struct LoopbackOptions: Sendable {
  /// The `edgelab` executable that workers run as (`edgelab worker …`).
  public var executable: String
  /// Where run directories (token, port files, worker logs, offload stores) are created.
  public var workDirectory: String
  /// Kernel threads per worker. The lossless reference uses the same count.
  public var threadsPerWorker: Int
  /// A worker that sends nothing (not even heartbeats) for this long is declared hung.
  public var heartbeatTimeout: Double
  /// Longest wait for workers to load their weights.
  public var readyTimeout: Double
  /// Recompute every request unsplit and compare tokens.
  public var checkLossless: Bool
  /// Give each worker on this machine cores of its own when there are enough (`CPUPlacement`).
  public var pinWorkers: Bool = true
  /// Cache of unsplit reference tokens (nil: recompute every time).
  public var referenceCache: String?
  /// Makes each run's launcher from its emulation options.
  public var launcherFactory: LauncherFactory
  public var logger: Logger
  /// Called once the worker processes run (device → pid); for tools and fault-injection tests.
  public var onWorkersStarted: (@Sendable ([String: Int32]) -> Void)?
  /// Called when the run's workload starts (after every worker is ready and linked).
  public var onServing: (@Sendable () -> Void)?
  /// Called with every token event as it reaches the coordinator; for tools and fault-injection tests.
  public var onTokens: (@Sendable ([TokenEvent]) -> Void)?
  /// Where the coordinator's deadlines read the time.
  public var clock: any ExecutionClock
  /// The backend these options make: `loopback`, or `boards` with a launcher that reaches other machines.
  public var kind: BackendKind = .loopback
  /// With `execution.calibrate_workers`: seconds each part of a worker's model is timed for, before and after
  /// the workload. A host's speed moves from second to second (one process's decode of the `small` model in
  /// one-second windows here: 165–208 tokens/s), so the calibration averages over as long.
  public var calibrationSeconds = 1.0

  public init(
    executable: String, workDirectory: String = "/tmp", threadsPerWorker: Int = 1,
    heartbeatTimeout: Double = 5, readyTimeout: Double = 900, checkLossless: Bool = true,
    referenceCache: String? = "results/.reference-cache",
    launcherFactory: @escaping LauncherFactory = plainLauncherFactory,
    logger: Logger = Logger(label: "edgelab.loopback", factory: { _ in SwiftLogNoOpLogHandler() }),
    clock: any ExecutionClock = MonotonicClock()
  ) {
    self.executable = executable
    self.workDirectory = workDirectory
    self.threadsPerWorker = threadsPerWorker
    self.heartbeatTimeout = heartbeatTimeout
    self.readyTimeout = readyTimeout
    self.checkLossless = checkLossless
    self.referenceCache = referenceCache
    self.launcherFactory = launcherFactory
    self.logger = logger
    self.clock = clock
  }
}

/// The loopback backend: one worker process per device of the plan, real TCP between pipeline stages, the
/// workload scheduled at the source worker by the same `PipelineScheduler` the simulator runs, and a lossless
/// check against the unsplit model.
public struct LoopbackBackend: ExecutionBackend {
  public var kind: BackendKind { options.kind }
  public let options: LoopbackOptions
  public init(options: LoopbackOptions) { self.options = options }

  public func execute(_ job: RunJob) throws -> RunOutcome {
    let started = options.clock.now()
    let run = try CoordinatedRun(job: job, options: options)
    var outcome = try run.execute()
    outcome.wallSeconds = options.clock.now() - started
    return outcome
  }
}

/// One run of the coordinator. All state lives here; `execute` cleans up on every path.
final class CoordinatedRun: @unchecked Sendable {
  enum Event {
    case message(String, ControlMessage)
    case lost(String, String)
  }

  let job: RunJob
  let options: LoopbackOptions
  let logger: Logger
  let launcher: any WorkerLauncher
  let devices: [String]
  let runDirectory: String
  let token: [UInt8]
  let events = BlockingQueue<Event>()
  var children: [String: ChildProcess] = [:]
  var controls: [String: Connection] = [:]
  let liveness = Mutex(Liveness())
  var targets: [String: LaunchTarget] = [:]
  /// The CPUs of each worker on this machine, nil when they share every core (`CPUPlacement`).
  var placement: [String: [Int]]?
  /// What each worker was assigned.
  var assignments: [String: Assignment] = [:]

  // What the source reported, in device seconds since it started the run.
  var arrivals: [Int: Double] = [:]
  var tokenTimes: [Int: [Double]] = [:]
  var generated: [Int: [Int32]] = [:]
  var completed: Set<Int> = []
  /// Per request, the verifications of a speculative run (proposed, accepted), in order.
  var verifications: [Int: [VerificationEvent]] = [:]
  var t0 = 0.0
  var serving = false

  init(job: RunJob, options: LoopbackOptions) throws {
    self.job = job
    self.options = options
    var logger = options.logger
    logger[metadataKey: "run"] = "\(job.label)"
    self.logger = logger
    do { launcher = try options.launcherFactory(job.experiment.spec) } catch let e as BackendError {
      throw e
    } catch {
      throw BackendError.unavailable(options.kind, "\(error)")
    }
    var ds = job.plan.devices
    if !ds.contains(job.experiment.source) { ds.insert(job.experiment.source, at: 0) }
    devices = ds
    try FileManager.default.createDirectory(atPath: options.workDirectory, withIntermediateDirectories: true)
    var template = Array((options.workDirectory + "/edgelab-run-XXXXXX").utf8CString)
    guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
      throw BackendError.fatal(.system(operation: "mkdtemp", path: options.workDirectory, errno: errno), partial: nil)
    }
    runDirectory = String(cString: dir)
    var rng = SystemRandomNumberGenerator()
    token = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
  }

  func stagesOf(_ device: String) -> [Int] { job.plan.stageIndices(of: device) }

  func execute() throws -> RunOutcome {
    var failed = false
    defer {
      for c in controls.values { c.close() }
      for p in children.values { p.stop(grace: 1) }
      launcher.teardown()
      // The worker logs are kept after a fault (the error names them); the token and port files never outlive
      // the run.
      if failed {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: runDirectory)) ?? []
        for f in files where !f.hasSuffix(".log") {
          try? FileManager.default.removeItem(atPath: runDirectory + "/" + f)
        }
      } else {
        try? FileManager.default.removeItem(atPath: runDirectory)
      }
    }
    do {
      return try drive()
    } catch let e as BackendError {
      // A Ctrl-C or a refusal before any worker started is not a fault: no logs to keep.
      switch e {
      case .interrupted, .refused: break
      default: failed = true
      }
      throw e
    } catch let f as Fault {
      // Any fault stops the sweep; what finished is kept (the run is marked incomplete).
      failed = true
      throw BackendError.fatal(f, logs: runDirectory, partial: serving ? partialOutcome(f.description) : nil)
    } catch {
      failed = true
      throw error
    }
  }

  // MARK: Setting up

  /// All workers run on this machine: their synthetic weights together must fit its memory, or the kernel kills
  /// one of them half-way through loading. The lossless reference runs after they stop, one layer range at a
  /// time (at most the largest stage's weights; `ReferenceTokens.ranges`), so the workers' total bounds both.
  /// Checkpoints are memory-mapped files the kernel can page, so they are not checked.
  /// Shared segments are simulated only: an emulated cluster shapes each link on its own.
  func checkSegments() throws {
    let x = job.experiment
    guard !x.segments.isEmpty, x.spec.emulation.mode != .none else { return }
    throw BackendError.refused(
      .setting(
        field: "network.segments",
        reason: "shared segments are simulated only (the emulated cluster shapes each link on its own); "
          + "run this experiment with --backend simulated, or without its segments"))
  }

  func checkHostMemory() throws {
    let x = job.experiment
    // Workers on other machines hold their weights there (`edgelab boards check` checks their memory).
    guard x.spec.model.checkpoint == nil, options.kind != .boards else { return }
    let bytesPerWeight = x.spec.model.precision.bytesPerWeight
    let offloaded = job.plan.stages.reduce(0) { $0 + $1.offloadedLayers.count }
    var parameters = Double(x.model.parameterCount) - Double(offloaded * x.model.parametersPerBlock)
    // Tied embeddings: the first stage embeds and the last projects, each with its own copy.
    if x.model.tieWordEmbeddings && Set(job.plan.stages.map(\.device)).count > 1 {
      parameters += Double(x.model.vocabSize * x.model.hiddenSize)
    }
    // The edge worker of a speculative run holds its early-exit draft: embedding, its blocks and the head.
    if let s = speculation {
      parameters +=
        Double(s.draftBlocks * x.model.parametersPerBlock) + Double(2 * x.model.vocabSize * x.model.hiddenSize)
    }
    let resident = parameters * bytesPerWeight
    guard let available = HostMemory.availableBytes(), resident > 0.9 * available else { return }
    throw BackendError.refused(
      .hostMemory(neededBytes: resident, availableBytes: available, precision: x.spec.model.precision.rawValue))
  }

  /// The plan was made from the spec's model shapes (preset or config); a checkpoint with other shapes would
  /// fail half-way through loading with a confusing layer-range error, so compare first.
  func checkCheckpointShapes() throws {
    guard let dir = job.experiment.spec.model.checkpoint else { return }
    // A board's copy is checked on the board (`edgelab boards check`); the coordinator may have none.
    if options.kind == .boards && !FileManager.default.fileExists(atPath: dir) { return }
    let c: ModelConfig
    do { c = try ModelSource.checkpoint(path: dir, storage: .native).open().config } catch {
      throw BackendError.refused(.input(path: dir, reason: "model.checkpoint: \(error)"))
    }
    let m = job.experiment.model
    let fields: [(String, Int, Int)] = [
      ("num_hidden_layers", m.numHiddenLayers, c.numHiddenLayers), ("hidden_size", m.hiddenSize, c.hiddenSize),
      ("intermediate_size", m.intermediateSize, c.intermediateSize),
      ("num_attention_heads", m.numAttentionHeads, c.numAttentionHeads),
      ("num_key_value_heads", m.numKeyValueHeads, c.numKeyValueHeads), ("vocab_size", m.vocabSize, c.vocabSize),
    ]
    let differ = fields.filter { $0.1 != $0.2 }.map { "\($0.0): \($0.1) in the spec, \($0.2) in the checkpoint" }
    if !differ.isEmpty {
      throw BackendError.refused(
        .setting(
          field: "model.checkpoint",
          reason:
            "\(dir) does not match the model the plan was made for (\(differ.joined(separator: "; "))); leave out model.preset and model.config to use the checkpoint's own"
        ))
    }
  }

  /// The bounds every message of this run must keep.
  var limits: RunLimits {
    let x = job.experiment
    let maxPrompt = job.requests.map(\.promptLength).max() ?? 1
    let maxContext = job.requests.map { $0.promptLength + $0.outputLength }.max() ?? 1
    var l = RunLimits(
      hiddenSize: x.model.hiddenSize, vocabSize: x.model.vocabSize, requests: job.requests.count,
      maxPromptTokens: max(1, maxPrompt), maxContextTokens: max(1, maxContext),
      maxBatch: max(1, x.spec.execution.maxBatch))
    if let s = speculation { l.verifyTokens = s.lookahead + 1 }
    return l
  }

  /// The source's speculation in a speculative run: the edge drafts with the target's first blocks.
  var speculation: SpeculationAssignment? {
    guard let c = job.collaboration, case .speculative(let k, _) = c.mode, let blocks = c.draftBlocks else {
      return nil
    }
    return SpeculationAssignment(
      lookahead: k, draftBlocks: blocks, closedLoop: job.requests.allSatisfy { $0.arrival == nil })
  }

  /// What of an edge–cloud strategy real workers can run: speculative decoding with an early-exit draft that the
  /// run measures (routing and separate drafts are simulated).
  func checkCollaboration() throws {
    guard let c = job.collaboration else { return }
    switch c.mode {
    case .split: return
    case .route:
      throw BackendError.refused(
        .setting(
          field: "strategies", reason: "routing runs on the simulated backend only; run with --backend simulated"))
    case .speculative(_, let acceptance):
      guard c.draftBlocks != nil else {
        throw BackendError.refused(
          .setting(
            field: "collaboration.edge_model",
            reason: "a real speculative run drafts with the target's own first blocks (early_exit)"))
      }
      if case .rate(_) = acceptance {
        throw BackendError.refused(
          .setting(
            field: "collaboration.acceptance_rate", reason: "a real run measures its acceptance; leave it out"))
      }
      guard c.edgeDevice == job.experiment.source else {
        throw BackendError.refused(
          .setting(field: "collaboration.edge", reason: "the edge device must be the experiment's source"))
      }
    }
  }

  /// Each device's time model as a worker can hold it (`DevicePace`): what emulated workers pace to.
  var paces: [String: DevicePace] {
    var out: [String: DevicePace] = [:]
    for d in devices {
      if let device = job.experiment.device(d), let p = job.timeModel.pace(device: d, on: device.profile) { out[d] = p }
    }
    return out
  }

  /// Device seconds without movement before the run is declared stuck: the setting, or 50 × the slowest
  /// stage's predicted prefill of the longest prompt, at least 60 s.
  var progressBound: Double {
    let x = job.experiment
    if let t = x.spec.execution.progressTimeout { return t.value }
    let layers = ModelLayers(
      config: x.model, precision: x.spec.model.precision, wirePrecision: x.spec.execution.wirePrecision)
    let prompt = limits.maxPromptTokens
    var worst = 0.0
    for stage in job.plan.stages {
      guard let profile = x.device(stage.device)?.profile else { continue }
      let t = stage.layers.reduce(0.0) { acc, l in
        acc
          + job.timeModel.time(
            layers.layers[l], device: stage.device, on: profile, work: .prefill(tokens: prompt),
            precision: x.spec.model.precision
          ).value
      }
      if t.isFinite { worst = max(worst, t) }
    }
    return max(60, 50 * worst)
  }

  func drive() throws -> RunOutcome {
    let started = options.clock.now()
    let x = job.experiment
    try checkCheckpointShapes()
    try checkCollaboration()
    try checkSegments()
    try checkHostMemory()
    let paces = self.paces
    targets = try launcher.prepare(
      devices: devices, experiment: x, runID: URL(fileURLWithPath: runDirectory).lastPathComponent, paces: paces)
    let tokenFile = runDirectory + "/token"
    _ = FileManager.default.createFile(
      atPath: tokenFile, contents: Data(token.map { String(format: "%02x", $0) }.joined().utf8),
      attributes: [.posixPermissions: 0o600])
    let local = devices.filter { targets[$0]?.remote == nil }
    placement =
      options.pinWorkers
      ? CPUPlacement.assign(local, threads: options.threadsPerWorker, cpus: CPUPlacement.available()) : nil
    for d in devices {
      let t = targets[d]!
      let child: ChildProcess
      if let r = t.remote {
        // The token on standard input, the address from the worker's output; it exits when its input closes.
        let command = [
          r.executable, "worker", "--listen", "\(t.listenHost):0", "--token-file", "-", "--name", d, "--exit-on-eof",
          "--tag", r.tag,
        ]
        child = try ChildProcess(
          t.prefix + [RemoteShell.quote(command)], logPath: runDirectory + "/\(d).log",
          standardInput: Array((token.map { String(format: "%02x", $0) }.joined() + "\n").utf8))
      } else {
        let portFile = runDirectory + "/\(d).port"
        let args =
          t.prefix + [
            options.executable, "worker", "--listen", "\(t.listenHost):0", "--token-file", tokenFile,
            "--port-file", portFile, "--name", d, "--parent-pid", String(getpid()),
          ] + (placement?[d].map { ["--cpus", CPUPlacement.format($0)] } ?? [])
        child = try ChildProcess(args, logPath: runDirectory + "/\(d).log")
      }
      children[d] = child
      try t.attach?(child.pid)
    }
    options.onWorkersStarted?(children.mapValues(\.pid))
    var endpoints: [String: Endpoint] = [:]
    for d in devices {
      endpoints[d] = try waitForPort(d)
    }
    for d in devices {
      let c: Connection
      do {
        c = try Connection.connect(to: endpoints[d]!, token: token, name: "coordinator", maxPayload: maxControlPayload)
      } catch let e as TransportError {
        guard case .buildMismatch(let ours, let theirs) = e.kind else { throw e }
        // Every process of a run must be the same program: refuse before any weights are loaded.
        let remedy =
          targets[d]?.remote != nil
          ? Refusal.deployRemedy(inventory: x.spec.inventory)
          : "\(options.executable) is another build than this coordinator; rebuild (swift build) and run both from one build"
        throw BackendError.refused(.buildMismatch(device: d, ours: ours, theirs: theirs, remedy: remedy))
      }
      controls[d] = c
      touch(d)
      spawnThread("coordinator-\(d)") { [self] in read(d, c) }
    }
    // Assign, then wait until every worker has loaded its weights.
    let e = x.spec.execution
    let layers = ModelLayers(config: x.model, precision: x.spec.model.precision, wirePrecision: e.wirePrecision)
    let stageDevices = job.plan.stages.map(\.device)
    let w = x.spec.model
    let localWeights = WeightsSpec(x)
    if w.preset == nil && w.checkpoint == nil {
      throw BackendError.refused(
        .setting(
          field: "model",
          reason:
            "the loopback backend needs a model preset or a checkpoint path (custom configurations have no weights)"))
    }
    let memory = job.memoryBudget
    for d in devices {
      let t = targets[d]!
      var weights = localWeights
      if let root = t.remote?.checkpointRoot, let c = weights.checkpoint {
        weights.checkpoint = root + "/" + URL(fileURLWithPath: c).lastPathComponent
      }
      let storage = t.remote.map { $0.storageDirectory + "/store-\(d)" } ?? runDirectory + "/store-\(d)"
      let a = Assignment(
        run: job.label, device: d, weights: weights, threads: options.threadsPerWorker,
        stages: Self.stageAssignments(of: d, job.plan, layers),
        stageCount: job.plan.stages.count, stageDevices: stageDevices, peers: endpoints, source: x.source,
        limits: limits,
        halfPrecisionWire: e.wirePrecision != .fp32, residency: job.plan.residency(of: d),
        storageDirectory: storage, storageBytesPerSecond: t.storageBytesPerSecond,
        delays: t.delays,
        pacing: t.pacing, seed: job.seed, dilation: dilation,
        scheduler: d == x.source ? job.schedulerConfiguration : nil,
        failsBeyond: e.memoryAdmission == .fail ? memory.devices.first { $0.name == d && !$0.adaptive } : nil,
        recordEvents: e.recordEvents, computeStretch: t.computeStretch,
        pace: t.emulatesDevice ? paces[d].map { ComputePace(model: $0, precision: x.spec.model.precision) } : nil,
        speculation: d == x.source ? speculation : nil)
      assignments[d] = a
      try send(d, .assign(a))
    }
    var loadSeconds = 0.0
    try awaitMessages(devices.count, timeout: options.readyTimeout, what: "loading weights") { d, m in
      if case .ready(_, let s) = m {
        loadSeconds = max(loadSeconds, s)
        return true
      }
      return false
    }
    let calibrated = e.calibrateWorkers ? try calibrateWorkers("before the workload") : [:]
    for d in devices { try send(d, .link) }
    try awaitMessages(devices.count, timeout: 30, what: "connecting the pipeline") { _, m in
      if case .linked = m { return true }
      return false
    }
    // The workload, in chunks of at most 100,000 prompt tokens (well inside a control frame).
    var chunk: [RequestMessage] = []
    var chunkTokens = 0
    for r in job.requests {
      chunk.append(
        RequestMessage(id: r.id, prompt: r.promptTokens, outputLength: r.outputLength, arrival: r.arrival?.value ?? 0))
      chunkTokens += r.promptTokens.count
      if chunkTokens > 100_000 {
        try send(x.source, .workload(chunk))
        chunk = []
        chunkTokens = 0
      }
    }
    if !chunk.isEmpty { try send(x.source, .workload(chunk)) }
    options.onServing?()
    logger.info("\(devices.count) workers ready in \(String(format: options.clock.now() - started, digits: 1)) s")
    return try serve(loadSeconds: loadSeconds, calibrated: calibrated)
  }

  /// The stages `d` runs: those it runs alone or leads, and its shares of groups it is a member of (a member
  /// holds its heads' part of the KV cache).
  static func stageAssignments(of d: String, _ plan: Plan, _ layers: ModelLayers) -> [StageAssignment] {
    plan.stages.indices.compactMap { i -> StageAssignment? in
      let s = plan.stages[i]
      let g = s.group
      guard let member = g?.members.firstIndex(of: d) ?? (s.device == d ? 0 : nil) else { return nil }
      let kv = s.layers.reduce(0.0) { $0 + layers.layers[$1].kvBytesPerToken.value }
      return StageAssignment(
        index: i, firstLayer: s.firstLayer, endLayer: s.endLayer, offloaded: s.offloadedLayers,
        kvBytesPerToken: kv * (g?.headShare(member) ?? 1),
        shard: g.map {
          ShardAssignment(
            member: member, members: $0.members, kvHeads: $0.kvHeads, ffnColumns: $0.ffnColumns,
            ring: $0.collective == .ring && $0.members.count > 2)
        })
    }
  }

  func waitForPort(_ d: String) throws -> Endpoint {
    let path = runDirectory + "/\(d).port"
    let deadline = monotonicNanoseconds() + 60_000_000_000
    while monotonicNanoseconds() < deadline {
      if targets[d]?.remote != nil {
        // A remote worker's address is the line it prints once listening ("listening HOST:PORT").
        if let log = try? String(contentsOfFile: runDirectory + "/\(d).log", encoding: .utf8),
          let line = log.split(separator: "\n").first(where: { $0.hasPrefix("listening ") }),
          let ep = Endpoint(String(line.dropFirst("listening ".count)))
        {
          return ep
        }
      } else if let s = try? String(contentsOfFile: path, encoding: .utf8),
        let ep = Endpoint(s.trimmingCharacters(in: .whitespacesAndNewlines))
      {
        return ep
      }
      if let c = children[d], !c.isRunning {
        throw Fault.worker(
          WorkerFault(
            device: d, stages: stagesOf(d), kind: .exitedBeforeListening, process: c.exitDescription,
            logPath: c.logPath, logTail: c.logTail()))
      }
      usleep(5_000)
    }
    throw Fault.worker(
      WorkerFault(device: d, stages: stagesOf(d), kind: .notListening(seconds: 60), logPath: "\(runDirectory)/\(d).log")
    )
  }

  func read(_ d: String, _ c: Connection) {
    CPUPlacement.background(true)
    while true {
      do {
        let f = try c.receive()
        touch(d)
        switch f.type {
        case .heartbeat: continue
        case .control: events.push(.message(d, try ControlMessage.decode(f.payload)))
        default: throw WireError.malformed("a \(f.type) frame on the control connection")
        }
      } catch {
        events.push(.lost(d, "\(error)"))
        return
      }
    }
  }

  func touch(_ d: String) {
    let now = options.clock.now()
    liveness.withLock { $0.heard(from: d, at: now) }
  }

  func send(_ d: String, _ m: ControlMessage) throws {
    guard let c = controls[d] else { throw fault(d, .unreachable("no control connection")) }
    do { try c.send(.control, try m.frame()) } catch { throw fault(d, .unreachable("\(error)")) }
  }

  /// A fault naming the worker and its stages, with the process's state and log tail.
  func fault(_ d: String, _ kind: WorkerFault.Kind) -> Fault {
    let child = children[d]
    // A killed worker's connections close before its exit is reaped: give the reaper a moment.
    for _ in 0..<30 where child?.isRunning == true { usleep(10_000) }
    let tail = child?.logTail(3)
    return .worker(
      WorkerFault(
        device: d, stages: stagesOf(d), kind: kind, process: child.flatMap { $0.isRunning ? nil : $0.exitDescription },
        logPath: tail?.isEmpty == false ? child?.logPath : nil, logTail: tail?.isEmpty == false ? tail : nil))
  }

  /// A fault reported by (or about) worker `d`, blaming a worker that has died instead when there is one: when
  /// a worker is killed, its neighbours' sends to it fail, and their reports can arrive before its own exit.
  func blame(_ d: String, _ what: WorkerFault.Kind) -> Fault {
    for _ in 0..<30 where !children.values.contains(where: { !$0.isRunning }) { usleep(10_000) }
    if let (dead, _) = children.first(where: { $0.key != d && !$0.value.isRunning }) {
      return fault(dead, .exited)
    }
    return fault(d, what)
  }

  /// Checks liveness: exited processes, silent workers, interrupts.
  func checkHealth() throws {
    if Interrupt.isRequested || job.cancellation.isRequested {
      throw BackendError.interrupted(partial: partialOutcome("interrupted"))
    }
    for (d, c) in children where !c.isRunning {
      throw fault(d, .exited)
    }
    let now = options.clock.now()
    let silent = liveness.withLock {
      $0.silent(at: now, timeout: options.heartbeatTimeout, interval: Worker.heartbeatInterval)
    }
    if let silent { throw fault(silent, .silent(seconds: options.heartbeatTimeout)) }
  }

  /// Waits for `count` messages accepted by `accept`, checking health.
  func awaitMessages(_ count: Int, timeout: Double, what: String, _ accept: (String, ControlMessage) -> Bool) throws {
    var got = 0
    let deadline = options.clock.now() + timeout
    while got < count {
      try checkHealth()
      if options.clock.now() > deadline { throw Fault.timedOut(what: what, seconds: timeout) }
      guard let e = events.pop(timeout: 0.05) else { continue }
      switch e {
      case .lost(let d, let why): throw blame(d, .connectionLost(why))
      case .message(let d, .failure(let why)): throw blame(d, .reported(why))
      case .message(let d, .warning(let why)): logger.warning("\(why)", metadata: ["device": "\(d)"])
      case .message(let d, let m):
        if accept(d, m) { got += 1 }
      }
    }
  }

  // MARK: Running the workload

  /// - Parameter calibrated: the workers' speeds measured before the workload (`execution.calibrate_workers`);
  ///   measured again after it.
  func serve(loadSeconds: Double, calibrated: [String: WorkerSpeed]) throws -> RunOutcome {
    let x = job.experiment
    let requests = job.requests
    t0 = options.clock.now()
    serving = true
    CPUPlacement.background(true)
    defer { CPUPlacement.background(false) }
    launcher.runStarted()
    var monitor = ProgressMonitor(
      bound: progressBound * dilation, stageDevices: job.plan.stages.map(\.device), source: x.source, start: t0)
    try send(x.source, .start)
    var failure: String?
    var judged = t0
    serving: while completed.count < requests.count {
      try checkHealth()
      let e = events.pop(timeout: 0.05)
      let now = options.clock.now()
      // Judged once every report that has arrived is taken in (after the coordinator itself was held up — a slow
      // callback, a loaded host — the reports waiting in the queue say where work went meanwhile), and at least
      // once per bound however many messages arrive. Only requests that have arrived and not finished can be
      // stuck: an idle pipeline between arrivals is not.
      if e == nil || now - judged > monitor.bound {
        judged = now
        if let stuck = monitor.verdict(at: now, outstanding: arrivals.count > completed.count) {
          throw BackendError.fatal(
            .stuck(stalled: stuck, boundSeconds: progressBound), logs: runDirectory, partial: partialOutcome(stuck))
        }
      }
      guard let e else { continue }
      switch e {
      case .lost(let d, let why):
        throw BackendError.fatal(blame(d, .connectionLost(why)), logs: runDirectory, partial: partialOutcome(nil))
      case .message(let d, .failure(let why)):
        throw BackendError.fatal(blame(d, .reported(why)), logs: runDirectory, partial: partialOutcome(nil))
      case .message(let d, .warning(let why)): logger.warning("\(why)", metadata: ["device": "\(d)"])
      case .message(let d, .progress(let p)): monitor.observe(p, from: d, at: options.clock.now())
      case .message(_, .arrivals(let evs)):
        monitor.moved(at: options.clock.now())
        for ev in evs { arrivals[ev.request] = ev.time }
      case .message(_, .refusedRequest(let id, let why)):
        // The scheduler could never admit it: the run fails, as a simulated one does, with the same words.
        if let r = job.requests.first(where: { $0.id == id }), let budget = job.memoryBudget.tightest {
          failure = job.refusal(request: id, tokens: r.promptLength + r.outputLength, budget: budget.tokens)
        } else {
          failure = why
        }
        break serving
      case .message(_, .tokens(let evs)):
        monitor.moved(at: options.clock.now())
        if tokenTimes.isEmpty {
          logger.info("first token after \(String(format: options.clock.now() - t0, digits: 2)) s")
        }
        options.onTokens?(evs)
        for ev in evs {
          tokenTimes[ev.request, default: []].append(ev.time)
          generated[ev.request, default: []].append(ev.token)
        }
      case .message(_, .verifications(let evs)):
        for v in evs { verifications[v.request, default: []].append(v) }
      case .message(_, .finished(let ids)):
        completed.formUnion(ids)
        for d in devices { try send(d, .release(ids)) }
      case .message(let d, let m):
        logger.debug("ignored \(m.kind) from \(d)")
      }
    }
    let end = options.clock.now()
    var recalibrated: [String: WorkerSpeed] = [:]
    if x.spec.execution.calibrateWorkers && failure == nil {
      // The workload is done: a calibration that fails now costs the run its second set of speeds, not its results.
      do { recalibrated = try calibrateWorkers("after the workload") } catch {
        logger.warning("the workers' calibration after the workload failed (\(error)); only the one before is recorded")
      }
    }
    // Statistics from every worker, then shut them down.
    var stats: [String: WorkerStats] = [:]
    for d in devices { try send(d, .collect) }
    try awaitMessages(devices.count, timeout: 30, what: "reporting statistics") { d, m in
      if case .stats(let s) = m {
        stats[d] = s
        return true
      }
      return false
    }
    for d in devices { try? send(d, .shutdown) }
    for c in children.values { c.stop(grace: 5) }
    var outcome = buildOutcome(stats: stats, end: end, status: failure == nil ? .complete : .failed, message: failure)
    if x.spec.execution.recordEvents {
      // Workers record this host's monotonic seconds, the coordinator's clock: device seconds since the start.
      outcome.events = stats.values.flatMap { $0.events ?? [] }.map { e -> TimelineEvent in
        var e = e
        (e.start, e.end) = (seconds(e.start), seconds(e.end))
        return e
      }.sorted {
        ($0.start, $0.device, $0.stage, $0.batch) < ($1.start, $1.device, $1.stage, $1.batch)
      }
    }
    outcome.generated = generated
    if speculation != nil { outcome.queries = speculativeQueries(outcome) }
    outcome.facts["worker_load_s"] = .number(loadSeconds)
    for (after, speeds) in [(false, calibrated), (true, recalibrated)] {
      for (d, v) in speeds {
        for (name, ratio) in v.facts(device: d, after: after) { outcome.facts[name] = .number(ratio) }
      }
    }
    outcome.facts["worker_threads"] = .number(Double(options.threadsPerWorker))
    let overruns = stats.values.compactMap(\.paceOverruns)
    if !overruns.isEmpty {
      let n = overruns.reduce(0, +)
      let seconds = stats.values.compactMap(\.paceOverrunSeconds).reduce(0, +)
      outcome.facts["pace_overruns"] = .number(Double(n))
      outcome.facts["pace_overrun_s"] = .number(seconds / dilation)
      if n > 0 {
        logger.warning(
          "\(n) computations took longer than their emulated devices would have (\(String(format: seconds / dilation, digits: 3)) device seconds in all): this host could not keep up at dilation \(String(format: dilation, digits: 2)); set a larger emulation.dilation"
        )
      }
    }
    outcome.facts["worker_cpus"] = .string(
      placement.map { p in p.keys.sorted().map { "\($0):\(CPUPlacement.format(p[$0]!))" }.joined(separator: " ") }
        ?? "shared")
    outcome.facts["wire_precision"] = .string(x.spec.execution.wirePrecision.rawValue)
    outcome.facts["kernel_isa"] = .string(Kernels.isa)
    outcome.facts["llamacpp_simd"] = .string(Kernels.llamaCppBuild)
    outcome.facts["offload_reads"] = .number(Double(stats.values.reduce(0) { $0 + $1.offloadReads }))
    outcome.facts["residency_adaptations"] = .number(Double(stats.values.reduce(0) { $0 + $1.adaptations }))
    outcome.facts["refused_messages"] = .number(Double(stats.values.reduce(0) { $0 + $1.refusedMessages }))
    for (k, v) in launcher.facts() { outcome.facts[k] = .string(v) }
    // Energy from the boards' power rails, per generated token.
    if let joules = launcher.facts()["energy_j"].flatMap(Double.init), outcome.requests.count > 0 {
      let tokens = outcome.requests.reduce(0) { $0 + $1.tokenTimes.count }
      if tokens > 0 { outcome.facts["energy_per_token_j"] = .number(joules / Double(tokens)) }
    }
    if options.checkLossless && failure == nil {
      if let c = job.experiment.spec.model.checkpoint, !FileManager.default.fileExists(atPath: c) {
        // Boards read their own copy of the checkpoint; the coordinator has none to recompute from.
        outcome.facts["lossless"] = .string("not checked: the checkpoint is not on the coordinator (\(c))")
      } else {
        try losslessCheck(&outcome)
      }
    }
    return outcome
  }

  /// Each request of a speculative run as a query: the target's answer (the run is lossless), the drafted and
  /// accepted tokens of every verification, and the traffic of the edge device shared evenly among the queries.
  func speculativeQueries(_ outcome: RunOutcome) -> [QueryRecord] {
    let edge = job.experiment.source
    let n = Double(max(1, job.requests.count))
    let toCloud = outcome.links.filter { $0.from == edge }.reduce(0) { $0 + $1.bytes } / n
    let fromCloud = outcome.links.filter { $0.to == edge }.reduce(0) { $0 + $1.bytes } / n
    let answers = Dictionary(
      (job.collaboration?.evaluation.queries ?? []).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    return job.requests.map { r in
      let v = verifications[r.id] ?? []
      return QueryRecord(
        id: r.id, servedBy: .cloud, correct: answers[r.id]?.cloud.correct, edgePromptTokens: r.promptLength,
        edgeCompletionTokens: v.reduce(0) { $0 + $1.proposed }, cloudPromptTokens: r.promptLength,
        cloudCompletionTokens: generated[r.id]?.count ?? 0, bytesToCloud: toCloud, bytesFromCloud: fromCloud,
        proposed: v.map(\.proposed), accepted: v.map(\.accepted))
    }
  }

  /// Device seconds of a coordinator clock reading since the run started.
  func seconds(_ t: Double) -> Double { (t - t0) / dilation }
  var dilation: Double { targets.values.first?.dilation ?? 1 }

  func requestRecords() -> [RequestRecord] {
    job.requests.map { r in
      let times = tokenTimes[r.id] ?? []
      return RequestRecord(
        id: r.id, arrival: arrivals[r.id] ?? .nan, firstToken: times.first,
        completion: completed.contains(r.id) ? times.last : nil, promptTokens: r.promptLength,
        outputTokens: r.outputLength, tokenTimes: times)
    }
  }

  func partialOutcome(_ message: String?) -> RunOutcome {
    RunOutcome(
      status: .incomplete, message: message, requests: requestRecords().filter { !$0.arrival.isNaN },
      facts: ["mechanism": .string(launcher.mechanism)])
  }

  func buildOutcome(stats: [String: WorkerStats], end: Double, status: RunStatus, message: String?) -> RunOutcome {
    let makespan = seconds(end)
    var links: [LinkRecord] = []
    var devs: [DeviceRecord] = []
    var stageStats: [Int: WorkerStats.Stage] = [:]
    for d in devices {
      guard let s = stats[d] else { continue }
      for l in s.links {
        links.append(
          LinkRecord(
            from: d, to: l.to, bytes: Double(l.counters.bytesSent), messages: Int(l.counters.framesSent),
            busySeconds: l.counters.sendSeconds / dilation, mechanism: launcher.mechanism(from: d, to: l.to)))
      }
      let compute = s.computeSeconds / dilation
      let transfer = s.links.reduce(0.0) { $0 + $1.counters.sendSeconds } / dilation
      devs.append(
        DeviceRecord(
          name: d, peakMemoryBytes: Double(s.peakResidentBytes), computeSeconds: compute, transferSeconds: transfer,
          loadStallSeconds: s.loadStallSeconds / dilation, idleSeconds: max(0, makespan - compute - transfer)))
      for st in s.stages { stageStats[st.index] = st }
    }
    let stages = job.plan.stages.enumerated().map { i, st in
      StageRecord(
        index: i, device: st.device, firstLayer: st.firstLayer, endLayer: st.endLayer,
        offloadedLayers: st.offloadedLayers.count,
        computeSeconds: (stageStats[i]?.computeSeconds ?? 0) / dilation, microBatches: stageStats[i]?.microBatches ?? 0)
    }
    return RunOutcome(
      status: status, message: message, requests: requestRecords(), links: links, devices: devs, stages: stages,
      facts: [
        "mechanism": .string(launcher.mechanism), "dilation": .number(dilation),
        "wall_makespan_s": .number(end - t0),
      ])
  }

  // MARK: Lossless check

  func losslessCheck(_ outcome: inout RunOutcome) throws {
    let reference = try ReferenceTokens.compute(
      job: job, generated: generated, threads: options.threadsPerWorker, cache: options.referenceCache)
    var mismatch: String?
    for r in job.requests {
      let got = generated[r.id] ?? []
      let want = reference[r.id] ?? []
      if got != want {
        let i = zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(got.count, want.count)
        mismatch =
          "request \(r.id) differs at token \(i): split \(i < got.count ? String(got[i]) : "none"), unsplit \(i < want.count ? String(want[i]) : "none")"
        break
      }
    }
    outcome.facts["lossless_checked_requests"] = .number(Double(job.requests.count))
    outcome.facts["lossless"] = .number(mismatch == nil ? 1 : 0)
    if let mismatch {
      outcome.status = .failed
      outcome.message = "lossless check failed: \(mismatch)"
      logger.error("LOSSLESS CHECK FAILED: \(mismatch)")
    }
  }
}
/// Memory this machine can give to new processes (MemAvailable in /proc/meminfo).
enum HostMemory {
  static func availableBytes() -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
      let parts = line.split(separator: " ")
      if parts.count >= 2, let kb = Double(parts[1]) { return kb * 1024 }
    }
    return nil
  }
}
