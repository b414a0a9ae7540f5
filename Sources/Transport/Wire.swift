public import BuildInfo

/// EdgeLab's wire format, version 2 (version 1 had an empty welcome, without the build identity).
///
/// A connection starts with a handshake: the connecting side sends a `hello` frame whose payload is
/// `magic "EDGL" · version u16 · token length u16 · token bytes · name (UTF-8, the rest)`; the accepting side
/// answers `welcome` (its build identity, UTF-8: `BuildIdentity.current`) or `reject` (a UTF-8 reason) and
/// closes. The connecting side closes a connection whose welcome names another build. After that, both sides send
/// frames. A frame is a 21-byte header — payload length u32, type u8, sequence number u64, send time u64
/// (CLOCK_MONOTONIC nanoseconds, shared by every process and network namespace of a host, used for emulated
/// delay) — then the payload (all integers little-endian). Sequence numbers start at 0 on each side and grow by one per frame; a gap
/// or repeat is an out-of-order frame. Payloads above the agreed maximum are refused before they are read.
public enum Wire {
  public static let magic: [UInt8] = Array("EDGL".utf8)
  public static let version: UInt16 = 4
  public static let headerSize = 21
  /// Default largest payload: 256 MiB (a prefill of 2048 tokens of hidden size 8192 in FP32 is 64 MiB).
  public static let defaultMaxPayload = 256 << 20
}

/// Frame types.
public enum FrameType: UInt8, Sendable, CaseIterable {
  case hello = 1
  case welcome = 2
  case reject = 3
  /// JSON control messages (assignments, requests, events, statistics).
  case control = 10
  /// A micro-batch's activations between pipeline stages (binary, see `ActivationMessage`).
  case activation = 11
  /// Sampled tokens travelling back to the source.
  case tokens = 12
  case heartbeat = 13
  case goodbye = 14
  /// Between the members of a tensor-parallel group: the leader's hidden states, the members' partial sums and
  /// their total (an `ActivationMessage` whose `batch` says which; see `GroupMessage`).
  case group = 15
}

/// One frame.
public struct Frame: Sendable, Equatable {
  public var type: FrameType
  public var sequence: UInt64
  /// When the sender wrote the frame (CLOCK_MONOTONIC ns).
  public var sentAt: UInt64
  public var payload: [UInt8]
  public init(type: FrameType, sequence: UInt64 = 0, sentAt: UInt64 = 0, payload: [UInt8] = []) {
    self.type = type
    self.sequence = sequence
    self.sentAt = sentAt
    self.payload = payload
  }
}

/// Why a byte stream was refused; the connection is closed with this as the logged reason.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
  case oversized(length: Int, limit: Int)
  case unknownType(UInt8)
  case outOfOrder(expected: UInt64, got: UInt64)
  case truncated(needed: Int, got: Int)
  case badMagic
  case versionMismatch(UInt16)
  case badToken
  case malformed(String)
  case closed

  public var description: String {
    switch self {
    case .oversized(let l, let limit): "frame of \(l) bytes exceeds the limit of \(limit)"
    case .unknownType(let t): "unknown frame type \(t)"
    case .outOfOrder(let e, let g): "out-of-order frame: expected sequence \(e), got \(g)"
    case .truncated(let n, let g): "truncated: needed \(n) bytes, the stream ended after \(g)"
    case .badMagic: "not an EdgeLab peer (bad magic bytes)"
    case .versionMismatch(let v): "protocol version \(v) is not supported (this build speaks \(Wire.version))"
    case .badToken: "wrong run token"
    case .malformed(let why): "malformed message: \(why)"
    case .closed: "the peer closed the connection"
    }
  }
}

/// Encodes frames, numbering them.
public struct FrameEncoder: Sendable {
  public private(set) var nextSequence: UInt64 = 0
  public init() {}

  public mutating func encode(_ type: FrameType, _ payload: [UInt8], sentAt: UInt64 = 0) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(Wire.headerSize + payload.count)
    out.appendLE(UInt32(payload.count))
    out.append(type.rawValue)
    out.appendLE(nextSequence)
    out.appendLE(sentAt)
    out += payload
    nextSequence += 1
    return out
  }
}

/// Decodes frames from bytes as they arrive; checks size, type and sequence before accepting a frame.
public struct FrameDecoder: Sendable {
  public var maxPayload: Int
  public private(set) var expectedSequence: UInt64 = 0
  private var buffer: [UInt8] = []
  private var start = 0

  public init(maxPayload: Int = Wire.defaultMaxPayload) { self.maxPayload = maxPayload }

  public mutating func feed(_ bytes: some Collection<UInt8>) {
    if start > 0 && start > buffer.count / 2 {
      buffer.removeFirst(start)
      start = 0
    }
    buffer.append(contentsOf: bytes)
  }

  /// Bytes received but not yet returned as frames.
  public var pending: Int { buffer.count - start }

  /// The next complete frame, nil if more bytes are needed, or an error for a bad stream.
  public mutating func next() throws(WireError) -> Frame? {
    guard pending >= Wire.headerSize else { return nil }
    let length = Int(buffer.readLE(UInt32.self, at: start))
    if length > maxPayload { throw .oversized(length: length, limit: maxPayload) }
    guard let type = FrameType(rawValue: buffer[start + 4]) else { throw .unknownType(buffer[start + 4]) }
    let sequence = buffer.readLE(UInt64.self, at: start + 5)
    if sequence != expectedSequence { throw .outOfOrder(expected: expectedSequence, got: sequence) }
    guard pending >= Wire.headerSize + length else { return nil }
    let sentAt = buffer.readLE(UInt64.self, at: start + 13)
    let payload = Array(buffer[(start + Wire.headerSize)..<(start + Wire.headerSize + length)])
    start += Wire.headerSize + length
    expectedSequence += 1
    return Frame(type: type, sequence: sequence, sentAt: sentAt, payload: payload)
  }

  /// At end of stream: an error if a frame was cut short.
  public func finish() throws(WireError) {
    if pending > 0 {
      let need =
        pending >= Wire.headerSize ? Wire.headerSize + Int(buffer.readLE(UInt32.self, at: start)) : Wire.headerSize
      throw .truncated(needed: need, got: pending)
    }
  }
}

/// The `hello` payload.
public struct Hello: Sendable, Equatable {
  public var version: UInt16
  public var token: [UInt8]
  public var name: String

  public init(version: UInt16 = Wire.version, token: [UInt8], name: String) {
    self.version = version
    self.token = token
    self.name = name
  }

  public func encoded() -> [UInt8] {
    var out = Wire.magic
    out.appendLE(version)
    out.appendLE(UInt16(token.count))
    out += token
    out += Array(name.utf8)
    return out
  }

  public static func decode(_ p: [UInt8]) throws(WireError) -> Hello {
    guard p.count >= 8, Array(p[0..<4]) == Wire.magic else { throw .badMagic }
    let version = p.readLE(UInt16.self, at: 4)
    let n = Int(p.readLE(UInt16.self, at: 6))
    guard p.count >= 8 + n else { throw .truncated(needed: 8 + n, got: p.count) }
    return Hello(version: version, token: Array(p[8..<(8 + n)]), name: String(decoding: p[(8 + n)...], as: UTF8.self))
  }
}

/// The accepting side of the handshake as a pure state machine: feed it frames, do what it returns.
public struct HandshakeServer: Sendable {
  public enum State: Sendable, Equatable {
    case awaitingHello
    case established(peer: String)
    case rejected
  }
  public enum Action: Sendable, Equatable {
    /// Send this frame type with this payload, then carry on.
    case send(FrameType, [UInt8])
    /// Send a reject with the reason and close the connection.
    case reject(String)
    /// Hand the frame to the application.
    case deliver(Frame)
  }
  public private(set) var state = State.awaitingHello
  let token: [UInt8]
  let build: String

  /// - Parameters:
  ///   - token: the run token a hello must present.
  ///   - build: the identity the welcome announces (this process's build).
  public init(token: [UInt8], build: String = BuildIdentity.current) {
    self.token = token
    self.build = build
  }

  public mutating func receive(_ frame: Frame) -> Action {
    switch state {
    case .awaitingHello:
      guard frame.type == .hello else {
        state = .rejected
        return .reject("expected a hello frame first, got \(frame.type)")
      }
      let hello: Hello
      do { hello = try Hello.decode(frame.payload) } catch {
        state = .rejected
        return .reject(error.description)
      }
      if hello.version != Wire.version {
        state = .rejected
        return .reject(WireError.versionMismatch(hello.version).description)
      }
      // Constant-time comparison of the run token.
      var diff = hello.token.count ^ token.count
      for i in 0..<min(hello.token.count, token.count) { diff |= Int(hello.token[i] ^ token[i]) }
      if diff != 0 {
        state = .rejected
        return .reject(WireError.badToken.description)
      }
      state = .established(peer: hello.name)
      return .send(.welcome, Array(build.utf8))
    case .established:
      if frame.type == .hello { return .reject("a second hello on an established connection") }
      return .deliver(frame)
    case .rejected:
      return .reject("the connection was rejected")
    }
  }
}

extension Array where Element == UInt8 {
  mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
    Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
  }
  func readLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
    var v: T = 0
    for i in 0..<MemoryLayout<T>.size { v |= T(self[offset + i]) << (8 * i) }
    return v
  }
}
