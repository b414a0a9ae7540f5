import CLinux
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Which CPUs the worker processes of a run on this machine compute on.
///
/// A loopback run stands for devices that each have a processor of their own. Left to the kernel, two workers that
/// hand messages back and forth can end up queued on one core while the other idles: a socket write wakes its
/// reader on the writer's core (the kernel expects the writer to sleep next), and a tensor-parallel group's leader
/// goes on computing after it sends. Measured here with two workers sharing every block, a prefill step stalled
/// in slices of 0.75 ms until the kernel moved one of them (time to first token 8–35% above the same run's best).
/// When there are cores enough, each worker gets cores of its own, as separate devices would; with more workers
/// than cores they share all of them, and the simulator counts the sharing.
public enum CPUPlacement {
  /// The CPUs this process may run on, in increasing order (empty where the platform cannot tell).
  public static func available() -> [Int] {
    var out = [Int32](repeating: 0, count: 4096)
    let n = el_get_affinity(&out, Int32(out.count))
    return n > 0 ? out.prefix(Int(n)).map(Int.init) : []
  }

  /// Disjoint sets of `threads` CPUs for each worker, in order, when `cpus` holds enough of them; nil when the
  /// workers would have to share.
  public static func assign(_ workers: [String], threads: Int, cpus: [Int]) -> [String: [Int]]? {
    guard threads >= 1, !workers.isEmpty else { return nil }
    let (needed, overflow) = workers.count.multipliedReportingOverflow(by: threads)
    guard !overflow, needed <= cpus.count else { return nil }
    var out: [String: [Int]] = [:]
    for (i, w) in workers.enumerated() {
      out[w] = Array(cpus[(i * threads)..<((i + 1) * threads)])
    }
    return out
  }

  /// Restricts every thread of this process (and so the threads they start later) to `cpus`.
  public static func pin(to cpus: [Int]) throws(PlacementError) {
    guard !cpus.isEmpty else { throw PlacementError(cpus: cpus, detail: "no CPU given") }
    let ids = cpus.map(Int32.init)
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    let threads = tasks.compactMap(Int32.init)
    for tid in threads.isEmpty ? [0] : threads {
      // A thread that exited since the listing is not an error.
      if el_set_affinity(tid, ids, Int32(ids.count)) != 0 && errno != ESRCH {
        throw PlacementError(cpus: cpus, detail: String(cString: strerror(errno)))
      }
    }
  }

  /// Puts the calling thread in the background (`background`: it runs only when no other thread wants a CPU, and
  /// any thread that wakes takes the CPU from it) or back in the foreground. The coordinator's threads serve in
  /// the background: on this machine they share the cores with the workers, and their bookkeeping (decoding
  /// every token report, a few tens of microseconds each) ran in bursts at request boundaries, on a worker's core,
  /// delaying the next prefill by up to 1.5 ms. Processes started from the thread run in the foreground. Returns
  /// whether the kernel agreed.
  @discardableResult
  public static func background(_ background: Bool) -> Bool { el_set_idle_policy(background ? 1 : 0) == 0 }

  /// A CPU list as `--cpus` takes it ("0,1"), parsed: nil unless every entry is a CPU number below 1024 (the kernel interface's set) and
  /// there are at most 4096 of them, none repeated.
  public static func parse(_ text: String) -> [Int]? {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
    guard !parts.isEmpty, parts.count <= 4096 else { return nil }
    var out: [Int] = []
    for p in parts {
      guard let c = Int(p.trimmingCharacters(in: .whitespaces)), c >= 0, c < 1024, !out.contains(c) else { return nil }
      out.append(c)
    }
    return out
  }

  /// The list as `--cpus` takes it.
  public static func format(_ cpus: [Int]) -> String { cpus.map(String.init).joined(separator: ",") }
}

/// The kernel refused to restrict this process to the CPUs asked for.
public struct PlacementError: Error, CustomStringConvertible {
  public var cpus: [Int]
  public var detail: String
  public var description: String {
    "cannot run on CPUs \(CPUPlacement.format(cpus)): \(detail) (give CPUs this machine has, or leave --cpus out)"
  }
}
