import CLinux
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// How the process's allocator treats the engine's per-step arrays.
///
/// Every forward pass allocates its activations (a 32-token prefill of a hidden-512 model: arrays of hundreds of
/// kilobytes per block) and frees them after. By default glibc serves such sizes with fresh `mmap`ed pages and
/// returns them at once (or trims the heap top), so every step pays page faults and zeroing: measured in worker
/// processes, a 32-token prefill took about 10% longer than the same computation in a warm process, and the
/// simulator's validation under-predicted multi-stage time to first token by 12–15% for it. Keeping freed memory
/// in the heap lets each step reuse the last one's pages. Arrays of 8 MiB and more (offloaded layers read from
/// storage, long prompts' intermediates) still get pages of their own and return them, and at most 128 MiB of
/// freed memory is kept, so a worker's footprint stays within its device's memory limit.
public enum Allocator {
  /// Call once, early, in every process that runs the engine.
  @discardableResult
  public static func keepFreedMemory() -> Bool {
    el_keep_freed_memory(8 << 20, 128 << 20, 16 << 20) == 1
  }
}

/// Memory a process reads through to stand for other processes' traffic through the host's shared caches: a
/// calibrating worker reads as many bytes as the other workers' weights before each timed pass, the profiler
/// reads while its sender "computes" between messages (the run's stages stream their weights while the next
/// one waits, and the waiting one wakes to caches that no longer hold its code and data). Mapped privately and
/// unmapped when released.
public final class CacheSweep {
  private let base: UnsafeMutableRawPointer
  public let bytes: Int
  private var cursor = 0
  /// What the reads summed, kept so that they are not optimised away.
  public private(set) var sink: UInt64 = 0
  /// The most a sweep maps: more than any processor's last-level cache.
  public static let maxBytes = 1 << 30

  /// Nil for no bytes, more than `maxBytes`, or where the memory cannot be mapped.
  public init?(bytes: Int) {
    guard bytes >= 64, bytes <= Self.maxBytes else { return nil }
    guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED
    else { return nil }
    base = p
    self.bytes = bytes
    // Written once so that every page is backed (untouched anonymous pages all read the one zero page).
    memset(base, 1, bytes)
  }

  /// Reads a word from every 64-byte line, from the start.
  public func sweep() {
    cursor = 0
    read(lines: bytes / 64)
  }

  /// Reads a word from each of the next `lines` 64-byte lines, going on from where the last read stopped and
  /// around.
  public func read(lines: Int) {
    var s: UInt64 = 0
    let count = bytes / 64
    for _ in 0..<max(0, lines) {
      s &+= base.load(fromByteOffset: cursor * 64, as: UInt64.self)
      cursor += 1
      if cursor == count { cursor = 0 }
    }
    sink &+= s
  }

  deinit { munmap(base, bytes) }
}
