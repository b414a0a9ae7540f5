import Catalog
import CostModel
import DSL
public import EdgeLabCore
public import Partitioning
import Pipeline
import Runner
import Spec

/// Solve-time benchmark of the exact partitioners: layers × devices, for device sets made of a few
/// kinds (as real clusters are) and of all-distinct devices (the exponential worst case), plus EdgeShard's
/// testbed. Times are wall-clock medians; run on a quiet machine and compare within one run.
public enum PartitionBench {
  public struct Row: Sendable {
    public var setting: String
    public var layers: Int
    public var devices: Int
    public var algorithm: String
    public var medianSeconds: Double
    public var exact: Bool
  }

  /// Device presets cycled through for "mixed" sets.
  static let kinds = [DevicePreset.agxOrin32GB, .orinNX16GB, .orinNano8GB, .rtx3090Server]

  /// A problem for `layers` problem layers (Llama-3.2-3B-shaped blocks, FP16, so even 128 layers fit on two
  /// devices) on `devices` devices.
  /// - Parameter distinct: give every device a slightly different memory budget so no two are interchangeable.
  public static func problem(layers: Int, devices: Int, distinct: Bool, objective: Objective) throws -> PartitionProblem
  {
    var config = ModelPreset.llama32_3B.config
    config.numHiddenLayers = layers - 2
    let spec = Experiment("bench") {
      Model(name: "bench", config: config, precision: .fp16)
      for d in 0..<devices {
        let kind = kinds[d % kinds.count]
        Device("d\(d)", kind, usableMemory: distinct ? kind.profile.usableMemory - .GB(0.1 * Double(d)) : nil)
      }
      Network(bandwidth: .mbit(100), latency: .ms(1))
      Workload(requests: 1, prompt: 32, output: 96)
      Algorithm("edgeshard-latency")
    }.spec
    let x = try spec.resolve()
    return ProblemBuilder.roofline(spec.calibration).problem(for: x, objective: objective)
  }

  static func time(_ body: () throws -> Plan, repeats: Int) rethrows -> (Double, Plan) {
    var times: [Double] = []
    var plan: Plan?
    for _ in 0..<repeats {
      let t0 = monotonicSeconds()
      plan = try body()
      times.append(monotonicSeconds() - t0)
    }
    return (times.sorted()[times.count / 2], plan!)
  }

  /// Requests in flight the workload-aware throughput DP plans for (its binary search runs the latency DP once
  /// per step; the paper's form, without them, once).
  static let inFlight = 8.0

  /// Runs the grid. `quick` trims it for smoke tests.
  public static func run(quick: Bool = false, progress: (String) -> Void = { _ in }) throws -> [Row] {
    var rows: [Row] = []
    let layerCounts = quick ? [32] : [32, 64, 96, 128]
    let deviceCounts = quick ? [2, 4] : [2, 4, 8, 12, 16]
    for distinct in [false, true] {
      for m in deviceCounts {
        for n in layerCounts {
          for (algorithm, objective) in [
            ("edgeshard-latency", Objective.latency), ("edgeshard-throughput-paper", .throughput),
            ("edgeshard-throughput", .throughput),
          ] {
            var p = try problem(layers: n, devices: m, distinct: distinct, objective: objective)
            if algorithm == "edgeshard-throughput" { p.requestsInFlight = Self.inFlight }
            let repeats = n * m <= 256 ? 5 : 3
            let (t, plan) = try time({ try Partitioners.solve(p, algorithm: algorithm) }, repeats: repeats)
            let setting = distinct ? "distinct devices" : "mixed kinds (AGX/NX/Nano/3090)"
            rows.append(
              Row(setting: setting, layers: n, devices: m, algorithm: algorithm, medianSeconds: t, exact: plan.exact))
            progress(
              "\(setting) \(n) layers \(m) devices \(algorithm): \(Seconds(t))\(plan.exact ? "" : " (heuristic)")")
          }
        }
      }
    }
    // EdgeShard's testbed: 12 AGX Orin, 2 Orin NX, one RTX 3090; Llama-2-70B FP32 (80 blocks + embedding + head).
    let testbed = Experiment("testbed") {
      Model(.llama2_70B, precision: .fp32)
      Device("agx", .agxOrin32GB, count: 12).source()
      Device("nx", .orinNX16GB, count: 2)
      Device("server", .rtx3090Server)
      Network(bandwidth: .gbit(1), latency: .us(500)) {
        Link("wan", from: ["agx", "nx"], to: ["server"], bandwidth: .mbit(10))
      }
      Workload(requests: 1, prompt: 32, output: 96)
      Algorithm("edgeshard-latency")
    }.spec
    let x = try testbed.resolve()
    for (algorithm, objective) in [
      ("edgeshard-latency", Objective.latency), ("edgeshard-throughput-paper", .throughput),
      ("edgeshard-throughput", .throughput),
    ] {
      var p = ProblemBuilder.roofline(testbed.calibration).problem(for: x, objective: objective)
      if algorithm == "edgeshard-throughput" { p.requestsInFlight = Self.inFlight }
      let (t, plan) = try time({ try Partitioners.solve(p, algorithm: algorithm) }, repeats: 5)
      rows.append(
        Row(
          setting: "EdgeShard testbed (Llama-2-70B)", layers: p.layers.count, devices: 15, algorithm: algorithm,
          medianSeconds: t, exact: plan.exact))
    }
    return rows
  }

  public static func table(_ rows: [Row]) -> TextTable {
    var t = TextTable(
      header: ["setting", "layers", "devices", "algorithm", "median solve time", "exact"], rightAligned: [1, 2, 4])
    for r in rows {
      t.append([
        r.setting, String(r.layers), String(r.devices), r.algorithm, Seconds(r.medianSeconds).description,
        r.exact ? "yes" : "no (heuristic)",
      ])
    }
    return t
  }
}

#if canImport(Glibc)
import Glibc
#endif

/// CLOCK_MONOTONIC seconds.
func monotonicSeconds() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
