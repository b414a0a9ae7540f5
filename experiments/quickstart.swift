import DSL

/// The end-to-end example: Llama-2-7B in FP32 on a source Jetson AGX Orin, two Orin NX and an RTX 3090
/// server behind one switch, as the network bandwidth between devices varies. It compares what the lab is for:
/// the naive even split, the whole model on the source (Edge-Solo, which fits: 27 GB in the AGX Orin's 29 GB
/// budget), EdgeShard's joint device selection and partition for latency and for throughput, and LIME's
/// interleaved pipeline with offloading — each choosing its own devices from the same four.
/// Figure: plots/quickstart.gp — time per output token and throughput against bandwidth.
let quickstart = Experiment(
  "quickstart",
  "Llama-2-7B FP32 on AGX Orin + 2× Orin NX + 3090: even, edge-solo, EdgeShard and LIME over bandwidth"
) {
  Model(.llama2_7B, precision: .fp32)
  Device("agx", .agxOrin32GB).source()
  Device("nx", .orinNX16GB, count: 2)
  Device("server", .rtx3090Server)
  Network(bandwidth: .mbit(100), latency: .ms(1))
  Workload(requests: 4, prompt: 32, output: 96, arrival: .closedLoop())
  Algorithm("even")
  Algorithm("edge-solo")
  Algorithm("edgeshard-latency")
  Algorithm("edgeshard-throughput")
  Algorithm("lime")
  Sweep(.linkBandwidth, [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].map { Bandwidth.mbit($0) }, label: "bandwidth")
  Seed(7)
}
