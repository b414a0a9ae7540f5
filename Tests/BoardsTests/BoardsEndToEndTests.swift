import Boards
import BuildInfo
import DSL
import EdgeLabCore
import Execution
import Foundation
import Metrics
import Results
import Runner
import Runtime
import Spec
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// "Boards" on this machine: each a network namespace on a bridge, running a real OpenSSH server (started here
/// with a generated host key and a generated user key, stopped here), reached only by its namespace address.
final class SSHBoards: @unchecked Sendable {
  static var available: Bool {
    geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd")
      && run(["sh", "-c", "command -v ssh && command -v ssh-keygen && command -v ip && command -v tc"]).status == 0
  }

  let id: String
  let directory: String
  let bridge: String
  let subnet: String
  let namespaces: [String]
  var sshd: [ChildProcess] = []

  var addresses: [String] { namespaces.indices.map { "\(subnet).\(10 + $0)" } }
  var inventoryPath: String { directory + "/lab.json" }
  var workDirectory: String { directory + "/boards-work" }

  init(count: Int, devices: [String]) throws {
    let id = String(format: "%04x", UInt16.random(in: 0...UInt16.max))
    self.id = id
    directory = temporaryDirectory("edgelab-boards")
    bridge = "elb\(id)br"
    var third = 0
    repeat {
      third = Int.random(in: 1...254)
    } while !Self.run(["ip", "route", "show", "10.213.\(third).0/24"]).out
      .isEmpty
    subnet = "10.213.\(third)"
    namespaces = (0..<count).map { "elb-\(id)-b\($0)" }
    do { try up(devices: devices) } catch {
      down()
      throw error
    }
  }

  @discardableResult
  static func run(_ args: [String]) -> (status: Int32, out: String) { runCommand(args) }

  func must(_ args: [String]) throws {
    let r = Self.run(args)
    if r.status != 0 { throw BoardsError("`\(args.joined(separator: " "))`: \(r.out)") }
  }

  func up(devices: [String]) throws {
    try must(["ip", "link", "add", bridge, "type", "bridge"])
    try must(["ip", "addr", "add", "\(subnet).1/24", "dev", bridge])
    try must(["ip", "link", "set", bridge, "up"])
    try must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", directory + "/host_key"])
    try must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", directory + "/user_key"])
    try FileManager.default.copyItem(atPath: directory + "/user_key.pub", toPath: directory + "/authorized_keys")
    try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
    let hostKey = try String(contentsOfFile: directory + "/host_key.pub", encoding: .utf8)
    var known = ""
    var boards: [String] = []
    for (k, ns) in namespaces.enumerated() {
      let host = "elb\(id)h\(k)"
      let peer = "elb\(id)n\(k)"
      try must(["ip", "netns", "add", ns])
      try must(["ip", "link", "add", host, "type", "veth", "peer", "name", peer])
      try must(["ip", "link", "set", host, "master", bridge])
      try must(["ip", "link", "set", peer, "netns", ns])
      try must(["ip", "-n", ns, "link", "set", peer, "name", "eth0"])
      try must(["ip", "-n", ns, "addr", "add", addresses[k] + "/24", "dev", "eth0"])
      try must(["ip", "-n", ns, "link", "set", "eth0", "up"])
      try must(["ip", "-n", ns, "link", "set", "lo", "up"])
      try must(["ip", "link", "set", host, "up"])
      let config = """
        Port 22
        ListenAddress \(addresses[k])
        HostKey \(directory)/host_key
        PidFile \(directory)/sshd-\(k).pid
        AuthorizedKeysFile \(directory)/authorized_keys
        PermitRootLogin prohibit-password
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        UsePAM no
        StrictModes no
        PrintMotd no
        Subsystem sftp /usr/lib/openssh/sftp-server

        """
      try config.write(toFile: directory + "/sshd-\(k).conf", atomically: true, encoding: .utf8)
      sshd.append(
        try ChildProcess(
          ["ip", "netns", "exec", ns]
            + closingInheritedFiles(["/usr/sbin/sshd", "-D", "-e", "-f", directory + "/sshd-\(k).conf"]),
          logPath: directory + "/sshd-\(k).log"))
      known += "\(addresses[k]) \(hostKey)"
      boards.append(
        """
        {"name": "b\(k)", "host": "\(addresses[k])", "user": "root", "key": "user_key", "device": "\(devices[k])",
         "edgelab": "\(Binary.path)", "interface": "eth0", "work_dir": "\(workDirectory)",
         "ssh_options": ["-o", "UserKnownHostsFile=\(directory)/known_hosts", "-o", "StrictHostKeyChecking=yes"]}
        """)
    }
    try known.write(toFile: directory + "/known_hosts", atomically: true, encoding: .utf8)
    try "{\"boards\": [\(boards.joined(separator: ",\n"))]}".write(
      toFile: inventoryPath, atomically: true, encoding: .utf8)
    // Each server answers a real login before the test goes on (a failed start shows in its log).
    let inventory = try Inventory.load(inventoryPath)
    for (k, b) in inventory.boards.enumerated() {
      var answered = false
      for _ in 0..<200 where !answered {
        if !sshd[k].isRunning { throw BoardsError("sshd \(k) exited: \(sshd[k].logTail(10))") }
        answered = SSHBoard(b).run("true", timeout: 5).status == 0
      }
      if !answered { throw BoardsError("sshd \(k) never accepted a login: \(sshd[k].logTail(10))") }
    }
  }

  /// Kills everything in board `k`'s namespace: its sshd and the worker it started.
  /// Repeated until the namespace holds no process: one forked between a listing and the kills survives them.
  func kill(board k: Int) {
    for _ in 0..<200 {
      let pids = Self.run(["ip", "netns", "pids", namespaces[k]]).out.split(separator: "\n").compactMap { Int32($0) }
      if pids.isEmpty { return }
      for p in pids { Glibc.kill(p, SIGKILL) }
    }
  }

  /// Processes left in the boards' namespaces other than their sshd.
  func strays() -> [Int32] {
    let servers = Set(sshd.map(\.pid))
    return namespaces.flatMap { ns in
      Self.run(["ip", "netns", "pids", ns]).out.split(separator: "\n").compactMap { Int32($0) }
    }.filter { !servers.contains($0) && !Self.isSSHD($0) }
  }

  static func isSSHD(_ pid: Int32) -> Bool {
    (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.hasPrefix("sshd") == true
  }

  func qdiscs(_ k: Int) -> String { Self.run(["tc", "-n", namespaces[k], "qdisc", "show", "dev", "eth0"]).out }

  func down() {
    for s in sshd { s.stop(grace: 1) }
    for ns in namespaces {
      for p in Self.run(["ip", "netns", "pids", ns]).out.split(separator: "\n").compactMap({ Int32($0) }) {
        Glibc.kill(p, SIGKILL)
      }
      Self.run(["ip", "netns", "del", ns])
    }
    Self.run(["ip", "link", "del", bridge])
    try? FileManager.default.removeItem(atPath: directory)
  }
}

@Suite("Boards over SSH, end to end", .serialized, .enabled(if: SSHBoards.available, "needs root and openssh-server"))
struct BoardsEndToEndTests {
  static func experiment(inventory: String, requests: Int = 2, output: Int = 4) -> ExperimentSpec {
    Experiment("boards-e2e", "two boards over SSH") {
      Model(.tiny)
      Device("nano", .orinNano8GB, count: 2).source()
      Network(bandwidth: .mbit(50), latency: .ms(2))
      Workload(requests: requests, prompt: 8, output: .fixed(output), arrival: .closedLoop())
      Algorithm("even")
      Backend(.boards, inventory: inventory)
    }.spec
  }

  static func options(work: String, heartbeat: Double = 5) -> LoopbackOptions {
    var o = LoopbackOptions(
      executable: Binary.path, workDirectory: work, heartbeatTimeout: heartbeat, referenceCache: nil,
      launcherFactory: boardsLauncherFactory(version: Provenance.toolkitVersion))
    o.kind = .boards
    return o
  }

  @Test func anExperimentRunsOnTheBoardsWithShapedLinksAndLeavesNothing() throws {
    let boards = try SSHBoards(count: 2, devices: ["nano0", "nano1"])
    defer { boards.down() }
    let spec = Self.experiment(inventory: boards.inventoryPath)
    let path = boards.directory + "/boards.h5"
    let report = try ExperimentRunner(backends: [
      .boards: LoopbackBackend(options: Self.options(work: boards.directory))
    ])
    .run(spec, options: RunOptions(outputPath: path))
    let file = try ResultsStore.read(path)
    #expect(report.statusCounts == [.complete: 1], "\(file.runs.map { $0.outcome.message ?? "" })")
    let run = try #require(file.runs.first)
    // The same tokens as the unsplit model (the coordinator recomputes them), as a loopback run is checked.
    #expect(run.outcome.facts["lossless"] == .number(1))
    #expect(run.outcome.facts["boards"] == .string("nano0=b0@\(boards.addresses[0]), nano1=b1@\(boards.addresses[1])"))
    let tc = run.outcome.facts["boards_tc_commands"]?.stringValue ?? ""
    #expect(tc.contains("b0: tc qdisc replace dev eth0 root handle e1ab: htb"))
    #expect(tc.contains("b0: tc class add dev eth0 parent e1ab: classid e1ab:11 htb rate 50000000bit"))
    #expect(tc.contains("ip dst \(boards.addresses[1])/32"))
    // Both links were measured through the shaping before the run.
    let measured = run.outcome.facts["measured_links"]?.stringValue ?? ""
    #expect(measured.contains("nano0→nano1: rtt_ms=") && measured.contains("nano1→nano0: rtt_ms="), "\(measured)")
    #expect(measured.contains("mbit_s="))
    #expect(run.outcome.facts["boards_clock_offset_ms"]?.stringValue?.contains("b0=") == true)
    // Nothing is left: no worker, no qdisc of ours, no run directory.
    #expect(boards.strays().isEmpty)
    for k in 0..<2 { #expect(!boards.qdiscs(k).contains("e1ab:")) }
    let left = (try? FileManager.default.contentsOfDirectory(atPath: boards.workDirectory)) ?? []
    #expect(left.isEmpty, "\(left)")

    // The same experiment on the loopback backend gives the same tokens (both match the unsplit model).
    var local = spec
    local.backend = .loopback
    local.emulation.mode = .none
    let localPath = boards.directory + "/loopback.h5"
    var lo = LoopbackOptions(executable: Binary.path, workDirectory: boards.directory, referenceCache: nil)
    lo.checkLossless = true
    _ = try ExperimentRunner(backends: [.loopback: LoopbackBackend(options: lo)]).run(
      local, options: RunOptions(outputPath: localPath))
    #expect(try ResultsStore.read(localPath).runs.first?.outcome.facts["lossless"] == .number(1))
  }

  @Test func aBoardThatDiesMidRunEndsTheRunAndIsNamed() throws {
    let boards = try SSHBoards(count: 2, devices: ["nano0", "nano1"])
    defer { boards.down() }
    let spec = Self.experiment(inventory: boards.inventoryPath, requests: 200, output: 64)
    var o = Self.options(work: boards.directory)
    let killed = Mutex(false)
    o.onTokens = { _ in
      let first = killed.withLock { was in
        defer { was = true }
        return !was
      }
      if first { boards.kill(board: 1) }
    }
    let path = boards.directory + "/dies.h5"
    do {
      _ = try ExperimentRunner(backends: [.boards: LoopbackBackend(options: o)]).run(
        spec, options: RunOptions(outputPath: path))
      Issue.record("the run survived a dead board")
    } catch BackendError.fatal(.worker(let fault), _, _) {
      #expect(fault.device == "nano1", "\(fault)")
    }
    // What finished is saved, marked incomplete.
    let file = try ResultsStore.read(path)
    #expect(!file.info.complete)
    #expect(boards.strays().isEmpty)
    #expect(!boards.qdiscs(0).contains("e1ab:"))
  }

  /// `edgelab boards check`, `deploy`, `profile` and `clean`, as a user runs them.
  @Test func theBoardsCommandsCheckDeployProfileAndClean() throws {
    let boards = try SSHBoards(count: 1, devices: ["nano0"])
    defer { boards.down() }
    func edgelab(_ args: [String]) -> (status: Int32, out: String) { SSHBoards.run([Binary.path] + args) }
    let check = edgelab(["boards", "check", "--inventory", boards.inventoryPath])
    #expect(check.status == 0, "\(check.out)")
    #expect(check.out.contains("b0") && check.out.contains(boards.addresses[0]) && check.out.contains("ok"))
    #expect(check.out.contains(Provenance.toolkitVersion) && check.out.contains("unavailable"))
    // Deploy to a new path, through a second inventory that names it.
    let deployed = boards.directory + "/deployed/edgelab"
    let text = try String(contentsOfFile: boards.inventoryPath, encoding: .utf8)
      .replacingOccurrences(of: "\"edgelab\": \"\(Binary.path)\"", with: "\"edgelab\": \"\(deployed)\"")
    let second = boards.directory + "/deploy.json"
    try text.write(toFile: second, atomically: true, encoding: .utf8)
    #expect(edgelab(["boards", "check", "--inventory", second]).status != 0)
    let deploy = edgelab(["boards", "deploy", "--inventory", second])
    #expect(deploy.status == 0, "\(deploy.out)")
    #expect(FileManager.default.isExecutableFile(atPath: deployed))
    #expect(edgelab(["boards", "check", "--inventory", second]).status == 0)
    // A profile measured on the board comes back here.
    let profile = boards.directory + "/b0.json"
    let measured = edgelab([
      "boards", "profile", "--inventory", boards.inventoryPath, "--board", "b0", "--out", profile, "--repetitions", "1",
    ])
    #expect(measured.status == 0, "\(measured.out)")
    #expect((try? String(contentsOfFile: profile, encoding: .utf8))?.contains(#"edgelab-profile\/1"#) == true)
    let clean = edgelab(["boards", "clean", "--inventory", boards.inventoryPath])
    #expect(clean.status == 0 && clean.out.contains("b0: clean"), "\(clean.out)")
    #expect(boards.strays().isEmpty)
  }

  @Test func aDeclaredDeviceWithoutABoardIsRefusedBeforeAnythingStarts() throws {
    let boards = try SSHBoards(count: 1, devices: ["nano0"])
    defer { boards.down() }
    let spec = Self.experiment(inventory: boards.inventoryPath)
    do {
      _ = try ExperimentRunner(backends: [.boards: LoopbackBackend(options: Self.options(work: boards.directory))])
        .run(spec, options: RunOptions(outputPath: boards.directory + "/x.h5"))
      Issue.record("ran without a board for nano1")
    } catch BackendError.refused(.noBoard(let devices, let inventory, _)) {
      #expect(devices == ["nano1"] && inventory == boards.inventoryPath)
    }
    #expect(boards.strays().isEmpty)
    #expect(!boards.qdiscs(0).contains("e1ab:"))
  }

  /// A board whose `edgelab` is another build than the coordinator's is refused before anything changes on any
  /// board, naming both builds and the command that deploys this one.
  @Test func aBoardOfAnotherBuildIsRefused() throws {
    let boards = try SSHBoards(count: 2, devices: ["nano0", "nano1"])
    defer { boards.down() }
    let other = try OtherBuild.make(in: boards.directory)
    let text = try String(contentsOfFile: boards.inventoryPath, encoding: .utf8)
      .replacingOccurrences(of: "\"edgelab\": \"\(Binary.path)\"", with: "\"edgelab\": \"\(other)\"")
    let inventory = boards.directory + "/other.json"
    try text.write(toFile: inventory, atomically: true, encoding: .utf8)
    let spec = Self.experiment(inventory: inventory)
    do {
      _ = try ExperimentRunner(backends: [.boards: LoopbackBackend(options: Self.options(work: boards.directory))])
        .run(spec, options: RunOptions(outputPath: boards.directory + "/x.h5"))
      Issue.record("ran on a board of another build")
    } catch BackendError.refused(.buildMismatch(let device, let ours, let theirs, let remedy)) {
      #expect(device.hasPrefix("board b0"), "\(device)")
      #expect(ours == BuildIdentity.current && theirs == OtherBuild.identity)
      #expect(remedy.contains("edgelab boards deploy --inventory \(inventory)"), "\(remedy)")
    }
    #expect(boards.strays().isEmpty)
    #expect(!boards.qdiscs(0).contains("e1ab:"))
  }
}
