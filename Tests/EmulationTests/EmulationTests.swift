import CostModel
import DSL
import Engine
import Execution
import Foundation
import Logging
import Metrics
import Results
import Runner
import Runtime
import TestSupport
import Testing

@testable import Emulation

#if canImport(Glibc)
import Glibc
#endif

let isRoot = geteuid() == 0

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

/// Nothing of emulated cluster `id` is left: namespace (with its nft table and qdiscs), link, qdisc on the host
/// side, cgroup, state file. (Worker processes are checked by pid where a test starts them.)
func assertGone(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) {
  #expect(!id.isEmpty, "no cluster id", sourceLocation: sourceLocation)
  let qdiscs = Shell.capture(["tc", "qdisc", "show"]).1
  #expect(!qdiscs.contains("el\(id)"), "qdiscs left: \(qdiscs)", sourceLocation: sourceLocation)
  let netns = Shell.capture(["ip", "netns", "list"]).1
  #expect(!netns.contains("edgelab-\(id)-"), "namespaces left: \(netns)", sourceLocation: sourceLocation)
  let links = Shell.capture(["ip", "-o", "link", "show"]).1
  #expect(!links.contains("el\(id)"), "links left", sourceLocation: sourceLocation)
  for c in ["cpu", "memory"] {
    #expect(
      !FileManager.default.fileExists(atPath: "/sys/fs/cgroup/\(c)/edgelab-\(id)"), "cgroup \(c) left",
      sourceLocation: sourceLocation)
  }
  #expect(
    !FileManager.default.fileExists(atPath: Cluster.stateDirectory + "/\(id).json"), sourceLocation: sourceLocation)
}

@Suite("Time dilation")
struct DilationTests {
  @Test func factorFitsTheHostAndKeepsRelativeSpeeds() throws {
    let x = try Experiment("d") {
      Model(.tiny)
      Device("nano", .orinNano8GB, count: 2)
      Device("agx", .agxOrin32GB)
      Algorithm("even")
    }.spec.resolve()
    let plan = DilationPlan.plan(
      devices: x.devices, calibration: Calibration(memoryEfficiency: 1), hostBandwidth: .gigabytesPerSecond(20),
      cores: 2, coordinatorShare: 0.25)
    // Speeds: Nano 68/20 = 3.4, AGX 204.8/20 = 10.24; AGX alone needs D ≥ 10.24, all need (3.4·2 + 10.24)/1.75.
    #expect(isClose(plan.factor, max(10.24, (6.8 + 10.24) / 1.75)))
    #expect(isClose(plan.cpuShares["agx"]! / plan.cpuShares["nano0"]!, 204.8 / 68))
    #expect(plan.cpuShares.values.reduce(0, +) <= 1.75 + 1e-9 && plan.cpuShares.values.allSatisfy { $0 <= 1 })
    let slow = DilationPlan.plan(
      devices: [x.devices[0]], calibration: Calibration(memoryEfficiency: 1), hostBandwidth: .gigabytesPerSecond(200),
      cores: 2, coordinatorShare: 0.25)
    #expect(slow.factor == 1)
  }

  /// Devices paced to their time models need the cores of their most demanding phase: an Orin Nano's FP32
  /// prefill (compute-bound) asks more of a host core than its decode (memory-bound) when the host computes
  /// slowly, and only its decode without the host's compute rate.
  @Test func pacedDevicesNeedTheCoresOfTheirMostDemandingPhase() throws {
    let x = try Experiment("d") {
      Model(.small)
      Device("nano", .orinNano8GB, count: 2)
      Algorithm("even")
    }.spec.resolve()
    let calibration = Calibration(computeEfficiency: 0.5, memoryEfficiency: 1)
    let nano = x.devices[0].profile
    let paces = Dictionary(
      uniqueKeysWithValues: x.devices.map { ($0.name, DevicePace.roofline(device: nano, calibration: calibration)) })
    let host = Bandwidth.gigabytesPerSecond(20)
    let decodeOnly = DilationPlan.demands(
      paces: paces, model: x.model, precision: .fp32, hostBandwidth: host, hostFlops: nil)
    #expect(isClose(decodeOnly["nano0"]!, 68.0 / 20))
    let slowCompute = DilationPlan.demands(
      paces: paces, model: x.model, precision: .fp32, hostBandwidth: host, hostFlops: .gflops(32))
    // 256 prompt tokens are compute-bound on both: 1.28 TFLOPS × 0.5 against 32 GFLOPS.
    #expect(isClose(slowCompute["nano0"]!, 1280 * 0.5 / 32, rtol: 1e-6))
    let plan = DilationPlan.plan(
      devices: x.devices, calibration: calibration, hostBandwidth: host, cores: 2, coordinatorShare: 0.25,
      demands: slowCompute, headroom: 1.2)
    #expect(isClose(plan.factor, 1.2 * max(slowCompute["nano0"]!, 2 * slowCompute["nano0"]! / 1.75)))
    #expect(isClose(plan.cpuShares["nano0"]!, slowCompute["nano0"]! / plan.factor))
    // A worker paced by its CPU time (a group's, or one reading layers from storage) keeps the decode ratio.
    #expect(isClose(plan.stretch("nano0")!, plan.factor / (68.0 / 20)))
    // Without demands the plan is the decode ratio's, without headroom.
    let old = DilationPlan.plan(
      devices: x.devices, calibration: calibration, hostBandwidth: host, cores: 2, coordinatorShare: 0.25)
    #expect(isClose(old.factor, 2 * 68.0 / 20 / 1.75) && old.demands == old.speedups)
  }
}

/// Everything that builds emulated hosts runs one test at a time: the tests check that nothing of theirs is left,
/// and measure links, so they must not share the machine's namespaces or cores with each other.
@Suite("Emulation as root", .serialized, .enabled(if: isRoot, "network namespaces need root"))
struct RootEmulationTests {}

extension RootEmulationTests {
  @Suite("Emulated links")
  struct LinkFidelityTests {
    @Test(arguments: [10.0, 100.0])
    func throughputWithinTenPercentBothWays(mbit: Double) throws {
      var id = ""
      try Fidelity.withPair(bandwidth: .mbit(mbit)) { p in
        id = p.id
        let forward = try p.throughput()
        let back = try p.throughput(reverse: true)
        #expect(abs(forward - mbit) <= 0.1 * mbit, "A→B measured \(forward) Mbit/s at \(mbit)")
        #expect(abs(back - mbit) <= 0.1 * mbit, "B→A measured \(back) Mbit/s at \(mbit)")
      }
      assertGone(id)
    }

    @Test func addedDelayWithinOneMillisecond() throws {
      var id = ""
      let base = try Fidelity.withPair(bandwidth: .mbit(100)) { p in
        id = p.id
        return try p.roundTrip() / 2
      }
      assertGone(id)
      let delayed = try Fidelity.withPair(bandwidth: .mbit(100), latency: .ms(5)) { p in
        id = p.id
        return try p.roundTrip() / 2
      }
      #expect(abs(delayed - base - 5) <= 1, "added delay measured \(delayed - base) ms for 5 ms")
      assertGone(id)
    }

    @Test func lossWithinOnePointFiveAtFivePercent() throws {
      var id = ""
      let loss = try Fidelity.withPair(bandwidth: .gbit(1), loss: 0.05) { p in
        id = p.id
        #expect(p.mechanism.contains("loss") || p.mechanism.contains("netem"))
        return try p.loss()
      }
      #expect(abs(loss * 100 - 5) <= 1.5, "measured \(loss * 100)% at 5%")
      assertGone(id)
    }
  }

  enum EmulatedRuns {
    static var binary: String { Binary.path }

    static func spec(
      bandwidth: Bandwidth, latency: Seconds = .ms(1), requests: Int = 2, output: Int = 4, prompt: Int = 64
    ) -> ExperimentSpec {
      Experiment("emulated-test") {
        Model(.small, precision: .fp32)
        Device("nano", .orinNano8GB, count: 2).source()
        Network(bandwidth: bandwidth, latency: latency)
        Workload(requests: requests, prompt: .fixed(prompt), output: .fixed(output))
        Algorithm("even")
        Backend(.loopback)
        Emulation(.namespaces)
        Seed(5)
      }.spec
    }

    /// One context for every run of the tests: the host is measured once.
    static let context = EmulationContext(logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })) {
      try hostDecodeBandwidth()
    }

    static func backend(
      pids: (@Sendable ([String: Int32]) -> Void)? = nil, onServing: (@Sendable () -> Void)? = nil,
      onTokens: (@Sendable ([TokenEvent]) -> Void)? = nil
    ) -> LoopbackBackend {
      var o = LoopbackOptions(
        executable: binary, workDirectory: temporaryDirectory("edgelab-emu"), referenceCache: nil,
        launcherFactory: emulationLauncherFactory(context: context))
      o.onWorkersStarted = pids
      o.onServing = onServing
      o.onTokens = onTokens
      return LoopbackBackend(options: o)
    }

    static func run(_ spec: ExperimentSpec, _ backend: LoopbackBackend) throws -> RunRecord {
      let path = temporaryDirectory() + "/r.h5"
      _ = try ExperimentRunner(backends: [.loopback: backend]).run(spec, options: RunOptions(outputPath: path))
      return try ResultsStore.read(path).runs[0]
    }

    /// Run ids whose namespaces exist now.
    static func liveClusters() -> Set<String> {
      Set(Shell.namespaces().filter { $0.hasPrefix("edgelab-") }.map { String($0.dropFirst(8).prefix(4)) })
    }
  }

  @Suite("Emulated runs")
  struct EmulatedRunTests {
    /// A 10 Mbit/s link makes the prefill's activation transfer slower by about its size over the rate.
    @Test func aSlowLinkSlowsTransfersByTheExpectedAmount() throws {
      let before = EmulatedRuns.liveClusters()
      let pids = Pids()
      let cgroups = CgroupBox()
      // While serving: every worker is in its device's cgroups, with the recorded quota and memory limit.
      let inspect: @Sendable () -> Void = {
        guard let id = EmulatedRuns.liveClusters().subtracting(before).first else { return }
        for (device, pid) in pids.all {
          let cpu = "/sys/fs/cgroup/cpu/edgelab-\(id)/\(device)"
          let mem = "/sys/fs/cgroup/memory/edgelab-\(id)/\(device)"
          let read = { (path: String) in
            (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
          }
          cgroups.add(
            device, quota: Int(read(cpu + "/cpu.cfs_quota_us")) ?? -1,
            inCPU: read(cpu + "/cgroup.procs").split(separator: "\n").contains(Substring(String(pid))),
            memoryLimit: Int(read(mem + "/memory.limit_in_bytes")) ?? -1,
            inMemory: read(mem + "/cgroup.procs").split(separator: "\n").contains(Substring(String(pid))))
        }
      }
      let fast = try EmulatedRuns.run(
        EmulatedRuns.spec(bandwidth: .gbit(1)), EmulatedRuns.backend(pids: { pids.set($0) }, onServing: inspect))
      #expect(pids.all.count == 2 && pids.allGone, "workers outlived the run")
      let slow = try EmulatedRuns.run(EmulatedRuns.spec(bandwidth: .mbit(10)), EmulatedRuns.backend())
      let seen = cgroups.get()
      #expect(seen.count == 2)
      let quotas = fast.outcome.facts["cpu_quotas"]?.stringValue ?? ""
      let limits = fast.outcome.facts["memory_limits"]?.stringValue ?? ""
      for (device, c) in seen {
        #expect(c.inCPU && c.inMemory, "\(device) is not in its cgroups")
        #expect(
          c.quota > 0 && quotas.contains("\(device)=\(c.quota)us/"),
          "\(device): quota \(c.quota) µs, recorded \(quotas)")
        #expect(
          c.memoryLimit > 0 && limits.contains("\(device)=\(c.memoryLimit)"),
          "\(device): limit \(c.memoryLimit), recorded \(limits)")
      }
      for r in [fast, slow] {
        #expect(r.outcome.status == .complete, "\(r.outcome.message ?? "")")
        #expect(r.outcome.facts["lossless"] == .number(1))
        #expect(r.outcome.facts["emulation"] == .string("namespaces"))
        // An Orin Nano is faster than one core of any host this runs on: time is dilated.
        #expect((r.outcome.facts["dilation_factor"]?.stringValue.flatMap(Double.init) ?? 0) > 1)
        // Workers pace their computations to their devices' time models and count the ones they overran.
        #expect(r.outcome.facts["core_demands"]?.stringValue?.contains("nano0=") == true)
        #expect(r.outcome.facts["pace_overruns"] != nil && r.outcome.facts["pace_overrun_s"] != nil)
        #expect(!r.outcome.links.isEmpty && r.outcome.links.allSatisfy { $0.mechanism.hasPrefix("tc-htb") })
        #expect(r.outcome.facts["emulation_commands"]?.stringValue?.contains("htb") == true)
        // The run's own link measurement, in device terms, agrees with the configuration.
        let json = r.outcome.facts["measured_links"]?.stringValue ?? "[]"
        let measured = try JSONDecoder().decode([Fidelity.LinkMeasurement].self, from: Data(json.utf8))
        #expect(measured.count == 2, "\(json)")
        for m in measured {
          #expect(abs(m.measuredMbit - m.bandwidthMbit) <= 0.15 * m.bandwidthMbit, "\(json)")
          #expect(abs(m.measuredDelayMs - m.delayMs) <= 1, "\(json)")
        }
      }
      // 64 prompt tokens × 512 hidden × 4 bytes cross one link before the first token.
      let expected = 64.0 * 512 * 4 * 8 / 10e6 - 64.0 * 512 * 4 * 8 / 1e9
      let measured = slow.summary.ttft.mean - fast.summary.ttft.mean
      #expect(
        measured > 0.6 * expected && measured < 1.6 * expected,
        "TTFT grew by \(measured) s, expected about \(expected) s")
      #expect(EmulatedRuns.liveClusters() == before)
    }

    /// Link latency reaches the workers: each decode step crosses two links (stage 0 → 1, tokens back to 0), so
    /// 20 ms more per link adds about 40 ms (device time) per output token.
    @Test func linkLatencySlowsEachTokenByTwoHops() throws {
      let near = try EmulatedRuns.run(
        EmulatedRuns.spec(bandwidth: .gbit(1), latency: .ms(1), output: 8, prompt: 8), EmulatedRuns.backend())
      let far = try EmulatedRuns.run(
        EmulatedRuns.spec(bandwidth: .gbit(1), latency: .ms(21), output: 8, prompt: 8), EmulatedRuns.backend())
      for r in [near, far] {
        #expect(
          r.outcome.status == .complete && r.outcome.facts["lossless"] == .number(1), "\(r.outcome.message ?? "")")
      }
      let added = far.summary.tpot.mean - near.summary.tpot.mean
      #expect(abs(added - 0.040) <= 0.010, "time per token grew by \(added) s, expected about 0.040 s")
    }

    /// The playground: `up --json` prints the hosts and leaves them up, shaped; `down` removes everything.
    @Test func playgroundUpAndDown() throws {
      let up = Shell.capture([
        EmulatedRuns.binary, "emulation", "up", "--hosts", "3", "--bandwidth", "10Mbit/s", "--loss", "2", "--json",
      ])
      #expect(up.0 == 0, "\(up.2)")
      struct Created: Decodable {
        struct Host: Decodable { var name, netns, address: String }
        var id: String
        var hosts: [Host]
      }
      let created = try JSONDecoder().decode(Created.self, from: Data(up.1.utf8))
      #expect(created.hosts.count == 3)
      let namespaces = Shell.capture(["ip", "netns", "list"]).1
      for h in created.hosts {
        #expect(namespaces.contains(h.netns))
        let classes = Shell.capture(["tc", "-n", h.netns, "class", "show", "dev", "eth0"]).1
        #expect(classes.contains("rate 10Mbit"), "\(h.netns): \(classes)")
      }
      let ping = Shell.capture([
        "ip", "netns", "exec", created.hosts[0].netns, "ip", "route", "get", created.hosts[1].address,
      ])
      #expect(ping.0 == 0 && ping.1.contains("eth0"), "\(ping)")
      let down = Shell.capture([EmulatedRuns.binary, "emulation", "down", created.id])
      #expect(down.0 == 0, "\(down.2)")
      assertGone(created.id)
      #expect(Shell.capture([EmulatedRuns.binary, "emulation", "down", created.id]).0 == 65)
    }

    /// A bandwidth trace is followed on both ends of the link: its changes, in dilated wall time, become HTB class
    /// changes on the sender's egress and the receiver's switch port. (When they happen is the follower's sleep
    /// until each change's time; `edgelab emulation check` measures links, tests do not wait.)
    @Test func bandwidthTracesChangeTheLinks() throws {
      let trace = BandwidthTrace(points: [
        .init(at: .zero, bandwidth: .mbit(50)), .init(at: Seconds(1), bandwidth: .mbit(5)),
      ])
      let changes = Cluster.traceChanges(trace, dilation: 2)
      #expect(
        changes.count == 1 && changes[0].at == 2 && isClose(changes[0].rate, Bandwidth.mbit(5).bytesPerSecond / 2))
      let link = Cluster.Link(
        from: "nano0", to: "nano1", rate: Bandwidth.mbit(50).bytesPerSecond, loss: 0, latency: 0, jitter: 0,
        trace: Cluster.traceChanges(trace, dilation: 1))
      let cluster = try Cluster(devices: ["nano0", "nano1"], features: .current)
      defer { cluster.down() }
      try cluster.up(links: [link])
      let ns0 = try #require(cluster.hosts["nano0"]?.netns)
      let port1 = try #require(cluster.hosts["nano1"]?.hostVeth)  // nano1's switch port shapes what arrives from nano0
      func rates() -> (String, String) {
        (
          Shell.capture(["tc", "-n", ns0, "class", "show", "dev", "eth0"]).1,
          Shell.capture(["tc", "class", "show", "dev", port1]).1
        )
      }
      let before = rates()
      #expect(before.0.contains("rate 50Mbit") && before.1.contains("rate 50Mbit"), "\(before)")
      try cluster.setRate(link, bytesPerSecond: link.trace[0].rate)
      let after = rates()
      #expect(after.0.contains("rate 5Mbit") && after.1.contains("rate 5Mbit"), "\(after)")
      #expect(!after.0.contains("rate 50Mbit"), "\(after)")
    }

    /// A data link that swallows every packet (while both workers live and heartbeat) stops the run at the
    /// progress deadline, naming the link, instead of waiting forever or recording the stall as a result.
    @Test func aBlackholedLinkFailsTheRunByName() throws {
      let pids = Pids()
      let once = Once()
      let blackholed = Arrivals<String>()
      let backend = EmulatedRuns.backend(
        pids: { pids.set($0) },
        onTokens: { _ in
          guard once.first(), let p0 = pids.all["nano0"], let p1 = pids.all["nano1"] else { return }
          // Drop everything nano1 receives from nano0 (the coordinator's connections come from the bridge).
          let ns0 = Shell.capture(["ip", "netns", "identify", String(p0)]).1.trimmingCharacters(
            in: .whitespacesAndNewlines)
          let ns1 = Shell.capture(["ip", "netns", "identify", String(p1)]).1.trimmingCharacters(
            in: .whitespacesAndNewlines)
          let addr =
            Shell.capture(["ip", "-n", ns0, "-4", "-o", "addr", "show", "dev", "eth0"]).1
            .split(separator: " ").first { $0.contains("/") }.map { String($0.split(separator: "/")[0]) } ?? ""
          let nft =
            "add table inet blackhole; add chain inet blackhole input { type filter hook input priority -10; }; "
            + "add rule inet blackhole input ip saddr \(addr) drop"
          blackholed.add(Shell.capture(["ip", "netns", "exec", ns1, "nft", nft]).2)
        })
      var spec = EmulatedRuns.spec(bandwidth: .mbit(100), requests: 50, output: 50, prompt: 8)
      spec.execution.progressTimeout = Seconds(1.5)
      do {
        _ = try EmulatedRuns.run(spec, backend)
        Issue.record("the run went on through a blackholed link")
      } catch BackendError.fatal(.stuck(let stalled, let bound), _, _) {
        // The verdict names the link that holds the micro-batch.
        #expect(stalled.contains("nano0→nano1") || stalled.contains("nano1→nano0"), "\(stalled)")
        #expect(bound == 1.5)
      }
      #expect(blackholed.all == [""], "nft: \(blackholed.all)")
      #expect(pids.allGone)
    }

    @Test func aKilledWorkerLeavesNothingBehind() throws {
      let before = EmulatedRuns.liveClusters()
      let pids = Pids()
      let once = Once()
      let backend = EmulatedRuns.backend(
        pids: { pids.set($0) },
        onTokens: { _ in
          if once.first(), let p = pids.all["nano1"] { kill(p, SIGKILL) }
        })
      do {
        _ = try EmulatedRuns.run(EmulatedRuns.spec(bandwidth: .mbit(100), requests: 50, output: 50, prompt: 8), backend)
        Issue.record("survived a killed worker")
      } catch BackendError.fatal(.worker(let fault), _, _) {
        #expect(fault.device == "nano1" && fault.stages == [1], "\(fault)")
      }
      #expect(EmulatedRuns.liveClusters() == before)
      #expect(pids.allGone)
    }

    @Test func cleanRemovesWhatAKilledCoordinatorLeft() throws {
      let dir = temporaryDirectory("edgelab-emu-kill")
      let spec = try JSONCoding.compactString(
        EmulatedRuns.spec(bandwidth: .mbit(100), requests: 200, output: 64, prompt: 8))
      try spec.write(toFile: dir + "/spec.json", atomically: true, encoding: .utf8)
      let before = EmulatedRuns.liveClusters()
      let cli = try LineProcess([EmulatedRuns.binary, "run", "--spec", dir + "/spec.json", "--out", dir + "/r.h5"])
      #expect(cli.waitForLine(containing: "workers ready"), "\(cli.output)")
      let leftovers = EmulatedRuns.liveClusters().subtracting(before)
      #expect(leftovers.count == 1)
      cli.signal(SIGKILL)
      cli.wait()
      #expect(EmulatedRuns.liveClusters().subtracting(before) == leftovers, "a SIGKILLed coordinator cannot clean up")
      let clean = try LineProcess([EmulatedRuns.binary, "emulation", "clean"])
      #expect(clean.wait() == 0, "\(clean.output)")
      for id in leftovers { assertGone(id) }
      // The workers that ran inside the namespaces are gone too.
      let pgrep = Shell.capture(["pgrep", "-f", "--", "--parent-pid \(cli.pid)"])
      #expect(pgrep.0 == 1 && pgrep.1.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "workers left: \(pgrep)")
    }
  }
}

final class CgroupBox: @unchecked Sendable {
  struct Seen {
    var quota: Int
    var inCPU: Bool
    var memoryLimit: Int
    var inMemory: Bool
  }
  private var v: [String: Seen] = [:]
  private let lock = NSLock()
  func add(_ device: String, quota: Int, inCPU: Bool, memoryLimit: Int, inMemory: Bool) {
    lock.withLock { v[device] = Seen(quota: quota, inCPU: inCPU, memoryLimit: memoryLimit, inMemory: inMemory) }
  }
  func get() -> [String: Seen] { lock.withLock { v } }
}
