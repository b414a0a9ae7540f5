import Boards
import Emulation
import Engine
import Execution
import Foundation
import Runner
import Runtime
import Simulator
import Spec

/// The backends this build offers: the CLI wires them, the runner only runs what it is given.
enum Backends {
  /// The path of this executable (workers are started as `edgelab worker`).
  static var executable: String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
  }

  static func all(quiet: Bool = false) -> [BackendKind: any ExecutionBackend] {
    let logger = CLILogging.logger("loopback", quiet: quiet)
    let emulation = EmulationContext(logger: CLILogging.logger("emulation", quiet: quiet)) { try hostDecodeBandwidth() }
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
}
