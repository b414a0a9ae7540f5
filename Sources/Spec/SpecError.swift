public import EdgeLabCore

/// Something wrong with an experiment, naming the field and what to do.
public struct SpecError: Error, CustomStringConvertible, Equatable, Sendable {
  public struct Issue: Hashable, Sendable, CustomStringConvertible {
    /// A path to the field, e.g. `devices[nano].usable_memory`.
    public var field: String
    public var message: String
    public init(field: String, message: String) {
      self.field = field
      self.message = message
    }
    public var description: String { "\(field): \(message)" }
  }

  /// The experiment or file the issues are about.
  public var context: String?
  public var issues: [Issue]

  public init(field: String, _ message: String) { issues = [Issue(field: field, message: message)] }
  public init(issues: [Issue], context: String? = nil) {
    self.issues = issues
    self.context = context
  }

  public var description: String {
    let head = context.map { "\($0): " } ?? ""
    if issues.count == 1 { return head + issues[0].description }
    return head + "\(issues.count) problems:\n" + issues.map { "  - \($0)" }.joined(separator: "\n")
  }
}

extension SpecError: ReportableError {
  public var failureClass: FailureClass { .specRefused }
  public var code: String { "spec_invalid" }
  public var details: [String: JSONValue] {
    [
      "experiment": .optional(context),
      "issues": .array(issues.map { .object(["field": .string($0.field), "message": .string($0.message)]) }),
    ]
  }
}
