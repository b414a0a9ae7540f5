import Foundation
import PackagePlugin

/// Before every build, writes the build's identity (git describe, a hash of the sources and Package.resolved,
/// whether the tree differs from its commit) into a Swift file of the target it is applied to. The work is
/// scripts/build-identity.sh, which rewrites the file only when the identity changed, so an unchanged tree
/// recompiles nothing.
@main
struct BuildIdentityPlugin: BuildToolPlugin {
  func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
    let output = context.pluginWorkDirectoryURL.appendingPathComponent("generated")
    let root = context.package.directoryURL
    return [
      .prebuildCommand(
        displayName: "Build identity of \(root.path)",
        executable: URL(fileURLWithPath: "/bin/bash"),
        arguments: [root.appendingPathComponent("scripts/build-identity.sh").path, root.path, output.path],
        outputFilesDirectory: output)
    ]
  }
}
