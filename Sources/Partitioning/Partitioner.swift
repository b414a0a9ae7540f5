public import EdgeLabCore
public import Pipeline

/// A partition algorithm. Conform in one file, add one line to `Partitioners.registered`, and the name is
/// usable in experiments and in `edgelab partition`, and its plans run on every backend: a plan is data
/// (stages, and a `ResidencyPolicy` for offloading), so no backend needs to know the algorithm.
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
    if !unknown.isEmpty {
      let known = read.sorted()
      throw .badParameter(
        algorithm: algorithm,
        "unknown parameter\(unknown.count > 1 ? "s" : "") \(unknown.sorted().map { "'\($0)'" }.joined(separator: ", ")); known: \(known.isEmpty ? "none" : known.joined(separator: ", "))"
      )
    }
  }
}

/// A set of partition algorithms by name: what a runner solves with.
public struct PartitionerRegistry: Sendable {
  public var types: [any Partitioner.Type]

  public init(_ types: [any Partitioner.Type]) { self.types = types }

  /// Every algorithm the lab ships (`Partitioners.registered`).
  public static let standard = PartitionerRegistry(Partitioners.registered)

  /// The registry with more algorithms (e.g. a test's own).
  public func adding(_ more: [any Partitioner.Type]) -> PartitionerRegistry { PartitionerRegistry(types + more) }

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
    return try algorithm.partition(try IndexedProblem(problem))
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
    Lime.self,
    EvenOnDemand.self,
    EdgeShardOnDemand.self,
    BruteForce.self,
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
