import BuildInfo
public import Foundation

/// Where and from what a results file came: build identity, git state, host.
public enum Provenance {
  /// This build's identity (`BuildIdentity.current`: git describe + a hash of the sources, `.dirty` for a
  /// changed tree): what results files record as `toolkit_version` and what shards and boards must match.
  public static var toolkitVersion: String { BuildIdentity.current }

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

  /// Files whose content never goes into a results file (results files get shared): environment files, keys
  /// and certificates. Matched against the file name.
  public static func looksSecret(_ path: String) -> Bool {
    let name = (path as NSString).lastPathComponent.lowercased()
    return name == ".env" || name.hasPrefix(".env.") || name.hasPrefix("id_") || name.hasSuffix(".pem")
      || name.hasSuffix(".key") || name.hasSuffix(".p12") || name.hasSuffix(".pfx") || name == ".netrc"
      || name.hasPrefix("credentials")
  }

  /// The git state of the checkout containing `directory` (by default the working directory; commit "unknown"
  /// outside a repository).
  ///
  /// The diff records tracked changes (without files that look secret). New files that are not ignored make the
  /// tree dirty too — a new algorithm or experiment is compiled in before it is committed — but are listed by
  /// name and size only, unless `untrackedText` asks for their text (at most 64 KiB each, never a secret-looking
  /// file, never binary).
  public static func git(untrackedText: Bool = false, directory: String? = nil) -> Git {
    guard
      let commit = capture(["git", "rev-parse", "HEAD"], directory: directory)?.trimmingCharacters(
        in: .whitespacesAndNewlines),
      let top = capture(["git", "rev-parse", "--show-toplevel"], directory: directory)?
        .trimmingCharacters(in: .whitespacesAndNewlines)
    else {
      return Git(commit: "unknown", dirty: false, diff: "")
    }
    let status = capture(["git", "status", "--porcelain", "--untracked-files=no"], directory: top) ?? ""
    let untracked = (capture(["git", "ls-files", "--others", "--exclude-standard", "-z"], directory: top) ?? "")
      .split(separator: "\0").map(String.init)
    let dirty = !status.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || !untracked.isEmpty
    guard dirty else { return Git(commit: commit, dirty: false, diff: "") }
    let changed = (capture(["git", "diff", "HEAD", "--name-only", "-z"], directory: top) ?? "").split(separator: "\0")
      .map(String.init)
    let secret = changed.filter(looksSecret)
    var diff =
      capture(["git", "diff", "HEAD", "--"] + ["."] + secret.map { ":(exclude,literal)" + $0 }, directory: top) ?? ""
    for file in secret { diff += "changed file \(file): looks secret; content not recorded\n" }
    if diff.utf8.count > 16 << 20 {
      diff =
        String(decoding: diff.utf8.prefix(16 << 20), as: UTF8.self) + "\n(truncated: the diff is capped at 16 MiB)\n"
    }
    let limit = 64 << 10
    for file in untracked {
      let path = top + "/" + file
      let attributes = try? FileManager.default.attributesOfItem(atPath: path)
      let size = (attributes?[.size] as? NSNumber)?.intValue ?? 0
      diff += "new file (untracked): \(file), \(size) bytes"
      // Regular files only (opening a FIFO would block), and only when asked.
      guard untrackedText, !looksSecret(file), attributes?[.type] as? FileAttributeType == .typeRegular,
        diff.utf8.count < 16 << 20, let handle = FileHandle(forReadingAtPath: path)
      else {
        diff += untrackedText && looksSecret(file) ? " (looks secret; content not recorded)\n" : "\n"
        continue
      }
      let head = (try? handle.read(upToCount: limit)) ?? Data()
      try? handle.close()
      if head.contains(0) {
        diff += " (binary; content not recorded)\n"
        continue
      }
      let lines = String(decoding: head, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
      diff += "\n--- /dev/null\n+++ b/\(file)\n" + lines.map { "+" + $0 }.joined(separator: "\n")
      diff += size > limit ? "\n(truncated: first 64 KiB of \(size) bytes)\n" : "\n"
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
