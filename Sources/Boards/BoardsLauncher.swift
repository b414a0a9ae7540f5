import BuildInfo
import EdgeLabCore
import Emulation
public import Execution
import Foundation
public import Spec

#if canImport(Glibc)
import Glibc
#endif

/// Workers on real boards, reached over SSH (the `boards` backend's launcher; the coordinator, the pipeline
/// protocol and the lossless check are the loopback backend's).
///
/// Before a run it maps every declared device to a board (refusing the run, naming the device, when one has
/// none), checks each board it uses — reachable, the same `edgelab` version as the coordinator — makes the run's
/// directory there, and shapes the declared links with tc on each board's interface (`LinkShaping`: the
/// emulated cluster's commands, with netem where the board's kernel has it; otherwise delay and jitter are
/// added by the receiving worker's transport, as in the emulation). Workers are started through `ssh` and exit
/// when it closes. `teardown` stops any worker of the run still alive, removes the shaping and the run's
/// directory, on every exit path; `BoardsMaintenance.clean` does the same for a run that was killed.
public final class BoardsLauncher: WorkerLauncher, @unchecked Sendable {
  /// The root qdisc handle of the shaping on a board's interface (how teardown and clean recognise theirs).
  public static let handle = "e1ab"

  let inventory: Inventory
  let version: String
  private let lock = NSLock()
  private var used: [(device: String, board: Inventory.Board)] = []
  private var runDirectory = ""
  private var tag = ""
  private var commands: [String] = []
  private var netem: [String: Bool] = [:]
  private var lossIgnored: [String] = []
  /// Each link measured before the run, by name ("a→b").
  private var measured: [String: String] = [:]
  /// Each board's clock minus the coordinator's, ms.
  private var clockOffsets: [String: Double] = [:]
  /// Boards with tegrastats, and the samplers running on them during the run.
  private var powered: Set<String> = []
  private var samplers: [(board: String, process: Process, log: String)] = []
  static let sampleInterval = 0.5

  /// - Parameters:
  ///   - inventory: the boards.
  ///   - version: the coordinator's `edgelab --version`; every board's must be the same.
  public init(inventory: Inventory, version: String) {
    self.inventory = inventory
    self.version = version
  }

  public var mechanism: String { "boards-ssh" }

  public func mechanism(from: String, to: String) -> String {
    lock.withLock {
      guard let b = used.first(where: { $0.device == from })?.board else { return "boards-ssh" }
      return netem[b.name] == true ? "board-tc-htb+tc-netem" : "board-tc-htb+transport-delay"
    }
  }

  public func prepare(devices: [String], experiment x: ResolvedExperiment, runID: String) throws -> [String:
    LaunchTarget]
  {
    let assigned: [String: Inventory.Board]
    do { assigned = try inventory.assign(x) } catch {
      if case .unassigned(let missing) = error.kind {
        throw BackendError.refused(.noBoard(devices: missing, inventory: inventory.path, reason: error.message))
      }
      throw BackendError.refused(.setting(field: "devices", reason: error.message))
    }
    let run = runID.hasPrefix("edgelab-") ? runID : "edgelab-" + runID
    let pairs = devices.map { (device: $0, board: assigned[$0]!) }
    lock.withLock {
      used = pairs
      tag = run
    }
    do { return try setUp(pairs, assigned, x, run) } catch {
      switch error.kind {
      case .buildMismatch(let board, let ours, let theirs):
        // Every process of a run must be the same program: refuse before anything changes on any board.
        let device = pairs.first { $0.board.name == board }?.device ?? board
        throw BackendError.refused(
          .buildMismatch(
            device: "board \(board) (device \(device))", ours: ours, theirs: theirs,
            remedy: Refusal.deployRemedy(inventory: inventory.path)))
      case .board(let name): throw BackendError.fatal(.board(name: name, reason: error.message), partial: nil)
      default: throw BackendError.unavailable(.boards, error.message)
      }
    }
  }

  private func setUp(
    _ pairs: [(device: String, board: Inventory.Board)], _ assigned: [String: Inventory.Board], _ x: ResolvedExperiment,
    _ run: String
  ) throws(BoardsError) -> [String: LaunchTarget] {
    // Check every board first: nothing is changed on any board until all answer.
    for (_, b) in pairs {
      let ssh = SSHBoard(b)
      let before = Date().timeIntervalSince1970
      let out = try ssh.check(
        RemoteShell.quote([b.executable, "--version"]) + " && date +%s.%N", what: "running \(b.executable) --version")
      let after = Date().timeIntervalSince1970
      let lines = out.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
      if let clock = lines.last.flatMap({ Double($0) }) {
        // The board's clock against this one's, at the midpoint of the round trip.
        let offset = (clock - (before + after) / 2) * 1e3
        lock.withLock { clockOffsets[b.name] = offset }
      }
      let theirs = lines.first ?? ""
      if !BuildIdentity.sameBuild(theirs, version) {
        throw BoardsError(
          "board \(b.name) runs edgelab \(theirs), the coordinator \(version); copy this build's binary there (edgelab boards deploy)",
          kind: .buildMismatch(board: b.name, ours: version, theirs: theirs))
      }
    }
    for (_, b) in pairs {
      let dir = b.workDirectory + "/" + run
      lock.withLock { runDirectory = dir }
      let out = try SSHBoard(b).check(
        "mkdir -p " + RemoteShell.quote(dir) + " && (command -v tegrastats >/dev/null && echo power || true)",
        what: "creating \(dir)")
      if out.contains("power") { lock.withLock { _ = powered.insert(b.name) } }
    }
    var delays: [String: [String: LinkDelay]] = [:]
    let index = Dictionary(uniqueKeysWithValues: pairs.enumerated().map { ($1.device, $0) })
    for (d, b) in pairs {
      let ssh = SSHBoard(b)
      let interface = b.networkInterface
      let egress = x.links.filter { $0.from == d && index[$0.to] != nil }.map { l in
        LinkShaping.Egress(
          destination: assigned[l.to]!.host, minor: 10 + index[l.to]!, rate: l.spec.bandwidth.bytesPerSecond,
          latency: l.spec.latency.value, jitter: l.spec.jitter.value, loss: l.spec.loss)
      }
      var shaping = LinkShaping.root(interface: interface, handle: Self.handle, replace: true)
      for e in egress { shaping += LinkShaping.egress(interface: interface, handle: Self.handle, e, netem: false) }
      let script = shaping.map { ssh.tc + " " + RemoteShell.quote(Array($0.dropFirst())) }
      record(b, script)
      try ssh.check(script.joined(separator: " && "), what: "shaping links on \(interface)")
      // Delay, jitter and loss with netem where the board's kernel has it.
      let withNetem = egress.filter { $0.latency > 0 || $0.jitter > 0 || $0.loss > 0 }
      var hasNetem = false
      if !withNetem.isEmpty {
        let children = withNetem.map {
          ssh.tc + " "
            + RemoteShell.quote(
              Array(
                LinkShaping.netemChild(interface: interface, parent: "\(Self.handle):\($0.minor)", minor: $0.minor, $0)
                  .dropFirst()))
        }
        hasNetem = ssh.run(children.joined(separator: " && ")).status == 0
        if hasNetem { record(b, children) }
      }
      lock.withLock { netem[b.name] = hasNetem }
      // Every frame is released by the receiver no earlier than the link would have delivered it (the
      // shaper lets a message within its burst through at once); the delay itself too without netem.
      for l in x.links where l.from == d && index[l.to] != nil {
        delays[l.to, default: [:]][d] = LinkDelay(
          latency: hasNetem ? 0 : l.spec.latency.value, jitter: hasNetem ? 0 : l.spec.jitter.value,
          bytesPerSecond: l.spec.bandwidth.bytesPerSecond)
        if !hasNetem && l.spec.loss > 0 { lock.withLock { lossIgnored.append("\(l.from)→\(l.to)") } }
      }
    }
    measureLinks(pairs, x)
    var targets: [String: LaunchTarget] = [:]
    for (d, b) in pairs {
      var t = LaunchTarget(
        listenHost: b.host, prefix: SSHBoard(b).prefix, delays: delays[d] ?? [:], dilation: 1,
        storageBytesPerSecond: nil)
      t.remote = RemoteWorker(
        executable: b.executable, storageDirectory: b.workDirectory + "/" + run, checkpointRoot: b.checkpoints,
        tag: run)
      targets[d] = t
    }
    return targets
  }

  /// Measures each shaped link with `edgelab probe` (a server on the receiving board, the prober on the sender):
  /// the median round trip of small frames and the rate of a burst of about half a second at the declared rate.
  /// Through the kernel's shaping; a delay the receiving worker adds (no netem) is not in it. A link that cannot
  /// be measured is recorded with the reason; the run goes on.
  private func measureLinks(_ pairs: [(device: String, board: Inventory.Board)], _ x: ResolvedExperiment) {
    let boards = Dictionary(uniqueKeysWithValues: pairs.map { ($0.device, $0.board) })
    for l in x.links {
      guard let a = boards[l.from], let b = boards[l.to] else { continue }
      let port = Int.random(in: 40_000...59_999)
      let token = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
      let burst = Int(min(Double(1 << 20), max(Double(64 << 10), l.spec.bandwidth.bytesPerSecond / 2)))
      let serve = RemoteShell.quote([
        b.executable, "probe", "serve", "--listen", "\(b.host):\(port)", "--token", token, "--timeout", "20",
      ])
      let started = SSHBoard(b).run("nohup " + serve + " >/dev/null 2>&1 &", timeout: 10)
      let ping = SSHBoard(a).run(
        RemoteShell.quote([
          a.executable, "probe", "ping", "--to", "\(b.host):\(port)", "--token", token, "--bytes", String(burst),
        ]), timeout: 60)
      let result =
        started.status == 0 && ping.status == 0
        ? ping.out.trimmingCharacters(in: .whitespacesAndNewlines)
        : "not measured: " + (ping.err + ping.out + started.err).trimmingCharacters(in: .whitespacesAndNewlines)
      lock.withLock { measured["\(l.from)→\(l.to)"] = result }
    }
  }

  private func record(_ b: Inventory.Board, _ lines: [String]) {
    lock.withLock { commands += lines.map { "\(b.name): \($0)" } }
  }

  /// The workload starts: sample each board's power with tegrastats until teardown.
  public func runStarted() {
    let boards = lock.withLock { used.map(\.board).filter { powered.contains($0.name) } }
    for b in boards {
      let log = FileManager.default.temporaryDirectory.path + "/edgelab-tegrastats-\(getpid())-\(b.name).log"
      _ = FileManager.default.createFile(atPath: log, contents: nil)
      let p = Process()
      p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
      p.arguments = SSHBoard(b).prefix + ["tegrastats --interval \(Int(Self.sampleInterval * 1000))"]
      p.standardOutput = FileHandle(forWritingAtPath: log)
      p.standardError = FileHandle.nullDevice
      p.standardInput = FileHandle.nullDevice
      if (try? p.run()) != nil { lock.withLock { samplers.append((b.name, p, log)) } }
    }
  }

  public func teardown() {
    let stopped = lock.withLock {
      defer { samplers = [] }
      return samplers
    }
    for s in stopped {
      s.process.terminate()
      s.process.waitUntilExit()
      try? FileManager.default.removeItem(atPath: s.log)
    }
    let (pairs, run) = lock.withLock { (used, tag) }
    guard !run.isEmpty else { return }
    for (_, b) in pairs {
      BoardsMaintenance.clean(b, tag: run, timeout: 10)
    }
  }

  public func facts() -> [String: String] {
    lock.withLock {
      var f = [
        "boards": used.map { "\($0.device)=\($0.board.name)@\($0.board.host)" }.joined(separator: ", "),
        "boards_tc_commands": commands.joined(separator: "\n"),
        "emulation": "boards",
      ]
      if !clockOffsets.isEmpty {
        f["boards_clock_offset_ms"] = clockOffsets.sorted { $0.key < $1.key }.map {
          "\($0.key)=\(String(format: $0.value, digits: 1))"
        }.joined(separator: ", ")
      }
      if !measured.isEmpty {
        f["measured_links"] = measured.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(
          separator: "; ")
      }
      if !lossIgnored.isEmpty {
        f["boards_loss_not_applied"] = lossIgnored.joined(separator: ", ") + " (no netem on the board's kernel)"
      }
      // Power: each board's mean input power and energy over the run so far (tegrastats), or why there is none.
      var energy = 0.0
      var measured: [String] = []
      for s in samplers {
        let text = (try? String(contentsOfFile: s.log, encoding: .utf8)) ?? ""
        if let p = Tegrastats.summary(text, interval: Self.sampleInterval) {
          f["power_\(s.board)_w"] = String(p.watts)
          energy += p.joules
          measured.append(s.board)
        }
      }
      let unpowered = used.map(\.board.name).filter { !measured.contains($0) }
      if !measured.isEmpty { f["energy_j"] = String(energy) }
      f["power"] =
        unpowered.isEmpty
        ? "tegrastats on every board"
        : "unavailable on \(unpowered.joined(separator: ", ")) (no tegrastats)"
          + (measured.isEmpty ? "" : "; energy_j covers \(measured.joined(separator: ", ")) only")
      return f
    }
  }
}

/// What `edgelab boards clean` and a run's teardown do on a board.
public enum BoardsMaintenance {
  /// Stops the workers of run `tag` (every run's, with nil), removes the lab's shaping on the board's interface
  /// and the run's directory. Returns what the board said (empty when all went well).
  @discardableResult
  public static func clean(_ b: Inventory.Board, tag: String?, timeout: Double = 20) -> String {
    let ssh = SSHBoard(b)
    let pattern = "[ ]worker .*--tag " + (tag ?? "edgelab-")
    let dir = b.workDirectory + "/" + (tag ?? "edgelab-*")
    // SIGTERM, then up to 5 s for the workers to exit (SIGKILL after 3 s): a board is left with none running,
    // not with some still on their way out. The pattern's "[ ]" keeps it from matching this script's own shell.
    let script = [
      "p=" + RemoteShell.quote(pattern),
      "pkill -f -- \"$p\" || true",
      "i=0; while pgrep -f -- \"$p\" >/dev/null && [ $i -lt 50 ]; do"
        + " i=$((i+1)); if [ $i -eq 30 ]; then pkill -KILL -f -- \"$p\" || true; fi; sleep 0.1; done",
      LinkShaping.removeRootScript(interface: b.networkInterface, handle: BoardsLauncher.handle, tc: ssh.tc),
      "rm -rf " + (tag == nil ? RemoteShell.quote(b.workDirectory) + "/edgelab-*" : RemoteShell.quote(dir)),
    ].joined(separator: "; ")
    let r = ssh.run(script, timeout: timeout)
    return r.status == 0 ? "" : (r.err + r.out).trimmingCharacters(in: .whitespacesAndNewlines)
  }
}

/// The launcher factory of the boards backend: each run's launcher reads the experiment's inventory.
public func boardsLauncherFactory(version: String) -> LauncherFactory {
  { spec in
    guard let path = spec.inventory else {
      throw BackendError.refused(
        .setting(
          field: "inventory",
          reason:
            "the boards backend needs an inventory: Backend(.boards, inventory: \"lab.json\") in the experiment, or --inventory FILE"
        ))
    }
    do { return BoardsLauncher(inventory: try Inventory.load(path), version: version) } catch {
      throw BackendError.refused(.input(path: path, reason: "\(error)"))
    }
  }
}
