import EdgeLabCore
public import Foundation
import Metrics
public import Results
public import Runner
import Spec

/// One self-contained HTML page for a results file: the leaderboard (every strategy and algorithm ranked per
/// metric, with a bar chart per metric), the winner at each sweep point, the figures, the paper's numbers beside
/// the lab's and the provenance. Everything is inline (styles, script, images as data URIs, charts as SVG): the
/// page opens from disk, without a network.
public enum HTMLReport {
  /// A figure to embed: a caption and a PNG image's bytes.
  public struct Figure: Sendable {
    public var caption: String
    public var png: Data
    public init(caption: String, png: Data) {
      self.caption = caption
      self.png = png
    }
  }

  public static func render(_ results: ResultsFile, paper: [PaperComparison.Row] = [], figures: [Figure] = [])
    -> String
  {
    let info = results.info
    let board = Leaderboard(runs: results.runs)
    var html = """
      <!doctype html>
      <html lang="en"><head><meta charset="utf-8">
      <meta name="viewport" content="width=device-width, initial-scale=1">
      <title>\(escape(info.experiment)) — EdgeLab report</title>
      <style>\(style)</style></head>
      <body data-ready="0">
      <h1>\(escape(info.experiment))</h1>
      <p class="sub">\(results.runs.count) of \(info.runsTotal) runs on the \(escape(info.backend)) backend\
      \(info.complete ? "" : " (<b>incomplete</b>)") · finished \(escape(info.finishedAt)) · edgelab \
      \(escape(info.toolkitVersion))</p>

      """
    html += models(results)
    html += leaderboard(board)
    html += charts(board)
    html += winners(results)
    if !figures.isEmpty {
      html += "<h2>Figures</h2>\n"
      for f in figures {
        html +=
          "<figure><img alt=\"\(escape(f.caption))\" src=\"data:image/png;base64,"
          + f.png.base64EncodedString() + "\"><figcaption>\(escape(f.caption))</figcaption></figure>\n"
      }
    }
    html += paperSection(paper)
    html += provenance(info)
    html += "<script>\(script)</script>\n</body></html>\n"
    return html
  }

  /// Text made safe inside HTML elements and attribute values.
  public static func escape(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for c in s {
      switch c {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "'": out += "&#39;"
      default: out.append(c)
      }
    }
    return out
  }

  /// What was measured of the models themselves (edge–cloud experiments record it on every run).
  static func models(_ results: ResultsFile) -> String {
    guard let facts = results.runs.first(where: { $0.outcome.facts["edge_model_accuracy"] != nil })?.outcome.facts
    else { return "" }
    func text(_ key: String) -> String? {
      guard let v = facts[key] else { return nil }
      if case .number(let n) = v {
        return key.hasSuffix("accuracy") ? Leaderboard.Metric.accuracy.format(n) : String(format: n, digits: 1)
      }
      return v.stringValue ?? v.description
    }
    var rows: [(String, String)] = []
    for (key, title) in [
      ("tasks", "questions"), ("edge_model", "edge model"), ("edge_model_accuracy", "edge model's accuracy"),
      ("target_model_accuracy", "cloud model's accuracy"), ("measurement_s", "measured in (s)"),
    ] {
      if let t = text(key) { rows.append((title, t)) }
    }
    var out = "<h2>Models, measured on the questions</h2>\n<table class=\"kv\">\n"
    for (k, v) in rows { out += "<tr><th>\(escape(k))</th><td>\(escape(v))</td></tr>\n" }
    return out + "</table>\n"
  }

  static func leaderboard(_ board: Leaderboard) -> String {
    guard !board.entries.isEmpty else { return "<p>No runs.</p>\n" }
    var out = """
      <h2>Leaderboard</h2>
      <p class="note">Means over each label's completed runs (every sweep point and repetition); the rank in each \
      column is among the labels with a value (▲ higher is better, ▼ lower). Click a header to sort.</p>
      <div class="scroll"><table id="leaderboard" class="board"><thead><tr><th data-sort="text">strategy / algorithm</th>\
      <th data-sort="num">runs</th>
      """
    for m in board.metrics {
      out += "<th data-sort=\"num\">\(escape(m.title)) \(m.higherIsBetter ? "▲" : "▼")</th>"
    }
    out += "</tr></thead><tbody>\n"
    for e in board.entries {
      out += "<tr><td>\(escape(e.label))</td><td data-value=\"\(e.runs)\">\(e.runs)</td>"
      for m in board.metrics {
        let v = e.values[m]!
        let rank = e.ranks[m]
        let cls = rank == 1 ? " class=\"best\"" : ""
        let badge = rank.map { " <span class=\"rank\">#\($0)</span>" } ?? ""
        out += "<td\(cls) data-value=\"\(v.isFinite ? String(v) : "")\">\(escape(m.format(v)))\(badge)</td>"
      }
      out += "</tr>\n"
    }
    return out + "</tbody></table></div>\n"
  }

  /// A horizontal bar chart per metric, labels in rank order (SVG, inline).
  static func charts(_ board: Leaderboard) -> String {
    guard !board.metrics.isEmpty else { return "" }
    var out = "<h2>Per metric</h2>\n<div class=\"charts\">\n"
    for m in board.metrics {
      let ranked = board.entries.filter { $0.values[m]!.isFinite }.sorted {
        ($0.ranks[m] ?? .max, $0.label) < ($1.ranks[m] ?? .max, $1.label)
      }
      let top = ranked.map { abs($0.values[m]!) }.max() ?? 0
      let row = 20
      let height = row * ranked.count + 8
      out += "<figure class=\"chart\"><figcaption>\(escape(m.title)) \(m.higherIsBetter ? "▲" : "▼")</figcaption>"
      out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"420\" height=\"\(height)\" role=\"img\">"
      for (i, e) in ranked.enumerated() {
        let v = e.values[m]!
        let w = top > 0 ? Int((abs(v) / top * 180).rounded()) : 0
        let y = 4 + i * row
        out += "<text x=\"0\" y=\"\(y + 14)\" class=\"lbl\">\(escape(e.label))</text>"
        out +=
          "<rect x=\"150\" y=\"\(y + 3)\" width=\"\(max(w, 1))\" height=\"14\" class=\"\(i == 0 ? "bar top" : "bar")\"/>"
        out += "<text x=\"\(150 + max(w, 1) + 4)\" y=\"\(y + 14)\" class=\"val\">\(escape(m.format(v)))</text>"
      }
      out += "</svg></figure>\n"
    }
    return out + "</div>\n"
  }

  /// Which label is fastest end to end (and most accurate, where accuracy varies) at each sweep point.
  static func winners(_ results: ResultsFile) -> String {
    let fastest = Leaderboard.winners(runs: results.runs, metric: .endToEnd)
    guard fastest.count > 1 else { return "" }
    var out = """
      <h2>Fastest end to end, per sweep point</h2>
      <table class="board"><thead><tr><th>point</th><th>fastest</th><th>end-to-end mean</th></tr></thead><tbody>

      """
    for w in fastest {
      out +=
        "<tr><td>\(escape(w.point))</td><td>\(escape(w.label))</td>"
        + "<td>\(escape(Leaderboard.Metric.endToEnd.format(w.value)))</td></tr>\n"
    }
    return out + "</tbody></table>\n"
  }

  static func paperSection(_ rows: [PaperComparison.Row]) -> String {
    guard !rows.isEmpty else { return "" }
    var out = """
      <h2>The paper's numbers against the lab's</h2>
      <table class="board"><thead><tr><th>claim</th><th>paper</th><th>lab</th><th>lab ÷ paper</th>\
      <th>within 25%</th></tr></thead><tbody>

      """
    for r in rows {
      out += "<tr>" + PaperComparison.cells(r).map { "<td>\(escape($0))</td>" }.joined() + "</tr>\n"
    }
    return out + "</tbody></table>\n"
  }

  static func provenance(_ info: FileInfo) -> String {
    var rows: [(String, String)] = [
      ("experiment", info.experiment), ("backend", info.backend), ("edgelab", info.toolkitVersion),
      ("git commit", info.gitCommit + (info.gitDirty ? " (dirty)" : "")), ("host", info.host),
      ("started", info.startedAt), ("finished", info.finishedAt), ("seed", String(info.seed)),
      ("runs", String(info.runsTotal)), ("complete", info.complete ? "yes" : "no"),
    ]
    for (k, v) in info.extra.sorted(by: { $0.key < $1.key }) { rows.append((k, v)) }
    var out = "<h2>Provenance</h2>\n<table class=\"kv\">\n"
    for (k, v) in rows { out += "<tr><th>\(escape(k))</th><td>\(escape(v))</td></tr>\n" }
    out += "</table>\n<details><summary>the experiment as run (JSON)</summary><pre>\(escape(info.specJSON))</pre>"
    if !info.gitDiff.isEmpty { out += "<pre>\(escape(info.gitDiff))</pre>" }
    return out + "</details>\n"
  }

  static let style = """
    body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
    h1{margin-bottom:.2em}.sub,.note{color:#555}table{border-collapse:collapse;margin:.5em 0 1.5em}
    th,td{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
    th:first-child,td:first-child{text-align:left}.kv th{text-align:left;color:#555;font-weight:normal}
    .kv td{text-align:left;white-space:normal}.board th{cursor:pointer;background:#f4f4f4}
    td.best{background:#e3f4e1;font-weight:600}.rank{color:#888;font-size:.8em}
    .charts{display:flex;flex-wrap:wrap;gap:1em}.chart{margin:0}.chart figcaption{font-weight:600}
    .lbl,.val{font-size:12px;fill:#333}.bar{fill:#8aa9c9}.bar.top{fill:#3b7d3b}
    img{max-width:100%}.scroll{overflow-x:auto}pre{background:#f7f7f7;padding:1em;overflow:auto;max-height:30em}
    """

  static let script = """
    (function(){
      document.querySelectorAll('table.board').forEach(function(table){
        table.querySelectorAll('th').forEach(function(th,col){
          th.addEventListener('click',function(){
            var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
            var numeric=th.getAttribute('data-sort')==='num',dir=th.getAttribute('data-dir')==='asc'?-1:1;
            rows.sort(function(a,b){
              var x=a.cells[col],y=b.cells[col];
              if(numeric){
                var u=parseFloat(x.getAttribute('data-value')),v=parseFloat(y.getAttribute('data-value'));
                if(isNaN(u))return 1;if(isNaN(v))return -1;return dir*(u-v);
              }
              return dir*x.textContent.localeCompare(y.textContent);
            });
            th.setAttribute('data-dir',dir===1?'asc':'desc');
            rows.forEach(function(r){body.appendChild(r);});
          });
        });
      });
      window.addEventListener('load',function(){
        var shown=0;
        Array.prototype.forEach.call(document.images,function(i){if(i.complete&&i.naturalWidth>0)shown++;});
        document.body.setAttribute('data-images',shown+'/'+document.images.length);
        document.body.setAttribute('data-ready','1');
      });
    })();
    """
}
