import DSL

/// The end-to-end example: Llama-2-7B in FP32 on a source Jetson AGX Orin, two Orin NX and an RTX 3090
/// server behind one switch; the naive even split against the whole model on the source (Edge-Solo, which
/// fits: 27 GB in the AGX Orin's 29 GB budget), as the network bandwidth between devices varies.
/// Figure: plots/quickstart.gp — time per output token against bandwidth.
let quickstart = Experiment(
  "quickstart", "Llama-2-7B FP32 on AGX Orin + 2× Orin NX + 3090: even split vs edge-solo over bandwidth"
) {
  Model(.llama2_7B, precision: .fp32)
  Device("agx", .agxOrin32GB).source()
  Device("nx", .orinNX16GB, count: 2)
  Device("server", .rtx3090Server)
  Network(bandwidth: .mbit(100), latency: .ms(1))
  Workload(requests: 4, prompt: 32, output: 96, arrival: .closedLoop())
  Algorithm("even")
  Algorithm("edge-solo")
  Sweep(.linkBandwidth, [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].map { Bandwidth.mbit($0) }, label: "bandwidth")
  Seed(7)
}
