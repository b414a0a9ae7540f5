import ArgumentParser
import Benchmarks
import Catalog
import EdgeLabCore
import Foundation

struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Performance benchmarks (tables for docs/).",
    subcommands: [
      PartitionBenchCommand.self, EngineBenchCommand.self, MemoryBenchCommand.self, HopBenchCommand.self,
      PipelineBenchCommand.self, FuzzBenchCommand.self, SimulatorBenchCommand.self,
    ])
}

struct FuzzBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "fuzz",
    abstract: "Mutation-fuzz the safetensors and spec readers: every case must end in a result or a named error.")
  @Option(help: "Mutated safetensors headers.") var safetensors = 10_000
  @Option(help: "Mutated experiment specs (read, validated and expanded; nothing runs).") var specs = 10_000
  @Option(help: "Seed of the first case.") var seed: UInt64 = 1

  func validate() throws {
    guard safetensors >= 0, specs >= 0 else { throw ValidationError("--safetensors and --specs must be ≥ 0") }
  }

  func run() throws {
    print("safetensors: \(Fuzz.safetensors(count: safetensors, seed: seed))")
    print("specs: \(Fuzz.specs(count: specs, seed: seed))")
  }
}

struct PartitionBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "partition", abstract: "Solve times of the exact partitioners.")
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

enum FileHandleStderr {
  static func write(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
}

struct HopBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "hop", abstract: "One pipeline hop over loopback TCP.")
  @Option(help: "Hidden size of the activation (batch 1).") var hidden = 3072
  @Option(help: "Round trips measured.") var iterations = 2000

  func run() throws {
    var t = TextTable(
      header: ["hidden", "wire", "frame bytes", "median one-way", "p99 one-way"], rightAligned: [0, 2, 3, 4])
    for half in [false, true] {
      let h = try PipelineBench.hop(hidden: hidden, halfPrecision: half, iterations: iterations)
      t.append([
        String(h.hidden), half ? "FP16" : "FP32", String(h.payloadBytes), Seconds(h.medianSeconds).description,
        Seconds(h.p99Seconds).description,
      ])
    }
    print(t.markdown())
  }
}

struct PipelineBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "pipeline", abstract: "Overhead of N worker processes over one process.")
  @Option(help: "Model preset (synthetic weights).") var model = "small"
  @Option(help: "Largest number of stages.") var stages = 4
  @Option(help: "Generated tokens per request.") var tokens = 64
  @Option(help: "Interleaved rounds (medians are reported).") var rounds = 3

  func run() throws {
    guard let preset = ModelPreset.named(model) else {
      throw fail("unknown model preset '\(model)'", code: Exit.badInput)
    }
    let (local, rows) = try PipelineBench.overhead(
      model: preset, maxStages: stages, tokens: tokens, rounds: rounds, executable: Backends.executable)
    var t = TextTable(
      header: ["stages", "time per token", "overhead per token", "per added stage", "lossless"],
      rightAligned: [0, 1, 2, 3])
    t.append(["in-process", Seconds(local).description, "", "", ""])
    let one = rows.first { $0.stages == 1 }?.timePerTokenSeconds
    for r in rows {
      t.append([
        String(r.stages), Seconds(r.timePerTokenSeconds).description, Seconds(r.overheadPerTokenSeconds).description,
        // What each stage beyond the first adds: one more process to wake and one more hop per token.
        one.map { r.stages > 1 ? Seconds((r.timePerTokenSeconds - $0) / Double(r.stages - 1)).description : "" } ?? "",
        r.lossless ? "yes" : "NO",
      ])
    }
    print(t.markdown())
  }
}

struct SimulatorBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "simulator",
    abstract: "Simulator speed: N requests × 128 tokens through 16 stages (Llama-2-7B FP16 on 16 AGX Orins).")
  @Option(help: "Request counts, comma-separated.") var requests = "1000,2000,4000,8000,16000"
  @Option(help: "Runs per size (the fastest is kept).") var rounds = 3

  func run() throws {
    let sizes = requests.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !sizes.isEmpty, sizes.allSatisfy({ (1...1_000_000).contains($0) }) else {
      throw ValidationError("--requests: comma-separated counts between 1 and 1000000")
    }
    let rows = try SimulatorBench.run(sizes: sizes, rounds: rounds)
    var t = TextTable(
      header: ["requests", "tokens", "events", "seconds", "µs per request", "events per second"],
      rightAligned: [0, 1, 2, 3, 4, 5])
    for r in rows {
      t.append([
        String(r.requests), String(r.tokens), String(r.events), String(format: r.seconds, digits: 3),
        String(format: r.seconds / Double(r.requests) * 1e6, digits: 1),
        String(format: Double(r.events) / r.seconds / 1e6, digits: 2) + " M",
      ])
    }
    print(t.markdown())
  }
}
