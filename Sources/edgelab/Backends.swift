import Runner
import Spec

/// The backends this build offers.
enum Backends {
  static func all() -> [BackendKind: any ExecutionBackend] {
    [.simulated: SimulatedBackend()]
  }
}
