import ArgumentParser
import EdgeLabCore
import Foundation
import Report
import Results
import Runner
import Spec

/// `edgelab report NAME`: one self-contained HTML page per experiment (leaderboard, figures, paper comparison,
/// provenance), written beside its results file.
struct ReportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "report",
    abstract: "Write an experiment's leaderboard as one self-contained HTML page (results/NAME.html).",
    discussion: """
      Ranks every strategy and algorithm of the results per metric (accuracy, edge ratio, TTFT, TPOT, end to \
      end, throughput, bytes to the cloud, speculation's acceptance), embeds the experiment's figures \
      (results/NAME.png, drawn by `make exp` or `make figure`) and the paper comparison, and records the \
      provenance. The page needs no network.
      """)
  @Argument(help: "An experiment's name (reads results/NAME.h5) or a results file (.h5).") var target: String
  @Option(name: .shortAndLong, help: "The HTML file to write (default: the results file with .html).") var output:
    String?

  func run() throws {
    let path = target.hasSuffix(".h5") ? target : "results/\(target).h5"
    let results = try readResults(path)
    let base = String(path.dropLast(3))
    let out = output ?? base + ".html"
    let page = HTMLReport.render(
      results, paper: ReportCommand.paperRows(results), figures: ReportCommand.figures(base: base))
    do { try Data(page.utf8).write(to: URL(fileURLWithPath: out), options: .atomic) } catch {
      throw fail("cannot write \(out): \(error.localizedDescription)", code: Exit.ioFailed)
    }
    print(Leaderboard(runs: results.runs).text())
    print("\nreport: \(out)")
  }

  /// The figures `make figure` drew for this results file: BASE.png and BASE-*.png, by name.
  static func figures(base: String) -> [HTMLReport.Figure] {
    let url = URL(fileURLWithPath: base)
    let dir = url.deletingLastPathComponent()
    let stem = url.lastPathComponent
    let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter {
      $0.hasSuffix(".png") && ($0 == stem + ".png" || $0.hasPrefix(stem + "-"))
    }.sorted()
    return names.compactMap { n in
      (try? Data(contentsOf: dir.appendingPathComponent(n))).map { HTMLReport.Figure(caption: n, png: $0) }
    }
  }

  static func paperRows(_ results: ResultsFile) -> [PaperComparison.Row] {
    guard let data = results.info.specJSON.data(using: .utf8),
      let spec = try? JSONCoding.decoder.decode(ExperimentSpec.self, from: data), !spec.paper.isEmpty
    else { return [] }
    return PaperComparison.rows(spec.paper, runs: results.runs)
  }
}
