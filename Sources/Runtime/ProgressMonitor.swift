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
  }

  /// Something else moved (a token reached the coordinator, a request arrived).
  public mutating func moved(at now: Double) { lastMove = now }

  /// Why the run is stuck at `now`, or nil. `outstanding`: whether any request is unfinished.
  public func verdict(at now: Double, outstanding: Bool) -> String? {
    guard outstanding, now - lastMove > bound else { return nil }
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
    return "no progress for \(held) with requests outstanding, and no micro-batch in flight"
  }
}

/// When the coordinator last heard from each worker, and whether one has gone silent.
///
/// Silence is judged against the other workers as well as the clock: a worker is silent when nothing came
/// from it for `timeout` seconds *and*, meanwhile, the others delivered at least half the heartbeats they
/// send in that time. A machine so loaded that every process stalls (the coordinator's readers included)
/// therefore declares no one hung; a worker that stops while its peers go on is named. With a single worker,
/// the clock alone decides. Of several silent workers, the one silent longest is named.
struct Liveness: Sendable {
  private(set) var lastHeard: [String: Double] = [:]
  /// Frames received from all workers, in total, and that count when each worker was last heard from.
  private(set) var frames = 0
  private var framesAtLastHeard: [String: Int] = [:]

  mutating func heard(from device: String, at now: Double) {
    frames += 1
    lastHeard[device] = now
    framesAtLastHeard[device] = frames
  }

  /// The worker silent longest, if any is silent at `now`.
  func silent(at now: Double, timeout: Double, interval: Double) -> String? {
    let peers = lastHeard.count - 1
    let expected = peers <= 0 ? 0 : Int((timeout / interval).rounded(.down)) * peers / 2
    return
      lastHeard
      .filter { now - $0.value > timeout && frames - (framesAtLastHeard[$0.key] ?? frames) >= expected }
      .min { ($0.value, $0.key) < ($1.value, $1.key) }?.key
  }
}
