import Boards
import Catalog
import CostModel
import EdgeLabCore
import Emulation
import Engine
import Execution
import Foundation
import Runner
import Runtime
import Simulator
import Spec
import Transport

/// The backends this build offers: the CLI wires them, the runner only runs what it is given.
enum Backends {
  /// The path of this executable (workers are started as `edgelab worker`).
  static var executable: String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
  }

  static func all(quiet: Bool = false) -> [BackendKind: any ExecutionBackend] {
    let logger = CLILogging.logger("loopback", quiet: quiet)
    let emulation = EmulationContext(
      logger: CLILogging.logger("emulation", quiet: quiet), hostProbe: { try hostDecodeBandwidth() },
      flopsProbe: { try hostPrefillFlops() })
    var boards = LoopbackOptions(
      executable: executable, launcherFactory: boardsLauncherFactory(version: Provenance.toolkitVersion),
      logger: CLILogging.logger("boards", quiet: quiet))
    boards.kind = .boards
    return [
      .boards: LoopbackBackend(options: boards),
      .simulated: SimulatedBackend(),
      .loopback: LoopbackBackend(
        options: LoopbackOptions(
          executable: executable, launcherFactory: emulationLauncherFactory(context: emulation), logger: logger)),
    ]
  }

  /// This host's prefill compute rate on one core, as a profile measures it (`prefill_flops`): a decoder block of
  /// the `small` preset prefilling 256 tokens (synthetic FP32 weights; the block's FLOPs by the cost model, the
  /// fastest of three passes after a warm-up).
  static func hostPrefillFlops() throws -> FlopRate {
    let c = ModelPreset.small.config
    let stage = try LlamaStage(weights: SyntheticWeights(config: c, seed: 5, dtype: .f32), layers: 1..<2, threads: 1)
    let tokens = 256
    var rng = SeededRandom(seed: 6)
    let input = (0..<(tokens * c.hiddenSize)).map { _ in Float(rng.nextUnit() * 2 - 1) }
    var best = Double.infinity
    for pass in 0..<4 {
      let t0 = monotonicNanoseconds()
      _ = stage.forward([SequenceSpan(id: pass, start: 0, count: tokens)], .hidden(input))
      if pass > 0 { best = min(best, Double(monotonicNanoseconds() - t0) * 1e-9) }
      stage.release(sequence: pass)
    }
    let flops = ModelLayers(config: c, precision: .fp32).layers[1].flops(.prefill(tokens: tokens))
    return FlopRate(flopsPerSecond: flops / best)
  }
}
