public import EdgeLabCore
public import Pipeline

/// A partition algorithm. Conform in one file, add one line to a registry (the lab's `Partitioners.registered`,
/// or a researcher's `UserAlgorithms.partitioners` in the top-level `algorithms/` folder), and the name is usable
/// in experiments and in `edgelab partition`, and its plans run on every backend: a plan is data (stages, and a
/// `ResidencyPolicy` for offloading), so no backend needs to know the algorithm. docs/partitioning.md lists the
/// API an algorithm may use and what of it is stable.
public protocol Partitioner: Sendable {
  /// The registered name, e.g. "edgeshard-latency".
  static var name: String { get }
  /// One line for `edgelab algorithms`.
  static var summary: String { get }
  /// The objective the algorithm always optimises, whatever the experiment says (nil: the experiment's).
  static var objective: Objective? { get }
  /// Builds the algorithm from its parameters (read them with `parameters`' typed getters; unknown names
  /// are rejected after `init` returns).
  init(parameters: inout Parameters) throws(PartitionError)
  /// Solves a problem (already checked for structural errors).
  func partition(_ problem: IndexedProblem) throws(PartitionError) -> Plan
}

extension Partitioner {
  public static var objective: Objective? { nil }
}

/// Algorithm parameters with typed access; remembers which were read so unknown names are reported.
public struct Parameters: Sendable {
  public let algorithm: String
  private let values: [String: JSONValue]
  private(set) var read: Set<String> = []

  public init(algorithm: String, _ values: [String: JSONValue]) {
    self.algorithm = algorithm
    self.values = values
  }

  public mutating func double(_ name: String, default value: Double) throws(PartitionError) -> Double {
    read.insert(name)
    guard let v = values[name] else { return value }
    guard let d = v.doubleValue else {
      throw .badParameter(algorithm: algorithm, "parameter '\(name)' must be a number (it is \(v))")
    }
    return d
  }
  public mutating func int(_ name: String, default value: Int) throws(PartitionError) -> Int {
    read.insert(name)
    guard let v = values[name] else { return value }
    guard let d = v.intValue else {
      throw .badParameter(algorithm: algorithm, "parameter '\(name)' must be an integer (it is \(v))")
    }
    return d
  }
  public mutating func string(_ name: String) throws(PartitionError) -> String? {
    read.insert(name)
    guard let v = values[name] else { return nil }
    guard let s = v.stringValue else {
      throw .badParameter(algorithm: algorithm, "parameter '\(name)' must be a string (it is \(v))")
    }
    return s
  }
  public mutating func bool(_ name: String, default value: Bool) throws(PartitionError) -> Bool {
    read.insert(name)
    guard let v = values[name] else { return value }
    guard let b = v.boolValue else {
      throw .badParameter(algorithm: algorithm, "parameter '\(name)' must be true or false (it is \(v))")
    }
    return b
  }

  /// Throws for any parameter the algorithm did not read.
  public func checkAllRead() throws(PartitionError) {
    let unknown = Set(values.keys).subtracting(read)
    if !unknown.isEmpty { throw .unknownParameters(algorithm: algorithm, unknown.sorted(), known: read.sorted()) }
  }
}

/// A set of partition algorithms by name: what a runner solves with.
public struct PartitionerRegistry: Sendable {
  /// Where an algorithm comes from: the lab's own sources or a researcher's `algorithms/` folder.
  public enum Origin: String, Sendable, Hashable, Codable {
    case lab
    case user
  }

  public var types: [any Partitioner.Type]
  /// The names of the algorithms that are not the lab's own.
  public private(set) var userNames: Set<String> = []

  public init(_ types: [any Partitioner.Type]) { self.types = types }

  /// Every algorithm the lab ships (`Partitioners.registered`).
  public static let standard = PartitionerRegistry(Partitioners.registered)

  /// The registry with more algorithms (e.g. a test's own).
  public func adding(_ more: [any Partitioner.Type]) -> PartitionerRegistry {
    var r = self
    r.types += more
    return r
  }

  /// The registry with a researcher's algorithms, marked as theirs.
  ///
  /// - Throws: `PartitionError.duplicateAlgorithm` when a name is already taken (by the lab or another user
  ///   algorithm): two algorithms under one name would make experiments ambiguous.
  public func addingUser(_ more: [any Partitioner.Type]) throws(PartitionError) -> PartitionerRegistry {
    var r = self
    for t in more {
      if r.type(named: t.name) != nil {
        throw .duplicateAlgorithm(t.name, origin: r.origin(of: t.name) ?? .lab)
      }
      r.types.append(t)
      r.userNames.insert(t.name)
    }
    return r
  }

  /// Whether `name` is the lab's or a user's algorithm (nil when it is not registered).
  public func origin(of name: String) -> Origin? {
    guard type(named: name) != nil else { return nil }
    return userNames.contains(name) ? .user : .lab
  }

  public var names: [String] { types.map { $0.name } }

  public func type(named name: String) -> (any Partitioner.Type)? {
    types.first { $0.name == name }
  }

  /// The objective a run of `name` optimises: the algorithm's own, or `otherwise`.
  public func objective(for name: String, otherwise: Objective) -> Objective {
    type(named: name)?.objective ?? otherwise
  }

  /// Builds the named algorithm with parameters.
  public func make(_ name: String, parameters: [String: JSONValue] = [:]) throws(PartitionError) -> any Partitioner {
    guard let t = type(named: name) else { throw .unknownAlgorithm(name, known: names) }
    var params = Parameters(algorithm: name, parameters)
    let algorithm = try t.init(parameters: &params)
    try params.checkAllRead()
    return algorithm
  }

  /// Solves `problem` with the named algorithm.
  public func solve(
    _ problem: PartitionProblem, algorithm name: String,
    parameters: [String: JSONValue] = [:]
  ) throws(PartitionError) -> Plan {
    let algorithm = try make(name, parameters: parameters)
    let plan = try algorithm.partition(try IndexedProblem(problem))
    try Self.checkGroups(plan, problem, algorithm: name)
    return plan
  }

  /// A plan's tensor-parallel groups must divide the model's heads and columns, name devices of the problem,
  /// and keep each device in one stage: checked whoever made the plan.
  static func checkGroups(_ plan: Plan, _ problem: PartitionProblem, algorithm: String) throws(PartitionError) {
    guard plan.hasGroups else { return }
    guard let shape = problem.shape else {
      throw .badParameter(algorithm: algorithm, "a tensor-parallel plan needs the problem's model shape")
    }
    let names = Set(problem.devices.map(\.name))
    var seen = Set<String>()
    for (i, stage) in plan.stages.enumerated() {
      for d in stage.devices {
        guard names.contains(d) else { throw .badParameter(algorithm: algorithm, "stage \(i): no device '\(d)'") }
        guard seen.insert(d).inserted else {
          throw .badParameter(
            algorithm: algorithm, "stage \(i): '\(d)' also runs another stage of a tensor-parallel plan")
        }
      }
      if let g = stage.group {
        let issues = g.problems(device: stage.device, kvHeads: shape.kvHeads, ffnColumns: shape.ffnColumns)
        if !issues.isEmpty {
          throw .badParameter(algorithm: algorithm, "stage \(i) group: " + issues.joined(separator: "; "))
        }
      }
    }
  }
}

/// The registry of partition algorithms by name.
public enum Partitioners {
  /// Every algorithm the lab knows. Add a line here for a new one.
  public static let registered: [any Partitioner.Type] = [
    EvenSplit.self,
    EdgeSolo.self,
    CloudEdgeEven.self,
    CloudEdgeOptimal.self,
    EdgeShardLatency.self,
    EdgeShardThroughput.self,
    EdgeShardThroughputPaper.self,
    Lime.self,
    EvenOnDemand.self,
    EdgeShardOnDemand.self,
    BruteForce.self,
    TensorParallel.self,
    TensorParallelStar.self,
    Galaxy.self,
    Hybrid.self,
  ]

  public static var names: [String] { PartitionerRegistry.standard.names }

  public static func type(named name: String) -> (any Partitioner.Type)? {
    PartitionerRegistry.standard.type(named: name)
  }

  /// Builds the named algorithm with parameters.
  public static func make(_ name: String, parameters: [String: JSONValue] = [:]) throws(PartitionError)
    -> any Partitioner
  {
    try PartitionerRegistry.standard.make(name, parameters: parameters)
  }

  /// Solves `problem` with the named algorithm.
  public static func solve(
    _ problem: PartitionProblem, algorithm name: String,
    parameters: [String: JSONValue] = [:]
  ) throws(PartitionError) -> Plan {
    try PartitionerRegistry.standard.solve(problem, algorithm: name, parameters: parameters)
  }
}
