import DSL

/// EdgeShard's testbed (Zhang et al., arXiv 2405.14371; ../shared/reference/literature.md): 12 Jetson AGX Orin
/// 32GB, 2 Orin NX 16GB and a server with an RTX 3090, on a 1 Gbit/s switch; the edge↔cloud link shaped to
/// 1–50 Mbit/s; FP32 Llama 2; 32 prompt tokens and 96 generated. The source (the user's device) is agx0.
///
/// Two workloads per bandwidth (the `concurrency` sweep): one request at a time (latency), and 16 requests
/// kept in flight (throughput: enough to fill a pipeline over all 15 devices). Every registered algorithm
/// except brute force is compared.
/// Not published by the paper, chosen here: 0.5 ms one-way latency on every link, 32 requests per point, the
/// default calibration (see `Calibration`).
func edgeShardSetup(_ name: String, _ model: ModelPreset, _ summary: String) -> Experiment {
  Experiment(name, summary) {
    Model(model, precision: .fp32)
    Device("agx", .agxOrin32GB, count: 12).source()
    Device("nx", .orinNX16GB, count: 2)
    Device("server", .rtx3090Server)
    Network(bandwidth: .gbit(1), latency: .us(500)) {
      Link("wan", from: ["agx", "nx"], to: ["server"], bandwidth: .mbit(50))
    }
    Workload(requests: 32, prompt: 32, output: 96, arrival: .closedLoop(concurrency: 1))
    for algorithm in [
      "edge-solo", "cloud-edge-even", "cloud-edge-opt", "even", "edgeshard-latency", "edgeshard-throughput", "lime",
    ] {
      Algorithm(algorithm)
    }
    Sweep(path: "workload.arrival.concurrency", [1, 16], label: "concurrency")
    Sweep(.bandwidth(of: "wan"), [1, 2, 5, 10, 20, 50].map { Bandwidth.mbit($0) }, label: "bandwidth")
    Seed(2405)
  }
}

let edgeShard7B = edgeShardSetup(
  "edgeshard-7b", .llama2_7B,
  "EdgeShard testbed, Llama-2-7B FP32: all algorithms, latency and throughput vs 1–50 Mbit/s WAN")
let edgeShard13B = edgeShardSetup(
  "edgeshard-13b", .llama2_13B,
  "EdgeShard testbed, Llama-2-13B FP32: all algorithms, latency and throughput vs 1–50 Mbit/s WAN")
let edgeShard70B = edgeShardSetup(
  "edgeshard-70b", .llama2_70B,
  "EdgeShard testbed, Llama-2-70B FP32: all algorithms, latency and throughput vs 1–50 Mbit/s WAN")
