import Foundation
import Logging

/// How the CLI's components log: one line per message on standard error, "label: message (key=value …)",
/// below `warning` only when asked; the progress line on a terminal is the runner's own, not a log.
struct StderrLogHandler: LogHandler {
  let label: String
  var logLevel: Logger.Level
  var metadata: Logger.Metadata = [:]

  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  func log(event: LogEvent) {
    var all = metadata
    if let extra = event.metadata { all.merge(extra) { $1 } }
    let context =
      all.isEmpty
      ? "" : " (" + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + ")"
    let level = event.level >= .warning ? "\(event.level): " : ""
    FileHandle.standardError.write(Data("\(label): \(level)\(event.message)\(context)\n".utf8))
  }
}

enum CLILogging {
  /// A logger for one component of this command; `quiet` keeps only errors.
  static func logger(_ label: String, quiet: Bool = false) -> Logger {
    Logger(label: label) { label in StderrLogHandler(label: label, logLevel: quiet ? .error : .info) }
  }
}
