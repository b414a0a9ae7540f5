import ArgumentParser
import Boards
import Catalog
import EdgeLabCore
import Execution
import Foundation
import Runner
import Spec

struct BoardsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "boards",
    abstract: "Real boards over SSH: check them, copy the binary and checkpoints, profile them, clean up.",
    subcommands: [Check.self, Deploy.self, Clean.self, ProfileBoard.self])

  static func inventory(_ path: String) throws -> Inventory {
    do { return try Inventory.load(path) } catch { throw fail(error) }
  }

  static func boards(_ inv: Inventory, named: [String]) throws -> [Inventory.Board] {
    if named.isEmpty { return inv.boards }
    return try named.map { n in
      guard let b = inv.boards.first(where: { $0.name == n }) else {
        throw fail(
          "no board '\(n)' in \(inv.path); boards: \(inv.boards.map(\.name).joined(separator: ", "))",
          code: Exit.badInput)
      }
      return b
    }
  }

  struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract:
        "Check every board: reachable over SSH, the same edgelab version, free memory, clock offset, tegrastats; with --experiment also its devices' boards and checkpoint."
    )
    @Option(help: "The inventory (JSON).") var inventory: String
    @Option(help: "Also check the boards this experiment's devices map to, and its checkpoint on them.")
    var experiment: String?

    func run() throws {
      let inv = try BoardsCommand.inventory(inventory)
      var devices: [String: String] = [:]
      var checkpoint: String?
      var model: ModelConfig?
      var usable: [String: Double] = [:]
      if let experiment {
        let spec = try loadSpecAsWritten(name: experiment, file: nil)
        let x: ResolvedExperiment
        do { x = try spec.resolve() } catch { throw fail("\(error)", code: Exit.badInput) }
        do {
          for (d, b) in try inv.assign(x) {
            devices[b.name, default: ""] += (devices[b.name] == nil ? "" : ",") + d
            usable[b.name] = x.device(d)?.profile.usableMemory.value
          }
        } catch { throw fail(error.description, code: Exit.badInput) }
        checkpoint = spec.model.checkpoint.map { URL(fileURLWithPath: $0).lastPathComponent }
        model = x.model
      }
      var t = TextTable(
        header: ["BOARD", "HOST", "DEVICE", "SSH", "EDGELAB", "MEMORY FREE", "CLOCK OFFSET", "POWER", "CHECKPOINT"],
        rightAligned: [5, 6])
      var bad = 0
      for b in inv.boards {
        let r = BoardReport.probe(b, version: Provenance.toolkitVersion, checkpoint: checkpoint, model: model)
        let need = usable[b.name]
        let memory = r.availableBytes.map { a in
          String(format: a / 1e9, digits: 1) + " GB" + (need.map { a < $0 ? " (< \(Bytes($0)) declared)" : "" } ?? "")
        }
        if !r.ok || (need != nil && (r.availableBytes ?? 0) < need!) { bad += 1 }
        t.append([
          b.name, b.host, devices[b.name] ?? (experiment == nil ? (b.device ?? b.preset ?? "") : "unused"),
          r.reachable ? "ok" : "unreachable", r.versionText, memory ?? "-",
          r.clockOffset.map { String(format: $0 * 1e3, digits: 1) + " ms" } ?? "-", r.power, r.checkpointText,
        ])
      }
      print(t.render())
      if bad > 0 { throw fail("\(bad) board(s) not ready (see the table)", code: Exit.failure) }
    }
  }

  struct Deploy: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract:
        "Copy an edgelab binary (built for the boards' architecture) and optionally a checkpoint directory to the boards."
    )
    @Option(help: "The inventory (JSON).") var inventory: String
    @Option(help: "The binary to copy (default: this one).") var binary: String?
    @Option(help: "A checkpoint directory to copy into each board's `checkpoints` directory.") var checkpoint: String?
    @Option(help: "Only these boards (repeatable).") var board: [String] = []

    func run() throws {
      let inv = try BoardsCommand.inventory(inventory)
      let source = binary ?? Backends.executable
      var failed = 0
      for b in try BoardsCommand.boards(inv, named: board) {
        do {
          try BoardsDeploy.binary(source, to: b)
          if let checkpoint { try BoardsDeploy.directory(checkpoint, to: b) }
          print("\(b.name): deployed \(b.executable)\(checkpoint.map { " and \($0)" } ?? "")")
        } catch {
          failed += 1
          FileHandle.standardError.write(Data("\(error)\n".utf8))
        }
      }
      if failed > 0 { throw fail("\(failed) board(s) failed", code: Exit.failure) }
    }
  }

  struct Clean: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Remove what killed runs left on the boards: workers, the lab's tc shaping, run directories.")
    @Option(help: "The inventory (JSON).") var inventory: String
    @Option(help: "Only these boards (repeatable).") var board: [String] = []

    func run() throws {
      let inv = try BoardsCommand.inventory(inventory)
      var failed = 0
      for b in try BoardsCommand.boards(inv, named: board) {
        let said = BoardsMaintenance.clean(b, tag: nil)
        if said.isEmpty {
          print("\(b.name): clean")
        } else {
          failed += 1
          print("\(b.name): \(said)")
        }
      }
      if failed > 0 { throw fail("\(failed) board(s) could not be cleaned", code: Exit.failure) }
    }
  }

  struct ProfileBoard: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "profile",
      abstract:
        "Run `edgelab profile` on a board and bring its profile back (use it with Device(…, measuredProfile:)).")
    @Option(help: "The inventory (JSON).") var inventory: String
    @Option(help: "The board.") var board: String
    @Option(help: "Where to write the profile here.") var out: String
    @Option(help: "Engine threads on the board.") var threads = 1
    @Option(help: "Passes per point.") var repetitions = 5

    func run() throws {
      let inv = try BoardsCommand.inventory(inventory)
      let b = try BoardsCommand.boards(inv, named: [board])[0]
      let text: String
      do {
        text = try BoardsDeploy.profile(b, threads: threads, repetitions: repetitions)
      } catch { throw fail("\(error)", code: Exit.failure) }
      do {
        try Data(text.utf8).write(to: URL(fileURLWithPath: out), options: .atomic)
      } catch { throw fail("cannot write \(out): \(error)", code: Exit.ioFailed) }
      print("wrote \(out) (profile of board \(b.name))")
    }
  }
}
