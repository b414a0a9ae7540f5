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
    tensors = try Self.parseHeader(file.base, size: file.size, path: path)
  }

  /// Largest JSON header read (the format's own readers refuse more than 100 MB).
  static let maxHeaderBytes = 100 << 20

  /// Parses the header of a safetensors file of `size` bytes at `base`. Every length, offset and shape product
  /// is checked with overflow-safe arithmetic, and every tensor's bytes must lie inside the file and match its
  /// dtype × shape; a failure names the file, the tensor and the field.
  ///
  /// - Complexity: O(header size + number of tensors × rank).
  static func parseHeader(_ base: UnsafeRawPointer, size: Int, path: String) throws(CheckpointError) -> [String:
    TensorEntry]
  {
    guard size >= 8 else { throw CheckpointError(.truncated, file: path, "shorter than the 8-byte header length") }
    let declared = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
    guard let headerLength = Int(exactly: declared), headerLength > 0, headerLength <= size - 8 else {
      throw CheckpointError(
        .truncated, file: path,
        "the header claims \(declared) bytes but the file has \(size) (truncated or not a safetensors file)")
    }
    guard headerLength <= maxHeaderBytes else {
      throw CheckpointError(
        .malformedHeader, file: path, "the header claims \(headerLength) bytes, more than the \(maxHeaderBytes) allowed"
      )
    }
    let headerData = Data(bytes: base + 8, count: headerLength)
    guard let json = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
      throw CheckpointError(.malformedHeader, file: path, "the JSON header cannot be parsed")
    }
    let dataStart = 8 + headerLength
    var tensors: [String: TensorEntry] = [:]
    for (name, value) in json where name != "__metadata__" {
      guard let d = value as? [String: Any], let dtype = d["dtype"] as? String, let rawShape = d["shape"] as? [Any],
        let rawOffsets = d["data_offsets"] as? [Any], rawOffsets.count == 2
      else {
        throw CheckpointError(.malformedHeader, file: path, tensor: name, "entry lacks dtype, shape or data_offsets")
      }
      guard let t = WeightDType(rawValue: dtype), !t.isQuantized else {
        throw CheckpointError(
          .unsupportedDType, file: path, tensor: name, "dtype \(dtype) is not supported (use F32, F16 or BF16)")
      }
      guard let shape = Self.integers(rawShape), shape.allSatisfy({ $0 >= 0 }), shape.count <= 8 else {
        throw CheckpointError(
          .malformedHeader, file: path, tensor: name, "shape \(rawShape) is not a list of up to 8 non-negative integers"
        )
      }
      guard let offsets = Self.integers(rawOffsets), offsets[0] >= 0, offsets[1] >= offsets[0] else {
        throw CheckpointError(
          .malformedHeader, file: path, tensor: name,
          "data_offsets \(rawOffsets) are not an increasing pair of non-negative integers")
      }
      let begin = dataStart.addingReportingOverflow(offsets[0])
      let end = dataStart.addingReportingOverflow(offsets[1])
      guard !begin.overflow, !end.overflow, end.partialValue <= size else {
        throw CheckpointError(
          .truncated, file: path, tensor: name,
          "the data ends at byte \(end.overflow ? "beyond \(Int.max)" : String(end.partialValue)) but the file has \(size) bytes (truncated download?)"
        )
      }
      var count = 1
      for dim in shape {
        let (product, overflow) = count.multipliedReportingOverflow(by: dim)
        guard !overflow else {
          throw CheckpointError(
            .malformedHeader, file: path, tensor: name, "shape \(shape) has more elements than can be counted")
        }
        count = product
      }
      let (bytes, overflow) = count.multipliedReportingOverflow(by: t.blockBytes)
      guard !overflow, bytes == end.partialValue - begin.partialValue else {
        throw CheckpointError(
          .malformedHeader, file: path, tensor: name,
          "shape \(shape) of \(dtype) needs \(overflow ? "more than \(Int.max)" : String(bytes)) bytes, the file gives \(end.partialValue - begin.partialValue)"
        )
      }
      tensors[name] = TensorEntry(dtype: t, shape: shape, begin: begin.partialValue, end: end.partialValue)
    }
    return tensors
  }

  /// JSON numbers as exact integers (nil for fractions, out-of-range values or non-numbers).
  static func integers(_ values: [Any]) -> [Int]? {
    var out: [Int] = []
    for v in values {
      guard let n = v as? NSNumber else { return nil }
      let d = n.doubleValue
      guard d.isFinite, d == d.rounded(), abs(d) < 9.0e18, let i = Int(exactly: n.int64Value), Double(i) == d else {
        return nil
      }
      out.append(i)
    }
    return out
  }
}

/// The safetensors format's checks, for tools that look at a file's bytes without loading a checkpoint (the
/// fuzzer of `edgelab bench fuzz`).
public enum SafeTensors {
  /// Parses the header of a safetensors file held in `bytes`; returns the number of tensors it describes.
  ///
  /// - Throws: `CheckpointError` naming `path`, the tensor and the field at fault.
  public static func checkHeader(_ bytes: [UInt8], path: String) throws(CheckpointError) -> Int {
    let result: Result<Int, CheckpointError> = bytes.withUnsafeBytes { raw in
      guard let base = raw.baseAddress, raw.count > 0 else {
        return .failure(CheckpointError(.truncated, file: path, "the file is empty"))
      }
      return Result { () throws(CheckpointError) -> Int in
        try SafeTensorsFile.parseHeader(base, size: raw.count, path: path).count
      }
    }
    return try result.get()
  }
}
