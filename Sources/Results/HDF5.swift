import CHDF5
public import EdgeLabCore

#if canImport(Glibc)
import Glibc
#endif

/// An HDF5 call that failed, with the function and the object path, so the CLI can say what went wrong.
public struct HDF5Error: Error, CustomStringConvertible, Equatable, ReportableError {
  public var function: String
  public var path: String
  public var detail: String
  public var description: String { "HDF5 \(function) failed for '\(path)'\(detail.isEmpty ? "" : ": \(detail)")" }
  /// Reads are checked before libhdf5 sees a file (and reported as `ResultsError`); what fails inside libhdf5 is
  /// writing (a full disk, a read-only directory).
  public var failureClass: FailureClass { .ioFailed }
  public var code: String { "hdf5_failed" }
  public var details: [String: JSONValue] { ["function": .string(function), "path": .string(path)] }
}

/// A value stored as an HDF5 attribute.
public enum AttributeValue: Hashable, Sendable {
  case string(String)
  case double(Double)
  case int(Int64)

  public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
  public var doubleValue: Double? {
    switch self {
    case .double(let d): d
    case .int(let i): Double(i)
    case .string: nil
    }
  }
}

/// A column of a table (an HDF5 compound dataset, one member per column).
public enum Column: Hashable, Sendable {
  case double(String, [Double])
  case int(String, [Int64])
  case string(String, [String])

  public var name: String {
    switch self {
    case .double(let n, _), .int(let n, _), .string(let n, _): n
    }
  }
  public var count: Int {
    switch self {
    case .double(_, let v): v.count
    case .int(_, let v): v.count
    case .string(_, let v): v.count
    }
  }
  /// Cell `row` as text (for `show` and TSV export).
  public func text(_ row: Int) -> String {
    switch self {
    case .double(_, let v): formatNumber(v[row])
    case .int(_, let v): String(v[row])
    case .string(_, let v): v[row]
    }
  }
  public func double(_ row: Int) -> Double? {
    switch self {
    case .double(_, let v): v[row]
    case .int(_, let v): Double(v[row])
    case .string(_, let v): Double(v[row])
    }
  }
}

/// Shortest text that reads back as the same Double ("nan" for NaN, which gnuplot and pandas understand).
public func formatNumber(_ v: Double) -> String {
  if v.isNaN { return "nan" }
  if v.isInfinite { return v > 0 ? "inf" : "-inf" }
  if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
  return "\(v)"
}

/// A table: named columns of equal length.
public struct Table: Hashable, Sendable {
  public var name: String
  public var columns: [Column]
  public var attributes: [String: AttributeValue]
  public init(name: String, columns: [Column], attributes: [String: AttributeValue] = [:]) {
    self.name = name
    self.columns = columns
    self.attributes = attributes
  }
  public var rowCount: Int { columns.first?.count ?? 0 }
  public func column(_ name: String) -> Column? { columns.first { $0.name == name } }
}

/// A group: attributes, tables and child groups. The in-memory form of a results file.
public struct Group: Hashable, Sendable {
  public var attributes: [String: AttributeValue]
  public var tables: [Table]
  public var groups: [String: Group]
  public init(attributes: [String: AttributeValue] = [:], tables: [Table] = [], groups: [String: Group] = [:]) {
    self.attributes = attributes
    self.tables = tables
    self.groups = groups
  }
  public func table(_ name: String) -> Table? { tables.first { $0.name == name } }
}

/// An HDF5 object handle owned by exactly one value; closed on deinit or by `close()`.
struct Handle: ~Copyable {
  let id: hid_t
  let closer: (hid_t) -> herr_t
  init(_ id: hid_t, closer: @escaping (hid_t) -> herr_t) {
    self.id = id
    self.closer = closer
  }
  deinit { _ = closer(id) }
}

/// The seal of a results file: a 512-byte user block before the HDF5 data holding a magic string, the file's
/// size and a checksum of everything after the block, written once the file is complete. A sealed file is
/// checked before libhdf5 reads it, so a damaged or truncated file is refused with a sentence instead of
/// crashing the reader. Files written before the seal existed start with HDF5's signature and are read
/// unchecked; a crafted file with a valid seal is still read by libhdf5 as it is.
enum Seal {
  static let size = 512
  static let magic = Array("EDGELAB-RESULTS\u{0}".utf8)

  static func write(_ path: String) throws(HDF5Error) {
    let fd = open(path, O_RDWR)
    guard fd >= 0 else { throw HDF5Error(function: "open", path: path, detail: String(cString: strerror(errno))) }
    defer { close(fd) }
    let (length, sum) = try checksum(fd, path: path)
    var block = magic
    withUnsafeBytes(of: UInt64(length).littleEndian) { block += $0 }
    withUnsafeBytes(of: sum.littleEndian) { block += $0 }
    guard pwrite(fd, block, block.count, 0) == block.count else {
      throw HDF5Error(
        function: "pwrite", path: path, detail: "cannot write the seal: \(String(cString: strerror(errno)))")
    }
  }

  static func verify(_ path: String) throws(HDF5Error) {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw HDF5Error(function: "open", path: path, detail: String(cString: strerror(errno))) }
    defer { close(fd) }
    var block = [UInt8](repeating: 0, count: magic.count + 16)
    let n = pread(fd, &block, block.count, 0)
    // An HDF5 file that starts with HDF5's own signature has no user block: written before the seal existed (or
    // by another tool), it is read unchecked. Anything else must carry an intact seal.
    if n >= 8 && Array(block.prefix(8)) == [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a] { return }
    guard n == block.count, Array(block.prefix(magic.count)) == magic else {
      throw HDF5Error(
        function: "verify", path: path,
        detail: "neither an HDF5 file nor a sealed EdgeLab results file (damaged or not a results file); it is not read"
      )
    }
    func word(_ at: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(block[at + $1]) << (8 * UInt64($1)) } }
    let (length, sum) = try checksum(fd, path: path)
    guard UInt64(length) == word(magic.count), sum == word(magic.count + 8) else {
      throw HDF5Error(
        function: "verify", path: path,
        detail: "the file was changed or cut short after EdgeLab wrote it (its checksum does not match); it is not read"
      )
    }
  }

  /// The length of the file and a 64-bit checksum of its bytes after the seal's block.
  static func checksum(_ fd: Int32, path: String) throws(HDF5Error) -> (Int, UInt64) {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    var offset = size
    let chunk = 1 << 20
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 8)
    defer { buffer.deallocate() }
    while true {
      let n = pread(fd, buffer, chunk, off_t(offset))
      if n < 0 && errno == EINTR { continue }
      guard n >= 0 else { throw HDF5Error(function: "pread", path: path, detail: String(cString: strerror(errno))) }
      if n == 0 { break }
      let bytes = buffer.assumingMemoryBound(to: UInt8.self)
      var i = 0
      while i + 8 <= n {
        h = (h ^ UInt64(littleEndian: (buffer + i).loadUnaligned(as: UInt64.self))) &* 0x100_0000_01b3
        h ^= h >> 29
        i += 8
      }
      while i < n {
        h = (h ^ UInt64(bytes[i])) &* 0x100_0000_01b3
        i += 1
      }
      offset += n
    }
    return (offset, h)
  }
}

/// Reads and writes whole `Group` trees. All HDF5 pointers stay inside this file.
enum HDF5 {
  static func check(_ id: hid_t, _ function: String, _ path: String) throws(HDF5Error) -> hid_t {
    if id < 0 { throw HDF5Error(function: function, path: path, detail: "") }
    return id
  }
  static func check(_ status: herr_t, _ function: String, _ path: String) throws(HDF5Error) {
    if status < 0 { throw HDF5Error(function: function, path: path, detail: "") }
  }

  static func stringType() throws(HDF5Error) -> Handle {
    let t = H5Tcopy(edgelab_H5T_C_S1())
    _ = H5Tset_size(t, edgelab_H5T_VARIABLE())
    _ = H5Tset_cset(t, H5T_CSET_UTF8)
    return Handle(try check(t, "H5Tcopy", "(string type)"), closer: H5Tclose)
  }

  // MARK: Writing

  static func write(_ root: Group, to path: String) throws(HDF5Error) {
    edgelab_H5_silence_errors()
    do {
      // A 512-byte user block (HDF5 skips it; h5py and h5dump read such files as usual) holds our seal.
      let fcpl = Handle(try check(H5Pcreate(edgelab_H5P_FILE_CREATE()), "H5Pcreate", path), closer: H5Pclose)
      try check(H5Pset_userblock(fcpl.id, hsize_t(Seal.size)), "H5Pset_userblock", path)
      let fapl = try fileAccess(path)
      let file = Handle(
        try check(H5Fcreate(path, edgelab_H5F_ACC_TRUNC(), fcpl.id, fapl.id), "H5Fcreate", path),
        closer: H5Fclose)
      try writeContents(root, into: file.id, path: "/")
      try check(H5Fflush(file.id, H5F_SCOPE_GLOBAL), "H5Fflush", path)
    }
    try Seal.write(path)
  }

  static func writeContents(_ g: Group, into loc: hid_t, path: String) throws(HDF5Error) {
    for (name, value) in g.attributes.sorted(by: { $0.key < $1.key }) {
      try writeAttribute(name, value, on: loc, path: path)
    }
    for t in g.tables { try writeTable(t, into: loc, path: path) }
    for (name, child) in g.groups.sorted(by: { $0.key < $1.key }) {
      let childPath = path == "/" ? "/" + name : path + "/" + name
      let gid = Handle(
        try check(
          H5Gcreate2(loc, name, edgelab_H5P_DEFAULT(), edgelab_H5P_DEFAULT(), edgelab_H5P_DEFAULT()), "H5Gcreate2",
          childPath), closer: H5Gclose)
      try writeContents(child, into: gid.id, path: childPath)
    }
  }

  static func writeAttribute(_ name: String, _ value: AttributeValue, on loc: hid_t, path: String) throws(HDF5Error) {
    let space = Handle(H5Screate(H5S_SCALAR), closer: H5Sclose)
    switch value {
    case .double(var d):
      let a = Handle(
        try check(
          H5Acreate2(loc, name, edgelab_H5T_NATIVE_DOUBLE(), space.id, edgelab_H5P_DEFAULT(), edgelab_H5P_DEFAULT()),
          "H5Acreate2", path + "@" + name), closer: H5Aclose)
      try check(H5Awrite(a.id, edgelab_H5T_NATIVE_DOUBLE(), &d), "H5Awrite", path + "@" + name)
    case .int(var i):
      let a = Handle(
        try check(
          H5Acreate2(loc, name, edgelab_H5T_NATIVE_INT64(), space.id, edgelab_H5P_DEFAULT(), edgelab_H5P_DEFAULT()),
          "H5Acreate2", path + "@" + name), closer: H5Aclose)
      try check(H5Awrite(a.id, edgelab_H5T_NATIVE_INT64(), &i), "H5Awrite", path + "@" + name)
    case .string(let s):
      let t = try stringType()
      let a = Handle(
        try check(
          H5Acreate2(loc, name, t.id, space.id, edgelab_H5P_DEFAULT(), edgelab_H5P_DEFAULT()), "H5Acreate2",
          path + "@" + name), closer: H5Aclose)
      let status = s.withCString { cs -> herr_t in
        var ptr: UnsafePointer<CChar>? = cs
        return H5Awrite(a.id, t.id, &ptr)
      }
      try check(status, "H5Awrite", path + "@" + name)
    }
  }

  /// A compound dataset: one member per column (float64, int64, or variable-length UTF-8 string).
  static func writeTable(_ table: Table, into loc: hid_t, path: String) throws(HDF5Error) {
    let tablePath = (path == "/" ? "" : path) + "/" + table.name
    let rows = table.rowCount
    if table.columns.contains(where: { $0.count != rows }) {
      throw HDF5Error(function: "writeTable", path: tablePath, detail: "columns have different lengths")
    }
    let strType = try stringType()
    let rowSize = table.columns.count * 8
    let compound = Handle(try check(H5Tcreate(H5T_COMPOUND, rowSize), "H5Tcreate", tablePath), closer: H5Tclose)
    for (i, c) in table.columns.enumerated() {
      let member: hid_t
      switch c {
      case .double: member = edgelab_H5T_NATIVE_DOUBLE()
      case .int: member = edgelab_H5T_NATIVE_INT64()
      case .string: member = strType.id
      }
      try check(H5Tinsert(compound.id, c.name, i * 8, member), "H5Tinsert", tablePath + "." + c.name)
    }
    var dims: [hsize_t] = [hsize_t(rows)]
    let space = Handle(H5Screate_simple(1, &dims, nil), closer: H5Sclose)
    let ds = Handle(
      try check(
        H5Dcreate2(
          loc, table.name, compound.id, space.id, edgelab_H5P_DEFAULT(), edgelab_H5P_DEFAULT(), edgelab_H5P_DEFAULT()),
        "H5Dcreate2", tablePath), closer: H5Dclose)
    if rows > 0 {
      let buffer = UnsafeMutableRawPointer.allocate(byteCount: rows * rowSize, alignment: 8)
      var strings: [UnsafeMutablePointer<CChar>] = []
      defer {
        for s in strings { free(s) }
        buffer.deallocate()
      }
      for (i, c) in table.columns.enumerated() {
        for r in 0..<rows {
          let at = buffer + r * rowSize + i * 8
          switch c {
          case .double(_, let v): at.storeBytes(of: v[r], as: Double.self)
          case .int(_, let v): at.storeBytes(of: v[r], as: Int64.self)
          case .string(_, let v):
            let s = strdup(v[r])!
            strings.append(s)
            at.storeBytes(of: UnsafePointer(s), as: UnsafePointer<CChar>.self)
          }
        }
      }
      try check(
        H5Dwrite(ds.id, compound.id, edgelab_H5S_ALL(), edgelab_H5S_ALL(), edgelab_H5P_DEFAULT(), buffer), "H5Dwrite",
        tablePath)
    }
    for (name, value) in table.attributes.sorted(by: { $0.key < $1.key }) {
      try writeAttribute(name, value, on: ds.id, path: tablePath)
    }
  }

  // MARK: Reading

  static func read(_ path: String) throws(HDF5Error) -> Group {
    // libhdf5 trusts a file's structure: damaged metadata can crash it. Files we sealed are checked first.
    try Seal.verify(path)
    edgelab_H5_silence_errors()
    let fapl = try fileAccess(path)
    let file = Handle(try check(H5Fopen(path, edgelab_H5F_ACC_RDONLY(), fapl.id), "H5Fopen", path), closer: H5Fclose)
    return try readGroup(file.id, path: "/")
  }

  /// File access without libhdf5's own file locks. Its `flock` lives on in any child process forked while the
  /// file is open (the descriptor is inherited), so a worker started by one thread while another writes a results
  /// file would keep that file locked and a later read would fail. Writers are kept apart by `ResultsStore.lock`,
  /// and files are replaced by rename, so readers never see a half-written one.
  static func fileAccess(_ path: String) throws(HDF5Error) -> Handle {
    let fapl = Handle(try check(H5Pcreate(edgelab_H5P_FILE_ACCESS()), "H5Pcreate", path), closer: H5Pclose)
    try check(H5Pset_file_locking(fapl.id, false, true), "H5Pset_file_locking", path)
    return fapl
  }

  final class NameBox { var names: [String] = [] }

  static func names(_ loc: hid_t, attributes: Bool) -> [String] {
    let box = NameBox()
    let ctx = Unmanaged.passUnretained(box).toOpaque()
    let sink: edgelab_name_sink = { name, ctx in
      let b = Unmanaged<NameBox>.fromOpaque(ctx!).takeUnretainedValue()
      b.names.append(String(cString: name!))
    }
    if attributes { _ = edgelab_H5A_list(loc, sink, ctx) } else { _ = edgelab_H5L_list(loc, sink, ctx) }
    return box.names
  }

  static func readAttributes(_ loc: hid_t, path: String) throws(HDF5Error) -> [String: AttributeValue] {
    var out: [String: AttributeValue] = [:]
    for name in names(loc, attributes: true) {
      let a = Handle(
        try check(H5Aopen(loc, name, edgelab_H5P_DEFAULT()), "H5Aopen", path + "@" + name), closer: H5Aclose)
      let type = Handle(H5Aget_type(a.id), closer: H5Tclose)
      switch H5Tget_class(type.id) {
      case H5T_FLOAT:
        var d = 0.0
        try check(H5Aread(a.id, edgelab_H5T_NATIVE_DOUBLE(), &d), "H5Aread", path + "@" + name)
        out[name] = .double(d)
      case H5T_INTEGER:
        var i: Int64 = 0
        try check(H5Aread(a.id, edgelab_H5T_NATIVE_INT64(), &i), "H5Aread", path + "@" + name)
        out[name] = .int(i)
      case H5T_STRING:
        let st = try stringType()
        var ptr: UnsafeMutablePointer<CChar>? = nil
        try check(H5Aread(a.id, st.id, &ptr), "H5Aread", path + "@" + name)
        out[name] = .string(ptr.map { String(cString: $0) } ?? "")
        free(ptr)
      default:
        continue
      }
    }
    return out
  }

  static func readGroup(_ loc: hid_t, path: String) throws(HDF5Error) -> Group {
    var g = Group(attributes: try readAttributes(loc, path: path))
    for name in names(loc, attributes: false) {
      let childPath = path == "/" ? "/" + name : path + "/" + name
      var info = H5O_info_t()
      try check(
        H5Oget_info_by_name2(loc, name, &info, UInt32(H5O_INFO_BASIC), edgelab_H5P_DEFAULT()), "H5Oget_info_by_name",
        childPath)
      switch info.type {
      case H5O_TYPE_GROUP:
        let gid = Handle(try check(H5Gopen2(loc, name, edgelab_H5P_DEFAULT()), "H5Gopen2", childPath), closer: H5Gclose)
        g.groups[name] = try readGroup(gid.id, path: childPath)
      case H5O_TYPE_DATASET:
        g.tables.append(try readTable(loc, name: name, path: childPath))
      default:
        continue
      }
    }
    return g
  }

  static func readTable(_ loc: hid_t, name: String, path: String) throws(HDF5Error) -> Table {
    let ds = Handle(try check(H5Dopen2(loc, name, edgelab_H5P_DEFAULT()), "H5Dopen2", path), closer: H5Dclose)
    let type = Handle(H5Dget_type(ds.id), closer: H5Tclose)
    guard H5Tget_class(type.id) == H5T_COMPOUND else {
      throw HDF5Error(function: "readTable", path: path, detail: "not a compound (table) dataset")
    }
    let space = Handle(H5Dget_space(ds.id), closer: H5Sclose)
    let points = H5Sget_simple_extent_npoints(space.id)
    // A table we wrote has at most a few hundred million rows (the token times of a run).
    guard points >= 0, points <= 1 << 30, let rows = Int(exactly: points) else {
      throw HDF5Error(function: "H5Sget_simple_extent_npoints", path: path, detail: "\(points) rows")
    }
    var columns: [Column] = []
    let members = Int(H5Tget_nmembers(type.id))
    for m in 0..<members {
      guard let cname = H5Tget_member_name(type.id, UInt32(m)) else { continue }
      let colName = String(cString: cname)
      H5free_memory(cname)
      let cls = H5Tget_member_class(type.id, UInt32(m))
      // Read one member through a one-member memory compound type.
      let memType: hid_t
      let strType = try stringType()
      switch cls {
      case H5T_FLOAT: memType = edgelab_H5T_NATIVE_DOUBLE()
      case H5T_INTEGER: memType = edgelab_H5T_NATIVE_INT64()
      case H5T_STRING: memType = strType.id
      default: continue
      }
      let one = Handle(H5Tcreate(H5T_COMPOUND, 8), closer: H5Tclose)
      try check(H5Tinsert(one.id, colName, 0, memType), "H5Tinsert", path + "." + colName)
      let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(rows, 1) * 8, alignment: 8)
      defer { buffer.deallocate() }
      if rows > 0 {
        try check(
          H5Dread(ds.id, one.id, edgelab_H5S_ALL(), edgelab_H5S_ALL(), edgelab_H5P_DEFAULT(), buffer), "H5Dread",
          path + "." + colName)
      }
      switch cls {
      case H5T_FLOAT:
        columns.append(.double(colName, (0..<rows).map { buffer.load(fromByteOffset: $0 * 8, as: Double.self) }))
      case H5T_INTEGER:
        columns.append(.int(colName, (0..<rows).map { buffer.load(fromByteOffset: $0 * 8, as: Int64.self) }))
      default:
        var values: [String] = []
        for r in 0..<rows {
          let p = buffer.load(fromByteOffset: r * 8, as: UnsafeMutablePointer<CChar>?.self)
          values.append(p.map { String(cString: $0) } ?? "")
        }
        if rows > 0 { _ = H5Dvlen_reclaim(one.id, space.id, edgelab_H5P_DEFAULT(), buffer) }
        columns.append(.string(colName, values))
      }
    }
    return Table(name: name, columns: columns, attributes: try readAttributes(ds.id, path: path))
  }
}
