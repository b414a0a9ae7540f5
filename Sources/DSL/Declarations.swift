// swift-format-ignore-file: AlwaysUseLowerCamelCase

// (The DSL reads as declarations, units as their symbols, presets as model names.)
public import Catalog
public import EdgeLabCore
public import Spec

/// The model: a preset and a weight precision; optionally a local checkpoint for real backends.
public struct Model: ExperimentComponent {
  public var choice: ModelChoice
  /// - Parameter arithmetic: whose rounding real runs reproduce (`.llamaCpp` for llama.cpp's, e.g. with a GGUF
  ///   checkpoint).
  public init(
    _ preset: ModelPreset, precision: Precision = .fp32, checkpoint: String? = nil, weightsSeed: UInt64? = nil,
    arithmetic: Arithmetic = .exact
  ) {
    choice = ModelChoice(
      preset: preset.name, precision: precision, checkpoint: checkpoint, weightsSeed: weightsSeed,
      arithmetic: arithmetic)
  }
  /// A custom architecture.
  public init(name: String, config: ModelConfig, precision: Precision = .fp32, checkpoint: String? = nil) {
    choice = ModelChoice(name: name, config: config, precision: precision, checkpoint: checkpoint)
  }
  public var parts: [ExperimentPart] { [.model(choice)] }
}

/// One device, or `count` identical ones (named name0, name1, …).
public struct Device: ExperimentComponent {
  public var group: DeviceGroup
  var isSource = false

  public init(
    _ name: String, _ preset: DevicePreset, count: Int = 1, usableMemory: Bytes? = nil, measuredProfile: String? = nil
  ) {
    group = DeviceGroup(
      name: name, count: count, preset: preset.name, usableMemory: usableMemory, measuredProfile: measuredProfile)
  }
  /// A custom device.
  public init(_ name: String, profile: DeviceProfile, count: Int = 1) {
    group = DeviceGroup(name: name, count: count, profile: profile)
  }
  /// Marks this device (the first of the group) as the source, which holds the user's input.
  public func source() -> Device {
    var d = self
    d.isSource = true
    return d
  }
  public var parts: [ExperimentPart] {
    isSource ? [.device(group), .source(group.instanceNames.first ?? group.name)] : [.device(group)]
  }
}

/// The source device by name (the first device when not declared).
public func Source(_ name: String) -> ExperimentPart { .source(name) }

/// The network: the default link between every pair of devices, and overrides inside the block.
public struct Network: ExperimentComponent {
  var link: LinkSpec
  var overrides: [ExperimentPart]
  public init(
    bandwidth: Bandwidth = .gbit(1), latency: Seconds = .zero, jitter: Seconds = .zero, loss: Double = 0,
    @ExperimentBuilder _ overrides: () -> [ExperimentPart] = { [] }
  ) {
    link = LinkSpec(bandwidth: bandwidth, latency: latency, jitter: jitter, loss: loss)
    self.overrides = overrides()
  }
  public var parts: [ExperimentPart] { [.link(link)] + overrides }
}

/// Link properties between two sets of devices or groups (both directions unless `oneWay`).
public struct Link: ExperimentComponent {
  public var override: LinkOverride
  public init(
    _ name: String? = nil, from: [String], to: [String], oneWay: Bool = false, bandwidth: Bandwidth? = nil,
    latency: Seconds? = nil, jitter: Seconds? = nil, loss: Double? = nil, trace: BandwidthTrace? = nil,
    disconnected: Bool = false
  ) {
    override = LinkOverride(
      name: name, from: from, to: to, oneWay: oneWay, bandwidth: bandwidth, latency: latency,
      jitter: jitter, loss: loss, trace: trace, disconnected: disconnected)
  }
  public var parts: [ExperimentPart] { [.linkOverride(override)] }
}

/// A shared medium: transfers between the two sets of devices (both directions unless `oneWay`) are served one
/// at a time at `bandwidth`, on top of their own links (e.g. every edge device's uplink through one router).
public struct Segment: ExperimentComponent {
  public var segment: SharedSegment
  public init(_ name: String, from: [String], to: [String], bandwidth: Bandwidth, oneWay: Bool = false) {
    segment = SharedSegment(name, from: from, to: to, bandwidth: bandwidth, oneWay: oneWay)
  }
  public var parts: [ExperimentPart] { [.segment(segment)] }
}

/// The requests.
public struct Workload: ExperimentComponent {
  public var spec: WorkloadSpec
  public init(
    requests: Int, prompt: LengthDistribution, output: LengthDistribution, arrival: ArrivalProcess = .closedLoop()
  ) {
    spec = WorkloadSpec(arrival: arrival, requests: requests, promptTokens: prompt, outputTokens: output)
  }
  /// Real prompts from a file (one per line, or JSON Lines), tokenized with the model's tokenizer; with `chat`,
  /// each a user turn in the model's chat template.
  public init(
    requests: Int, prompts path: String, chat: Bool = false, output: LengthDistribution,
    arrival: ArrivalProcess = .closedLoop()
  ) {
    spec = WorkloadSpec(
      arrival: arrival, requests: requests, outputTokens: output, prompts: PromptFile(path: path, chat: chat))
  }
  public var parts: [ExperimentPart] { [.workload(spec)] }
}

extension LengthDistribution: ExpressibleByIntegerLiteral {
  public init(integerLiteral value: Int) { self = .fixed(value) }
}

/// A partition algorithm to compare.
public struct Algorithm: ExperimentComponent {
  public var choice: AlgorithmChoice
  public init(
    _ name: String, label: String? = nil, objective: Objective? = nil, _ parameters: [String: JSONValue] = [:]
  ) {
    choice = AlgorithmChoice(name, label: label, objective: objective, parameters: parameters)
  }
  public var parts: [ExperimentPart] { [.algorithm(choice)] }
}

/// The default objective for algorithms that take one.
public func Optimize(_ objective: Objective) -> ExperimentPart { .objective(objective) }
public func Repetitions(_ n: Int) -> ExperimentPart { .repetitions(n) }
public func Backend(_ kind: BackendKind) -> ExperimentPart { .backend(kind) }
/// Real boards listed in an inventory file (`Backend(.boards, inventory: "lab.json")`; see README, "Run on your
/// Jetsons").
public func Backend(_ kind: BackendKind, inventory: String) -> [ExperimentPart] {
  [.backend(kind), .inventory(inventory)]
}
public func Seed(_ seed: UInt64) -> ExperimentPart { .seed(seed) }
public func Calibrate(_ calibration: Calibration) -> ExperimentPart { .calibration(calibration) }
/// Per-layer times from a host profile (`edgelab profile --out FILE`) instead of the roofline.
public func Calibrate(profile: String, scaling: Calibration.ProfileScaling = .bandwidth) -> ExperimentPart {
  .calibration(Calibration(profile: profile, profileScaling: scaling))
}
public func Execution(_ options: ExecutionOptions) -> ExperimentPart { .execution(options) }
/// A number the paper published that this experiment reproduces: compared with the lab's after every run.
public func Paper(
  _ claim: String, _ metric: PaperNumber.Metric, of algorithm: String, over baseline: String? = nil,
  at: [String: String] = [:], value: Double, upTo high: Double? = nil, best: Bool = false
) -> ExperimentPart {
  .paper(
    PaperNumber(
      claim, metric: metric, algorithm: algorithm, relativeTo: baseline, at: at, value: value, high: high, best: best))
}
/// How real runs emulate the declared devices and network (`.none`, `.namespaces`, `.userspace`, `.auto`).
public func Emulation(_ mode: EmulationOptions.Mode, dilation: Double? = nil, hostBandwidth: Bandwidth? = nil)
  -> ExperimentPart
{
  .emulation(EmulationOptions(mode: mode, dilation: dilation, hostBandwidth: hostBandwidth))
}

/// A field that a sweep can vary, with the Swift type of its values.
public struct SweepTarget<Value: Encodable>: Sendable {
  public var path: String
  public init(_ path: String) { self.path = path }
}

extension SweepTarget where Value == Bandwidth {
  /// The default link's bandwidth (every pair of devices).
  public static var linkBandwidth: Self { .init("network.link.bandwidth") }
  /// The bandwidth of a named link override.
  public static func bandwidth(of link: String) -> Self { .init("network.overrides[\(link)].bandwidth") }
}
extension SweepTarget where Value == Seconds {
  public static var linkLatency: Self { .init("network.link.latency") }
  public static func latency(of link: String) -> Self { .init("network.overrides[\(link)].latency") }
}
extension SweepTarget where Value == Int {
  public static var requests: Self { .init("workload.requests") }
  public static func count(of group: String) -> Self { .init("devices[\(group)].count") }
  public static var maxBatch: Self { .init("execution.max_batch") }
}
extension SweepTarget where Value == LengthDistribution {
  public static var promptTokens: Self { .init("workload.prompt_tokens") }
  public static var outputTokens: Self { .init("workload.output_tokens") }
}
extension SweepTarget where Value == String {
  public static var modelPreset: Self { .init("model.preset") }
}
extension SweepTarget where Value == Precision {
  public static var precision: Self { .init("model.precision") }
}
extension SweepTarget where Value == ArrivalProcess {
  public static var arrival: Self { .init("workload.arrival") }
}
extension SweepTarget where Value == Double {
  public static var lossRate: Self { .init("network.link.loss") }
}

/// One axis of the Cartesian sweep.
public struct Sweep: ExperimentComponent {
  public var axis: SweepAxis
  public init<V: Encodable>(_ target: SweepTarget<V>, _ values: [V], label: String? = nil) {
    // Encoding these value types cannot fail; a failure would be a programming error in this file.
    let encoded = values.map { v in (try? JSONValue(encoding: v)) ?? .null }
    axis = SweepAxis(path: target.path, values: encoded, label: label)
  }
  /// Named values: results record and print each value's name (e.g. `["sporadic": .poisson(rate: 0.01)]`).
  public init<V: Encodable>(_ target: SweepTarget<V>, named values: KeyValuePairs<String, V>, label: String? = nil) {
    let encoded = values.map { (try? JSONValue(encoding: $0.value)) ?? .null }
    axis = SweepAxis(path: target.path, values: encoded, label: label, names: values.map(\.key))
  }
  /// Any field, by JSON path, with raw JSON values.
  public init(path: String, _ values: [JSONValue], label: String? = nil) {
    axis = SweepAxis(path: path, values: values, label: label)
  }
  public var parts: [ExperimentPart] { [.sweep(axis)] }
}
