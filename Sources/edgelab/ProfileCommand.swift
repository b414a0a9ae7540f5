import ArgumentParser
import Catalog
import CostModel
import EdgeLabCore
import Foundation
import Profiling

struct ProfileCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "profile",
    abstract: "Measure this host with the engine into a profile the simulator can use (Calibrate(profile:)).",
    discussion: """
      Per-layer times (embedding, decoder block, head) for prefill over prompt lengths and for decode over batch \
      sizes × contexts, the one-way cost of a pipeline message over its size, the decode read bandwidth and the \
      offload store's read bandwidth; the fitted functions beside the raw points. Takes a minute or two on a \
      quiet machine; measure with nothing else running.
      """)
  @Option(help: "Where to write the profile (JSON).") var out: String
  @Option(help: "The profile's name (the file's name without .json by default).") var name: String?
  @Option(help: "Model presets to measure, comma-separated (their shapes get measured tables).") var models = "small"
  @Option(help: "Engine threads, as a worker runs (loopback workers run 1).") var threads = 1
  @Option(help: "Passes per point (the median is kept).") var repetitions = 5

  func run() throws {
    try validateThreads(threads)
    guard (1...100).contains(repetitions) else { throw ValidationError("--repetitions must be between 1 and 100") }
    var presets: [ModelPreset] = []
    for n in models.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
      guard let p = ModelPreset.named(n) else {
        throw fail(
          "unknown model preset '\(n)'; known: \(ModelPreset.all.map(\.name).joined(separator: ", "))",
          code: Exit.badInput)
      }
      presets.append(p)
    }
    var options = Profiler.Options()
    options.threads = threads
    options.repetitions = repetitions
    let profiler = Profiler(options: options) { FileHandle.standardError.write(Data("profile: \($0)\n".utf8)) }
    let profileName = name ?? URL(fileURLWithPath: out).deletingPathExtension().lastPathComponent
    let profile = try profiler.profile(name: profileName, models: presets)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let data = try encoder.encode(profile)
    let directory = URL(fileURLWithPath: out).deletingLastPathComponent().path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let temporary = out + ".partial-\(getpid())"
    try data.write(to: URL(fileURLWithPath: temporary))
    guard rename(temporary, out) == 0 else {
      unlink(temporary)
      throw fail("cannot write \(out): \(String(cString: strerror(errno)))", code: Exit.ioFailed)
    }
    print(Self.describe(profile))
    print("wrote \(out) (\(FNV1a.label(data)))")
  }

  static func describe(_ p: HostProfile) -> String {
    var lines = [
      "host: \(p.host.cpu), \(p.host.threads) thread(s), OpenBLAS core \(p.host.blasCore), kernels \(p.host.kernels)",
      "decode read \(p.decodeBandwidth), offload store read \(p.storageReadBandwidth), prefill \(p.prefillFlops)",
    ]
    var t = TextTable(header: ["message bytes", "one way"], rightAligned: [0, 1])
    for m in p.message.points { t.append([String(m.bytes), Seconds(m.seconds).description]) }
    lines.append(t.markdown())
    for m in p.models {
      var worst = 0.0
      for q in m.decode {
        let fitted = m.time(.block(0), .decode(contexts: Array(repeating: q.context, count: q.batch)))
        worst = max(worst, abs(fitted - q.block) / q.block)
      }
      for q in m.prefill {
        worst = max(worst, abs(m.time(.block(0), .prefill(tokens: q.tokens)) - q.block) / q.block)
      }
      func spread(_ s: Double?) -> String { s.map { "±" + String(format: $0 * 50, digits: 1) + "%" } ?? "" }
      var d = TextTable(
        header: ["\(m.model) decode batch", "context", "embed", "block", "block spread", "head"],
        rightAligned: [0, 1, 2, 3, 4, 5])
      for q in m.decode {
        d.append([
          String(q.batch), String(q.context), Seconds(q.embed).description, Seconds(q.block).description,
          spread(q.blockSpread), Seconds(q.head).description,
        ])
      }
      lines.append(d.markdown())
      var f = TextTable(
        header: ["\(m.model) prefill tokens", "embed", "block", "block spread", "head"], rightAligned: [0, 1, 2, 3, 4])
      for q in m.prefill {
        f.append([
          String(q.tokens), Seconds(q.embed).description, Seconds(q.block).description, spread(q.blockSpread),
          Seconds(q.head).description,
        ])
      }
      lines.append(f.markdown())
      lines.append(
        "\(m.model): the fit is within \(String(format: worst * 100, digits: 1))% of every measured block time"
          + " (block spread: half the range of a point's passes around their median)")
    }
    return lines.joined(separator: "\n\n")
  }
}
