public import Foundation

/// Where and from what a results file came: toolkit version, git state, host.
public enum Provenance {
  public static let toolkitVersion = "0.1.0"

  /// Output of a command, or nil if it failed or is missing.
  static func capture(_ arguments: [String], directory: String? = nil) -> String? {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = arguments
    if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return nil }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { return nil }
    return String(decoding: data, as: UTF8.self)
  }

  public struct Git: Sendable {
    public var commit: String
    public var dirty: Bool
    public var diff: String
  }

  /// The git state of the checkout containing the working directory (commit "unknown" outside a repository).
  public static func git() -> Git {
    guard let commit = capture(["git", "rev-parse", "HEAD"])?.trimmingCharacters(in: .whitespacesAndNewlines),
      let top = capture(["git", "rev-parse", "--show-toplevel"])?.trimmingCharacters(in: .whitespacesAndNewlines)
    else {
      return Git(commit: "unknown", dirty: false, diff: "")
    }
    let status = capture(["git", "status", "--porcelain", "--untracked-files=no"], directory: top) ?? ""
    // New files that are not ignored count too: a new algorithm or experiment is compiled in before it is
    // committed. Their text goes into the diff (the first 256 KiB; binary files by size only).
    let untracked = (capture(["git", "ls-files", "--others", "--exclude-standard", "-z"], directory: top) ?? "")
      .split(separator: "\0").map(String.init)
    let dirty = !status.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || !untracked.isEmpty
    guard dirty else { return Git(commit: commit, dirty: false, diff: "") }
    var diff = capture(["git", "diff", "HEAD"], directory: top) ?? ""
    let limit = 256 << 10
    for file in untracked {
      if diff.utf8.count > 16 << 20 {
        diff += "(more new files not recorded: the diff is capped at 16 MiB)\n"
        break
      }
      // Regular files only: opening a FIFO would block.
      guard
        (try? FileManager.default.attributesOfItem(atPath: top + "/" + file)[.type] as? FileAttributeType)
          == .typeRegular,
        let handle = FileHandle(forReadingAtPath: top + "/" + file)
      else {
        diff += "new file (untracked): \(file) (not a regular file; not recorded)\n"
        continue
      }
      let head = (try? handle.read(upToCount: limit)) ?? Data()
      let size = (try? handle.seekToEnd()).map(Int.init) ?? head.count
      try? handle.close()
      diff += "new file (untracked): \(file)\n"
      if head.contains(0) {
        diff += "(binary, \(size) bytes; content not recorded)\n"
        continue
      }
      let lines = String(decoding: head, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
      diff += "--- /dev/null\n+++ b/\(file)\n" + lines.map { "+" + $0 }.joined(separator: "\n")
      diff += size > limit ? "\n(truncated: first 256 KiB of \(size) bytes)\n" : "\n"
    }
    return Git(commit: commit, dirty: true, diff: diff)
  }

  /// "hostname; Linux 6.1.0 x86_64; AMD EPYC …; 2 cores".
  public static func host() -> String {
    var u = utsname()
    uname(&u)
    func field<T>(_ v: inout T) -> String {
      withUnsafeBytes(of: &v) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
    }
    let name = field(&u.nodename)
    let sys = field(&u.sysname)
    let rel = field(&u.release)
    let machine = field(&u.machine)
    let cpu =
      (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
      .split(separator: "\n").first { $0.hasPrefix("model name") }
      .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) }
      ?? "unknown CPU"
    return "\(name); \(sys) \(rel) \(machine); \(cpu); \(ProcessInfo.processInfo.activeProcessorCount) cores"
  }

  /// ISO 8601 UTC time.
  public static func timestamp(_ date: Date = Date()) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return f.string(from: date)
  }
}
