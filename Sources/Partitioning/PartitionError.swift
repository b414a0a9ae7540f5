public import EdgeLabCore

/// Why a partitioner produced no plan.
public enum PartitionError: Error, CustomStringConvertible, Equatable, Sendable {
  /// No plan satisfies the constraints; the message names the binding one.
  case infeasible(String)
  /// A heuristic (used where exact search is too large) found no plan; the problem is not proven infeasible.
  case noPlanFound(String)
  /// The problem itself is malformed.
  case invalidProblem([String])
  /// An algorithm parameter has a bad value.
  case badParameter(algorithm: String, String)
  /// Parameters the algorithm does not take, and those it does.
  case unknownParameters(algorithm: String, [String], known: [String])
  /// No algorithm by that name is registered.
  case unknownAlgorithm(String, known: [String])
  /// Two registered algorithms share a name; `origin` is where the first one comes from.
  case duplicateAlgorithm(String, origin: PartitionerRegistry.Origin)

  public var description: String {
    switch self {
    case .infeasible(let why): "infeasible: \(why)"
    case .noPlanFound(let why): "no plan found: \(why)"
    case .invalidProblem(let issues): "invalid problem: " + issues.joined(separator: "; ")
    case .badParameter(let a, let why): "algorithm '\(a)': \(why)"
    case .unknownParameters(let a, let names, let known):
      "algorithm '\(a)': unknown parameter\(names.count > 1 ? "s" : "") \(names.map { "'\($0)'" }.joined(separator: ", ")); known: \(known.isEmpty ? "none" : known.joined(separator: ", "))"
    case .unknownAlgorithm(let n, let known): "unknown algorithm '\(n)'; registered: \(known.joined(separator: ", "))"
    case .duplicateAlgorithm(let n, let origin):
      "algorithm '\(n)' is registered twice (the first is the \(origin == .lab ? "lab's own" : "algorithms/ folder's")); rename the one in algorithms/ (its static name)"
    }
  }
}

extension PartitionError: ReportableError {
  public var failureClass: FailureClass {
    switch self {
    case .infeasible: .infeasible
    // A heuristic's failure proves nothing about the problem: the command failed, the input may be fine.
    case .noPlanFound: .runsFailed
    case .invalidProblem, .badParameter, .unknownParameters, .unknownAlgorithm, .duplicateAlgorithm: .specRefused
    }
  }

  public var code: String {
    switch self {
    case .infeasible: "infeasible"
    case .noPlanFound: "no_plan_found"
    case .invalidProblem: "invalid_problem"
    case .badParameter: "bad_parameter"
    case .unknownParameters: "unknown_parameters"
    case .unknownAlgorithm: "unknown_algorithm"
    case .duplicateAlgorithm: "duplicate_algorithm"
    }
  }

  public var details: [String: JSONValue] {
    switch self {
    case .infeasible, .noPlanFound: [:]
    case .invalidProblem(let issues): ["issues": .array(issues.map(JSONValue.string))]
    case .badParameter(let algorithm, _): ["algorithm": .string(algorithm)]
    case .unknownParameters(let algorithm, let names, let known):
      [
        "algorithm": .string(algorithm), "parameters": .array(names.map(JSONValue.string)),
        "known": .array(known.map(JSONValue.string)),
      ]
    case .unknownAlgorithm(let name, let known):
      ["algorithm": .string(name), "known": .array(known.map(JSONValue.string))]
    case .duplicateAlgorithm(let name, let origin): ["algorithm": .string(name), "origin": .string(origin.rawValue)]
    }
  }
}
