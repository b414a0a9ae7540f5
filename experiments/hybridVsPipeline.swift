import DSL

/// Where splitting inside layers pays and where it cannot: Llama 2 13B (FP16, 26 GB) on two Jetson Orin NX 16 GB
/// on one gigabit switch and an Orin Nano 8 GB reached over Wi-Fi (100 Mbit/s), one request at a time. The pair
/// alone cannot hold the model, so a third device is needed; its link's one-way latency is swept from a wired
/// 100 µs to a congested 10 ms.
///
/// - `pipeline` (EdgeShard's exact latency DP): no sharing, every layer waits for the one before it.
/// - `tensor` (Galaxy: one group, shares sized to speed): every block's two all-reduces cross the slowest link.
/// - `hybrid`: the exact optimiser over pipelines of groups.
/// Where the Wi-Fi link is slow, hybrid shares the blocks between the two well-connected Orin NX and pipelines the
/// rest to the Nano, beating both; where the whole network is slow (`latency` on every link, the second sweep
/// value), nothing is worth sharing and hybrid can only equal the pipeline (docs/reproductions.md).
let hybridVsPipeline = Experiment(
  "hybrid-vs-pipeline",
  "Llama 2 13B FP16 on 2 Orin NX 16GB (gigabit) + an Orin Nano (Wi-Fi): hybrid pipeline+tensor against pure pipeline and pure tensor"
) {
  Model(.llama31_8B, precision: .fp16)
  Device("nx", .orinNX8GB, count: 2).source()
  Device("nano", .orinNano8GB)
  Network(bandwidth: .gbit(1), latency: .us(100)) {
    Link("wifi", from: ["nx"], to: ["nano"], bandwidth: .mbit(100), latency: .ms(3))
  }
  Workload(requests: 2, prompt: 32, output: 32, arrival: .closedLoop(concurrency: 1))
  Algorithm("edgeshard-latency", label: "pipeline")
  Algorithm("galaxy", label: "tensor")
  Algorithm("hybrid", label: "hybrid")
  Execution(ExecutionOptions(wirePrecision: .fp16))
  Sweep(.linkLatency, [.us(100), .ms(5)], label: "lan_latency")
  Sweep(.latency(of: "wifi"), [.us(100), .ms(1), .ms(3), .ms(10)], label: "wifi_latency")
  Seed(3)
}
