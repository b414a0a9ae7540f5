import Catalog
public import EdgeLabCore
public import Spec

/// One declaration inside an `Experiment { … }` block. Declarations only describe; folding them into an
/// `ExperimentSpec` is pure, so experiment files do no I/O and draw no random numbers.
public enum ExperimentPart: Hashable, Sendable {
  case summary(String)
  case model(ModelChoice)
  case device(DeviceGroup)
  case source(String)
  case link(LinkSpec)
  case linkOverride(LinkOverride)
  case segment(SharedSegment)
  case workload(WorkloadSpec)
  case algorithm(AlgorithmChoice)
  case objective(Objective)
  case sweep(SweepAxis)
  case repetitions(Int)
  case backend(BackendKind)
  case seed(UInt64)
  case calibration(Calibration)
  case execution(ExecutionOptions)
  case emulation(EmulationOptions)
  case paper(PaperNumber)
  case inventory(String)
  case collaboration(CollaborationSpec)
  case strategy(StrategyChoice)
}

/// Anything that can appear in an experiment block.
public protocol ExperimentComponent {
  var parts: [ExperimentPart] { get }
}

extension ExperimentPart: ExperimentComponent {
  public var parts: [ExperimentPart] { [self] }
}

/// Collects declarations; `if`, `if/else`, `switch` and `for` work inside a block.
@resultBuilder
public enum ExperimentBuilder {
  public static func buildExpression(_ component: some ExperimentComponent) -> [ExperimentPart] { component.parts }
  public static func buildExpression(_ parts: [ExperimentPart]) -> [ExperimentPart] { parts }
  public static func buildBlock(_ parts: [ExperimentPart]...) -> [ExperimentPart] { parts.flatMap { $0 } }
  public static func buildOptional(_ parts: [ExperimentPart]?) -> [ExperimentPart] { parts ?? [] }
  public static func buildEither(first parts: [ExperimentPart]) -> [ExperimentPart] { parts }
  public static func buildEither(second parts: [ExperimentPart]) -> [ExperimentPart] { parts }
  public static func buildArray(_ parts: [[ExperimentPart]]) -> [ExperimentPart] { parts.flatMap { $0 } }
  public static func buildLimitedAvailability(_ parts: [ExperimentPart]) -> [ExperimentPart] { parts }
}

/// An experiment declared in Swift. `spec` is its plain-data form.
///
/// ```swift
/// let demo = Experiment("demo", "Llama-2-7B over three Jetsons") {
///   Model(.llama2_7B)
///   Device("agx", .agxOrin32GB)
///   Device("nx", .orinNX16GB, count: 2)
///   Network(bandwidth: .mbit(100), latency: .ms(1))
///   Workload(requests: 4, prompt: 32, output: 96)
///   Algorithm("even")
///   Algorithm("edgeshard-latency")
///   Sweep(.linkBandwidth, [.mbit(10), .mbit(100)])
/// }
/// ```
public struct Experiment: Sendable {
  public var spec: ExperimentSpec

  public init(_ name: String, _ summary: String = "", @ExperimentBuilder _ body: () -> [ExperimentPart]) {
    var spec = ExperimentSpec(name: name, summary: summary, model: ModelChoice(preset: ""), devices: [])
    for part in body() { spec.apply(part) }
    self.spec = spec
  }
}

extension ExperimentSpec {
  /// Folds one declaration into the spec: devices, links, algorithms and sweeps accumulate; anything else
  /// replaces the earlier value.
  public mutating func apply(_ part: ExperimentPart) {
    switch part {
    case .summary(let s): summary = s
    case .model(let m): model = m
    case .device(let d): devices.append(d)
    case .source(let s): source = s
    case .link(let l): network.link = l
    case .linkOverride(let o): network.overrides.append(o)
    case .segment(let g): network.segments.append(g)
    case .workload(let w): workload = w
    case .algorithm(let a): algorithms.append(a)
    case .objective(let o): objective = o
    case .sweep(let s): sweeps.append(s)
    case .repetitions(let n): repetitions = n
    case .backend(let b): backend = b
    case .seed(let s): seed = s
    case .calibration(let c): calibration = c
    case .execution(let e): execution = e
    case .emulation(let e): emulation = e
    case .paper(let n): paper.append(n)
    case .inventory(let i): inventory = i
    case .collaboration(let c): collaboration = c
    case .strategy(let s): strategies.append(s)
    }
  }
}
