import Foundation

/// The coordinator's progress deadline, as a pure function of what workers report: when work is outstanding and
/// nothing has moved anywhere in the pipeline for `bound` seconds, the run is stuck, and the counters say where —
/// the first place, from the source along the pipeline, where more micro-batches went in than came out.
///
/// Heartbeats prove that processes live; this proves that work moves. A link that swallows frames, a stage
/// whose thread hangs, or tokens that never return all stop the run with the stage or link named.
public struct ProgressMonitor: Sendable {
  /// Seconds without movement before the run is declared stuck.
  public let bound: Double
  let stageDevices: [String]
  let source: String
  private var reports: [String: WorkerProgress] = [:]
  /// When each worker's latest report arrived (heartbeats repeat the same report).
  private var reportedAt: [String: Double] = [:]
  private var lastMove: Double

  public init(bound: Double, stageDevices: [String], source: String, start: Double) {
    self.bound = bound
    self.stageDevices = stageDevices
    self.source = source
    lastMove = start
  }

  /// A worker's report arrived at `now`.
  public mutating func observe(_ p: WorkerProgress, from device: String, at now: Double) {
    if reports[device] != p { lastMove = now }
    reports[device] = p
    reportedAt[device] = now
  }

  /// Something else moved (a token reached the coordinator, a request arrived).
  public mutating func moved(at now: Double) { lastMove = now }

  /// Why the run is stuck at `now`, or nil. `outstanding`: whether any request is unfinished.
  ///
  /// Judged only on fresh reports: while a worker that has reported before sent nothing for `bound` seconds (at
  /// least five heartbeats; its process starved on a loaded host, its heartbeats held up), its last counters may
  /// be of a moment long past (a micro-batch it has since finished), and the verdict waits for its next report.
  /// A worker that stays silent is the silence watch's to name, not this deadline's.
  public func verdict(at now: Double, outstanding: Bool) -> String? {
    guard outstanding, now - lastMove > bound else { return nil }
    let fresh = max(bound, 5 * Worker.heartbeatInterval)
    guard reportedAt.values.allSatisfy({ now - $0 <= fresh }) else { return nil }
    let held = String(format: "%.1f s", now - lastMove)
    var stage: [Int: WorkerProgress.Stage] = [:]
    for p in reports.values { for s in p.stages { stage[s.index] = s } }
    let sourceProgress = reports[source]
    var upstream = sourceProgress?.dispatched ?? 0
    var from = "the source (\(source))"
    for (i, device) in stageDevices.enumerated() {
      let s = stage[i]
      let received = s?.received ?? 0
      if upstream > received {
        let link = "\(i == 0 ? source : stageDevices[i - 1])→\(device)"
        return
          "no progress for \(held): \(upstream - received) micro-batch(es) sent by \(from) never reached stage \(i) on \(device) (link \(link))"
      }
      let completed = s?.completed ?? 0
      if received > completed {
        return
          "no progress for \(held): stage \(i) on \(device) has held \(received - completed) micro-batch(es) without finishing them"
      }
      upstream = completed
      from = "stage \(i) on \(device)"
    }
    let returned = sourceProgress?.returned ?? 0
    if upstream > returned, let last = stageDevices.last {
      return
        "no progress for \(held): tokens of \(upstream - returned) micro-batch(es) from stage \(stageDevices.count - 1) never reached the source (link \(last)→\(source))"
    }
    // The counters as reported, so that a stall nobody explains can still be read from the message.
    let counts = stageDevices.indices.map { i in
      "stage \(i) \(stage[i].map { "\($0.received)/\($0.completed)" } ?? "unreported")"
    }
    return
      "no progress for \(held) with requests outstanding, and no micro-batch in flight (the source dispatched \(sourceProgress?.dispatched ?? 0), got \(returned) back; received/completed: \(counts.joined(separator: ", ")))"
  }
}

/// When the coordinator last heard from each worker, and whether one has gone silent.
///
/// Silence is judged against the other workers as well as the clock. Worker d is silent when nothing came from
/// it for `timeout` seconds and, since its last frame, some other worker delivered at least half the heartbeats
/// it sends in `timeout`, spread over at least half of `timeout`: a peer that kept beating while d did not. So a
/// machine so loaded that every process stalls (the coordinator's readers included) names no one, nor does the
/// burst of queued frames one peer's reader drains first after such a stall; a worker that stops while a peer
/// goes on is named. When no peer can vouch (a single worker, or every worker quiet), the clock alone decides
/// after three times `timeout`, a single worker after `timeout`. Of several silent workers, the one silent
/// longest is named.
struct Liveness: Sendable {
  private(set) var lastHeard: [String: Double] = [:]
  /// The most recent arrival times of each worker's frames, oldest first (enough to judge a timeout).
  private var arrivals: [String: [Double]] = [:]
  static let kept = 512

  mutating func heard(from device: String, at now: Double) {
    lastHeard[device] = now
    arrivals[device, default: []].append(now)
    if arrivals[device]!.count > Self.kept { arrivals[device]!.removeFirst(arrivals[device]!.count - Self.kept) }
  }

  /// The worker silent longest, if any is silent at `now`.
  func silent(at now: Double, timeout: Double, interval: Double) -> String? {
    let beats = max(1, min(Self.kept, Int((timeout / interval).rounded(.down)) / 2))
    func silent(_ d: String, since last: Double) -> Bool {
      let quiet = now - last
      guard quiet > timeout else { return false }
      if lastHeard.count == 1 || quiet > 3 * timeout { return true }
      return arrivals.contains { peer, times in
        guard peer != d else { return false }
        let after = times.drop { $0 <= last }
        guard after.count >= beats, let first = after.first, let latest = after.last else { return false }
        return latest - first >= timeout / 2
      }
    }
    return lastHeard.filter { silent($0.key, since: $0.value) }.min { ($0.value, $0.key) < ($1.value, $1.key) }?.key
  }
}
