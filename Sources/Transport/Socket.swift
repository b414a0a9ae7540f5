import Foundation
import Synchronization
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

/// A transport failure, naming the peer.
public struct TransportError: Error, CustomStringConvertible, Sendable {
  public var peer: String
  public var reason: String
  public init(peer: String, _ reason: String) {
    self.peer = peer
    self.reason = reason
  }
  public var description: String { "\(peer): \(reason)" }
  static func errno(_ peer: String, _ what: String) -> TransportError {
    TransportError(peer: peer, "\(what): \(String(cString: strerror(Glibc.errno)))")
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

  init(fd: Int32, peer: String, peerName: String, decoder: FrameDecoder, encoder: FrameEncoder) {
    self.fd = fd
    self.peer = peer
    self.peerName = peerName
    self.decoder = decoder
    sendState = Mutex((encoder, LinkCounters()))
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
  }

  deinit { close() }

  /// Closes the socket (idempotent). Blocked reads and writes return.
  public func close() {
    if closed.exchange(true, ordering: .acquiringAndReleasing) { return }
    shutdown(fd, Int32(SHUT_RDWR))
    Glibc.close(fd)
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
        paceUntil = max(paceUntil, monotonicNanoseconds()) + UInt64(Double(Wire.headerSize + payload.count) / pacing * 1e9)
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
      if !ok { return TransportError.errno(peer, "send") }
      state.counters.sendSeconds += Double(monotonicNanoseconds() - t0) * 1e-9
      state.counters.bytesSent += UInt64(bytes.count)
      state.counters.framesSent += 1
      return nil
    }
    if let result { throw result }
  }

  /// The next frame; throws `WireError` for a bad stream and `.closed` at end of stream.
  public func receive() throws -> Frame {
    while true {
      if let f = try decoder.next() {
        received.bytes += UInt64(Wire.headerSize + f.payload.count)
        received.frames += 1
        if let delay, case let d = delay(f), d > 0 {
          let release = f.sentAt + UInt64(d * 1e9)
          let now = monotonicNanoseconds()
          if release > now { sleepNanoseconds(release - now) }
        }
        return f
      }
      var chunk = [UInt8](repeating: 0, count: 1 << 16)
      let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
      if n < 0 && errno == EINTR { continue }
      if n <= 0 {
        try decoder.finish()
        throw WireError.closed
      }
      decoder.feed(chunk[0..<n])
    }
  }

  /// After a successful server handshake: the peer's name and the full payload limit.
  func established(peerName: String, maxPayload: Int) {
    self.peerName = peerName
    decoder.maxPayload = maxPayload
  }

  /// Sets a receive timeout (0 = none), so a silent peer cannot block a handshake forever.
  func setReceiveTimeout(_ seconds: Double) {
    var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
  }

  /// Connects and performs the client side of the handshake.
  public static func connect(to endpoint: Endpoint, token: [UInt8], name: String, timeout: Double = 10,
                             maxPayload: Int = Wire.defaultMaxPayload) throws -> Connection {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    if fd < 0 { throw TransportError.errno(endpoint.description, "socket") }
    var addr = try endpoint.sockaddr()
    let deadline = monotonicNanoseconds() + UInt64(timeout * 1e9)
    while true {
      let r = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
      }
      if r == 0 { break }
      if (errno == ECONNREFUSED || errno == EINTR) && monotonicNanoseconds() < deadline {
        sleepNanoseconds(20_000_000)
        continue
      }
      let e = TransportError.errno(endpoint.description, "connect")
      Glibc.close(fd)
      throw e
    }
    let c = Connection(fd: fd, peer: endpoint.description, peerName: "", decoder: FrameDecoder(maxPayload: maxPayload), encoder: FrameEncoder())
    c.setReceiveTimeout(timeout)
    try c.send(.hello, Hello(token: token, name: name).encoded())
    let reply: Frame
    do { reply = try c.receive() } catch {
      c.close()
      throw TransportError(peer: endpoint.description, "handshake failed: \(error)")
    }
    c.setReceiveTimeout(0)
    switch reply.type {
    case .welcome: return c
    case .reject:
      c.close()
      throw TransportError(peer: endpoint.description, "refused the connection: \(String(decoding: reply.payload, as: UTF8.self))")
    default:
      c.close()
      throw TransportError(peer: endpoint.description, "unexpected \(reply.type) frame during the handshake")
    }
  }
}

func sleepNanoseconds(_ ns: UInt64) {
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
  private let closed = Atomic<Bool>(false)

  /// Binds `host:port` (port 0: any free port; the bound one is in `endpoint`).
  public init(host: String, port: UInt16, token: [UInt8], maxPayload: Int = Wire.defaultMaxPayload) throws(TransportError) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    if fd < 0 { throw TransportError.errno("\(host):\(port)", "socket") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var addr = try Endpoint(host: host, port: port).sockaddr()
    let r = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if r != 0 || listen(fd, 64) != 0 {
      let e = TransportError.errno("\(host):\(port)", "bind/listen")
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
    self.maxPayload = maxPayload
  }

  deinit { close() }

  public func close() {
    if closed.exchange(true, ordering: .acquiringAndReleasing) { return }
    shutdown(fd, Int32(SHUT_RDWR))
    Glibc.close(fd)
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
    if cfd < 0 { throw TransportError.errno(endpoint.description, "accept") }
    var ip = [CChar](repeating: 0, count: 32)
    inet_ntop(AF_INET, &addr.sin_addr, &ip, 32)
    let peer = "\(String(cString: ip)):\(UInt16(bigEndian: addr.sin_port))"
    return Connection(fd: cfd, peer: peer, peerName: "", decoder: FrameDecoder(maxPayload: min(maxPayload, 1 << 16)), encoder: FrameEncoder())
  }

  /// The server side of the handshake on a connection from `acceptSocket`: a peer that fails it gets a `reject`
  /// frame and is closed, and the error says why.
  public func handshake(_ raw: Connection, timeout handshakeTimeout: Double = 5) throws -> Connection {
    let peer = raw.peer
    raw.setReceiveTimeout(handshakeTimeout)
    var machine = HandshakeServer(token: token)
    let hello: Frame
    do { hello = try raw.receive() } catch {
      raw.close()
      throw TransportError(peer: peer, "no valid hello: \(error)")
    }
    switch machine.receive(hello) {
    case .send(let type, let payload):
      do { try raw.send(type, payload) } catch {
        raw.close()
        throw error
      }
      guard case .established(let name) = machine.state else { raw.close(); throw TransportError(peer: peer, "handshake") }
      raw.setReceiveTimeout(0)
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
}

