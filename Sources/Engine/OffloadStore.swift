import CLinux
public import EdgeLabCore
import Foundation
import Pipeline

#if canImport(Glibc)
import Glibc
#endif

/// Offloaded decoder blocks of one device (every stage a worker runs shares it): their weights live in one file
/// of a local directory and are read back into staging slots before each use, as LIME loads non-resident
/// layers from storage.
///
/// What to read and when is `OffloadTimeline`'s decision — the same state machine the simulator and LIME's cost
/// model run in virtual time: one background thread reads, in order of use, whenever a slot is free; a stage
/// that needs a block waits for its read (`acquire`) and frees the slot when done (`release`).
///
/// Reads bypass the page cache (`O_DIRECT` where the file system allows it, else `posix_fadvise(DONTNEED)`
/// after each read) and can be paced to a storage bandwidth, so an emulated device's storage is as slow as
/// declared.
public final class OffloadStore: @unchecked Sendable {
  struct Entry {
    var offset: Int
    var bytes: Int
    /// (name, rows, cols, dtype, offset within the block, repacked in 8-row groups)
    var matrices: [(String, Int, Int, WeightDType, Int, Bool)]
  }

  let path: String
  let fd: Int32
  let direct: Bool
  let pace: Double?
  /// Whether every block is stored (residency may change during the run), not only the offloaded ones.
  public let keepsEveryBlock: Bool
  private var entries: [Int: Entry] = [:]
  private var end = 0
  private let condition = NSCondition()
  private var timeline: OffloadTimeline
  private var loaded: [Int: WeightMemory] = [:]
  private var stopped = false
  private var loaderRunning = false
  private var readCount = 0
  private var stall = 0.0

  /// - Parameters:
  ///   - directory: where the store file goes (created if needed).
  ///   - bytesPerSecond: pace reads to this rate (nil: as fast as the disk).
  ///   - slots: staging slots (the prefetch depth).
  ///   - keepsEveryBlock: store every block, so residency can change during the run.
  public init(
    directory: String, bytesPerSecond: Double?, slots: Int, keepsEveryBlock: Bool, prefetch: Bool = true
  ) throws(CheckpointError) {
    do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
      throw CheckpointError(.unreadable, file: directory, "cannot create the offload store: \(error)")
    }
    path = directory + "/offloaded-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).bin"
    var d = open(path, O_RDWR | O_CREAT | O_TRUNC | el_o_direct(), 0o600)
    direct = d >= 0
    if d < 0 { d = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600) }
    if d < 0 { throw CheckpointError(.unreadable, file: path, "cannot create: \(String(cString: strerror(errno)))") }
    // The open descriptor keeps the file; unlinked now, it goes with the process however that ends.
    unlink(path)
    fd = d
    pace = bytesPerSecond
    self.keepsEveryBlock = keepsEveryBlock
    timeline = OffloadTimeline(order: [], slots: max(1, slots), prefetch: prefetch)
  }

  deinit { close(fd) }

  /// Bytes per second this host's offload store reads: `bytes` written to a store file in `directory`, then read
  /// back in blocks of 16 MiB the way offloaded layers are (unpaced). The median of three passes.
  public static func measureReadBandwidth(directory: String, bytes: Int) throws(CheckpointError) -> Bandwidth {
    let store = try OffloadStore(directory: directory, bytesPerSecond: nil, slots: 1, keepsEveryBlock: false)
    let chunk = 16 << 20
    let total = max(chunk, bytes / chunk * chunk)
    let buffer = WeightMemory(allocating: chunk, alignment: alignment)
    memset(buffer.owned!, 0x5a, chunk)
    var offset = 0
    while offset < total {
      let n = pwrite(store.fd, buffer.owned!, chunk, off_t(offset))
      if n < 0 && errno == EINTR { continue }
      guard n == chunk else {
        throw CheckpointError(.unreadable, file: store.path, "cannot write: \(String(cString: strerror(errno)))")
      }
      offset += chunk
    }
    fsync(store.fd)
    var rates: [Double] = []
    for _ in 0..<3 {
      let t0 = monotonic()
      for o in stride(from: 0, to: total, by: chunk) {
        _ = store.read(Entry(offset: o, bytes: chunk, matrices: []), layer: -1)
      }
      rates.append(Double(total) / (monotonic() - t0))
    }
    return Bandwidth(bitsPerSecond: rates.sorted()[1] * 8)
  }

  /// Stops the background reads (the store is released once its users drop it).
  public func stop() {
    condition.lock()
    stopped = true
    condition.broadcast()
    condition.unlock()
  }

  static let alignment = 4096

  /// Reads so far, and seconds stages spent waiting for them.
  public var reads: Int { condition.withLock { readCount } }
  public var stallSeconds: Double { condition.withLock { stall } }

  /// Whether `layer`'s weights are in the store.
  func contains(_ layer: Int) -> Bool { condition.withLock { entries[layer] != nil } }

  /// Appends a block's matrices to the store.
  func add(layer: Int, matrices: [(String, WeightMatrix)]) throws(CheckpointError) {
    var layout: [(String, Int, Int, WeightDType, Int, Bool)] = []
    var size = 0
    for (name, m) in matrices {
      layout.append((name, m.rows, m.cols, m.dtype, size, m.interleaved))
      size += (m.byteCount + 63) / 64 * 64
    }
    let padded = (size + Self.alignment - 1) / Self.alignment * Self.alignment
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: padded, alignment: Self.alignment)
    defer { buffer.deallocate() }
    for ((_, m), l) in zip(matrices, layout) { (buffer + l.4).copyMemory(from: m.base, byteCount: m.byteCount) }
    let start = condition.withLock {
      defer { end += padded }
      return end
    }
    var done = 0
    while done < padded {
      let n = pwrite(fd, buffer + done, padded - done, off_t(start + done))
      if n <= 0 { throw CheckpointError(.unreadable, file: path, "write failed: \(String(cString: strerror(errno)))") }
      done += n
    }
    condition.withLock { entries[layer] = Entry(offset: start, bytes: padded, matrices: layout) }
  }

  /// Which blocks are offloaded now, in order of use; starts the background reads. Call once every stage has
  /// stored its blocks, and again whenever residency changes.
  public func setOrder(_ order: [Int]) {
    condition.lock()
    for l in timeline.setOrder(order.filter { entries[$0] != nil }) { loaded[l] = nil }
    let start = !loaderRunning && !order.isEmpty && !stopped
    if start { loaderRunning = true }
    condition.broadcast()
    condition.unlock()
    if start { Thread.detachNewThread { [self] in readLoop() } }
  }

  private func readLoop() {
    condition.lock()
    while !stopped {
      guard let r = timeline.nextRead() else {
        condition.wait()
        continue
      }
      if let e = r.evicted { loaded[e] = nil }
      // Only stored blocks are ever ordered (`setOrder` filters), so the entry is there.
      let entry = entries[r.layer]!
      condition.unlock()
      let memory = read(entry, layer: r.layer)
      condition.lock()
      readCount += 1
      if timeline.readFinished(r.layer) { loaded[r.layer] = memory }
      condition.broadcast()
    }
    condition.unlock()
  }

  /// Reads a block's weights from the store (paced, bypassing the page cache). The buffer is page-aligned, as
  /// O_DIRECT requires. A failed read of our own store file cannot be recovered from: the worker reports it
  /// and exits, and the coordinator names it.
  private func read(_ e: Entry, layer: Int) -> WeightMemory {
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
      if due > 0 { usleep(useconds_t(min(due, 60) * 1e6)) }
    }
    return memory
  }

  /// The block's weights for one use: waits for its read (the wait counts as a stall). Pair with `release`.
  func acquire(_ layer: Int) -> [String: WeightMatrix] {
    let t0 = monotonic()
    condition.lock()
    defer { condition.unlock() }
    while timeline.acquire(layer) == .pending {
      condition.broadcast()
      condition.wait()
    }
    stall += monotonic() - t0
    return matrices(layer, in: loaded[layer]!)
  }

  /// The use of `layer` has ended; its slot frees.
  func release(_ layer: Int) {
    condition.lock()
    timeline.release(layer)
    if !timeline.isHeld(layer) { loaded[layer] = nil }
    condition.broadcast()
    condition.unlock()
  }

  /// A block's weights read directly, outside the staging slots (for a block that becomes resident).
  func readResident(_ layer: Int) -> [String: WeightMatrix] {
    let entry = condition.withLock { entries[layer]! }
    let memory = read(entry, layer: layer)
    return condition.withLock {
      readCount += 1
      return matrices(layer, in: memory)
    }
  }

  /// Matrices of a block from its loaded memory.
  private func matrices(_ layer: Int, in memory: WeightMemory) -> [String: WeightMatrix] {
    var out: [String: WeightMatrix] = [:]
    for (name, rows, cols, dtype, offset, interleaved) in entries[layer]!.matrices {
      out[name] = WeightMatrix(
        rows: rows, cols: cols, dtype: dtype,
        memory: WeightMemory(
          parent: memory, offset: offset, bytes: rows * (cols / dtype.blockValues * dtype.blockBytes)),
        interleaved: interleaved)
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
