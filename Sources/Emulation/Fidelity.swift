import CLinux
public import EdgeLabCore
import Foundation
import Transport

#if canImport(Glibc)
import Glibc
#endif

/// Measures emulated links through EdgeLab's own transport: throughput, delay and loss between two emulated
/// hosts. Threads enter the hosts' network namespaces (`setns` is per thread), so no extra processes are needed.
public enum Fidelity {
  public struct Row: Codable, Sendable {
    public var bandwidthMbit: Double
    public var measuredMbit: Double
    public var measuredMbitReverse: Double
    /// Configured one-way delay of each direction (the DSL's link latency) and its measurement (half the RTT).
    public var delayMs: Double
    public var measuredDelayMs: Double
    /// Round trip: configured (twice the one-way delay) and measured (median of small-frame echoes).
    public var rttMs: Double
    public var measuredRttMs: Double
    /// Configured loss and the fraction of UDP datagrams lost A → B (TCP would hide loss behind retransmits).
    public var lossPct: Double
    public var measuredLossPct: Double?
    public var mechanism: String
    enum CodingKeys: String, CodingKey {
      case bandwidthMbit = "bandwidth_mbit"
      case measuredMbit = "measured_mbit"
      case measuredMbitReverse = "measured_mbit_reverse"
      case delayMs = "delay_ms"
      case measuredDelayMs = "measured_delay_ms"
      case rttMs = "rtt_ms"
      case measuredRttMs = "measured_rtt_ms"
      case lossPct = "loss_pct"
      case measuredLossPct = "measured_loss_pct"
      case mechanism
    }

    init(
      bandwidthMbit: Double, measuredMbit: Double, measuredMbitReverse: Double, delayMs: Double, measuredRttMs: Double,
      lossPct: Double = 0, measuredLossPct: Double? = nil, mechanism: String
    ) {
      self.lossPct = lossPct
      self.measuredLossPct = measuredLossPct
      self.bandwidthMbit = bandwidthMbit
      self.measuredMbit = measuredMbit
      self.measuredMbitReverse = measuredMbitReverse
      self.delayMs = delayMs
      self.measuredDelayMs = measuredRttMs / 2
      self.rttMs = 2 * delayMs
      self.measuredRttMs = measuredRttMs
      self.mechanism = mechanism
    }
  }

  /// Runs `body` on a thread inside the namespace and waits for it.
  static func inNamespace<T: Sendable>(_ netns: String, _ body: @escaping @Sendable () throws -> T) throws -> T {
    let box = ResultBox<T>()
    let t = Thread {
      if el_enter_netns("/var/run/netns/" + netns) != 0 {
        box.set(
          .failure(EmulationError("cannot enter network namespace \(netns): \(String(cString: strerror(errno)))")))
        return
      }
      box.set(Result { try body() })
    }
    t.start()
    return try box.wait().get()
  }

  /// Runs `body` on a new thread inside the namespace, without waiting (the far end of a measurement).
  static func detached(in netns: String, _ body: @escaping @Sendable () -> Void) {
    Thread.detachNewThread {
      _ = el_enter_netns("/var/run/netns/" + netns)
      body()
    }
  }

  /// A two-host cluster with one symmetric link; `body` gets the cluster, A's and B's hosts.
  public static func withPair<T>(
    bandwidth: Bandwidth, latency: Seconds = .zero, jitter: Seconds = .zero, loss: Double = 0,
    _ body: (ClusterHandle) throws -> T
  ) throws -> T {
    let features = KernelFeatures.current
    guard features.root else { throw EmulationError("measuring emulated links needs root (network namespaces)") }
    let cluster = try Cluster(devices: ["a", "b"], features: features)
    defer { cluster.down() }
    let links = [("a", "b"), ("b", "a")].map {
      Cluster.Link(
        from: $0.0, to: $0.1, rate: bandwidth.bytesPerSecond, loss: loss, latency: latency.value, jitter: jitter.value,
        trace: [])
    }
    try cluster.up(links: links)
    return try body(ClusterHandle(cluster: cluster, links: links, from: "a", to: "b"))
  }

  /// Two hosts of a running cluster, A and B, and the link between them: what the check, the tests and the
  /// per-run link measurement use.
  public struct ClusterHandle: @unchecked Sendable {
    let cluster: Cluster
    /// The link A → B first; its settings are assumed for B → A too.
    let links: [Cluster.Link]
    let from: String, to: String
    public var id: String { cluster.id }
    public var netns: [String] { cluster.hosts.values.sorted { $0.index < $1.index }.map(\.netns) }
    public var mechanism: String { cluster.mechanism(links[0]) }
    var a: Cluster.Host { cluster.hosts[from]! }
    var b: Cluster.Host { cluster.hosts[to]! }
    /// The transport-level delay of the link (when netem is absent), for both ends.
    var transportDelay: Double? { cluster.features.netem ? nil : (links[0].latency > 0 ? links[0].latency : nil) }
    var transportJitter: Double { cluster.features.netem ? 0 : links[0].jitter }

    /// Goodput in Mbit/s from A to B (B to A when `reverse`) through the transport, after a warm-up.
    public func throughput(reverse: Bool = false, seconds: Double = 2, warmup: Double = 0.5) throws -> Double {
      let (src, dst) = reverse ? (b, a) : (a, b)
      let token = Array("fidelity-check-token".utf8)
      let listener = try Fidelity.inNamespace(dst.netns) { try Listener(host: dst.address, port: 0, token: token) }
      defer { listener.close() }
      let received = ResultBox<Double>()
      Fidelity.detached(in: dst.netns) {
        guard let c = try? listener.accept() else { return received.set(.success(0)) }
        // Counts what arrives in [warm-up, warm-up + seconds], then closes: the sender's queued bytes are
        // discarded rather than drained, so a slow link costs no more than the window.
        var bytes = 0
        var start: UInt64 = 0
        var last: UInt64 = 0
        let begin = monotonicNanoseconds()
        let stop = begin + UInt64((warmup + seconds) * 1e9)
        while let f = try? c.receive(), f.type != .goodbye {
          let now = monotonicNanoseconds()
          if Double(now - begin) * 1e-9 > warmup {
            if start == 0 {
              start = now
            } else {
              bytes += Wire.headerSize + f.payload.count
              last = now
            }
          }
          if now >= stop { break }
        }
        c.close()
        let elapsed = Double(last - min(start, last)) * 1e-9
        received.set(.success(start == 0 || elapsed <= 0 ? 0 : Double(bytes) * 8 / elapsed / 1e6))
      }
      try Fidelity.inNamespace(src.netns) {
        let c = try Connection.connect(to: listener.endpoint, token: token, name: "probe")
        let chunk = [UInt8](repeating: 7, count: 16 * 1024)
        // Sends until the receiver hangs up (or well past the window, should it not).
        let end = monotonicNanoseconds() + UInt64((seconds + warmup + 30) * 1e9)
        while monotonicNanoseconds() < end, (try? c.send(.activation, chunk)) != nil {}
        c.close()
      }
      return try received.wait().get()
    }

    /// Median round trip of small frames in ms, through the transport (one-way delay is half of it).
    public func roundTrip(pings: Int = 20) throws -> Double {
      let token = Array("fidelity-check-token".utf8)
      let (a, b) = (self.a, self.b)
      let listener = try Fidelity.inNamespace(b.netns) { try Listener(host: b.address, port: 0, token: token) }
      defer { listener.close() }
      let d = transportDelay
      let j = transportJitter
      @Sendable func delayer() -> (@Sendable (Frame) -> Double)? {
        guard let d else { return nil }
        let rng = RandomBox(seed: 99)
        return { _ in j > 0 ? max(0, d + rng.gaussian() * j) : d }
      }
      let echoDelay = delayer()
      Fidelity.detached(in: b.netns) {
        guard let c = try? listener.accept() else { return }
        c.delay = echoDelay
        while let f = try? c.receive(), f.type != .goodbye { try? c.send(.heartbeat, f.payload) }
        c.close()
      }
      return try Fidelity.inNamespace(a.netns) {
        let c = try Connection.connect(to: listener.endpoint, token: token, name: "probe")
        c.delay = delayer()
        var rtts: [Double] = []
        for _ in 0..<pings {
          let t0 = monotonicNanoseconds()
          try c.send(.heartbeat, [1, 2, 3, 4])
          _ = try c.receive()
          rtts.append(Double(monotonicNanoseconds() - t0) * 1e-6)
        }
        try? c.send(.goodbye, [])
        c.close()
        return rtts.sorted()[rtts.count / 2]
      }
    }

    /// Fraction of UDP datagrams lost from A to B (sent at a gentle pace so the rate limit drops none).
    public func loss(datagrams: Int = 20000) throws -> Double {
      let (a, b) = (self.a, self.b)
      let port: UInt16 = 47_000 + UInt16.random(in: 0...999)
      let count = ResultBox<Int>()
      let ready = ResultBox<Bool>()
      Fidelity.detached(in: b.netns) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        inet_pton(AF_INET, b.address, &addr.sin_addr)
        _ = withUnsafePointer(to: &addr) {
          $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
          }
        }
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        ready.set(.success(true))
        var got = 0
        var buf = [UInt8](repeating: 0, count: 2048)
        while recv(fd, &buf, buf.count, 0) > 0 { got += 1 }
        close(fd)
        count.set(.success(got))
      }
      _ = try ready.wait().get()
      try Fidelity.inNamespace(a.netns) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        inet_pton(AF_INET, b.address, &addr.sin_addr)
        let payload = [UInt8](repeating: 1, count: 200)
        for i in 0..<datagrams {
          _ = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
              sendto(fd, payload, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
          }
          if i % 50 == 49 { usleep(1000) }
        }
        close(fd)
      }
      let got = try count.wait().get()
      return 1 - Double(got) / Double(datagrams)
    }
  }

  /// A link of a run, as configured and as measured just before the run, both in device terms (wall-time
  /// bandwidth × D, wall-time delay ÷ D).
  public struct LinkMeasurement: Codable, Sendable {
    public var from: String
    public var to: String
    public var bandwidthMbit: Double
    public var measuredMbit: Double
    public var delayMs: Double
    public var measuredDelayMs: Double
    public var mechanism: String
    enum CodingKeys: String, CodingKey {
      case from
      case to
      case bandwidthMbit = "bandwidth_mbit"
      case measuredMbit = "measured_mbit"
      case delayMs = "delay_ms"
      case measuredDelayMs = "measured_delay_ms"
      case mechanism
    }
  }

  /// Measures one link of a running cluster briefly (0.5 s of goodput after 0.2 s of warm-up, 10 echoes).
  static func measure(cluster: Cluster, link: Cluster.Link, dilation d: Double) throws -> LinkMeasurement {
    let h = ClusterHandle(cluster: cluster, links: [link], from: link.from, to: link.to)
    let mbit = try h.throughput(seconds: 0.5, warmup: 0.2)
    let rtt = try h.roundTrip(pings: 10)
    return LinkMeasurement(
      from: link.from, to: link.to, bandwidthMbit: link.rate * 8 / 1e6 * d, measuredMbit: mbit * d,
      delayMs: link.latency * 1e3 / d, measuredDelayMs: rtt / 2 / d, mechanism: cluster.mechanism(link))
  }

  /// The fidelity table: throughput at 1, 10, 100 and 1000 Mbit/s (no delay), delay at 5 and 50 ms (100 Mbit/s),
  /// and loss at 5% (100 Mbit/s); every row also measures round trip and, on the loss row, UDP loss.
  /// `progress` is called before each row; it may throw to stop (each row's cluster is removed first).
  public static func check(progress: (String) throws -> Void = { _ in }) throws -> [Row] {
    var rows: [Row] = []
    for mbit in [1.0, 10, 100, 1000] {
      try progress("throughput at \(Int(mbit)) Mbit/s…")
      let seconds = mbit < 5 ? 4.0 : 2.0
      rows.append(
        try withPair(bandwidth: .mbit(mbit)) { p in
          Row(
            bandwidthMbit: mbit, measuredMbit: try p.throughput(seconds: seconds),
            measuredMbitReverse: try p.throughput(reverse: true, seconds: seconds),
            delayMs: 0, measuredRttMs: try p.roundTrip(), mechanism: p.mechanism)
        })
    }
    for ms in [5.0, 50] {
      try progress("delay \(Int(ms)) ms…")
      rows.append(
        try withPair(bandwidth: .mbit(100), latency: .ms(ms)) { p in
          Row(
            bandwidthMbit: 100, measuredMbit: try p.throughput(), measuredMbitReverse: try p.throughput(reverse: true),
            delayMs: ms, measuredRttMs: try p.roundTrip(), mechanism: p.mechanism)
        })
    }
    try progress("loss 5%…")
    rows.append(
      try withPair(bandwidth: .mbit(100), loss: 0.05) { p in
        Row(
          bandwidthMbit: 100, measuredMbit: try p.throughput(), measuredMbitReverse: try p.throughput(reverse: true),
          delayMs: 0, measuredRttMs: try p.roundTrip(), lossPct: 5, measuredLossPct: try p.loss() * 100,
          mechanism: p.mechanism)
      })
    return rows
  }
}

final class ResultBox<T: Sendable>: @unchecked Sendable {
  private var value: Result<T, any Error>?
  private let c = NSCondition()
  func set(_ v: Result<T, any Error>) {
    c.lock()
    value = v
    c.broadcast()
    c.unlock()
  }
  func wait() -> Result<T, any Error> {
    c.lock()
    defer { c.unlock() }
    while value == nil { c.wait() }
    return value!
  }
}

final class RandomBox: @unchecked Sendable {
  private var g: SeededRandom
  private let lock = NSLock()
  init(seed: UInt64) { g = SeededRandom(seed: seed) }
  func gaussian() -> Double {
    lock.lock()
    defer { lock.unlock() }
    return g.nextGaussian()
  }
}
