import CLinux
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Offloaded decoder blocks: their weights live in one file of a local directory and are read back into
/// staging memory before each use, as LIME loads non-resident layers from storage.
///
/// Reads bypass the page cache (`O_DIRECT` where the file system allows it, else `posix_fadvise(DONTNEED)`
/// after each read) and can be paced to a storage bandwidth, so an emulated device's storage is as slow as
/// declared. A prefetch thread loads the next offloaded block while the current one computes, into at most
/// `depth` staging slots.
final class OffloadStore: @unchecked Sendable {
  struct Entry {
    var offset: Int
    var bytes: Int
    /// (name, rows, cols, dtype, offset within the block)
    var matrices: [(String, Int, Int, WeightDType, Int)]
    var vectors: [(String, [Float])]
  }

  let path: String
  let fd: Int32
  let direct: Bool
  let pace: Double?
  var entries: [Int: Entry] = [:]
  private let state = Mutex<[Int: WeightMemory]>([:])
  private let condition = NSCondition()
  private var loading: Set<Int> = []
  private(set) var reads = 0
  private(set) var stallSeconds = 0.0
  let depth: Int

  /// - Parameters:
  ///   - directory: where the store file goes (created if needed).
  ///   - bytesPerSecond: pace reads to this rate (nil: as fast as the disk).
  init(directory: String, bytesPerSecond: Double?, depth: Int = 2) throws(CheckpointError) {
    do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
      throw CheckpointError(.unreadable, file: directory, "cannot create the offload store: \(error)")
    }
    path = directory + "/offloaded-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).bin"
    var d = open(path, O_RDWR | O_CREAT | O_TRUNC | el_o_direct(), 0o600)
    direct = d >= 0
    if d < 0 { d = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600) }
    if d < 0 { throw CheckpointError(.unreadable, file: path, "cannot create: \(String(cString: strerror(errno)))") }
    fd = d
    pace = bytesPerSecond
    self.depth = max(1, depth)
  }

  deinit {
    close(fd)
    unlink(path)
  }

  static let alignment = 4096

  /// Appends a block's matrices to the store.
  func add(layer: Int, matrices: [(String, WeightMatrix)], vectors: [(String, [Float])]) throws(CheckpointError) {
    let start = entries.values.map { $0.offset + $0.bytes }.max() ?? 0
    var layout: [(String, Int, Int, WeightDType, Int)] = []
    var size = 0
    for (name, m) in matrices {
      layout.append((name, m.rows, m.cols, m.dtype, size))
      size += (m.byteCount + 63) / 64 * 64
    }
    let padded = (size + Self.alignment - 1) / Self.alignment * Self.alignment
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: padded, alignment: Self.alignment)
    defer { buffer.deallocate() }
    for ((_, m), l) in zip(matrices, layout) { (buffer + l.4).copyMemory(from: m.base, byteCount: m.byteCount) }
    var done = 0
    while done < padded {
      let n = pwrite(fd, buffer + done, padded - done, off_t(start + done))
      if n <= 0 { throw CheckpointError(.unreadable, file: path, "write failed: \(String(cString: strerror(errno)))") }
      done += n
    }
    entries[layer] = Entry(offset: start, bytes: padded, matrices: layout, vectors: vectors)
  }

  /// Reads a block's weights from the store (paced, bypassing the page cache). The buffer is page-aligned, as
  /// O_DIRECT requires. A failed read of our own store file cannot be recovered from: the worker reports it
  /// and exits, and the coordinator names it.
  func read(_ layer: Int) -> WeightMemory {
    let e = entries[layer]!
    let memory = WeightMemory(allocating: e.bytes, alignment: Self.alignment)
    let t0 = monotonic()
    var done = 0
    while done < e.bytes {
      let n = pread(fd, memory.owned! + done, e.bytes - done, off_t(e.offset + done))
      if n < 0 && errno == EINTR { continue }
      if n <= 0 {
        let why = n < 0 ? String(cString: strerror(errno)) : "unexpected end of file"
        FileHandle.standardError.write(Data("offload store \(path): reading layer \(layer) failed: \(why)\n".utf8))
        exit(3)
      }
      done += n
    }
    if !direct { posix_fadvise(fd, off_t(e.offset), off_t(e.bytes), POSIX_FADV_DONTNEED) }
    if let pace, pace > 0 {
      let due = Double(e.bytes) / pace - (monotonic() - t0)
      if due > 0 { usleep(useconds_t(due * 1e6)) }
    }
    reads += 1
    return memory
  }

  /// Starts loading `layer` in the background unless it is loaded, loading, or the slots are full.
  func prefetch(_ layer: Int) {
    condition.lock()
    let busy = loading.contains(layer) || state.withLock { $0[layer] != nil } || loading.count + state.withLock({ $0.count }) >= depth
    if !busy { loading.insert(layer) }
    condition.unlock()
    if busy { return }
    Thread.detachNewThread { [self] in
      let m = read(layer)
      condition.lock()
      state.withLock { $0[layer] = m }
      loading.remove(layer)
      condition.broadcast()
      condition.unlock()
    }
  }

  /// The block's weights, waiting for a prefetch in flight or reading now; the wait counts as a stall.
  func acquire(_ layer: Int) -> WeightMemory {
    let t0 = monotonic()
    condition.lock()
    while loading.contains(layer) { condition.wait() }
    let ready = state.withLock { $0.removeValue(forKey: layer) }
    condition.unlock()
    let m = ready ?? read(layer)
    stallSeconds += monotonic() - t0
    return m
  }

  /// Matrices of a block from its loaded memory.
  func matrices(_ layer: Int, in memory: WeightMemory) -> [String: WeightMatrix] {
    var out: [String: WeightMatrix] = [:]
    for (name, rows, cols, dtype, offset) in entries[layer]!.matrices {
      out[name] = WeightMatrix(rows: rows, cols: cols, dtype: dtype, memory: WeightMemory(parent: memory, offset: offset, bytes: rows * cols * dtype.size))
    }
    return out
  }
}

extension WeightMemory {
  /// A view into another allocation, keeping it alive.
  convenience init(parent: WeightMemory, offset: Int, bytes: Int) {
    self.init(view: parent.base + offset, keeping: parent, bytes: bytes)
  }
}
