public import BuildInfo
public import EdgeLabCore
import Foundation
import Synchronization
public import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// An address "host:port" (IPv4).
public struct Endpoint: Hashable, Sendable, CustomStringConvertible, Codable {
  public var host: String
  public var port: UInt16
  public init(host: String, port: UInt16) {
    self.host = host
    self.port = port
  }
  /// Parses "HOST:PORT".
  public init?(_ text: String) {
    guard let colon = text.lastIndex(of: ":"), let p = UInt16(text[text.index(after: colon)...]) else { return nil }
    host = String(text[..<colon])
    port = p
  }
  public var description: String { "\(host):\(port)" }

  func sockaddr() throws(TransportError) -> sockaddr_in {
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_port = port.bigEndian
    guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &a.sin_addr) == 1 else {
      throw TransportError(peer: description, "'\(host)' is not an IPv4 address")
    }
    return a
  }
}

/// A transport failure, naming the peer; a failed system call carries its errno as a typed value, so callers
/// decide by `errno`, never by the text.
public struct TransportError: Error, CustomStringConvertible, Sendable, ReportableError {
  /// What failed, as data.
  public enum Kind: Sendable, Equatable {
    /// A system call, a frame or the handshake failed (`errno` and `reason` say which).
    case failed
    /// The peer answered the handshake as another build of EdgeLab (identities as `BuildIdentity.current`; an
    /// empty `theirs` is a build that predates build identities).
    case buildMismatch(ours: String, theirs: String)
  }
  public var peer: String
  public var reason: String
  /// The system call's error, when one failed (`.timedOut` for a deadline that passed).
  public var errno: Errno?
  public var kind: Kind

  public init(peer: String, _ reason: String, errno: Errno? = nil, kind: Kind = .failed) {
    self.peer = peer
    self.reason = reason
    self.errno = errno
    self.kind = kind
  }
  public var description: String { "\(peer): \(reason)" }

  /// The error of the system call that just failed (reads the thread's errno).
  static func system(_ peer: String, _ what: String) -> TransportError {
    let e = Errno(rawValue: Glibc.errno)
    return TransportError(peer: peer, "\(what): \(e)", errno: e)
  }

  /// A transport failure is a failure of the device at the other end (or of this one's network).
  public var failureClass: FailureClass { .deviceFailed }
  public var code: String {
    if case .buildMismatch = kind { return "build_mismatch" }
    return "transport_failed"
  }
  public var details: [String: JSONValue] {
    var c: [String: JSONValue] = [
      "peer": .string(peer), "errno": errno.map { .number(Double($0.rawValue)) } ?? .null,
    ]
    if case .buildMismatch(let ours, let theirs) = kind {
      c["ours"] = .string(ours)
      c["theirs"] = .string(theirs)
    }
    return c
  }

  /// Whether the failure means the socket was closed under us (the listener or connection is shutting down).
  public var isClosedSocket: Bool { errno == .badFileDescriptor || errno == .invalidArgument }
  /// Whether the failure is a shortage of file descriptors or buffers, which passes if one waits.
  public var isResourceShortage: Bool {
    errno == .tooManyOpenFiles || errno == .tooManyOpenFilesInSystem || errno == .noBufferSpace || errno == .noMemory
  }
}

/// CLOCK_MONOTONIC in nanoseconds (shared by all processes and namespaces of a host).
public func monotonicNanoseconds() -> UInt64 {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Traffic counters of one connection.
public struct LinkCounters: Sendable, Equatable, Codable {
  public var bytesSent: UInt64 = 0
  public var framesSent: UInt64 = 0
  public var bytesReceived: UInt64 = 0
  public var framesReceived: UInt64 = 0
  /// Time spent inside send calls (blocked on the network).
  public var sendSeconds: Double = 0
  public init() {}
}

/// An established, handshaken TCP connection. Sends are serialised by a lock; receives belong to one reader.
public final class Connection: @unchecked Sendable {
  public let peer: String
  /// The name the peer gave in its hello (empty on the connecting side).
  public private(set) var peerName: String
  private let fd: Int32
  private let sendState: Mutex<(encoder: FrameEncoder, counters: LinkCounters)>
  private var decoder: FrameDecoder
  private var received = (bytes: UInt64(0), frames: UInt64(0))
  private let closed = Atomic<Bool>(false)
  /// Emulated one-way delay for a frame (receive side): the frame is released at its send time plus this.
  public var delay: (@Sendable (Frame) -> Double)?
  /// Emulated link rate (send side), bytes per second: sends are paced as by a token bucket.
  public var pacing: Double?
  private var paceUntil: UInt64 = 0
  /// Where `receive` reads the socket into: one buffer for the connection's life, as its frames are read by one
  /// thread at a time (the decoder's state is the reader's too), instead of a zeroed 64 KiB array per `recv`.
  private let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 64)

  init(fd: Int32, peer: String, peerName: String, decoder: FrameDecoder, encoder: FrameEncoder) {
    self.fd = fd
    self.peer = peer
    self.peerName = peerName
    self.decoder = decoder
    sendState = Mutex((encoder, LinkCounters()))
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
  }

  deinit {
    close()
    Glibc.close(fd)
    chunk.deallocate()
  }

  /// Closes the connection (idempotent): blocked reads and writes return, and later ones fail. The descriptor
  /// itself is released when the last reference goes, so a reader still inside `receive` can never read another
  /// socket that reused its number.
  public func close() {
    if closed.exchange(true, ordering: .acquiringAndReleasing) { return }
    shutdown(fd, Int32(SHUT_RDWR))
  }

  public var isClosed: Bool { closed.load(ordering: .acquiring) }

  public var counters: LinkCounters {
    var c = sendState.withLock { $0.counters }
    c.bytesReceived = received.bytes
    c.framesReceived = received.frames
    return c
  }

  /// Sends one frame (thread-safe).
  public func send(_ type: FrameType, _ payload: [UInt8]) throws(TransportError) {
    let result: TransportError? = sendState.withLock { state in
      if let pacing, pacing > 0 {
        // Wait for the link to finish "transmitting" the previous frame, then account for this one.
        let now = monotonicNanoseconds()
        if paceUntil > now { sleepNanoseconds(paceUntil - now) }
        paceUntil =
          max(paceUntil, monotonicNanoseconds()) + UInt64(Double(Wire.headerSize + payload.count) / pacing * 1e9)
      }
      let bytes = state.encoder.encode(type, payload, sentAt: monotonicNanoseconds())
      let t0 = monotonicNanoseconds()
      let ok = bytes.withUnsafeBytes { raw -> Bool in
        var off = 0
        while off < raw.count {
          let n = Glibc.send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
          if n < 0 && errno == EINTR { continue }
          if n <= 0 { return false }
          off += n
        }
        return true
      }
      if !ok { return TransportError.system(peer, "send") }
      state.counters.sendSeconds += Double(monotonicNanoseconds() - t0) * 1e-9
      state.counters.bytesSent += UInt64(bytes.count)
      state.counters.framesSent += 1
      return nil
    }
    if let result { throw result }
  }

  /// The next frame; throws `WireError` for a bad stream and `.closed` at end of stream, and a
  /// `TransportError` with errno `.timedOut` if `deadline` (CLOCK_MONOTONIC ns) passes before the frame is
  /// complete. The deadline bounds the whole frame, however slowly its bytes trickle in.
  public func receive(deadline: UInt64? = nil) throws -> Frame {
    while true {
      if let f = try decoder.next() {
        received.bytes += UInt64(Wire.headerSize + f.payload.count)
        received.frames += 1
        if let delay, case let d = delay(f), d > 0, d.isFinite {
          // The send time comes from the peer: a time in the future counts as now, and the delay is capped.
          let now = monotonicNanoseconds()
          let release = min(f.sentAt, now).addingReportingOverflow(UInt64(min(d, 3600) * 1e9)).partialValue
          if release > now { sleepNanoseconds(release - now) }
        }
        return f
      }
      if let deadline { try waitReadable(until: deadline) }
      let n = recv(fd, chunk.baseAddress!, chunk.count, 0)
      if n < 0 && errno == EINTR { continue }
      if n < 0 && !isClosed { throw TransportError.system(peer, "recv") }
      if n <= 0 {
        try decoder.finish()
        throw WireError.closed
      }
      decoder.feed(UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
    }
  }

  /// Waits until the socket has bytes to read, or throws once `deadline` has passed.
  private func waitReadable(until deadline: UInt64) throws(TransportError) {
    while true {
      let now = monotonicNanoseconds()
      if now >= deadline { throw TransportError(peer: peer, "no complete frame before the deadline", errno: .timedOut) }
      var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      let ms = Int32(min((deadline - now + 999_999) / 1_000_000, 60_000))
      let r = poll(&p, 1, ms)
      if r > 0 { return }
      if r < 0 && errno != EINTR { throw TransportError.system(peer, "poll") }
    }
  }

  /// After a successful server handshake: the peer's name and the full payload limit.
  func established(peerName: String, maxPayload: Int) {
    self.peerName = peerName
    decoder.maxPayload = maxPayload
  }

  /// The largest payload this connection accepts from now on; a longer frame is refused before it is read.
  /// Set it before the connection's reader starts.
  public func limitPayload(to bytes: Int) { decoder.maxPayload = bytes }

  /// Connects and performs the client side of the handshake.
  ///
  /// - Parameter build: the build the peer must be (its welcome names its own); another build is refused with
  ///   `TransportError.Kind.buildMismatch`.
  public static func connect(
    to endpoint: Endpoint, token: [UInt8], name: String, timeout: Double = 10,
    maxPayload: Int = Wire.defaultMaxPayload, build: String = BuildIdentity.current
  ) throws -> Connection {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    if fd < 0 { throw TransportError.system(endpoint.description, "socket") }
    var addr = try endpoint.sockaddr()
    let deadline = monotonicNanoseconds() + UInt64(timeout * 1e9)
    while true {
      let r = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
      }
      if r == 0 { break }
      if (errno == ECONNREFUSED || errno == EINTR) && monotonicNanoseconds() < deadline {
        sleepNanoseconds(20_000_000)
        continue
      }
      let e = TransportError.system(endpoint.description, "connect")
      Glibc.close(fd)
      throw e
    }
    let c = Connection(
      fd: fd, peer: endpoint.description, peerName: "", decoder: FrameDecoder(maxPayload: maxPayload),
      encoder: FrameEncoder())
    try c.send(.hello, Hello(token: token, name: name).encoded())
    let reply: Frame
    do { reply = try c.receive(deadline: deadline) } catch {
      c.close()
      throw TransportError(
        peer: endpoint.description, "handshake failed: \(error)", errno: (error as? TransportError)?.errno)
    }
    switch reply.type {
    case .welcome:
      // The welcome carries the peer's build; one run's processes must all be this build.
      let theirs = String(decoding: reply.payload, as: UTF8.self)
      guard BuildIdentity.sameBuild(theirs, build) else {
        c.close()
        throw TransportError(
          peer: endpoint.description,
          "is edgelab \(theirs.isEmpty ? "(an older build, without a build identity)" : theirs), this process \(build)",
          kind: .buildMismatch(ours: build, theirs: theirs))
      }
      return c
    case .reject:
      c.close()
      throw TransportError(
        peer: endpoint.description, "refused the connection: \(String(decoding: reply.payload, as: UTF8.self))")
    default:
      c.close()
      throw TransportError(peer: endpoint.description, "unexpected \(reply.type) frame during the handshake")
    }
  }
}

/// Sleeps for `ns` nanoseconds (through interruptions by signals).
public func sleepNanoseconds(_ ns: UInt64) {
  var request = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
  var remaining = timespec()
  while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

/// A listening socket that accepts handshaken connections carrying the run token.
public final class Listener: @unchecked Sendable {
  public let endpoint: Endpoint
  private let fd: Int32
  private let token: [UInt8]
  private let maxPayload: Int
  /// The identity this listener's welcome announces.
  private let build: String
  private let closed = Atomic<Bool>(false)

  /// Binds `host:port` (port 0: any free port; the bound one is in `endpoint`).
  public init(
    host: String, port: UInt16, token: [UInt8], maxPayload: Int = Wire.defaultMaxPayload,
    build: String = BuildIdentity.current
  ) throws(TransportError) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    if fd < 0 { throw TransportError.system("\(host):\(port)", "socket") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var addr = try Endpoint(host: host, port: port).sockaddr()
    let r = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if r != 0 || listen(fd, 64) != 0 {
      let e = TransportError.system("\(host):\(port)", "bind/listen")
      Glibc.close(fd)
      throw e
    }
    var bound = sockaddr_in()
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &bound) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    endpoint = Endpoint(host: host, port: UInt16(bigEndian: bound.sin_port))
    self.fd = fd
    self.token = token
    self.build = build
    self.maxPayload = maxPayload
  }

  deinit {
    close()
    Glibc.close(fd)
  }

  /// Stops listening (idempotent): `accept` and `serve` return. The descriptor is released with the last
  /// reference, as for `Connection`.
  public func close() {
    if closed.exchange(true, ordering: .acquiringAndReleasing) { return }
    shutdown(fd, Int32(SHUT_RDWR))
  }

  /// Accepts the next connection and runs the server handshake. A peer that fails it gets a `reject` frame
  /// and is closed; the error says why (the caller logs it and accepts again).
  public func accept(handshakeTimeout: Double = 5) throws -> Connection {
    try handshake(try acceptSocket(), timeout: handshakeTimeout)
  }

  /// Accepts the next TCP connection without the handshake (run `handshake` on it, e.g. on its own thread, so
  /// that a peer that connects and says nothing cannot hold up the others).
  public func acceptSocket() throws -> Connection {
    var addr = sockaddr_in()
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let cfd = withUnsafeMutablePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(fd, $0, &len) }
    }
    if cfd < 0 { throw TransportError.system(endpoint.description, "accept") }
    var ip = [CChar](repeating: 0, count: 32)
    inet_ntop(AF_INET, &addr.sin_addr, &ip, 32)
    let host = String(decoding: ip.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let peer = "\(host):\(UInt16(bigEndian: addr.sin_port))"
    return Connection(
      fd: cfd, peer: peer, peerName: "", decoder: FrameDecoder(maxPayload: min(maxPayload, 1 << 16)),
      encoder: FrameEncoder())
  }

  /// The server side of the handshake on a connection from `acceptSocket`: a peer that fails it gets a `reject`
  /// frame and is closed, and the error says why. The whole handshake must arrive within `handshakeTimeout`
  /// seconds, however slowly its bytes trickle in.
  public func handshake(_ raw: Connection, timeout handshakeTimeout: Double = 5) throws -> Connection {
    let peer = raw.peer
    let deadline = monotonicNanoseconds() + UInt64(max(0, handshakeTimeout) * 1e9)
    var machine = HandshakeServer(token: token, build: build)
    let hello: Frame
    do { hello = try raw.receive(deadline: deadline) } catch {
      raw.close()
      throw TransportError(peer: peer, "no valid hello: \(error)", errno: (error as? TransportError)?.errno)
    }
    switch machine.receive(hello) {
    case .send(let type, let payload):
      do { try raw.send(type, payload) } catch {
        raw.close()
        throw error
      }
      guard case .established(let name) = machine.state else {
        raw.close()
        throw TransportError(peer: peer, "handshake")
      }
      raw.established(peerName: name, maxPayload: maxPayload)
      return raw
    case .reject(let reason):
      try? raw.send(.reject, Array(reason.utf8))
      raw.close()
      throw TransportError(peer: peer, "refused: \(reason)")
    case .deliver:
      raw.close()
      throw TransportError(peer: peer, "handshake state machine delivered before the hello")
    }
  }

  /// What the accept loop reports.
  public enum Event: Sendable {
    /// A connection passed the handshake.
    case connected(Connection)
    /// A connection was refused or failed its handshake; the loop goes on.
    case refused(TransportError)
    /// `accept` failed for lack of descriptors or buffers (`failures` in a row so far); the loop waits and
    /// retries with exponential backoff. Reported once per episode, and again (`recovered`) when it passes.
    case shortage(TransportError, failures: Int)
    case recovered(afterFailures: Int)
  }

  /// Accepts connections until the listener is closed: each handshake runs on its own thread with a deadline
  /// for the whole handshake, at most `maxPending` handshakes run at once (later connections are closed at
  /// once), and `accept` failures for lack of resources back off from 10 ms to 1 s instead of spinning.
  public func serve(handshakeTimeout: Double = 5, maxPending: Int = 16, _ report: @escaping @Sendable (Event) -> Void) {
    let pending = Counter()
    var failures = 0
    var backoff: UInt64 = 10_000_000
    while !closed.load(ordering: .acquiring) {
      let raw: Connection
      do { raw = try acceptSocket() } catch let e as TransportError {
        if e.isClosedSocket || closed.load(ordering: .acquiring) { return }
        if e.isResourceShortage {
          failures += 1
          if failures == 1 { report(.shortage(e, failures: failures)) }
          sleepNanoseconds(backoff)
          backoff = min(backoff * 2, 1_000_000_000)
        } else {
          report(.refused(e))
        }
        continue
      } catch {
        return
      }
      if failures > 0 {
        report(.recovered(afterFailures: failures))
        failures = 0
        backoff = 10_000_000
      }
      if pending.value.add(1, ordering: .acquiringAndReleasing).newValue > maxPending {
        pending.value.subtract(1, ordering: .acquiringAndReleasing)
        raw.close()
        report(.refused(TransportError(peer: raw.peer, "refused: \(maxPending) handshakes already in progress")))
        continue
      }
      let box = UncheckedBox((self, raw, pending))
      Thread.detachNewThread {
        let (listener, raw, pending) = box.value
        defer { pending.value.subtract(1, ordering: .acquiringAndReleasing) }
        do { report(.connected(try listener.handshake(raw, timeout: handshakeTimeout))) } catch let e as TransportError
        {
          report(.refused(e))
        } catch {
          report(.refused(TransportError(peer: raw.peer, "\(error)")))
        }
      }
    }
  }
}

/// A count shared between threads.
private final class Counter: Sendable {
  let value = Atomic<Int>(0)
}

/// Carries a value the caller knows is safe into a thread.
private struct UncheckedBox<T>: @unchecked Sendable {
  let value: T
  init(_ value: T) { self.value = value }
}
