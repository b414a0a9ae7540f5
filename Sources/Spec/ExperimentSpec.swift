public import Catalog
public import EdgeLabCore
import Foundation

/// An experiment as plain data: what the DSL produces, what `edgelab spec` prints and `edgelab run --spec`
/// reads. Nothing here does I/O or draws random numbers; `validate()` and `expand()` are separate steps.
public struct ExperimentSpec: Codable, Hashable, Sendable {
  /// Identifier used for file names (`results/<name>.h5`, `plots/<name>.gp`): letters, digits, '.', '_', '-'.
  public var name: String
  /// One line for `edgelab list`.
  public var summary: String
  public var model: ModelChoice
  public var devices: [DeviceGroup]
  /// The device that holds the user's input and receives the output; the first device when nil.
  public var source: String?
  public var network: NetworkSpec
  public var workload: WorkloadSpec
  public var algorithms: [AlgorithmChoice]
  /// The objective for algorithms that take one and were not given one.
  public var objective: Objective
  public var sweeps: [SweepAxis]
  public var repetitions: Int
  public var backend: BackendKind
  public var seed: UInt64
  public var calibration: Calibration
  public var execution: ExecutionOptions
  /// How real (loopback) runs emulate the declared devices and network.
  public var emulation: EmulationOptions
  /// Numbers a paper published that this experiment reproduces (compared after every run).
  public var paper: [PaperNumber] = []
  /// The boards inventory (JSON: each board's SSH address, user, key, the device it stands for) that the
  /// `boards` backend runs on; a path relative to the working directory.
  public var inventory: String?
  /// Edge–cloud cooperation beyond splitting: the edge device and model, and the questions (with `strategies`).
  public var collaboration: CollaborationSpec?
  /// Ways of cooperating compared beside `algorithms`: speculative decoding and query routing.
  public var strategies: [StrategyChoice] = []

  public init(
    name: String, summary: String = "", model: ModelChoice, devices: [DeviceGroup], source: String? = nil,
    network: NetworkSpec = NetworkSpec(), workload: WorkloadSpec = WorkloadSpec(),
    algorithms: [AlgorithmChoice] = [], objective: Objective = .latency, sweeps: [SweepAxis] = [],
    repetitions: Int = 1, backend: BackendKind = .simulated, seed: UInt64 = 1,
    calibration: Calibration = Calibration(), execution: ExecutionOptions = ExecutionOptions(),
    emulation: EmulationOptions = EmulationOptions()
  ) {
    self.name = name
    self.summary = summary
    self.model = model
    self.devices = devices
    self.source = source
    self.network = network
    self.workload = workload
    self.algorithms = algorithms
    self.objective = objective
    self.sweeps = sweeps
    self.repetitions = repetitions
    self.backend = backend
    self.seed = seed
    self.calibration = calibration
    self.execution = execution
    self.emulation = emulation
  }

  enum CodingKeys: String, CodingKey {
    case name, summary, model, devices, source, network, workload, algorithms, objective, sweeps, repetitions
    case backend, seed, calibration, execution, emulation, paper, inventory, collaboration, strategies
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    name = try c.decode(String.self, forKey: .name)
    summary = try c.decodeIfPresent(String.self, forKey: .summary) ?? ""
    model = try c.decode(ModelChoice.self, forKey: .model)
    devices = try c.decode([DeviceGroup].self, forKey: .devices)
    source = try c.decodeIfPresent(String.self, forKey: .source)
    network = try c.decodeIfPresent(NetworkSpec.self, forKey: .network) ?? NetworkSpec()
    workload = try c.decodeIfPresent(WorkloadSpec.self, forKey: .workload) ?? WorkloadSpec()
    algorithms = try c.decodeIfPresent([AlgorithmChoice].self, forKey: .algorithms) ?? []
    objective = try c.decodeIfPresent(Objective.self, forKey: .objective) ?? .latency
    sweeps = try c.decodeIfPresent([SweepAxis].self, forKey: .sweeps) ?? []
    repetitions = try c.decodeIfPresent(Int.self, forKey: .repetitions) ?? 1
    backend = try c.decodeIfPresent(BackendKind.self, forKey: .backend) ?? .simulated
    seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 1
    calibration = try c.decodeIfPresent(Calibration.self, forKey: .calibration) ?? Calibration()
    execution = try c.decodeIfPresent(ExecutionOptions.self, forKey: .execution) ?? ExecutionOptions()
    emulation = try c.decodeIfPresent(EmulationOptions.self, forKey: .emulation) ?? EmulationOptions()
    paper = try c.decodeIfPresent([PaperNumber].self, forKey: .paper) ?? []
    inventory = try c.decodeIfPresent(String.self, forKey: .inventory)
    collaboration = try c.decodeIfPresent(CollaborationSpec.self, forKey: .collaboration)
    strategies = try c.decodeIfPresent([StrategyChoice].self, forKey: .strategies) ?? []
  }
}

/// Where runs execute. All three write the same results schema.
public enum BackendKind: String, Codable, Hashable, Sendable, CaseIterable {
  /// The calibrated simulator (virtual time; any model and device set).
  case simulated
  /// Real worker processes on this machine, real TCP between stages (optionally emulated links).
  case loopback
  /// Real boards reached over the network.
  case boards
}

// MARK: - Model

/// The model to split: a preset by name, or a custom configuration.
public struct ModelChoice: Codable, Hashable, Sendable {
  /// A `ModelPreset` name; when set, `config` is derived from it.
  public var preset: String?
  /// A custom architecture (ignored when `preset` is set).
  public var config: ModelConfig?
  /// Display name of a custom model.
  public var name: String?
  public var precision: Precision
  /// A local Hugging Face checkpoint directory for real backends; synthetic weights when nil.
  public var checkpoint: String?
  /// Seed of the synthetic weights (real backends without a checkpoint).
  public var weightsSeed: UInt64?
  /// Whose rounding real runs reproduce: exact FP32 (Transformers') or llama.cpp's.
  public var arithmetic: Arithmetic = .exact

  public init(
    preset: String, precision: Precision = .fp32, checkpoint: String? = nil, weightsSeed: UInt64? = nil,
    arithmetic: Arithmetic = .exact
  ) {
    self.preset = preset
    self.precision = precision
    self.checkpoint = checkpoint
    self.weightsSeed = weightsSeed
    self.arithmetic = arithmetic
  }

  public init(name: String, config: ModelConfig, precision: Precision = .fp32, checkpoint: String? = nil) {
    self.name = name
    self.config = config
    self.precision = precision
    self.checkpoint = checkpoint
  }

  enum CodingKeys: String, CodingKey {
    case preset, config, name, precision, checkpoint, arithmetic
    case weightsSeed = "weights_seed"
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    preset = try c.decodeIfPresent(String.self, forKey: .preset)
    config = try c.decodeIfPresent(ModelConfig.self, forKey: .config)
    name = try c.decodeIfPresent(String.self, forKey: .name)
    precision = try c.decodeIfPresent(Precision.self, forKey: .precision) ?? .fp32
    checkpoint = try c.decodeIfPresent(String.self, forKey: .checkpoint)
    weightsSeed = try c.decodeIfPresent(UInt64.self, forKey: .weightsSeed)
    arithmetic = try c.decodeIfPresent(Arithmetic.self, forKey: .arithmetic) ?? .exact
  }

  public var displayName: String { preset ?? name ?? "custom" }

  /// The architecture, from the preset or the custom configuration.
  public func resolvedConfig() throws(SpecError) -> ModelConfig {
    if let preset {
      if preset.isEmpty {
        throw SpecError(field: "model", "declare a model (Model(...) in an experiment file, 'model' in JSON)")
      }
      guard let p = ModelPreset.named(preset) else {
        throw SpecError(
          field: "model.preset",
          "unknown model preset '\(preset)'; known: \(ModelPreset.all.map(\.name).joined(separator: ", "))")
      }
      return p.config
    }
    guard let config else {
      throw SpecError(
        field: "model", "give 'preset', 'config', or a 'checkpoint' (the command line reads its config.json)")
    }
    return config
  }
}

// MARK: - Devices

/// One or more identical devices. A group of `count` > 1 named "agx" yields devices agx0, agx1, …
public struct DeviceGroup: Codable, Hashable, Sendable {
  public var name: String
  public var count: Int
  /// A `DevicePreset` name; when set, the hardware facts come from it.
  public var preset: String?
  /// Custom hardware facts (ignored when `preset` is set).
  public var profile: DeviceProfile?
  /// Overrides the memory budget available to the model.
  public var usableMemory: Bytes?
  /// A profile measured on this device itself (`edgelab profile` on the board): its times, unscaled, replace
  /// the roofline and the experiment's host profile for these devices.
  public var measuredProfile: String?

  public init(
    name: String, count: Int = 1, preset: String, usableMemory: Bytes? = nil, measuredProfile: String? = nil
  ) {
    self.name = name
    self.count = count
    self.preset = preset
    self.usableMemory = usableMemory
    self.measuredProfile = measuredProfile
  }

  public init(
    name: String, count: Int = 1, profile: DeviceProfile, usableMemory: Bytes? = nil, measuredProfile: String? = nil
  ) {
    self.name = name
    self.count = count
    self.profile = profile
    self.usableMemory = usableMemory
    self.measuredProfile = measuredProfile
  }

  enum CodingKeys: String, CodingKey {
    case name, count, preset, profile
    case usableMemory = "usable_memory"
    case measuredProfile = "measured_profile"
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    name = try c.decode(String.self, forKey: .name)
    count = try c.decodeIfPresent(Int.self, forKey: .count) ?? 1
    preset = try c.decodeIfPresent(String.self, forKey: .preset)
    profile = try c.decodeIfPresent(DeviceProfile.self, forKey: .profile)
    usableMemory = try c.decodeIfPresent(Bytes.self, forKey: .usableMemory)
    measuredProfile = try c.decodeIfPresent(String.self, forKey: .measuredProfile)
  }

  /// Names of the devices in this group.
  public var instanceNames: [String] {
    count == 1 ? [name] : (0..<max(count, 0)).map { "\(name)\($0)" }
  }

  public func resolvedProfile() throws(SpecError) -> DeviceProfile {
    var p: DeviceProfile
    if let preset {
      guard let d = DevicePreset.named(preset) else {
        throw SpecError(
          field: "devices[\(name)].preset",
          "unknown device preset '\(preset)'; known: \(DevicePreset.all.map(\.name).joined(separator: ", "))")
      }
      p = d.profile
    } else if let profile {
      p = profile
    } else {
      throw SpecError(field: "devices[\(name)]", "give either 'preset' or 'profile'")
    }
    if let usableMemory { p.usableMemory = usableMemory }
    return p
  }
}

/// A single device of the experiment, with its group's hardware facts.
public struct ResolvedDevice: Hashable, Sendable {
  public var name: String
  public var group: String
  public var profile: DeviceProfile
}

// MARK: - Algorithms, sweeps, options

/// A partition algorithm to compare, by registered name, with parameters.
public struct AlgorithmChoice: Codable, Hashable, Sendable {
  public var name: String
  /// How runs of this choice are labelled in results and figures; the name (and objective) by default.
  public var label: String?
  public var objective: Objective?
  public var parameters: [String: JSONValue]

  public init(_ name: String, label: String? = nil, objective: Objective? = nil, parameters: [String: JSONValue] = [:])
  {
    self.name = name
    self.label = label
    self.objective = objective
    self.parameters = parameters
  }

  enum CodingKeys: String, CodingKey { case name, label, objective, parameters }
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    name = try c.decode(String.self, forKey: .name)
    label = try c.decodeIfPresent(String.self, forKey: .label)
    objective = try c.decodeIfPresent(Objective.self, forKey: .objective)
    parameters = try c.decodeIfPresent([String: JSONValue].self, forKey: .parameters) ?? [:]
  }

  public var displayLabel: String { label ?? name }
}

/// One axis of a Cartesian sweep: a JSON path into the experiment and the values it takes.
public struct SweepAxis: Codable, Hashable, Sendable {
  /// A path such as `network.link.bandwidth`, `devices[agx].count`, `network.overrides[wan].bandwidth`.
  public var path: String
  public var values: [JSONValue]
  /// Column name in results and exports; the path's last component by default.
  public var label: String?
  /// A name for each value, recorded and printed instead of the value (e.g. "sporadic" for an arrival process).
  public var names: [String]?

  public init(path: String, values: [JSONValue], label: String? = nil, names: [String]? = nil) {
    self.path = path
    self.values = values
    self.label = label
    self.names = names
  }

  /// What results record for value `i`: its name, else the value.
  public func recorded(_ i: Int) -> JSONValue {
    if let names, i < names.count { return .string(names[i]) }
    return values[i]
  }

  public var displayLabel: String { label ?? ((try? JSONPath(path))?.leaf ?? path) }
}

/// Cost-model calibration of the simulated backend (named efficiency factors of the roofline), or a measured
/// profile of a host (`edgelab profile`) that replaces the roofline for the devices it covers.
public struct Calibration: Codable, Hashable, Sendable {
  /// Fraction of peak FLOP/s reached by large matrix products (prefill). Not published for Jetsons: 0.5 is an
  /// assumption; calibrate with measured profiles.
  public var computeEfficiency: Double
  /// Fraction of the memory bandwidth reached while streaming weights (decode). 0.94 reproduces EdgeShard's
  /// measured ≈140 ms/token for Llama-2-7B FP32 on an AGX Orin (26.95 GB / 204.8 GB/s = 132 ms at 100%).
  public var memoryEfficiency: Double
  /// Fixed cost per layer and step (kernel launches, synchronisation).
  public var layerOverhead: Seconds
  /// A host profile (JSON written by `edgelab profile`; a path relative to the working directory) whose measured
  /// per-layer times and message costs replace the roofline for every device without a profile of its own.
  public var profile: String?
  /// How the profiled host's times carry over to the declared devices.
  public var profileScaling: ProfileScaling
  /// Fixed one-way cost of every message between two devices besides its transmission and latency (the
  /// framework's serialisation, copies and wake-ups), in device seconds: the per-hop overhead of a roofline
  /// device. 0 unless fitted.
  public var messageOverhead: Seconds
  /// Factors of particular device groups (by group name), replacing the ones above for those devices: a
  /// reproduction fits each device class of a paper's testbed to the paper's own baseline numbers.
  public var devices: [String: DeviceCalibration]
  /// Per device (by name): how its own worker process computes relative to the profile it is bound to, as a
  /// real run with `execution.calibrate_workers` measured it (facts `worker_speed.DEVICE.decode`, `.prefill`);
  /// the device's profiled times are multiplied by these ratios. Devices without an entry take the profile's.
  public var workerSpeeds: [String: WorkerSpeed]

  public enum ProfileScaling: String, Codable, Hashable, Sendable, CaseIterable {
    /// Every device is this host: its measured times as they are (plain worker processes on the host), and
    /// workers decoding at once share its memory bandwidth as the profile measured it.
    case host
    /// Each device runs at its own speed: the host's times × host decode bandwidth / (the device's memory
    /// bandwidth × memory efficiency) — the speed-up the emulation's time-dilation plan gives the device.
    case bandwidth
  }

  public init(
    computeEfficiency: Double = 0.5, memoryEfficiency: Double = 0.94, layerOverhead: Seconds = .zero,
    profile: String? = nil, profileScaling: ProfileScaling = .bandwidth, messageOverhead: Seconds = .zero,
    devices: [String: DeviceCalibration] = [:], workerSpeeds: [String: WorkerSpeed] = [:]
  ) {
    self.workerSpeeds = workerSpeeds
    self.computeEfficiency = computeEfficiency
    self.memoryEfficiency = memoryEfficiency
    self.layerOverhead = layerOverhead
    self.profile = profile
    self.profileScaling = profileScaling
    self.messageOverhead = messageOverhead
    self.devices = devices
  }

  /// The factors of device group `group`: its own where set, the experiment's otherwise.
  public func forGroup(_ group: String) -> Calibration {
    guard let d = devices[group] else { return self }
    var c = self
    c.computeEfficiency = d.computeEfficiency ?? computeEfficiency
    c.memoryEfficiency = d.memoryEfficiency ?? memoryEfficiency
    c.layerOverhead = d.layerOverhead ?? layerOverhead
    c.messageOverhead = d.messageOverhead ?? messageOverhead
    c.devices = [:]
    return c
  }

  enum CodingKeys: String, CodingKey {
    case computeEfficiency = "compute_efficiency"
    case memoryEfficiency = "memory_efficiency"
    case layerOverhead = "layer_overhead"
    case profile
    case profileScaling = "profile_scaling"
    case messageOverhead = "message_overhead"
    case devices
    case workerSpeeds = "worker_speeds"
  }
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = Calibration()
    workerSpeeds = try c.decodeIfPresent([String: WorkerSpeed].self, forKey: .workerSpeeds) ?? [:]
    messageOverhead = try c.decodeIfPresent(Seconds.self, forKey: .messageOverhead) ?? d.messageOverhead
    devices = try c.decodeIfPresent([String: DeviceCalibration].self, forKey: .devices) ?? [:]
    computeEfficiency = try c.decodeIfPresent(Double.self, forKey: .computeEfficiency) ?? d.computeEfficiency
    memoryEfficiency = try c.decodeIfPresent(Double.self, forKey: .memoryEfficiency) ?? d.memoryEfficiency
    layerOverhead = try c.decodeIfPresent(Seconds.self, forKey: .layerOverhead) ?? d.layerOverhead
    profile = try c.decodeIfPresent(String.self, forKey: .profile)
    profileScaling = try c.decodeIfPresent(ProfileScaling.self, forKey: .profileScaling) ?? d.profileScaling
  }
}

/// A worker's measured times ÷ its profile's, for decode steps and for prompts: above 1 the worker computes
/// more slowly than the profile says.
///
/// Where the worker timed several sizes of a phase (decode steps of one sequence and of the run's batch; the
/// median prompt and a speculative run's verification), the ratio of each is kept: a process's ratio against a
/// profile is not the same at every size (12% apart between one sequence and four here), so a step takes the
/// ratio of the sizes it lies between, interpolated in log size, and that of the nearest beyond them.
public struct WorkerSpeed: Codable, Hashable, Sendable {
  /// The ratio measured at one size of work: decode steps of `size` sequences, or prompts of `size` tokens.
  public struct Point: Codable, Hashable, Sendable {
    public var size: Int
    public var ratio: Double

    public init(size: Int, ratio: Double) {
      self.size = size
      self.ratio = ratio
    }
  }

  /// Over every decode step timed (their summed times ÷ the profile's).
  public var decode: Double
  /// Over every prompt timed.
  public var prefill: Double
  /// Per batch size, where more than one was timed; nil: `decode` at every size.
  public var decodePoints: [Point]?
  /// Per prompt length, where more than one was timed; nil: `prefill` at every length.
  public var prefillPoints: [Point]?

  public init(decode: Double, prefill: Double, decodePoints: [Point]? = nil, prefillPoints: [Point]? = nil) {
    self.decode = decode
    self.prefill = prefill
    self.decodePoints = decodePoints
    self.prefillPoints = prefillPoints
  }

  enum CodingKeys: String, CodingKey {
    case decode, prefill
    case decodePoints = "decode_points"
    case prefillPoints = "prefill_points"
  }

  /// The ratio for a phase over every size.
  public func ratio(prefill isPrefill: Bool) -> Double { isPrefill ? prefill : decode }

  /// The ratio for a step of `size` (sequences for decode, tokens for a prompt).
  public func ratio(prefill isPrefill: Bool, size: Int) -> Double {
    // The nearest points at or below and at or above `size`, in one pass (the simulator asks for every layer of
    // every step); points a spec's validation refuses (no size, a ratio that is not a number) are passed over.
    var below: Point?
    var above: Point?
    for p in (isPrefill ? prefillPoints : decodePoints) ?? [] where p.size >= 1 && p.ratio.isFinite {
      if p.size <= size, p.size > below?.size ?? 0 { below = p }
      if p.size >= size, p.size < above?.size ?? .max { above = p }
    }
    switch (below, above) {
    case (nil, nil): return ratio(prefill: isPrefill)
    case (let a?, nil): return a.ratio
    case (nil, let b?): return b.ratio
    case (let a?, let b?):
      guard b.size > a.size else { return a.ratio }
      let t = log(Double(size) / Double(a.size)) / log(Double(b.size) / Double(a.size))
      return a.ratio + (b.ratio - a.ratio) * t
    }
  }

  /// This speed measured against a time model that already applied `given`: the ratios against the profile.
  public func compounded(with given: WorkerSpeed) -> WorkerSpeed {
    func points(_ p: [Point]?, prefill: Bool) -> [Point]? {
      p?.map { Point(size: $0.size, ratio: $0.ratio * given.ratio(prefill: prefill, size: $0.size)) }
    }
    return WorkerSpeed(
      decode: decode * given.decode, prefill: prefill * given.prefill,
      decodePoints: points(decodePoints, prefill: false), prefillPoints: points(prefillPoints, prefill: true))
  }

  /// "decode ×0.985 (batch 1 ×0.98, 4 ×1.11), prompts ×1.05 (tokens 5 ×1.13, 32 ×1.05)", for logs.
  public var summary: String {
    func points(_ p: [Point]?, _ unit: String) -> String {
      guard let p, !p.isEmpty else { return "" }
      let each = p.enumerated().map { i, p in
        (i == 0 ? "\(unit) " : "") + "\(p.size) ×\(String(format: p.ratio, digits: 3))"
      }
      return " (" + each.joined(separator: ", ") + ")"
    }
    return "decode ×\(String(format: decode, digits: 3))" + points(decodePoints, "batch")
      + ", prompts ×\(String(format: prefill, digits: 3))" + points(prefillPoints, "tokens")
  }

  /// Ratios outside this range are refused: they would be a broken measurement, not a slower process.
  public static let bounds = 0.05...20.0
  /// The most points a phase may list, and the largest size a point may name.
  public static let maxPoints = 16
  public static let maxPointSize = 1 << 20

  /// The run facts a real run records device `device`'s speeds as (`execution.calibrate_workers`), measured
  /// before the workload or, with `after`, after it.
  public static func factNames(device: String, after: Bool) -> (decode: String, prefill: String) {
    let suffix = after ? ".after" : ""
    return ("worker_speed.\(device).decode" + suffix, "worker_speed.\(device).prefill" + suffix)
  }

  /// The fact a point is recorded as: `worker_speed.DEVICE.decode.batch_4`, `worker_speed.DEVICE.prefill.tokens_5`
  /// (`.after` appended for the second calibration).
  static func pointFactName(device: String, prefill: Bool, size: Int, after: Bool) -> String {
    "worker_speed.\(device)." + (prefill ? "prefill.tokens_" : "decode.batch_") + "\(size)" + (after ? ".after" : "")
  }

  /// The facts this speed is recorded as.
  public func facts(device: String, after: Bool) -> [String: Double] {
    let names = Self.factNames(device: device, after: after)
    var out = [names.decode: decode, names.prefill: prefill]
    for (prefill, points) in [(false, decodePoints), (true, prefillPoints)] {
      for p in points ?? [] {
        out[Self.pointFactName(device: device, prefill: prefill, size: p.size, after: after)] = p.ratio
      }
    }
    return out
  }

  /// Device `device`'s speed from a run's facts (`facts(device:after:)`); nil unless both phases' ratios are
  /// there. Points whose names do not parse are ignored.
  public init?(device: String, after: Bool, facts: [String: Double]) {
    let names = Self.factNames(device: device, after: after)
    guard let decode = facts[names.decode], let prefill = facts[names.prefill] else { return nil }
    self.init(decode: decode, prefill: prefill)
    let suffix = after ? ".after" : ""
    for (isPrefill, stem) in [(false, "decode.batch_"), (true, "prefill.tokens_")] {
      let prefix = "worker_speed.\(device)." + stem
      let points = facts.compactMap { name, ratio -> Point? in
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        let middle = name.dropFirst(prefix.count).dropLast(suffix.count)
        guard let size = Int(middle) else { return nil }
        return Point(size: size, ratio: ratio)
      }.sorted { $0.size < $1.size }
      if points.count > 1 {
        if isPrefill { prefillPoints = points } else { decodePoints = points }
      }
    }
  }
}

/// Calibration factors of one device group; nil fields keep the experiment's.
public struct DeviceCalibration: Codable, Hashable, Sendable {
  public var computeEfficiency: Double?
  public var memoryEfficiency: Double?
  public var layerOverhead: Seconds?
  public var messageOverhead: Seconds?

  public init(
    computeEfficiency: Double? = nil, memoryEfficiency: Double? = nil, layerOverhead: Seconds? = nil,
    messageOverhead: Seconds? = nil
  ) {
    self.computeEfficiency = computeEfficiency
    self.memoryEfficiency = memoryEfficiency
    self.layerOverhead = layerOverhead
    self.messageOverhead = messageOverhead
  }

  enum CodingKeys: String, CodingKey {
    case computeEfficiency = "compute_efficiency"
    case memoryEfficiency = "memory_efficiency"
    case layerOverhead = "layer_overhead"
    case messageOverhead = "message_overhead"
  }
}

/// How requests are batched and pipelined (used by every backend).
public struct ExecutionOptions: Codable, Hashable, Sendable {
  /// Most decode steps of different requests that share one micro-batch.
  public var maxBatch: Int
  /// Most micro-batches in flight in the pipeline; the plan's own count when nil (1 for latency plans, about
  /// one per stage for throughput plans).
  public var microBatches: Int?
  /// Number format of activations on the wire.
  public var wirePrecision: Precision
  /// Whether each generated token travels from the last stage back to the source (autoregressive decoding).
  public var returnToSource: Bool
  /// Real runs: device seconds without any micro-batch moving anywhere in the pipeline, while requests are
  /// outstanding, before the run fails naming the stage or link that holds the work. Nil: derived from the
  /// plan (50 × the slowest stage's predicted prefill of the longest prompt, at least 60 s).
  public var progressTimeout: Seconds?
  /// What happens when the admitted requests' KV caches would outgrow a device's memory.
  public var memoryAdmission: MemoryAdmission
  /// Record every stage computation, transfer and load of each run (for `edgelab trace`).
  public var recordEvents: Bool
  /// Real runs: each worker that computes at its own speed (not paced to an emulated device, no layers read
  /// from storage) times its own layers — decode steps and prompts of the workload's sizes, for about a second,
  /// each pass after reading through as many bytes as the other devices' weights (the caches as the run leaves
  /// them) — once its weights are loaded and again after the last request, and the run records its times ÷ its
  /// profile's (facts `worker_speed.DEVICE.decode` and `.prefill`, with `.after` for the second). Nothing of the
  /// workload is timed.
  public var calibrateWorkers: Bool
  /// When micro-batches enter the pipeline (EdgeShard's two pipeline schedules).
  public var schedule: PipelineSchedule
  /// What the partitioner counts as a layer's memory.
  public var planMemory: PlanMemory

  public enum PipelineSchedule: String, Codable, Hashable, Sendable, CaseIterable {
    /// A micro-batch's next step enters as soon as its tokens are back ("No-Bubbles").
    case noBubbles = "no-bubbles"
    /// Rounds: the next micro-batches enter only when every micro-batch of the round is back, so the pipeline
    /// drains once per token ("Bubbles").
    case bubbles
  }

  public enum PlanMemory: String, Codable, Hashable, Sendable, CaseIterable {
    /// Weights plus the KV cache the workload can reach (the default; what a run needs).
    case weightsAndKV = "weights-and-kv"
    /// Weights only, as papers that do not count the KV cache plan (the run still needs the cache: with
    /// `memory_admission: wait` requests then wait for room).
    case weightsOnly = "weights-only"
  }

  public enum MemoryAdmission: String, Codable, Hashable, Sendable, CaseIterable {
    /// A request waits (in arrival order) until the context it can reach fits beside those admitted.
    case wait
    /// Requests are admitted as they arrive; the run fails naming the device and time when its KV cache no
    /// longer fits.
    case fail
  }

  public init(
    maxBatch: Int = 8, microBatches: Int? = nil, wirePrecision: Precision = .fp32, returnToSource: Bool = true,
    progressTimeout: Seconds? = nil, memoryAdmission: MemoryAdmission = .wait, recordEvents: Bool = false,
    schedule: PipelineSchedule = .noBubbles, planMemory: PlanMemory = .weightsAndKV, calibrateWorkers: Bool = false
  ) {
    self.calibrateWorkers = calibrateWorkers
    self.schedule = schedule
    self.planMemory = planMemory
    self.maxBatch = maxBatch
    self.microBatches = microBatches
    self.wirePrecision = wirePrecision
    self.returnToSource = returnToSource
    self.progressTimeout = progressTimeout
    self.memoryAdmission = memoryAdmission
    self.recordEvents = recordEvents
  }

  enum CodingKeys: String, CodingKey {
    case maxBatch = "max_batch"
    case microBatches = "micro_batches"
    case wirePrecision = "wire_precision"
    case returnToSource = "return_to_source"
    case progressTimeout = "progress_timeout"
    case memoryAdmission = "memory_admission"
    case recordEvents = "record_events"
    case calibrateWorkers = "calibrate_workers"
    case schedule
    case planMemory = "plan_memory"
  }
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = ExecutionOptions()
    maxBatch = try c.decodeIfPresent(Int.self, forKey: .maxBatch) ?? d.maxBatch
    microBatches = try c.decodeIfPresent(Int.self, forKey: .microBatches)
    wirePrecision = try c.decodeIfPresent(Precision.self, forKey: .wirePrecision) ?? d.wirePrecision
    returnToSource = try c.decodeIfPresent(Bool.self, forKey: .returnToSource) ?? d.returnToSource
    progressTimeout = try c.decodeIfPresent(Seconds.self, forKey: .progressTimeout)
    memoryAdmission = try c.decodeIfPresent(MemoryAdmission.self, forKey: .memoryAdmission) ?? d.memoryAdmission
    recordEvents = try c.decodeIfPresent(Bool.self, forKey: .recordEvents) ?? d.recordEvents
    calibrateWorkers = try c.decodeIfPresent(Bool.self, forKey: .calibrateWorkers) ?? d.calibrateWorkers
    schedule = try c.decodeIfPresent(PipelineSchedule.self, forKey: .schedule) ?? d.schedule
    planMemory = try c.decodeIfPresent(PlanMemory.self, forKey: .planMemory) ?? d.planMemory
  }
}

/// How a real run emulates the declared hardware on this machine.
public struct EmulationOptions: Codable, Hashable, Sendable {
  public enum Mode: String, Codable, Hashable, Sendable, CaseIterable {
    /// `namespaces` when running as root, otherwise an error that suggests `userspace`.
    case auto
    /// Plain processes over 127.0.0.1: no shaping, no CPU or memory limits.
    case none
    /// A network namespace per device on a bridge, kernel shaping (tc, nftables), cgroup CPU and memory limits,
    /// time dilation. Needs root.
    case namespaces
    /// Shaping inside the transport only (rate pacing and delay at the sender and receiver); no root needed.
    case userspace
  }
  public var mode: Mode
  /// Time dilation factor D ≥ 1 (wall time = D × device time); computed from a profile of this host when nil.
  public var dilation: Double?
  /// Decode bandwidth of one core of this host (the host profile); measured when nil.
  public var hostBandwidth: Bandwidth?
  /// Prefill compute rate of one core of this host (the host profile's `prefill_flops`); measured when nil.
  public var hostPrefillFlops: FlopRate?
  /// Fraction of one core kept for the coordinator when fitting the workers' CPU quotas.
  public var coordinatorShare: Double
  /// Memory added to each worker's cgroup limit for the process itself (runtime, buffers).
  public var memoryHeadroom: Bytes

  public init(
    mode: Mode = .auto, dilation: Double? = nil, hostBandwidth: Bandwidth? = nil, coordinatorShare: Double = 0.25,
    memoryHeadroom: Bytes = .MB(256)
  ) {
    self.mode = mode
    self.dilation = dilation
    self.hostBandwidth = hostBandwidth
    self.coordinatorShare = coordinatorShare
    self.memoryHeadroom = memoryHeadroom
  }

  enum CodingKeys: String, CodingKey {
    case mode, dilation
    case hostBandwidth = "host_bandwidth"
    case hostPrefillFlops = "host_prefill_flops"
    case coordinatorShare = "coordinator_share"
    case memoryHeadroom = "memory_headroom"
  }
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = EmulationOptions()
    mode = try c.decodeIfPresent(Mode.self, forKey: .mode) ?? d.mode
    dilation = try c.decodeIfPresent(Double.self, forKey: .dilation)
    hostBandwidth = try c.decodeIfPresent(Bandwidth.self, forKey: .hostBandwidth)
    hostPrefillFlops = try c.decodeIfPresent(FlopRate.self, forKey: .hostPrefillFlops)
    coordinatorShare = try c.decodeIfPresent(Double.self, forKey: .coordinatorShare) ?? d.coordinatorShare
    memoryHeadroom = try c.decodeIfPresent(Bytes.self, forKey: .memoryHeadroom) ?? d.memoryHeadroom
  }
}
