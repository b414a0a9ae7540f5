import CLinux

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
