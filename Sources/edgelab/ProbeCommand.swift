import ArgumentParser
import EdgeLabCore
import Foundation
import Transport

#if canImport(Glibc)
import Glibc
#endif

/// A link measured between two machines through the lab's own transport: what the boards backend runs on a
/// pair of boards before a run (`fact.measured_links`).
struct ProbeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "probe", abstract: "Measure a link between two machines (run by the boards backend before a run).",
    subcommands: [Serve.self, Ping.self])

  static func token(_ hex: String) throws -> [UInt8] {
    guard hex.count >= 16, hex.count <= 128, hex.count % 2 == 0 else {
      throw fail("--token takes 16 to 128 hex digits", code: Exit.badInput)
    }
    guard let bytes = hexBytes(hex) else { throw fail("--token is not hex", code: Exit.badInput) }
    return bytes
  }

  struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Echo one prober's frames, then exit (or after --timeout seconds without one).")
    @Option(help: "HOST:PORT to listen on.") var listen: String
    @Option(help: "The probe's token (hex).") var token: String
    @Option(help: "Seconds to wait for the prober.") var timeout = 20.0

    func run() throws {
      guard let ep = Endpoint(listen) else { throw fail("--listen takes HOST:PORT", code: Exit.badInput) }
      let listener: Listener
      do { listener = try Listener(host: ep.host, port: ep.port, token: try ProbeCommand.token(token)) } catch {
        throw fail("cannot listen on \(listen): \(error)", code: Exit.failure)
      }
      let limit = timeout
      Thread.detachNewThread {
        Thread.sleep(forTimeInterval: limit)
        Glibc.exit(3)
      }
      let c = try listener.accept()
      while let f = try? c.receive(), f.type != .goodbye {
        if f.type == .heartbeat { try? c.send(.heartbeat, f.payload) }
        if f.type == .control { try? c.send(.control, [1]) }
      }
      c.close()
      listener.close()
    }
  }

  struct Ping: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract:
        "Round trips of small frames and the rate of a 1 MiB burst to a `probe serve`; prints rtt_ms and mbit_s.")
    @Option(help: "HOST:PORT of the server.") var to: String
    @Option(help: "The probe's token (hex).") var token: String
    @Option(help: "Round trips.") var count = 20
    @Option(help: "Bytes of the burst.") var bytes = 1 << 20

    func run() throws {
      guard let ep = Endpoint(to) else { throw fail("--to takes HOST:PORT", code: Exit.badInput) }
      let key = try ProbeCommand.token(token)
      // The server is started just before; give it a few seconds to listen.
      var connection: Connection?
      for _ in 0..<50 where connection == nil {
        connection = try? Connection.connect(to: ep, token: key, name: "probe", timeout: 2)
        if connection == nil { Thread.sleep(forTimeInterval: 0.1) }
      }
      guard let c = connection else { throw fail("cannot reach a probe server at \(to)", code: Exit.failure) }
      var rtts: [Double] = []
      for _ in 0..<max(1, count) {
        let t0 = monotonicNanoseconds()
        try c.send(.heartbeat, [1, 2, 3, 4])
        _ = try c.receive()
        rtts.append(Double(monotonicNanoseconds() - t0) * 1e-6)
      }
      let chunk = [UInt8](repeating: 7, count: 16 * 1024)
      let t0 = monotonicNanoseconds()
      var sent = 0
      while sent < bytes {
        try c.send(.activation, chunk)
        sent += chunk.count
      }
      try c.send(.control, [0])
      _ = try c.receive()
      let seconds = Double(monotonicNanoseconds() - t0) * 1e-9
      try? c.send(.goodbye, [])
      c.close()
      let rtt = rtts.sorted()[rtts.count / 2]
      print(
        "rtt_ms=\(String(format: rtt, digits: 3)) mbit_s=\(String(format: Double(sent) * 8 / seconds / 1e6, digits: 2))"
      )
    }
  }
}
