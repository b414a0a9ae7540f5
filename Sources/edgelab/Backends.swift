import Emulation
import Foundation
import Runner
import Runtime
import Spec

/// The backends this build offers.
enum Backends {
  /// The path of this executable (workers are started as `edgelab worker`).
  static var executable: String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
  }

  static func all(quiet: Bool = false) -> [BackendKind: any ExecutionBackend] {
    let log: @Sendable (String) -> Void = { line in
      if !quiet { FileHandle.standardError.write(Data(("loopback: " + line + "\n").utf8)) }
    }
    return [
      .simulated: SimulatedBackend(),
      .loopback: LoopbackBackend(options: LoopbackOptions(executable: executable, launcherFactory: emulationLauncherFactory(log: log), log: log)),
    ]
  }
}
