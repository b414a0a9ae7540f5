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
