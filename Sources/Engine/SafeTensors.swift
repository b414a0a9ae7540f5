import Foundation

/// A read-only memory mapping of a whole file; the mapping lives as long as this object.
final class MappedFile: @unchecked Sendable {
  let path: String
  let base: UnsafeRawPointer
  let size: Int
  private let fd: Int32

  init(path: String) throws(CheckpointError) {
    self.path = path
    let fd = open(path, O_RDONLY)
    if fd < 0 { throw CheckpointError(.missingFile, file: path, "cannot open: \(String(cString: strerror(errno)))") }
    var st = stat()
    if fstat(fd, &st) != 0 {
      close(fd)
      throw CheckpointError(.unreadable, file: path, "cannot stat: \(String(cString: strerror(errno)))")
    }
    size = Int(st.st_size)
    if size == 0 {
      close(fd)
      throw CheckpointError(.truncated, file: path, "the file is empty")
    }
    guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
      close(fd)
      throw CheckpointError(.unreadable, file: path, "cannot map: \(String(cString: strerror(errno)))")
    }
    base = UnsafeRawPointer(p)
    self.fd = fd
  }

  deinit {
    munmap(UnsafeMutableRawPointer(mutating: base), size)
    close(fd)
  }
}

/// Element types of stored weights the engine reads.
public enum WeightDType: String, Sendable, Hashable, CaseIterable {
  case f32 = "F32"
  case bf16 = "BF16"
  case f16 = "F16"
  public var size: Int { self == .f32 ? 4 : 2 }
}

/// One tensor in a safetensors file.
struct TensorEntry: Sendable {
  var dtype: WeightDType
  var shape: [Int]
  /// Byte range in the file (absolute).
  var begin: Int
  var end: Int
}

/// A parsed safetensors file: an 8-byte little-endian header length, a JSON header of
/// `{name: {dtype, shape, data_offsets: [begin, end]}}` (offsets relative to the end of the header), then data.
/// The file is memory-mapped; tensors are read in place.
struct SafeTensorsFile: Sendable {
  let file: MappedFile
  let tensors: [String: TensorEntry]

  init(path: String) throws(CheckpointError) {
    file = try MappedFile(path: path)
    guard file.size >= 8 else { throw CheckpointError(.truncated, file: path, "shorter than the 8-byte header length") }
    let headerLength = Int(UInt64(littleEndian: file.base.loadUnaligned(as: UInt64.self)))
    guard headerLength > 0, headerLength <= file.size - 8 else {
      throw CheckpointError(
        .truncated, file: path,
        "the header claims \(headerLength) bytes but the file has \(file.size) (truncated or not a safetensors file)")
    }
    let headerData = Data(bytes: file.base + 8, count: headerLength)
    guard let json = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
      throw CheckpointError(.malformedHeader, file: path, "the JSON header cannot be parsed")
    }
    let dataStart = 8 + headerLength
    var tensors: [String: TensorEntry] = [:]
    for (name, value) in json where name != "__metadata__" {
      guard let d = value as? [String: Any], let dtype = d["dtype"] as? String, let shape = d["shape"] as? [Int],
        let offsets = d["data_offsets"] as? [Int], offsets.count == 2
      else {
        throw CheckpointError(.malformedHeader, file: path, tensor: name, "entry lacks dtype, shape or data_offsets")
      }
      guard let t = WeightDType(rawValue: dtype) else {
        throw CheckpointError(
          .unsupportedDType, file: path, tensor: name, "dtype \(dtype) is not supported (use F32, F16 or BF16)")
      }
      let begin = dataStart + offsets[0]
      let end = dataStart + offsets[1]
      guard offsets[0] >= 0, offsets[1] >= offsets[0] else {
        throw CheckpointError(
          .malformedHeader, file: path, tensor: name, "data_offsets \(offsets) are not an increasing pair")
      }
      guard end <= file.size else {
        throw CheckpointError(
          .truncated, file: path, tensor: name,
          "the data ends at byte \(end) but the file has \(file.size) bytes (truncated download?)")
      }
      let count = shape.reduce(1, *)
      guard count * t.size == end - begin else {
        throw CheckpointError(
          .malformedHeader, file: path, tensor: name,
          "shape \(shape) of \(dtype) needs \(count * t.size) bytes, the file gives \(end - begin)")
      }
      tensors[name] = TensorEntry(dtype: t, shape: shape, begin: begin, end: end)
    }
    self.tensors = tensors
  }
}
