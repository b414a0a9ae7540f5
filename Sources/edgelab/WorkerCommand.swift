import ArgumentParser
import Foundation
import Runtime
import Transport

#if canImport(Glibc)
import Glibc
#endif

struct WorkerCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "worker", abstract: "Run a pipeline worker (started by the coordinator, or by hand on a board).")
  @Option(help: "Address to listen on, HOST:PORT (port 0: any free port).") var listen = "127.0.0.1:0"
  @Option(
    help:
      "File holding the run token (hex; - reads its first line from standard input); connections without it are refused."
  )
  var tokenFile: String
  @Option(help: "Write the bound HOST:PORT here once listening.") var portFile: String?
  @Option(help: "This worker's device name (for logs).") var name = "worker"
  @Option(help: "Exit when this process (the coordinator) exits.") var parentPid: Int32?
  @Flag(help: "Exit when standard input ends (a coordinator over SSH stopped, or its connection was lost).")
  var exitOnEof = false
  @Option(help: "A tag that identifies this run's workers (for `edgelab boards clean`).") var tag: String?
  @Option(
    help:
      "Compute only on these CPUs (a comma-separated list, e.g. 0,1); the coordinator gives each local worker cores of its own when there are enough."
  )
  var cpus: String?

  func run() throws {
    if let parentPid, !dieWithParent(expectedParent: parentPid) { throw ExitCode(1) }
    if let cpus {
      // Before the worker starts its threads: they inherit the placement.
      guard let list = CPUPlacement.parse(cpus) else {
        throw fail(
          "--cpus takes a comma-separated list of distinct CPU numbers below 1024 (got '\(cpus)')", code: Exit.badInput)
      }
      do { try CPUPlacement.pin(to: list) } catch { throw fail("--cpus: \(error)", code: Exit.badInput) }
    }
    guard let endpoint = Endpoint(listen) else {
      throw fail("--listen takes HOST:PORT (got '\(listen)')", code: Exit.badInput)
    }
    let text =
      tokenFile == "-" ? readLine(strippingNewline: true) : try? String(contentsOfFile: tokenFile, encoding: .utf8)
    guard let hex = text?.trimmingCharacters(in: .whitespacesAndNewlines), hex.count >= 16, hex.count <= 1024,
      hex.count % 2 == 0
    else {
      throw fail("cannot read a hex token from \(tokenFile == "-" ? "standard input" : tokenFile)", code: Exit.badInput)
    }
    if exitOnEof {
      // Nothing else comes on standard input: its end means the coordinator is gone.
      Thread.detachNewThread {
        while readLine() != nil {}
        kill(getpid(), SIGTERM)
      }
    }
    guard let token = hexBytes(hex) else {
      throw fail("\(tokenFile == "-" ? "standard input" : tokenFile) is not hex", code: Exit.badInput)
    }
    let worker = try Worker(listen: endpoint, token: token, logger: CLILogging.logger("worker \(name)"))
    signal(SIGPIPE, SIG_IGN)
    if let portFile {
      let tmp = portFile + ".tmp"
      try worker.endpoint.description.write(toFile: tmp, atomically: false, encoding: .utf8)
      rename(tmp, portFile)
    }
    FileHandle.standardOutput.write(Data("listening \(worker.endpoint)\n".utf8))
    let status = worker.run()
    if status != 0 { throw ExitCode(status) }
  }
}

/// The bytes of an even-length hex string, nil if any pair is not hex.
func hexBytes(_ hex: String) -> [UInt8]? {
  guard hex.count % 2 == 0 else { return nil }
  var out: [UInt8] = []
  var i = hex.startIndex
  while i < hex.endIndex {
    let j = hex.index(i, offsetBy: 2)
    guard let b = UInt8(hex[i..<j], radix: 16) else { return nil }
    out.append(b)
    i = j
  }
  return out
}
