import ArgumentParser
import EdgeLabCore
import Emulation
import Foundation
import Runtime
import Spec

struct EmulationCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "emulation", abstract: "Emulated edge clusters: a playground, cleanup, and a fidelity check.",
    subcommands: [Up.self, Down.self, Clean.self, Check.self])

  struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Create emulated hosts and leave them up (for iperf3 and friends).")
    @Option(help: "Number of hosts.") var hosts = 2
    @Option(help: "Bandwidth of every link, e.g. 10Mbit/s.") var bandwidth = "100Mbit/s"
    @Option(help: "One-way delay in ms (needs netem in the kernel; without it only EdgeLab's own transport delays).")
    var delay = 0.0
    @Option(help: "Jitter in ms (needs netem in the kernel).") var jitter = 0.0
    @Option(help: "Loss in percent.") var loss = 0.0
    @Option(help: "Take hosts and links from an experiment (name or JSON spec file; its first sweep point) instead.")
    var spec: String?
    @Flag(help: "Print one JSON line.") var json = false

    func run() throws {
      let bw: Bandwidth
      do { bw = try Bandwidth(parsing: bandwidth) } catch { throw fail("--bandwidth: \(error)", code: Exit.badInput) }
      guard hosts >= 1, hosts <= 64 else { throw fail("--hosts must be 1…64", code: Exit.badInput) }
      guard loss >= 0 && loss < 100 else { throw fail("--loss is a percentage in [0, 100)", code: Exit.badInput) }
      guard delay >= 0, jitter >= 0 else { throw fail("--delay and --jitter must be ≥ 0 ms", code: Exit.badInput) }
      var experiment: ResolvedExperiment?
      if let spec {
        let isFile = spec.hasSuffix(".json") || spec.contains("/")
        let s = try loadSpec(name: isFile ? nil : spec, file: isFile ? spec : nil)
        do { experiment = try s.expandPoints().first?.experiment } catch {
          throw fail("\(spec): \(error)", code: Exit.badInput)
        }
      }
      Interrupt.install()
      let created: Playground.Created
      do {
        if let experiment {
          created = try Playground.up(experiment: experiment)
        } else {
          created = try Playground.up(
            hosts: hosts, bandwidth: bw, delay: .ms(delay), jitter: .ms(jitter), loss: loss / 100)
        }
      } catch {
        throw fail("\(error)", code: Interrupt.isRequested ? Exit.interrupted : Exit.failure)
      }
      if Interrupt.isRequested {
        try? Playground.down(id: created.id)
        throw fail("interrupted; nothing left up", code: Exit.interrupted)
      }
      for w in created.warnings { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
      if json {
        print(try JSONCoding.compactString(created))
      } else {
        print(
          "emulated cluster \(created.id) (\(created.mechanism)); remove with: edgelab emulation down \(created.id)")
        for h in created.hosts {
          print("  \(h.name)  netns \(h.netns)  address \(h.address)   e.g. ip netns exec \(h.netns) iperf3 -s")
        }
      }
    }
  }

  struct Down: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove an emulated cluster.")
    @Argument(help: "The id printed by `emulation up`.") var id: String
    func run() throws {
      do { try Playground.down(id: id) } catch { throw fail("\(error)", code: Exit.badInput) }
    }
  }

  struct Clean: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Remove leftovers of runs that were killed hard (namespaces, links, cgroups, processes).")
    @Flag(help: "Also remove playground clusters made by `emulation up`.") var all = false
    func run() throws {
      let removed = Playground.clean(all: all)
      print(removed.isEmpty ? "nothing to clean" : removed.joined(separator: "\n"))
    }
  }

  struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Measure emulated links through the transport: configured vs measured.")
    @Flag(help: "Print one JSON line.") var json = false
    func run() throws {
      let rows: [Fidelity.Row]
      // Ctrl-C stops after the current row, whose hosts are removed first.
      Interrupt.install()
      do {
        rows = try Fidelity.check {
          if Interrupt.isRequested { throw EmulationError("interrupted") }
          FileHandle.standardError.write(Data(($0 + "\n").utf8))
        }
      } catch {
        throw fail("\(error)", code: Interrupt.isRequested ? Exit.interrupted : Exit.failure)
      }
      if json {
        print(try JSONCoding.compactString(rows))
        return
      }
      var t = TextTable(
        header: [
          "Mbit/s", "measured A→B", "measured B→A", "one-way delay (ms)", "measured", "RTT (ms)", "measured",
          "loss %", "measured", "mechanism",
        ], rightAligned: Set(0...8))
      for r in rows {
        t.append([
          String(format: r.bandwidthMbit, digits: 0), String(format: r.measuredMbit, digits: 2),
          String(format: r.measuredMbitReverse, digits: 2),
          String(format: r.delayMs, digits: 0), String(format: r.measuredDelayMs, digits: 2),
          String(format: r.rttMs, digits: 0), String(format: r.measuredRttMs, digits: 2),
          String(format: r.lossPct, digits: 0), r.measuredLossPct.map { String(format: $0, digits: 2) } ?? "–",
          r.mechanism,
        ])
      }
      print(t.markdown())
    }
  }
}
