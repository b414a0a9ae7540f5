public import EdgeLabCore
import Foundation
public import Spec

/// The boards an experiment can run on: how to reach each by SSH and which declared device it stands for.
///
/// JSON (`lab.json`; paths relative to the inventory file's directory unless absolute or `~/…`):
/// ```json
/// {"boards": [
///   {"name": "orin-a", "host": "192.168.1.21", "user": "edge", "key": "~/.ssh/lab_ed25519", "port": 22,
///    "device": "nano0", "edgelab": "/home/edge/edgelab", "checkpoints": "/data/models",
///    "interface": "eth0", "work_dir": "/tmp/edgelab", "sudo": true,
///    "ssh_options": ["-o", "UserKnownHostsFile=~/.ssh/lab_known_hosts"]}]}
/// ```
/// - `device`: a declared device instance ("nano0"), or a group ("nano": boards take its instances in order);
///   or leave it out and give `preset` ("jetson-orin-nano-8gb"): boards take the instances of groups with that
///   preset. Every declared device needs a board, or the run is refused before anything starts.
/// - `host` is also the address the board's worker listens on and its peers reach it at; `interface` is the
///   network interface that address is on (links are shaped there with tc).
/// - `sudo`: run tc through `sudo -n` (a user that is not root, with passwordless sudo for tc).
public struct Inventory: Codable, Hashable, Sendable {
  public struct Board: Codable, Hashable, Sendable {
    public var name: String
    public var host: String
    public var user: String?
    public var key: String?
    public var port: Int?
    public var device: String?
    public var preset: String?
    public var edgelab: String?
    public var checkpoints: String?
    public var interface: String?
    public var workDir: String?
    public var sudo: Bool?
    public var sshOptions: [String]?

    public init(
      name: String, host: String, user: String? = nil, key: String? = nil, port: Int? = nil, device: String? = nil,
      preset: String? = nil, edgelab: String? = nil, checkpoints: String? = nil, interface: String? = nil,
      workDir: String? = nil, sudo: Bool? = nil, sshOptions: [String]? = nil
    ) {
      self.name = name
      self.host = host
      self.user = user
      self.key = key
      self.port = port
      self.device = device
      self.preset = preset
      self.edgelab = edgelab
      self.checkpoints = checkpoints
      self.interface = interface
      self.workDir = workDir
      self.sudo = sudo
      self.sshOptions = sshOptions
    }

    enum CodingKeys: String, CodingKey {
      case name, host, user, key, port, device, preset, edgelab, checkpoints, interface, sudo
      case workDir = "work_dir"
      case sshOptions = "ssh_options"
    }

    /// The `edgelab` executable on the board.
    public var executable: String { edgelab ?? "edgelab" }
    /// Where runs keep their files on the board.
    public var workDirectory: String { workDir ?? "/tmp/edgelab" }
    public var networkInterface: String { interface ?? "eth0" }
  }

  public var boards: [Board]
  /// The file it was read from (for messages); not part of the JSON.
  public var path = ""

  enum CodingKeys: String, CodingKey { case boards }

  public init(boards: [Board], path: String = "") {
    self.boards = boards
    self.path = path
  }

  /// Reads and checks an inventory; relative key paths are taken from the file's directory.
  public static func load(_ path: String) throws(BoardsError) -> Inventory {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw BoardsError(
        "inventory '\(path)' cannot be read; write one as in README, \"Run on your Jetsons\"",
        kind: .inventory(path: path))
    }
    guard data.count <= 1 << 20 else {
      throw BoardsError("inventory '\(path)' is larger than 1 MiB", kind: .inventory(path: path))
    }
    var inventory: Inventory
    do { inventory = try JSONCoding.decoder.decode(Inventory.self, from: data) } catch {
      throw BoardsError("inventory '\(path)': \(JSONCoding.explain(error))", kind: .inventory(path: path))
    }
    inventory.path = path
    let base = URL(fileURLWithPath: path).deletingLastPathComponent().path
    for i in inventory.boards.indices {
      if let k = inventory.boards[i].key { inventory.boards[i].key = Self.resolve(k, base: base) }
    }
    let problems = inventory.problems()
    if !problems.isEmpty {
      throw BoardsError("inventory '\(path)': " + problems.joined(separator: "; "), kind: .inventory(path: path))
    }
    return inventory
  }

  static func resolve(_ p: String, base: String) -> String {
    if p.hasPrefix("/") { return p }
    if p.hasPrefix("~/") { return NSHomeDirectory() + String(p.dropFirst(1)) }
    return base + "/" + p
  }

  /// What is wrong with the inventory, each naming the board and field.
  public func problems() -> [String] {
    var out: [String] = []
    if boards.isEmpty { out.append("boards: list at least one board") }
    let names = boards.map(\.name)
    if Set(names).count != names.count { out.append("boards: names must be unique") }
    for (i, b) in boards.enumerated() {
      let field = "boards[\(i)] (\(b.name))"
      if b.name.isEmpty || !b.name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) {
        out.append("\(field).name must be letters, digits, '-', '_' or '.'")
      }
      if b.host.isEmpty || b.host.contains(where: { $0.isWhitespace || $0 == "@" }) {
        out.append("\(field).host must be an address or host name")
      }
      if let p = b.port, !(1...65535).contains(p) { out.append("\(field).port must be in 1…65535 (it is \(p))") }
      if b.device == nil && b.preset == nil {
        out.append("\(field): give the declared device it stands for (device) or its preset (preset)")
      }
      for (key, v) in [("interface", b.interface), ("user", b.user)] {
        if let v, v.isEmpty || v.contains(where: { $0.isWhitespace || $0 == "'" || $0 == ";" }) {
          out.append("\(field).\(key) '\(v)' is not a valid name")
        }
      }
    }
    return out
  }

  /// Which board runs each declared device: by instance name, then group name, then preset; each board once.
  /// Throws naming every declared device left without a board.
  public func assign(_ x: ResolvedExperiment) throws(BoardsError) -> [String: Board] {
    var free = boards
    var out: [String: Board] = [:]
    let groups = Dictionary(x.spec.devices.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    func take(_ match: (Board) -> Bool) -> Board? {
      guard let i = free.firstIndex(where: match) else { return nil }
      return free.remove(at: i)
    }
    for d in x.devices {
      if let b = take({ $0.device == d.name }) { out[d.name] = b }
    }
    for d in x.devices where out[d.name] == nil {
      if let b = take({ $0.device == d.group }) { out[d.name] = b }
    }
    for d in x.devices where out[d.name] == nil {
      let preset = groups[d.group]?.preset
      if let preset, let b = take({ $0.device == nil && $0.preset == preset }) { out[d.name] = b }
    }
    let missing = x.devices.filter { out[$0.name] == nil }
    if !missing.isEmpty {
      let list = missing.map { d in
        "\(d.name) (group \(d.group)\(groups[d.group]?.preset.map { ", preset \($0)" } ?? ""))"
      }
      throw BoardsError(
        "no board in '\(path)' for declared device\(missing.count > 1 ? "s" : "") \(list.joined(separator: ", ")); "
          + "add a board whose \"device\" is the device's or its group's name, or whose \"preset\" is its preset",
        kind: .unassigned(devices: missing.map(\.name)))
    }
    return out
  }
}

/// A problem with the boards, their inventory or a command on them.
public struct BoardsError: Error, CustomStringConvertible, Sendable, ReportableError {
  /// What failed, as data.
  public enum Kind: Sendable, Equatable {
    /// The inventory at `path` is missing, unreadable or invalid.
    case inventory(path: String)
    /// Declared devices that no board of the inventory can be.
    case unassigned(devices: [String])
    /// A command on a board failed (ssh, tc, a copy).
    case board(String)
    /// A board's `edgelab --version` is another build than the coordinator's.
    case buildMismatch(board: String, ours: String, theirs: String)
    /// Anything else (a local file to deploy, a setting of the inventory).
    case other
  }
  public var kind: Kind
  public var message: String
  public init(_ message: String, kind: Kind = .other) {
    self.message = message
    self.kind = kind
  }
  public var description: String { message }

  public var failureClass: FailureClass {
    switch kind {
    case .inventory: .inputCorrupt
    case .unassigned, .other: .specRefused
    case .board, .buildMismatch: .deviceFailed
    }
  }

  public var code: String {
    switch kind {
    case .inventory: "inventory_unreadable"
    case .unassigned: "no_board"
    case .board: "board_failed"
    case .buildMismatch: "build_mismatch"
    case .other: "boards_refused"
    }
  }

  public var details: [String: JSONValue] {
    switch kind {
    case .inventory(let path): ["path": .string(path)]
    case .unassigned(let devices): ["devices": .array(devices.map(JSONValue.string))]
    case .board(let name): ["board": .string(name)]
    case .buildMismatch(let board, let ours, let theirs):
      ["board": .string(board), "ours": .string(ours), "theirs": .string(theirs)]
    case .other: [:]
    }
  }
}
