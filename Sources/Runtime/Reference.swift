import Catalog
import CostModel
import EdgeLabCore
import Engine
import Execution
import Foundation
import Pipeline
import Spec

/// The tokens the unsplit model generates for a run's requests (greedy): read from a cache keyed by weights,
/// requests, kernel instruction set and thread count, or computed in this process one layer range at a time, so
/// the check needs the memory of one stage's weights, not the whole model's.
///
/// Computing range by range needs each step's input token before the last range has produced it, so the tokens
/// the split run generated are fed back in (teacher forcing): step k's input is the split run's token k − 1.
/// Up to the first token where the split run went wrong, these are exactly the unsplit model's inputs, so the
/// reference's tokens are the unsplit model's there, and the first mismatch is found where it happened. Each
/// request runs alone (its prompt as one prefill, then one decode step per token), as the unsplit model runs
/// it; the engine's decode kernels give each sequence's rows the same bits whatever else shares a batch, and a
/// stage's prefill has the same shapes as the unsplit model's, so equal thread counts give equal tokens.
enum ReferenceTokens {
  /// Hidden states kept between layer ranges, per group of requests: the check reloads the weights once per
  /// group, and a group holds at most this many bytes of activations.
  static let groupBytes = 256 << 20

  static func compute(job: RunJob, generated: [Int: [Int32]], threads: Int, cache: String?) throws -> [Int: [Int32]] {
    let w = job.experiment.spec.model
    let spec = WeightsSpec(job.experiment)
    struct Key: Codable {
      var weights: WeightsSpec
      /// A checkpoint's files, sizes and modification times: new weights at the same path are a new key.
      var checkpointFiles: [String]
      var requests: [Request]
      var isa: String
      var threads: Int
      var version: Int
      struct Request: Codable {
        var id: Int
        var prompt: [Int32]
        var outputLength: Int
      }
    }
    let key = Key(
      weights: spec, checkpointFiles: w.checkpoint.map(Self.fingerprint) ?? [],
      requests: job.requests.map { Key.Request(id: $0.id, prompt: $0.promptTokens, outputLength: $0.outputLength) },
      isa: Kernels.isa, threads: threads, version: 2)
    // Sorted keys: the same key must give the same bytes in every process.
    let keyData = try JSONCoding.encoder.encode(key)
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in keyData { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    let path = cache.map { $0 + "/" + String(h, radix: 16) + ".json" }
    if let path, let data = FileManager.default.contents(atPath: path),
      let stored = try? JSONDecoder().decode([String: [Int32]].self, from: data)
    {
      return Dictionary(uniqueKeysWithValues: stored.compactMap { k, v in Int(k).map { ($0, v) } })
    }
    let out = try byLayerRange(
      job: job, weights: spec.source().open(), generated: generated, threads: threads,
      ranges: ranges(job: job, available: HostMemory.availableBytes()))
    // Only a reference the split run matched is the unsplit model's whole output (after a mismatch, the inputs
    // were the split run's, not the model's own): only that one is worth keeping.
    if let path, let cache, job.requests.allSatisfy({ out[$0.id] == generated[$0.id] }) {
      try? FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
      let stored = Dictionary(uniqueKeysWithValues: out.map { (String($0.key), $0.value) })
      if let data = try? JSONEncoder().encode(stored) {
        try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
      }
    }
    return out
  }

  /// Layer ranges to compute the reference in: the whole model when it fits comfortably in this machine's free
  /// memory, else consecutive ranges of at most the weight bytes of the plan's largest stage (so any plan whose
  /// workers fit here can be checked), cut greedily from layer 0 — not at the plan's cuts, so the check does not
  /// reuse the split it checks.
  static func ranges(job: RunJob, available: Double?) -> [Range<Int>] {
    let x = job.experiment
    let weight = ModelLayers(config: x.model, precision: x.spec.model.precision).layers.map(\.weightBytes.value)
    let total = weight.reduce(0, +)
    if let available, total < 0.5 * available { return [0..<weight.count] }
    let budget = job.plan.stages.map { $0.layers.reduce(0.0) { $0 + weight[$1] } }.max() ?? total
    var out: [Range<Int>] = []
    var first = 0
    while first < weight.count {
      var end = first + 1
      var bytes = weight[first]
      while end < weight.count && bytes + weight[end] <= budget {
        bytes += weight[end]
        end += 1
      }
      out.append(first..<end)
      first = end
    }
    return out
  }

  /// The reference computed one layer range at a time, a group of requests at a time.
  static func byLayerRange(
    job: RunJob, weights: any WeightSource, generated: [Int: [Int32]], threads: Int, ranges: [Range<Int>]
  ) throws -> [Int: [Int32]] {
    let hidden = weights.config.hiddenSize
    var groups: [[RequestPlan]] = [[]]
    var bytes = 0
    for r in job.requests {
      let need = (r.promptLength + r.outputLength) * hidden * 4
      if bytes + need > groupBytes && !groups[groups.count - 1].isEmpty {
        groups.append([])
        bytes = 0
      }
      groups[groups.count - 1].append(r)
      bytes += need
    }
    var out: [Int: [Int32]] = [:]
    for group in groups {
      // Step inputs per request: the prompt, then each token the split run generated (teacher forcing).
      var inputs: [Int: [StageInput]] = [:]
      for r in group {
        let fed = (generated[r.id] ?? []).prefix(max(0, r.outputLength - 1))
        inputs[r.id] = [.tokens(r.promptTokens)] + fed.map { .tokens([$0]) }
      }
      for range in ranges {
        let stage = try LlamaStage(
          weights: weights, layers: range, threads: threads, arithmetic: job.experiment.spec.model.arithmetic)
        for r in group {
          var next: [StageInput] = []
          var tokens: [Int32] = []
          for (k, input) in (inputs[r.id] ?? []).enumerated() {
            let span =
              k == 0
              ? SequenceSpan(id: r.id, start: 0, count: r.promptLength)
              : SequenceSpan(id: r.id, start: r.promptLength + k - 1, count: 1)
            switch stage.forward([span], input) {
            case .hidden(let h): next.append(.hidden(h))
            case .logits(let l, _): tokens.append(l.withUnsafeBufferPointer { Sampler.argmax($0) })
            }
          }
          stage.release(sequence: r.id)
          if stage.endsWithHead { out[r.id] = tokens } else { inputs[r.id] = next }
        }
      }
    }
    return out
  }

  static func fingerprint(_ directory: String) -> [String] {
    let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    return files.map { f in
      let a = try? FileManager.default.attributesOfItem(atPath: directory + "/" + f)
      let size = (a?[.size] as? NSNumber)?.int64Value ?? -1
      let mtime = (a?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
      return "\(f):\(size):\(mtime)"
    }
  }
}
