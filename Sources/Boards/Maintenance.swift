import BuildInfo
public import Catalog
import EdgeLabCore
import Emulation
import Execution
import Foundation
import Spec

#if canImport(Glibc)
import Glibc
#endif

/// What `edgelab boards check` finds on one board.
public struct BoardReport: Sendable {
  public var reachable = false
  public var version: String?
  public var versionMatches = false
  public var availableBytes: Double?
  /// Board clock − coordinator clock, seconds (from the midpoint of the round trip).
  public var clockOffset: Double?
  public var tegrastats = false
  /// With a checkpoint name: "ok", "missing", or what does not match.
  public var checkpoint: String?

  public var ok: Bool { reachable && versionMatches && (checkpoint == nil || checkpoint == "ok") }
  public var versionText: String {
    guard let version else { return reachable ? "missing" : "-" }
    return versionMatches ? version : "\(version) (coordinator: different)"
  }
  public var power: String { reachable ? (tegrastats ? "tegrastats" : "unavailable") : "-" }
  public var checkpointText: String { checkpoint ?? "-" }

  /// One SSH round trip gathers everything (version, memory, clock, tegrastats, the checkpoint's config).
  public static func probe(_ b: Inventory.Board, version: String, checkpoint: String?, model: ModelConfig?)
    -> BoardReport
  {
    var r = BoardReport()
    let config = checkpoint.map { (b.checkpoints ?? ".") + "/" + $0 + "/config.json" }
    let script =
      [
        "echo version=$(" + RemoteShell.quote(b.executable) + " --version 2>/dev/null)",
        "echo mem=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)",
        "echo clock=$(date +%s.%N)",
        "echo tegrastats=$(command -v tegrastats >/dev/null && echo yes || echo no)",
      ] + (config.map { ["echo config=$(tr -d '\\n' < " + RemoteShell.quote($0) + " 2>/dev/null)"] } ?? [])
    let before = Date().timeIntervalSince1970
    let out = SSHBoard(b).run(script.joined(separator: "; "), timeout: 15)
    let after = Date().timeIntervalSince1970
    guard out.status == 0 else { return r }
    r.reachable = true
    var fields: [String: String] = [:]
    for line in out.out.split(separator: "\n") {
      guard let eq = line.firstIndex(of: "=") else { continue }
      fields[String(line[..<eq])] = String(line[line.index(after: eq)...])
    }
    if let v = fields["version"], !v.isEmpty {
      r.version = v
      r.versionMatches = BuildIdentity.sameBuild(v, version)
    }
    if let m = fields["mem"].flatMap(Double.init) { r.availableBytes = m * 1024 }
    if let c = fields["clock"].flatMap(Double.init) { r.clockOffset = c - (before + after) / 2 }
    r.tegrastats = fields["tegrastats"] == "yes"
    if checkpoint != nil {
      r.checkpoint = Self.checkConfig(fields["config"] ?? "", against: model)
    }
    return r
  }

  /// "ok" when the board's config.json has the experiment's shapes, else what differs.
  static func checkConfig(_ text: String, against model: ModelConfig?) -> String {
    guard !text.isEmpty, let data = text.data(using: .utf8),
      let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    else { return "missing" }
    guard let model else { return "ok" }
    var differ: [String] = []
    for (key, want) in [
      ("hidden_size", model.hiddenSize), ("num_hidden_layers", model.numHiddenLayers), ("vocab_size", model.vocabSize),
    ] {
      let have = (json[key] as? NSNumber)?.intValue
      if have != want { differ.append("\(key) \(have.map(String.init) ?? "?") ≠ \(want)") }
    }
    return differ.isEmpty ? "ok" : differ.joined(separator: ", ")
  }
}

/// Copying to boards and profiling them.
public enum BoardsDeploy {
  /// The SSH options of `board` as scp takes them (`-P` for the port).
  static func scpPrefix(_ b: Inventory.Board) -> [String] {
    var args = ["scp", "-q", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]
    if let k = b.key { args += ["-i", k, "-o", "IdentitiesOnly=yes"] }
    if let p = b.port { args += ["-P", String(p)] }
    return args + (b.sshOptions ?? [])
  }

  static func remote(_ b: Inventory.Board, _ path: String) -> String {
    (b.user.map { "\($0)@\(b.host)" } ?? b.host) + ":" + path
  }

  /// Copies the binary to the board's `edgelab` path (through a temporary name, then renamed: a running worker
  /// keeps its old file).
  public static func binary(_ source: String, to b: Inventory.Board) throws(BoardsError) {
    guard FileManager.default.isExecutableFile(atPath: source) else {
      throw BoardsError("\(source) is not an executable file")
    }
    let target = b.executable
    guard target.hasPrefix("/") else {
      throw BoardsError("board \(b.name): give \"edgelab\" as an absolute path to deploy to")
    }
    let dir = URL(fileURLWithPath: target).deletingLastPathComponent().path
    let ssh = SSHBoard(b)
    try ssh.check("mkdir -p " + RemoteShell.quote(dir), what: "creating \(dir)")
    let tmp = target + ".deploy-\(getpid())"
    let r = Shell.capture(scpPrefix(b) + [source, remote(b, tmp)], timeout: 600)
    guard r.status == 0 else { throw BoardsError("board \(b.name): copying \(source) failed: \(r.err)") }
    try ssh.check(
      "chmod 755 " + RemoteShell.quote(tmp) + " && mv -f " + RemoteShell.quote(tmp) + " " + RemoteShell.quote(target),
      what: "installing \(target)")
  }

  /// Copies a directory (a checkpoint) into the board's `checkpoints` directory, with rsync where both ends have
  /// it (only what changed), else scp.
  public static func directory(_ source: String, to b: Inventory.Board) throws(BoardsError) {
    guard let root = b.checkpoints else {
      throw BoardsError("board \(b.name): set \"checkpoints\" (where checkpoints live on the board) to copy one")
    }
    let ssh = SSHBoard(b)
    try ssh.check("mkdir -p " + RemoteShell.quote(root), what: "creating \(root)")
    let hasRsync =
      Shell.capture(["sh", "-c", "command -v rsync"], timeout: 5).status == 0
      && ssh.run("command -v rsync", timeout: 10).status == 0
    let r: (status: Int32, out: String, err: String)
    if hasRsync {
      let shell = RemoteShell.quote(Array(SSHBoard(b).prefix.dropLast(2)))
      r = Shell.capture(
        [
          "rsync", "-a", "-e", shell, source.hasSuffix("/") ? String(source.dropLast()) : source, remote(b, root + "/"),
        ],
        timeout: 3600)
    } else {
      r = Shell.capture(scpPrefix(b) + ["-r", source, remote(b, root + "/")], timeout: 3600)
    }
    guard r.status == 0 else { throw BoardsError("board \(b.name): copying \(source) failed: \(r.err)") }
  }

  /// Runs `edgelab profile` on the board and returns the profile's JSON.
  public static func profile(_ b: Inventory.Board, threads: Int, repetitions: Int) throws(BoardsError) -> String {
    let file = b.workDirectory + "/profile-\(getpid()).json"
    let command =
      "mkdir -p " + RemoteShell.quote(b.workDirectory) + " && "
      + RemoteShell.quote([
        b.executable, "profile", "--out", file, "--name", b.name, "--threads", String(threads), "--repetitions",
        String(repetitions),
      ]) + " >/dev/null && cat " + RemoteShell.quote(file) + "; status=$?; rm -f " + RemoteShell.quote(file)
      + "; exit $status"
    return try SSHBoard(b).check(command, what: "profiling", timeout: 3600)
  }
}
