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
