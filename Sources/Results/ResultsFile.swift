public import EdgeLabCore
import Foundation
public import Metrics
public import Pipeline

/// Facts about the invocation that produced a results file (root attributes).
public struct FileInfo: Hashable, Sendable {
  public var experiment: String
  public var specJSON: String
  public var toolkitVersion: String
  public var gitCommit: String
  public var gitDirty: Bool
  public var gitDiff: String
  public var host: String
  public var startedAt: String
  public var finishedAt: String
  public var seed: UInt64
  public var backend: String
  public var runsTotal: Int
  /// False while a sweep is still running or after it stopped early.
  public var complete: Bool
  /// Further facts (e.g. emulation details), as attributes.
  public var extra: [String: String]

  public init(
    experiment: String, specJSON: String, toolkitVersion: String, gitCommit: String, gitDirty: Bool,
    gitDiff: String, host: String, startedAt: String, finishedAt: String, seed: UInt64, backend: String,
    runsTotal: Int, complete: Bool, extra: [String: String] = [:]
  ) {
    self.experiment = experiment
    self.specJSON = specJSON
    self.toolkitVersion = toolkitVersion
    self.gitCommit = gitCommit
    self.gitDirty = gitDirty
    self.gitDiff = gitDiff
    self.host = host
    self.startedAt = startedAt
    self.finishedAt = finishedAt
    self.seed = seed
    self.backend = backend
    self.runsTotal = runsTotal
    self.complete = complete
    self.extra = extra
  }
}

/// One sweep value of a run.
public struct RunParameter: Hashable, Sendable {
  public var label: String
  public var path: String
  public var value: JSONValue
  public init(label: String, path: String, value: JSONValue) {
    self.label = label
    self.path = path
    self.value = value
  }

  /// The value as a number for plotting, with the unit the column name carries: bandwidths in Mbit/s, times in
  /// ms, sizes in GB, plain numbers as they are; nil for anything else.
  public var numeric: (suffix: String, value: Double)? {
    switch value {
    case .number(let n): return ("", n)
    case .string(let s):
      if s.hasSuffix("bit/s") || s.hasSuffix("B/s") || s.hasSuffix("bps"), let b = try? Bandwidth(parsing: s) {
        return ("_mbit_s", b.megabitsPerSecond)
      }
      if s.hasSuffix("s"), let t = try? Seconds(parsing: s) { return ("_ms", t.value * 1e3) }
      if s.hasSuffix("B"), let b = try? Bytes(parsing: s) { return ("_gb", b.gigabytes) }
      return nil
    default: return nil
    }
  }
}

extension RunParameter {
  /// The `kind` of an object value (an arrival process, a length distribution) for plotting: gnuplot reads a
  /// field only up to its first double quote, so a JSON object cannot be told apart by its text; nil for
  /// anything else.
  public var kind: String? {
    guard case .object(let o) = value, case .string(let k)? = o["kind"] else { return nil }
    return k
  }
}

/// One run as stored: what was run, the plan, what happened.
public struct RunRecord: Hashable, Sendable {
  public var index: Int
  public var point: Int
  public var algorithm: String
  public var label: String
  public var repetition: Int
  public var seed: UInt64
  /// Identifies the run for `--resume` (sweep values, label, repetition).
  public var key: String
  public var parameters: [RunParameter]
  public var plan: Plan?
  public var outcome: RunOutcome

  public init(
    index: Int, point: Int, algorithm: String, label: String, repetition: Int, seed: UInt64, key: String,
    parameters: [RunParameter], plan: Plan?, outcome: RunOutcome
  ) {
    self.index = index
    self.point = point
    self.algorithm = algorithm
    self.label = label
    self.repetition = repetition
    self.seed = seed
    self.key = key
    self.parameters = parameters
    self.plan = plan
    self.outcome = outcome
  }

  public var groupName: String {
    "run" + String(repeating: "0", count: max(0, 4 - String(index).count)) + String(index)
  }
  public var summary: RunSummary { RunSummary(outcome) }
}

/// A whole results file in memory.
public struct ResultsFile: Hashable, Sendable {
  public var info: FileInfo
  public var runs: [RunRecord]
  /// Further tables at the root, beside `summary` (e.g. the validation's predicted-vs-measured table);
  /// `edgelab export` writes each as NAME.tsv.
  public var tables: [Table]
  public init(info: FileInfo, runs: [RunRecord], tables: [Table] = []) {
    self.info = info
    self.runs = runs
    self.tables = tables
  }
}

/// Errors reading or writing results files.
public struct ResultsError: Error, CustomStringConvertible, ReportableError {
  /// What went wrong with the file, as data.
  public enum Kind: String, Sendable {
    /// There is no file at the path.
    case missing
    /// Not a readable HDF5 file, or an EdgeLab file whose contents break the schema.
    case corrupt
    /// A readable HDF5 file that is not an EdgeLab results file.
    case notResultsFile = "not_results_file"
    /// Writing, syncing or renaming failed (`errno` says why: a full disk is ENOSPC).
    case writeFailed = "write_failed"
    /// Another process is writing this results file.
    case busy
  }
  public var kind: Kind
  public var path: String
  public var reason: String
  /// The system call's errno, where one failed.
  public var errno: Int32?

  public init(_ kind: Kind, path: String, reason: String, errno: Int32? = nil) {
    self.kind = kind
    self.path = path
    self.reason = reason
    self.errno = errno
  }
  public var description: String { "\(path): \(reason)" }

  public var failureClass: FailureClass {
    switch kind {
    case .missing, .corrupt, .notResultsFile: .inputCorrupt
    case .writeFailed: .ioFailed
    case .busy: .busy
    }
  }
  public var code: String { "results_" + kind.rawValue }
  public var details: [String: JSONValue] {
    ["path": .string(path), "errno": errno.map { .number(Double($0)) } ?? .null]
  }
}

/// The right to write one results file, held until this object (or the process) ends. A class: it owns a
/// descriptor whose lifetime is the lock's.
public final class ResultsLock: Sendable {
  private let fd: Int32
  init(fd: Int32) { self.fd = fd }
  deinit { close(fd) }
}

/// Reads and writes results files. Writes are atomic: a temporary file in the same directory, flushed and
/// synced, then renamed over the target, so a reader never sees a half-written file.
public enum ResultsStore {
  public static let schemaVersion: Int64 = 1

  public static func write(_ file: ResultsFile, to path: String) throws {
    try writeTree(Schema.encode(file), to: path)
  }

  /// Writes any group tree atomically (the mechanism behind `write`).
  static func writeTree(_ tree: Group, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path
    try FileManager.default.createDirectory(atPath: dir.isEmpty ? "." : dir, withIntermediateDirectories: true)
    let tmp = (dir.isEmpty ? "." : dir) + "/." + url.lastPathComponent + ".tmp-\(getpid())"
    do {
      try HDF5.write(tree, to: tmp)
      try syncFile(tmp)
      if rename(tmp, path) != 0 {
        throw ResultsError(
          .writeFailed, path: path,
          reason: "cannot rename the temporary file into place: \(String(cString: strerror(errno)))", errno: errno)
      }
      try? syncFile(dir.isEmpty ? "." : dir)
    } catch {
      unlink(tmp)
      throw error
    }
  }

  /// Takes the exclusive right to write `path` for as long as the returned lock lives (or this process does):
  /// a second run writing the same file is refused with the first one's pid instead of overwriting it. Temporary
  /// files that a killed writer of the same path left behind are removed.
  ///
  /// - Throws: `ResultsError` naming the other process when the file is being written.
  public static func lock(_ path: String) throws -> ResultsLock {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path.isEmpty ? "." : url.deletingLastPathComponent().path
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let lockPath = dir + "/." + url.lastPathComponent + ".lock"
    let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    if fd < 0 {
      throw ResultsError(
        .writeFailed, path: path,
        reason: "cannot create the lock file \(lockPath): \(String(cString: strerror(errno)))",
        errno: errno)
    }
    if flock(fd, LOCK_EX | LOCK_NB) != 0 {
      var buffer = [UInt8](repeating: 0, count: 64)
      let n = pread(fd, &buffer, 63, 0)
      close(fd)
      let holder =
        n > 0
        ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "unknown"
      throw ResultsError(
        .busy, path: path,
        reason: "another run is writing this file (pid \(holder)); wait for it to finish, or write elsewhere with --out"
      )
    }
    let pid = "\(getpid())\n"
    _ = ftruncate(fd, 0)
    _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
    // Whoever wrote this path before us is gone (we hold the lock): its temporary files are garbage.
    let prefix = "." + url.lastPathComponent + ".tmp-"
    for f in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where f.hasPrefix(prefix) {
      unlink(dir + "/" + f)
    }
    return ResultsLock(fd: fd)
  }

  public static func read(_ path: String) throws -> ResultsFile {
    guard FileManager.default.fileExists(atPath: path) else {
      throw ResultsError(.missing, path: path, reason: "no such file")
    }
    do {
      return try Schema.decode(try HDF5.read(path), path: path)
    } catch let e as HDF5Error {
      throw ResultsError(.corrupt, path: path, reason: "not a readable HDF5 results file (\(e))")
    }
  }

  /// The raw group tree (for tools that want every table).
  public static func readTree(_ path: String) throws -> Group {
    guard FileManager.default.fileExists(atPath: path) else {
      throw ResultsError(.missing, path: path, reason: "no such file")
    }
    return try HDF5.read(path)
  }

  static func syncFile(_ path: String) throws {
    let fd = open(path, O_RDONLY)
    if fd < 0 {
      throw ResultsError(
        .writeFailed, path: path, reason: "cannot open to sync: \(String(cString: strerror(errno)))", errno: errno)
    }
    defer { close(fd) }
    _ = fsync(fd)
  }
}
