import Boards
import DSL
import EdgeLabCore
import Emulation
import Execution
import Foundation
import Spec
import TestSupport
import Testing

@Suite("Boards: inventory, shell quoting, link shaping")
struct InventoryTests {
  static func experiment() throws -> ResolvedExperiment {
    try Experiment("boards-map", "mapping") {
      Model(.tiny)
      Device("nano", .orinNano8GB, count: 2).source()
      Device("agx", .agxOrin32GB)
      Algorithm("even")
    }.spec.resolve()
  }

  @Test func devicesMapByNameThenGroupThenPreset() throws {
    let inv = Inventory(boards: [
      .init(name: "b-preset", host: "10.0.0.3", preset: "jetson-agx-orin-32gb"),
      .init(name: "b-group", host: "10.0.0.2", device: "nano"),
      .init(name: "b-name", host: "10.0.0.1", device: "nano1"),
    ])
    #expect(inv.problems().isEmpty)
    let m = try inv.assign(try Self.experiment())
    #expect(m.mapValues(\.name) == ["nano1": "b-name", "nano0": "b-group", "agx": "b-preset"])
  }

  @Test func aDeviceWithoutABoardIsNamedBeforeAnythingStarts() throws {
    let inv = Inventory(boards: [.init(name: "only", host: "10.0.0.1", device: "nano")], path: "lab.json")
    let x = try Self.experiment()
    do {
      _ = try inv.assign(x)
      Issue.record("expected an error")
    } catch {
      #expect(error.kind == .unassigned(devices: ["nano1", "agx"]), "\(error)")
    }
  }

  @Test func badInventoriesAreRefusedByField() throws {
    let dir = temporaryDirectory()
    let path = dir + "/lab.json"
    try #"{"boards": [{"name": "a b", "host": "x@y", "port": 70000, "interface": "eth0; reboot"}]}"#.write(
      toFile: path, atomically: true, encoding: .utf8)
    do {
      _ = try Inventory.load(path)
      Issue.record("expected an error")
    } catch {
      for part in ["name must be", "host must be", "port must be in", "device", "interface 'eth0; reboot'"] {
        #expect(error.message.contains(part), "\(error.message)")
      }
    }
    try #"{"boards": [{"name": "a", "host": "10.0.0.1", "device": "nano", "key": "keys/id"}]}"#.write(
      toFile: path, atomically: true, encoding: .utf8)
    #expect(try Inventory.load(path).boards[0].key == dir + "/keys/id")
    #expect(throws: BoardsError.self) { try Inventory.load(dir + "/missing.json") }
  }

  @Test func remoteCommandsAreQuotedForAShell() {
    #expect(
      RemoteShell.quote(["/opt/edgelab", "worker", "--listen", "10.0.0.1:0"])
        == "/opt/edgelab worker --listen 10.0.0.1:0")
    #expect(RemoteShell.quote("it's; rm -rf /") == #"'it'\''s; rm -rf /'"#)
    #expect(RemoteShell.quote("") == "''")
  }

  @Test func shapingCommandsAreTheEmulationsOnAnyInterface() {
    let e = LinkShaping.Egress(destination: "10.0.0.2", minor: 11, rate: 1_250_000, latency: 0.005, loss: 0.01)
    let root = LinkShaping.root(interface: "wlan0", handle: "e1ab", replace: true)
    #expect(
      root[0] == [
        "tc", "qdisc", "replace", "dev", "wlan0", "root", "handle", "e1ab:", "htb", "default", "9999", "r2q", "1000",
      ])
    let plain = LinkShaping.egress(interface: "wlan0", handle: "e1ab", e, netem: false)
    #expect(plain.count == 2)
    #expect(plain[0].contains("10000000bit"))
    #expect(plain[1].suffix(4) == ["10.0.0.2/32", "flowid", "e1ab:11"].suffix(4) || plain[1].contains("10.0.0.2/32"))
    let withNetem = LinkShaping.egress(interface: "wlan0", handle: "e1ab", e, netem: true)
    #expect(withNetem.count == 3)
    #expect(withNetem[2].contains("netem") && withNetem[2].contains("5.0ms") && withNetem[2].contains("1.0%"))
  }
}

@Suite("Boards: tegrastats")
struct TegrastatsTests {
  @Test func inputPowerIsReadFromOrinAndOlderLines() {
    let orin =
      "12-01-2026 10:00:00 RAM 2911/7620MB (lfb 2x4MB) CPU [3%@729,2%@729] GR3D_FREQ 0% VDD_IN 5234mW/5010mW VDD_CPU_GPU_CV 1120mW/1100mW"
    #expect(Tegrastats.inputPower(Substring(orin)) == 5.234)
    #expect(Tegrastats.inputPower("RAM 1/2MB POM_5V_IN 3216/3100 POM_5V_GPU 0/0") == 3.216)
    #expect(Tegrastats.inputPower("RAM 1/2MB CPU [off]") == nil)
    let s = Tegrastats.summary(orin + "\n" + orin.replacingOccurrences(of: "5234mW", with: "4766mW"), interval: 0.5)
    #expect(s?.samples == 2)
    #expect(s.map { abs($0.watts - 5.0) < 1e-9 && abs($0.joules - 5.0) < 1e-9 } == true)
  }
}
