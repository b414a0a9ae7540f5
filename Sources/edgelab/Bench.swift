import ArgumentParser
import Benchmarks
import EdgeLabCore

struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Performance benchmarks (tables for docs/).", subcommands: [PartitionBenchCommand.self])
}

struct PartitionBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "partition", abstract: "Solve times of the exact partitioners.")
  @Flag(help: "A small grid (smoke test).") var quick = false
  @Flag(help: "Print a markdown table.") var markdown = false

  func run() throws {
    let rows = try PartitionBench.run(quick: quick) { line in
      FileHandleStderr.write(line + "\n")
    }
    let t = PartitionBench.table(rows)
    print(markdown ? t.markdown() : t.render())
  }
}

import Foundation
enum FileHandleStderr {
  static func write(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
}
