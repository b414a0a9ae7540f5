import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where time comes from, so that code driven by time (schedulers, deadlines, liveness) can be tested with a
/// clock the test moves.
public protocol ExecutionClock: Sendable {
  /// Seconds on a monotonic scale (the origin is arbitrary).
  func now() -> Double
}

/// CLOCK_MONOTONIC, shared by every process and network namespace of a host.
public struct MonotonicClock: ExecutionClock {
  public init() {}
  public func now() -> Double { Self.now() }
  public static func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
  }
}

/// A clock that moves only when told to (tests).
public final class ManualClock: ExecutionClock {
  private let time: Mutex<Double>
  public init(_ start: Double = 0) { time = Mutex(start) }
  public func now() -> Double { time.withLock { $0 } }
  /// Sets the time (never backwards).
  public func set(_ t: Double) { time.withLock { $0 = max($0, t) } }
  public func advance(by dt: Double) { time.withLock { $0 += max(0, dt) } }
}
