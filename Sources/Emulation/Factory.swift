public import Execution
import Foundation
import Spec

/// The launcher for a run's emulation mode (what the CLI hands to the loopback backend).
public func emulationLauncherFactory(context: EmulationContext) -> LauncherFactory {
  { spec in
    let options = spec.emulation
    switch options.mode {
    case .none: return LocalLauncher()
    case .userspace: return UserspaceLauncher()
    case .namespaces: return NamespaceLauncher(options: options, context: context)
    case .auto:
      guard geteuid() == 0 else {
        throw EmulationError(
          "emulation (auto) uses network namespaces, which need root; run as root, or set emulation to userspace (shaping in the transport) or none (plain processes)"
        )
      }
      return NamespaceLauncher(options: options, context: context)
    }
  }
}
