import BuildInfo
import DSL
import Execution
import Experiments
import Foundation
import Metrics
import Partitioning
import Pipeline
import Results
import Runner
import Simulator
import SystemPackage
import TestSupport
import Testing
import Transport

@testable import Runtime

#if canImport(Glibc)
import Glibc
#endif

enum Runs {
  static func spec(
    model: ModelPreset = .tiny, devices: Int = 3, requests: Int = 3, output: Int = 6,
    arrival: ArrivalProcess = .closedLoop(), algorithm: String = "even"
  ) -> ExperimentSpec {
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

  static func options(pids: Pids? = nil, heartbeat: Double = 5, onTokens: (@Sendable ([TokenEvent]) -> Void)? = nil)
    -> LoopbackOptions
  {
    var o = LoopbackOptions(
      executable: Binary.path, workDirectory: temporaryDirectory("edgelab-loopback"), heartbeatTimeout: heartbeat,
      referenceCache: nil)
    o.onWorkersStarted = { p in pids?.set(p) }
    o.onTokens = onTokens
    return o
  }

  /// A hook that sends `signal` to `device`'s worker once, when the first tokens reach the coordinator (the
  /// workload is running), instead of after a guessed delay.
  static func onFirstTokens(_ pids: Pids, signal: Int32, to device: String) -> @Sendable ([TokenEvent]) -> Void {
    let once = Once()
    return { _ in
      if once.first(), let pid = pids.all[device] { kill(pid, signal) }
    }
  }

  /// `spec` run with `execution.calibrate_workers` (briefly): complete, lossless, and every device's speeds
  /// before and after the workload recorded, positive and finite.
  static func calibrated(_ spec: ExperimentSpec, devices: [String]) throws -> RunRecord {
    var spec = spec
    spec.execution.calibrateWorkers = true
    var o = options()
    o.calibrationSeconds = 0.05
    let (report, file) = try run(spec, o)
    #expect(report.statusCounts == [.complete: 1], "\(file.runs.first?.outcome.message ?? "")")
    let run = try #require(file.runs.first)
    #expect(run.outcome.facts["lossless"] == .number(1))
    for d in devices {
      for key in ["decode", "prefill", "decode.after", "prefill.after"] {
        guard case .number(let v)? = run.outcome.facts["worker_speed.\(d).\(key)"] else {
          Issue.record("no worker_speed.\(d).\(key) in \(run.outcome.facts.keys.sorted())")
          continue
        }
        #expect(v > 0 && v.isFinite)
      }
    }
    return run
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

  /// With `execution.calibrate_workers` every worker times its own layers before the workload and after it; the
  /// run records each one's speed against the time model, and the workload's tokens are unchanged.
  @Test func calibratedWorkersRecordTheirSpeedsBeforeAndAfter() throws {
    let run = try Runs.calibrated(Runs.spec(model: .small, devices: 2, requests: 2, output: 4), devices: ["d0", "d1"])
    // The calibration's sequences are not the run's: each stage computed only the workload's micro-batches.
    #expect(run.outcome.stages.allSatisfy { $0.microBatches == 2 * 4 })
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
    do {
      _ = try Runs.run(spec, Runs.options(pids: pids))
      Issue.record("a 70B FP32 plan was accepted on this machine")
    } catch BackendError.refused(.hostMemory(let needed, let available, let precision)) {
      #expect(needed > available && precision == "fp32")
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
    // Room for the embedding or the head (pinned) and two staging slots, not for the blocks.
    spec.devices[0].usableMemory = .MB(50)
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
    #expect(
      run.outcome.message?.contains("lossless check failed") == true
        && run.outcome.message?.contains("at token 1") == true,
      "\(run.outcome.message ?? "")")
  }

  @Test func aKilledWorkerStopsTheRunWithItsNameAndSavesWhatFinished() throws {
    let pids = Pids()
    let spec = Runs.spec(model: .small, devices: 3, requests: 40, output: 40)
    let path = temporaryDirectory() + "/r.h5"
    let options = Runs.options(pids: pids, onTokens: Runs.onFirstTokens(pids, signal: SIGKILL, to: "d1"))
    let runner = ExperimentRunner(backends: [.loopback: LoopbackBackend(options: options)])
    do {
      _ = try runner.run(spec, options: RunOptions(outputPath: path))
      Issue.record("the run survived a killed worker")
    } catch BackendError.fatal(.worker(let fault), _, _) {
      #expect(fault.device == "d1" && fault.stages == [1], "\(fault)")
      switch fault.kind {
      case .exited, .connectionLost: break
      default: Issue.record("a killed worker reported as \(fault.kind)")
      }
    }
    let file = try ResultsStore.read(path)
    #expect(!file.info.complete)
    let run = try #require(file.runs.first)
    #expect(run.outcome.status == .incomplete)
    #expect(run.outcome.requests.contains { !$0.tokenTimes.isEmpty })
    // The coordinator reaps every worker before it returns.
    #expect(pids.allGone, "workers left running: \(pids.all)")
  }

  @Test func aHungWorkerIsDetectedWithinTheHeartbeatTimeout() throws {
    let pids = Pids()
    let spec = Runs.spec(model: .small, devices: 2, requests: 40, output: 40)
    do {
      _ = try Runs.run(
        spec, Runs.options(pids: pids, heartbeat: 4, onTokens: Runs.onFirstTokens(pids, signal: SIGSTOP, to: "d1")))
      Issue.record("the run survived a hung worker")
    } catch BackendError.fatal(.worker(let fault), _, _) {
      #expect(fault.device == "d1" && fault.stages == [1] && fault.kind == .silent(seconds: 4), "\(fault)")
    }
    #expect(pids.allGone, "workers left running: \(pids.all)")
  }

  /// Every process of a run must be one program: a worker binary of another build is refused at the handshake,
  /// before any weights load, naming both builds and what to do.
  @Test func aWorkerOfAnotherBuildIsRefused() throws {
    let pids = Pids()
    var options = Runs.options(pids: pids)
    options.executable = try OtherBuild.make(in: temporaryDirectory())
    do {
      _ = try Runs.run(Runs.spec(devices: 2, requests: 1), options)
      Issue.record("a worker of another build was accepted")
    } catch BackendError.refused(.buildMismatch(let device, let ours, let theirs, let remedy)) {
      #expect(device == "d0")
      #expect(ours == BuildIdentity.current && theirs == OtherBuild.identity && ours != theirs)
      #expect(remedy.contains(options.executable))
    }
    #expect(pids.allGone, "workers left running: \(pids.all)")
  }
}

struct WorkerDidNotStart: Error {
  var output: String
}

/// True the first time only.
final class Once: @unchecked Sendable {
  private var done = false
  private let lock = NSLock()
  func first() -> Bool {
    lock.withLock {
      defer { done = true }
      return !done
    }
  }
}

@Suite("A worker under attack", .serialized)
struct WorkerRobustnessTests {
  /// Starts `edgelab worker` by hand, as on a board (optionally with a limit on open files); returns once it
  /// says where it listens.
  static func startWorker(fileLimit: Int? = nil) throws -> (LineProcess, Endpoint, [UInt8]) {
    let dir = temporaryDirectory("edgelab-worker")
    let token = (0..<16).map { UInt8($0 * 7 + 1) }
    try token.map { String(format: "%02x", $0) }.joined().write(
      toFile: dir + "/token", atomically: true, encoding: .utf8)
    var args = [
      Binary.path, "worker", "--listen", "127.0.0.1:0", "--token-file", dir + "/token", "--port-file", dir + "/port",
      "--name", "w",
    ]
    if let fileLimit { args = ["/usr/bin/prlimit", "--nofile=\(fileLimit)"] + args }
    let worker = try LineProcess(args, mergeOutput: true)
    guard worker.waitForLine(containing: "listening "),
      let line = worker.lines.last(where: { $0.hasPrefix("listening ") }),
      let ep = Endpoint(String(line.dropFirst("listening ".count)))
    else { throw WorkerDidNotStart(output: worker.output) }
    return (worker, ep, token)
  }

  /// A plain TCP connection to the worker on 127.0.0.1, without any handshake.
  static func rawConnection(to ep: Endpoint) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_port = ep.port.bigEndian
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr)
    _ = withUnsafePointer(to: &a) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    return fd
  }

  /// Blocks until the peer closes `fd` (recv returns 0 or an error).
  static func waitClosed(_ fd: Int32) {
    var buf = [UInt8](repeating: 0, count: 256)
    while buf.withUnsafeMutableBytes({ recv(fd, $0.baseAddress, $0.count, 0) }) > 0 {}
  }

  static func shutDown(_ worker: LineProcess, _ ep: Endpoint, _ token: [UInt8]) throws -> Int32 {
    let c = try Connection.connect(to: ep, token: token, name: "coordinator")
    try c.send(.control, try ControlMessage.shutdown.frame())
    return worker.wait()
  }

  @Test func wrongTokenIsRefusedAndGarbageDoesNotKillIt() throws {
    let (worker, ep, token) = try Self.startWorker()
    // Connections that say nothing do not hold up other handshakes (each runs on its own thread): the wrong
    // token is refused for what it is, not after a handshake timeout.
    var silent: [Int32] = []
    defer { for fd in silent { close(fd) } }
    for _ in 0..<3 { silent.append(Self.rawConnection(to: ep)) }
    do {
      _ = try Connection.connect(to: ep, token: Array("wrong token 0000".utf8), name: "x")
      Issue.record("a wrong token was accepted")
    } catch {
      #expect("\(error)".contains("wrong run token"), "\(error)")
    }
    // Raw garbage, and an oversized frame header: the worker closes each connection.
    for garbage: [UInt8] in [Array("GET / HTTP/1.1\r\n\r\n".utf8), [255, 255, 255, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0]] {
      let fd = Self.rawConnection(to: ep)
      _ = garbage.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
      Self.waitClosed(fd)
      close(fd)
    }
    // A data connection before any assignment: nobody may send data yet.
    let data = try Connection.connect(to: ep, token: token, name: "peer")
    #expect(throws: (any Error).self) { try data.receive() }
    data.close()
    // And it still takes a coordinator.
    #expect(try Self.shutDown(worker, ep, token) == 0, "\(worker.output)")
    #expect(worker.output.contains("wrong run token"))
    #expect(worker.output.contains("refused a data connection from an unknown device"))
  }

  /// A handshake is bounded as a whole: bytes that trickle in do not extend it.
  @Test func aTrickledHandshakeTimesOut() throws {
    let listener = try Listener(host: "127.0.0.1", port: 0, token: Array("0123456789abcdef".utf8))
    defer { listener.close() }
    let fd = Self.rawConnection(to: listener.endpoint)
    defer { close(fd) }
    // Five bytes of a 21-byte frame header, then nothing.
    _ = [UInt8]([30, 0, 0, 0, 1]).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    let raw = try listener.acceptSocket()
    do {
      _ = try listener.handshake(raw, timeout: 0.05)
      Issue.record("an incomplete hello was accepted")
    } catch let e as TransportError {
      #expect(e.errno == .timedOut, "\(e)")
    }
  }

  /// Out of file descriptors, the accept loop backs off and says so once, then recovers.
  @Test func runningOutOfDescriptorsBacksOffAndRecovers() throws {
    // Room for the worker's own descriptors and a few handshakes, not for 24 connections.
    let (worker, ep, token) = try Self.startWorker(fileLimit: 16)
    var fds: [Int32] = []
    for _ in 0..<24 { fds.append(Self.rawConnection(to: ep)) }
    #expect(worker.waitForLine(containing: "accept is failing"), "\(worker.output)")
    for fd in fds { close(fd) }
    #expect(worker.waitForLine(containing: "accept works again"), "\(worker.output)")
    // Said once per shortage, not once per retry (a retrying loop without backoff logged a million lines).
    let said = worker.lines.filter { $0.contains("accept is failing") }.count
    #expect(said >= 1 && said <= 5, "\(said) lines")
    #expect(try Self.shutDown(worker, ep, token) == 0, "\(worker.output)")
  }
}

@Suite("The demo experiment, CI-sized", .serialized)
struct DemoTests {
  /// `demo-3x-orin-nano` as declared, but with the tiny model and two short requests: each plan simulated on the
  /// boards, then run for real.
  @Test func demoRunsEveryAlgorithmLosslessly() throws {
    var spec = try #require(ExperimentCatalog.named("demo-3x-orin-nano")).spec
    spec.model = ModelChoice(preset: "tiny")
    spec.workload.requests = 2
    spec.workload.outputTokens = .fixed(4)
    let path = temporaryDirectory() + "/r.h5"
    let runner = ExperimentRunner(
      backends: [.loopback: LoopbackBackend(options: Runs.options()), .simulated: SimulatedBackend()])
    let report = try runner.run(spec, options: RunOptions(outputPath: path))
    let file = try ResultsStore.read(path)
    #expect(report.statusCounts == [.complete: 6], "\(file.runs.map { $0.outcome.message ?? "" })")
    #expect(file.runs.map(\.label) == ["even", "edgeshard-latency", "lime"] + ["even", "edgeshard-latency", "lime"])
    #expect(
      file.runs.map { $0.parameters[0].value } == Array(repeating: .string("simulated"), count: 3)
        + Array(repeating: .string("loopback"), count: 3))
    let real = file.runs.filter { $0.parameters[0].value == .string("loopback") }
    #expect(real.allSatisfy { $0.outcome.facts["lossless"] == .number(1) })
    // Both backends run the same plans.
    #expect(file.runs.prefix(3).map { $0.plan?.stages } == real.map { $0.plan?.stages })
  }
}

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

  /// Starts a long loopback run through the CLI; returns once its first token has reached the coordinator.
  static func startLongRun() throws -> (LineProcess, String) {
    let dir = temporaryDirectory("edgelab-signal")
    let spec =
      #"{"name": "signal", "model": {"preset": "small"}, "devices": [{"name": "d", "preset": "jetson-orin-nano-8gb", "count": 3}], "algorithms": [{"name": "even"}], "backend": "loopback", "emulation": {"mode": "none"}, "workload": {"requests": 200, "prompt_tokens": 8, "output_tokens": 64}}"#
    try spec.write(toFile: dir + "/spec.json", atomically: true, encoding: .utf8)
    let cli = try LineProcess([Binary.path, "run", "--spec", dir + "/spec.json", "--out", dir + "/r.h5"])
    #expect(cli.waitForLine(containing: "first token"), "\(cli.output)")
    return (cli, dir + "/r.h5")
  }

  @Test func ctrlCSavesWhatFinishedAndLeavesNoWorkers() throws {
    let (cli, results) = try Self.startLongRun()
    let workers = Self.workers(of: cli.pid)
    #expect(workers.count == 3)
    cli.signal(SIGINT)
    #expect(cli.wait() == 130, "\(cli.output)")
    #expect(cli.output.contains("interrupted; what finished is saved"))
    let file = try ResultsStore.read(results)
    #expect(!file.info.complete && file.runs.first?.outcome.status == .incomplete)
    #expect(file.runs.first?.outcome.requests.contains { !$0.tokenTimes.isEmpty } == true)
    for w in workers { #expect(waitForExit(pid: w)) }
  }

  @Test func sigkillOfTheCoordinatorTakesItsWorkersWithIt() throws {
    let (cli, _) = try Self.startLongRun()
    let workers = Self.workers(of: cli.pid)
    #expect(workers.count == 3)
    cli.signal(SIGKILL)
    cli.wait()
    // Each worker dies with its parent (PR_SET_PDEATHSIG); wait for each to exit.
    for w in workers { #expect(waitForExit(pid: w), "orphaned worker \(w)") }
  }
}
