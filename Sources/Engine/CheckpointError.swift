public import EdgeLabCore

/// A checkpoint that cannot be used, naming the file and tensor and what to do.
public struct CheckpointError: Error, CustomStringConvertible, Equatable, Sendable {
  public enum Kind: String, Sendable {
    case missingFile, unreadable, truncated, malformedHeader, missingTensor, wrongShape, unsupportedDType
    case unknownArchitecture, badConfig
  }
  public var kind: Kind
  public var file: String
  public var tensor: String?
  public var detail: String

  public init(_ kind: Kind, file: String, tensor: String? = nil, _ detail: String) {
    self.kind = kind
    self.file = file
    self.tensor = tensor
    self.detail = detail
  }

  public var description: String {
    "\(file)\(tensor.map { ", tensor '\($0)'" } ?? ""): \(detail)"
  }
}

extension CheckpointError: ReportableError {
  public var failureClass: FailureClass { .inputCorrupt }
  public var code: String { "checkpoint_" + kind.rawValue.snakeCased }
  public var details: [String: JSONValue] {
    ["file": .string(file), "tensor": .optional(tensor), "kind": .string(kind.rawValue)]
  }
}

extension String {
  /// `missingFile` → `missing_file`.
  var snakeCased: String {
    var out = ""
    for c in self {
      if c.isUppercase {
        out += "_" + c.lowercased()
      } else {
        out.append(c)
      }
    }
    return out
  }
}
