import DSL
import Foundation
import Metrics
import Partitioning
import Results
import Runner
@testable import Runtime
import TestSupport
import Testing
import Transport
#if canImport(Glibc)
import Glibc
#endif

enum Runs {
  static func spec(model: ModelPreset = .tiny, devices: Int = 3, requests: Int = 3, output: Int = 6,
                   arrival: ArrivalProcess = .closedLoop(), algorithm: String = "even") -> ExperimentSpec {
    Experiment("loopback-test") {
      Model(model, precision: .fp32)
      Device("d", .orinNano8GB, count: devices).source()
      Workload(requests: requests, prompt: .uniform(min: 3, max: 9), output: .fixed(output), arrival: arrival)
      Algorithm(algorithm)
      Backend(.loopback)
      Emulation(.none)
      Seed(11)
    }.spec
  }

  static func options(pids: Pids? = nil, heartbeat: Double = 5, onServing: (@Sendable () -> Void)? = nil) -> LoopbackOptions {
    var o = LoopbackOptions(executable: Binary.path, workDirectory: temporaryDirectory("edgelab-loopback"), heartbeatTimeout: heartbeat,
                            referenceCache: nil)
    o.onWorkersStarted = { p in pids?.set(p) }
    o.onServing = onServing
    return o
  }

  static func run(_ spec: ExperimentSpec, _ options: LoopbackOptions) throws -> (RunReport, ResultsFile) {
    let path = temporaryDirectory() + "/r.h5"
    let runner = ExperimentRunner(backends: [.loopback: LoopbackBackend(options: options)])
    let report = try runner.run(spec, options: RunOptions(outputPath: path))
    return (report, try ResultsStore.read(path))
  }
}

@Suite("Loopback runtime with real worker processes", .serialized)
struct LoopbackTests {
  @Test func threeStagePipelineGivesTheUnsplitTokens() throws {
    let pids = Pids()
    let (report, file) = try Runs.run(Runs.spec(), Runs.options(pids: pids))
    #expect(report.statusCounts == [.complete: 1], "\(file.runs.first?.outcome.message ?? "")")
    let run = try #require(file.runs.first)
    #expect(run.plan?.stages.map(\.device) == ["d0", "d1", "d2"])
    #expect(run.outcome.facts["lossless"] == .number(1))
    #expect(run.outcome.requests.allSatisfy { $0.isComplete && $0.tokenTimes.count == 6 })
    // Activations went d0 → d1 → d2 and tokens back d2 → d0, all over TCP.
    let links = Set(run.outcome.links.filter { $0.bytes > 0 }.map { "\($0.from)→\($0.to)" })
    #expect(links == ["d0→d1", "d1→d2", "d2→d0"])
    #expect(run.outcome.links.allSatisfy { $0.mechanism == "loopback-tcp" })
    #expect(run.outcome.devices.allSatisfy { $0.peakMemoryBytes > 0 && $0.computeSeconds > 0 })
    #expect(pids.allGone)
  }

  /// A model whose shards cannot all fit this machine is refused before any worker starts, with the sizes.
  @Test func aPlanTooBigForThisMachineIsRefusedUpFront() throws {
    let spec = Experiment("too-big") {
      Model(.llama2_70B, precision: .fp32)
      Device("agx", .agxOrin64GB, count: 8).source()
      Workload(requests: 1, prompt: .fixed(4), output: .fixed(2))
      Algorithm("even")
      Backend(.loopback)
      Emulation(.none)
    }.spec
    let pids = Pids()
    #expect {
      _ = try Runs.run(spec, Runs.options(pids: pids))
    } throws: { error in
      let text = "\(error)"
      return text.contains("GB of fp32 weights") && text.contains("available") && text.contains("--backend simulated")
    }
    #expect(pids.all.isEmpty, "no worker should start")
  }

  @Test func concurrentOpenLoopRequestsAllComplete() throws {
    let spec = Runs.spec(model: .small, devices: 2, requests: 8, output: 5, arrival: .bursty(burst: 8, every: .ms(100)))
    let (report, file) = try Runs.run(spec, Runs.options())
    #expect(report.statusCounts == [.complete: 1], "\(file.runs.first?.outcome.message ?? "")")
    let run = try #require(file.runs.first)
    #expect(run.outcome.requests.count == 8 && run.outcome.requests.allSatisfy(\.isComplete))
    #expect(run.outcome.facts["lossless"] == .number(1))
    // Requests overlapped: some decode micro-batches carried several requests.
    let batches = run.outcome.stages[0].microBatches
    #expect(batches < 8 * 5, "expected batching, got \(batches) micro-batches for 40 steps")
  }

  @Test func lossyLIMEChunksCycleThroughDevices() throws {
    // A LIME plan with interleaved chunks: activations revisit devices.
    var spec = Runs.spec(model: .small, devices: 2, requests: 2, output: 4, algorithm: "lime")
    spec.algorithms = [AlgorithmChoice("lime", parameters: ["max_interleave": 2])]
    spec.devices[0].usableMemory = .MB(40)
    let (_, file) = try Runs.run(spec, Runs.options())
    let run = try #require(file.runs.first)
    #expect(run.outcome.status == .complete, "\(run.outcome.message ?? "")")
    #expect(run.outcome.facts["lossless"] == .number(1))
    // The plan really is interleaved (a device holds several chunks) and offloads layers.
    let stages = try #require(run.plan?.stages)
    #expect(Set(stages.map(\.device)).count == 2 && stages.count > 2, "\(stages)")
    #expect(stages.contains { !$0.offloadedLayers.isEmpty }, "\(stages)")
  }

  /// The lossless check can fail: a second run reads the unsplit reference from the cache, and a cache whose
  /// tokens were altered makes the run fail loudly with the first differing token.
  @Test func aLosslessMismatchFailsTheRun() throws {
    let cache = temporaryDirectory("edgelab-reference")
    var options = Runs.options()
    options.referenceCache = cache
    let spec = Runs.spec(devices: 2, requests: 2, output: 4)
    let (_, first) = try Runs.run(spec, options)
    #expect(first.runs.first?.outcome.facts["lossless"] == .number(1))
    let entries = try FileManager.default.contentsOfDirectory(atPath: cache)
    #expect(entries.count == 1, "\(entries)")
    for entry in entries {
      let path = cache + "/" + entry
      var stored = try JSONDecoder().decode([String: [Int32]].self, from: Data(contentsOf: URL(fileURLWithPath: path)))
      for k in stored.keys { stored[k]![1] = stored[k]![1] == 0 ? 1 : 0 }
      try JSONEncoder().encode(stored).write(to: URL(fileURLWithPath: path))
    }
    let (report, second) = try Runs.run(spec, options)
    let run = try #require(second.runs.first)
    #expect(report.statusCounts[.failed] == 1)
    #expect(run.outcome.status == .failed)
    #expect(run.outcome.facts["lossless"] == .number(0))
    #expect(run.outcome.message?.contains("lossless check failed") == true && run.outcome.message?.contains("at token 1") == true,
            "\(run.outcome.message ?? "")")
  }

  @Test func aKilledWorkerStopsTheRunWithItsNameAndSavesWhatFinished() throws {
    let pids = Pids()
    let spec = Runs.spec(model: .small, devices: 3, requests: 40, output: 40)
    let killer: @Sendable () -> Void = {
      Thread.detachNewThread {
        usleep(1_500_000)
        if let pid = pids.all["d1"] { kill(pid, SIGKILL) }
      }
    }
    let path = temporaryDirectory() + "/r.h5"
    let runner = ExperimentRunner(backends: [.loopback: LoopbackBackend(options: Runs.options(pids: pids, onServing: killer))])
    let started = Date()
    do {
      _ = try runner.run(spec, options: RunOptions(outputPath: path))
      Issue.record("the run survived a killed worker")
    } catch {
      #expect("\(error)".contains("worker d1 (stage 1)"), "\(error)")
      #expect("\(error)".contains("killed by signal 9") || "\(error)".contains("closed its control connection"), "\(error)")
    }
    #expect(Date().timeIntervalSince(started) < 60)
    let file = try ResultsStore.read(path)
    #expect(!file.info.complete)
    let run = try #require(file.runs.first)
    #expect(run.outcome.status == .incomplete)
    #expect(run.outcome.requests.contains { $0.isComplete } || run.outcome.requests.contains { !$0.tokenTimes.isEmpty })
    usleep(200_000)
    #expect(pids.allGone, "workers left running: \(pids.all)")
  }

  @Test func aHungWorkerIsDetectedWithinTheHeartbeatTimeout() throws {
    let pids = Pids()
    let spec = Runs.spec(model: .small, devices: 2, requests: 40, output: 40)
    let stopper: @Sendable () -> Void = {
      Thread.detachNewThread {
        usleep(500_000)
        if let pid = pids.all["d1"] { kill(pid, SIGSTOP) }
      }
    }
    let started = Date()
    do {
      _ = try Runs.run(spec, Runs.options(pids: pids, heartbeat: 2, onServing: stopper))
      Issue.record("the run survived a hung worker")
    } catch {
      #expect("\(error)".contains("worker d1 (stage 1) is not responding"), "\(error)")
    }
    #expect(Date().timeIntervalSince(started) < 60)
    usleep(200_000)
    #expect(pids.allGone, "workers left running: \(pids.all)")
  }
}

@Suite("A worker under attack", .serialized)
struct WorkerRobustnessTests {
  /// Starts `edgelab worker` by hand, as on a board.
  static func startWorker() throws -> (ChildProcess, Endpoint, [UInt8], String) {
    let dir = temporaryDirectory("edgelab-worker")
    let token = (0..<16).map { UInt8($0 * 7 + 1) }
    try token.map { String(format: "%02x", $0) }.joined().write(toFile: dir + "/token", atomically: true, encoding: .utf8)
    let child = try ChildProcess([Binary.path, "worker", "--listen", "127.0.0.1:0", "--token-file", dir + "/token", "--port-file", dir + "/port", "--name", "w"],
                                 logPath: dir + "/log")
    for _ in 0..<500 {
      if let s = try? String(contentsOfFile: dir + "/port", encoding: .utf8), let ep = Endpoint(s) { return (child, ep, token, dir) }
      usleep(10_000)
    }
    child.stop()
    throw RuntimeError("worker did not start")
  }

  /// A plain TCP connection to the worker on 127.0.0.1, without any handshake.
  static func rawConnection(to ep: Endpoint) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_port = ep.port.bigEndian
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr)
    _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    return fd
  }

  @Test func wrongTokenIsRefusedAndGarbageDoesNotKillIt() throws {
    let (child, ep, token, dir) = try Self.startWorker()
    defer { child.stop() }
    // Connections that say nothing do not hold up other handshakes (each has its own 5 s timeout).
    var silent: [Int32] = []
    defer { for fd in silent { close(fd) } }
    for _ in 0..<3 { silent.append(Self.rawConnection(to: ep)) }
    let refusedAt = Date()
    #expect(throws: (any Error).self) { try Connection.connect(to: ep, token: Array("wrong token 0000".utf8), name: "x") }
    #expect(Date().timeIntervalSince(refusedAt) < 4, "the refusal waited for the silent connections")
    // Raw garbage, an oversized frame header, and a frame out of order.
    for garbage: [UInt8] in [Array("GET / HTTP/1.1\r\n\r\n".utf8), [255, 255, 255, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0]] {
      let fd = Self.rawConnection(to: ep)
      _ = garbage.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
      usleep(50_000)
      close(fd)
    }
    let data = try Connection.connect(to: ep, token: token, name: "peer")
    try data.send(.activation, [1, 2, 3])  // a malformed activation: the worker drops this connection
    usleep(100_000)
    data.close()
    #expect(child.isRunning, "the worker died: \(child.logTail())")
    // And it still takes a coordinator.
    let c = try Connection.connect(to: ep, token: token, name: "coordinator")
    try c.send(.control, try ControlMessage.shutdown.frame())
    for _ in 0..<300 where child.isRunning { usleep(10_000) }
    #expect(!child.isRunning && child.exitDescription == "exited with status 0")
    let log = (try? String(contentsOfFile: dir + "/log", encoding: .utf8)) ?? ""
    #expect(log.contains("wrong run token"))
    #expect(log.contains("closed the data connection from peer"))
  }
}

@Suite("The demo experiment, CI-sized", .serialized)
struct DemoTests {
  /// `demo-3x-orin-nano` as declared, but with the tiny model and two short requests.
  @Test func demoRunsEveryAlgorithmLosslessly() throws {
    var spec = try #require(ExperimentCatalog.named("demo-3x-orin-nano")).spec
    spec.model = ModelChoice(preset: "tiny")
    spec.workload.requests = 2
    spec.workload.outputTokens = .fixed(4)
    let (report, file) = try Runs.run(spec, Runs.options())
    #expect(report.statusCounts == [.complete: 3], "\(file.runs.map { $0.outcome.message ?? "" })")
    #expect(file.runs.map(\.label) == ["even", "edgeshard-latency", "lime"])
    #expect(file.runs.allSatisfy { $0.outcome.facts["lossless"] == .number(1) })
  }
}
import Experiments

@Suite("Stopping the coordinator", .serialized)
struct CoordinatorSignalTests {
  /// Processes whose command line carries `--parent-pid <pid>` (the workers of that coordinator).
  static func workers(of pid: Int32) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap(Int32.init).filter { p in
      guard let raw = FileManager.default.contents(atPath: "/proc/\(p)/cmdline") else { return false }
      let args = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
      return zip(args, args.dropFirst()).contains { $0 == "--parent-pid" && $1 == String(pid) }
    }
  }

  static func startLongRun() throws -> (ChildProcess, String, String) {
    let dir = temporaryDirectory("edgelab-signal")
    let spec = #"{"name": "signal", "model": {"preset": "small"}, "devices": [{"name": "d", "preset": "jetson-orin-nano-8gb", "count": 3}], "algorithms": [{"name": "even"}], "backend": "loopback", "emulation": {"mode": "none"}, "workload": {"requests": 200, "prompt_tokens": 8, "output_tokens": 64}}"#
    try spec.write(toFile: dir + "/spec.json", atomically: true, encoding: .utf8)
    let cli = try ChildProcess([Binary.path, "run", "--spec", dir + "/spec.json", "--out", dir + "/r.h5"], logPath: dir + "/cli.log")
    // Wait until the workload runs.
    for _ in 0..<3000 {
      if let log = try? String(contentsOfFile: dir + "/cli.log", encoding: .utf8), log.contains("workers ready") { break }
      usleep(10_000)
    }
    usleep(500_000)
    return (cli, dir, dir + "/r.h5")
  }

  @Test func ctrlCSavesWhatFinishedAndLeavesNoWorkers() throws {
    let (cli, dir, results) = try Self.startLongRun()
    #expect(Self.workers(of: cli.pid).count == 3)
    cli.signal(SIGINT)
    for _ in 0..<2000 where cli.isRunning { usleep(10_000) }
    #expect(cli.exitDescription == "exited with status 130", "\(cli.logTail())")
    let log = (try? String(contentsOfFile: dir + "/cli.log", encoding: .utf8)) ?? ""
    #expect(log.contains("interrupted; what finished is saved"))
    let file = try ResultsStore.read(results)
    #expect(!file.info.complete && file.runs.first?.outcome.status == .incomplete)
    #expect(file.runs.first?.outcome.requests.contains { !$0.tokenTimes.isEmpty } == true)
    #expect(Self.workers(of: cli.pid).isEmpty)
  }

  @Test func sigkillOfTheCoordinatorTakesItsWorkersWithIt() throws {
    let (cli, _, _) = try Self.startLongRun()
    let pid = cli.pid
    #expect(Self.workers(of: pid).count == 3)
    cli.signal(SIGKILL)
    var left = Self.workers(of: pid)
    for _ in 0..<300 where !left.isEmpty {
      usleep(10_000)
      left = Self.workers(of: pid)
    }
    #expect(left.isEmpty, "orphaned workers: \(left)")
  }
}
