import Foundation
import TestSupport
import Testing

@testable import Transport

@Suite("Wire codec and handshake (no sockets)")
struct WireTests {
  @Test func framesRoundTripFedByteByByte() throws {
    var enc = FrameEncoder()
    let bytes =
      enc.encode(.control, Array("hello".utf8), sentAt: 42) + enc.encode(.activation, [1, 2, 3])
      + enc.encode(.heartbeat, [])
    var dec = FrameDecoder()
    var frames: [Frame] = []
    for b in bytes {
      dec.feed([b])
      while let f = try dec.next() { frames.append(f) }
    }
    #expect(frames.map(\.type) == [.control, .activation, .heartbeat])
    #expect(frames.map(\.sequence) == [0, 1, 2])
    #expect(frames[0].payload == Array("hello".utf8) && frames[0].sentAt == 42)
    try dec.finish()
  }

  @Test func oversizedFramesAreRefusedBeforeTheirPayload() {
    var enc = FrameEncoder()
    var dec = FrameDecoder(maxPayload: 16)
    dec.feed(enc.encode(.activation, [UInt8](repeating: 0, count: 17)).prefix(Wire.headerSize))
    #expect(throws: WireError.oversized(length: 17, limit: 16)) { try dec.next() }
  }

  @Test func outOfOrderAndUnknownFramesAreRefused() {
    var a = FrameEncoder()
    var b = FrameEncoder()
    _ = b.encode(.control, [])
    var dec = FrameDecoder()
    dec.feed(a.encode(.control, []))
    dec.feed(b.encode(.control, []))  // sequence 1 again after 0 → fine; then a repeat of 0
    var fresh = FrameEncoder()
    dec.feed(fresh.encode(.control, []))
    #expect(throws: Never.self) {
      _ = try dec.next()
      _ = try dec.next()
    }
    #expect(throws: WireError.outOfOrder(expected: 2, got: 0)) { try dec.next() }
    var bad = FrameDecoder()
    var e = FrameEncoder()
    var raw = e.encode(.control, [])
    raw[4] = 99
    bad.feed(raw)
    #expect(throws: WireError.unknownType(99)) { try bad.next() }
  }

  @Test func aCutFrameIsTruncated() throws {
    var enc = FrameEncoder()
    var dec = FrameDecoder()
    dec.feed(enc.encode(.control, [1, 2, 3, 4]).dropLast(2))
    #expect(try dec.next() == nil)
    #expect(throws: WireError.truncated(needed: Wire.headerSize + 4, got: Wire.headerSize + 2)) { try dec.finish() }
  }

  @Test func handshakeAcceptsTheTokenAndNothingElse() {
    let token: [UInt8] = Array("secret-token-123".utf8)
    // The welcome announces the accepting side's build, for the connecting side to compare with its own.
    var good = HandshakeServer(token: token, build: "1961e90+0123456789ab")
    #expect(
      good.receive(Frame(type: .hello, payload: Hello(token: token, name: "d1").encoded()))
        == .send(.welcome, Array("1961e90+0123456789ab".utf8)))
    #expect(good.state == .established(peer: "d1"))
    #expect(good.receive(Frame(type: .control, payload: [7])) == .deliver(Frame(type: .control, payload: [7])))

    var wrong = HandshakeServer(token: token)
    #expect(
      wrong.receive(Frame(type: .hello, payload: Hello(token: Array("secret-token-124".utf8), name: "x").encoded()))
        == .reject("wrong run token"))
    var none = HandshakeServer(token: token)
    #expect(none.receive(Frame(type: .control, payload: [])) == .reject("expected a hello frame first, got control"))
    var foreign = HandshakeServer(token: token)
    #expect(
      foreign.receive(Frame(type: .hello, payload: Array("HTTP/1.1 GET".utf8)))
        == .reject("not an EdgeLab peer (bad magic bytes)"))
    var old = HandshakeServer(token: token)
    #expect(
      old.receive(Frame(type: .hello, payload: Hello(version: 1, token: token, name: "x").encoded()))
        == .reject(WireError.versionMismatch(1).description))
    #expect(wrong.state == .rejected)
  }

  @Test func activationsRoundTrip() throws {
    let spans = [ActivationMessage.Span(id: 3, start: 10, count: 2), .init(id: 9, start: 0, count: 1)]
    let values: [Float] = [1.5, -2.25, 3.0e-3, 0, 100, 0.1]
    let m = ActivationMessage(batch: 77, stage: 2, prefill: true, spans: spans, values: values)
    #expect(try ActivationMessage.decode(m.encoded()) == m)
    let half = try ActivationMessage.decode(m.encoded(halfPrecision: true))
    #expect(
      half.values.count == 6
        && zip(half.values, values).allSatisfy { isClose(Double($0), Double($1), rtol: 1e-3, atol: 1e-4) })
    #expect(m.encoded(halfPrecision: true).count < m.encoded().count)
    let t = ActivationMessage(batch: 1, stage: 5, prefill: false, spans: spans, tokens: [5, 127_999])
    #expect(try ActivationMessage.decode(t.encoded()) == t)
  }

  @Test func malformedActivationsAreRejected() {
    var bytes = ActivationMessage(
      batch: 1, stage: 0, prefill: false, spans: [.init(id: 1, start: 0, count: 1)], values: [1, 2]
    ).encoded()
    bytes.removeLast()
    #expect(throws: WireError.self) { try ActivationMessage.decode(bytes) }
    #expect(throws: WireError.self) { try ActivationMessage.decode([1, 2, 3]) }
    var huge = ActivationMessage(batch: 1, stage: 0, prefill: false, spans: [], values: []).encoded()
    huge.replaceSubrange(13..<17, with: [255, 255, 255, 127])
    #expect(throws: WireError.self) { try ActivationMessage.decode(huge) }
  }
}

@Suite("Sockets")
struct SocketTests {
  @Test func wrongTokensAreRefusedAndRightOnesAccepted() throws {
    let token = Array("0123456789abcdef".utf8)
    let listener = try Listener(host: "127.0.0.1", port: 0, token: token)
    defer { listener.close() }
    let accepted = Arrivals<String>()
    Thread.detachNewThread {
      for _ in 0..<2 {
        do { accepted.add(try listener.accept().peerName) } catch { accepted.add("refused: \(error)") }
      }
    }
    do {
      _ = try Connection.connect(to: listener.endpoint, token: Array("not-the-token!!!".utf8), name: "intruder")
      Issue.record("connected with a wrong token")
    } catch {
      #expect("\(error)".contains("refused the connection: wrong run token"))
    }
    let good = try Connection.connect(to: listener.endpoint, token: token, name: "d1")
    try good.send(.control, [1])
    #expect(accepted.wait(2).contains { $0.hasPrefix("refused: ") && $0.contains("wrong run token") })
    #expect(accepted.wait(2).contains("d1"))
    good.close()
  }
}

@Suite("Half precision")
struct HalfTests {
  /// Our conversion equals Swift's Float16 on every float that matters: a sweep of magnitudes, edge cases,
  /// ties and subnormals.
  @Test func matchesFloat16Exactly() {
    var values: [Float] = [
      0, -0, 1, -1, 65504, 65505, 65520, 1e9, -1e9, .infinity, -.infinity, 6.1e-5, 5.96e-8, 2.98e-8,
      1e-10, 0.1, 0.3333333, 1.0009765625, 1.00048828125, 1.00146484375, 2049, 2051,
    ]
    var g = UInt32(12345)
    for _ in 0..<200_000 {
      g = g &* 1_664_525 &+ 1_013_904_223
      values.append(Float(bitPattern: g & 0x8FFF_FFFF | 0x3000_0000 & g))
    }
    for v in values where !v.isNaN {
      #expect(HalfFloat.bits(v) == Float16(v).bitPattern, "\(v)")
    }
    #expect(Float16(bitPattern: HalfFloat.bits(.nan)).isNaN)
  }
}
