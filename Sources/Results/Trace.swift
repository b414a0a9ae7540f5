public import Metrics

/// A run's timeline as Chrome/Perfetto trace JSON (the Trace Event Format): one process per device, a track for
/// its stages' computation, one for offloaded-layer loads, and one per peer it sends to; every span a complete
/// ("X") event in microseconds. Opens in ui.perfetto.dev or chrome://tracing.
public enum ChromeTrace {
  public static func json(_ events: [TimelineEvent], title: String) -> String {
    var devices: [String] = []
    var index: [String: Int] = [:]
    for e in events {
      for d in [e.device] + (e.peer.map { [$0] } ?? []) where index[d] == nil {
        index[d] = devices.count
        devices.append(d)
      }
    }
    var out: [String] = []
    for (i, d) in devices.enumerated() {
      out.append(#"{"ph":"M","name":"process_name","pid":\#(i),"args":{"name":"\#(escape(d))"}}"#)
      out.append(#"{"ph":"M","name":"thread_name","pid":\#(i),"tid":0,"args":{"name":"compute"}}"#)
      out.append(#"{"ph":"M","name":"thread_name","pid":\#(i),"tid":1,"args":{"name":"loads"}}"#)
    }
    var sendTracks: [String: Int] = [:]
    for e in events where e.kind == .transfer {
      let key = e.device + "\u{1}" + (e.peer ?? "")
      if sendTracks[key] == nil {
        let tid = 2 + sendTracks.keys.filter { $0.hasPrefix(e.device + "\u{1}") }.count
        sendTracks[key] = tid
        out.append(
          #"{"ph":"M","name":"thread_name","pid":\#(index[e.device]!),"tid":\#(tid),"args":{"name":"to \#(escape(e.peer ?? ""))"}}"#
        )
      }
    }
    for e in events {
      let pid = index[e.device]!
      let tid: Int
      let name: String
      switch e.kind {
      case .compute:
        tid = 0
        name = "stage \(e.stage) batch \(e.batch)"
      case .load:
        tid = 1
        name = "load layer \(e.layer ?? -1)"
      case .transfer:
        tid = sendTracks[e.device + "\u{1}" + (e.peer ?? "")]!
        name = "batch \(e.batch) → \(e.peer ?? "")"
      }
      let ts = micro(e.start)
      let dur = micro(max(0, e.end - e.start))
      out.append(
        #"{"ph":"X","name":"\#(escape(name))","cat":"\#(e.kind.rawValue)","pid":\#(pid),"tid":\#(tid),"ts":\#(ts),"dur":\#(dur),"args":{"stage":\#(e.stage),"batch":\#(e.batch)}}"#
      )
    }
    return #"{"displayTimeUnit":"ms","otherData":{"title":"\#(escape(title))"},"traceEvents":["#
      + out.joined(separator: ",\n") + "]}\n"
  }

  /// Microseconds with three decimals (finite; NaN and infinities become 0).
  static func micro(_ seconds: Double) -> String {
    let us = seconds * 1e6
    guard us.isFinite else { return "0" }
    let scaled = (us * 1000).rounded()
    guard abs(scaled) < 9e15 else { return String(Int64(us.rounded())) }
    let whole = Int64(scaled)
    let sign = whole < 0 ? "-" : ""
    let a = abs(whole)
    let frac = String(a % 1000)
    return sign + String(a / 1000) + "." + String(repeating: "0", count: 3 - frac.count) + frac
  }

  static func escape(_ s: String) -> String {
    var r = ""
    for u in s.unicodeScalars {
      switch u {
      case "\"": r += "\\\""
      case "\\": r += "\\\\"
      case "\n": r += "\\n"
      default:
        if u.value < 0x20 {
          let hex = String(u.value, radix: 16)
          r += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        } else {
          r.unicodeScalars.append(u)
        }
      }
    }
    return r
  }
}
