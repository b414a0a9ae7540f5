/// Why a partitioner produced no plan.
public enum PartitionError: Error, CustomStringConvertible, Equatable, Sendable {
  /// No plan satisfies the constraints; the message names the binding one.
  case infeasible(String)
  /// A heuristic (used where exact search is too large) found no plan; the problem is not proven infeasible.
  case noPlanFound(String)
  /// The problem itself is malformed.
  case invalidProblem([String])
  /// An algorithm parameter is unknown or has a bad value.
  case badParameter(algorithm: String, String)
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
    case .unknownAlgorithm(let n, let known): "unknown algorithm '\(n)'; registered: \(known.joined(separator: ", "))"
    case .duplicateAlgorithm(let n, let origin):
      "algorithm '\(n)' is registered twice (the first is the \(origin == .lab ? "lab's own" : "algorithms/ folder's")); rename the one in algorithms/ (its static name)"
    }
  }
}
