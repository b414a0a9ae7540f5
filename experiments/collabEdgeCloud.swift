import DSL

/// Three ways one edge device and one server cooperate, on one table: splitting the model (EdgeShard's latency
/// DP across both, and the whole model on the edge), speculative decoding (the edge drafts with the target's own
/// first blocks and head, LayerSkip-style; the server verifies), and query routing (the edge's own early-exit
/// model answers what it is confident of; the rest goes to the server), over 1–100 Mbit/s and 5–200 ms RTT.
///
/// The model is SmolLM2-135M-Instruct (Q4_1 GGUF; `make smollm2` fetches it once). Accuracy and the draft's
/// agreement are measured for real on 24 generated questions (arithmetic, unit conversions as multiple choice,
/// ordering) before any run; the runs are simulated with Jetson Orin Nano and RTX 3090 server facts.
let collabEdgeCloud = Experiment(
  "collab-edge-cloud",
  "edge–cloud cooperation: splitting vs speculative decoding vs routing, 1–100 Mbit/s, 5–200 ms RTT (SmolLM2)"
) {
  Model(
    .smolLM2_135M, precision: .q4_1, checkpoint: "models/SmolLM2-135M-Instruct.Q4_1.gguf", arithmetic: .llamaCpp)
  Device("nano", .orinNano8GB)
  Device("server", .rtx3090Server)
  Network(bandwidth: .mbit(10), latency: .ms(25))
  Workload(requests: 30, prompt: 64, output: 8, arrival: .closedLoop())
  Collaboration(edge: "nano", model: .earlyExit(24), tasks: .builtin(.mixed, count: 24, shots: 2))
  Algorithm("edgeshard-latency", label: "split")
  Algorithm("edge-solo", label: "edge-full-model")
  Strategy("speculative-2", .speculative(lookahead: 2, target: "edgeshard-latency"))
  Strategy("speculative-4", .speculative(lookahead: 4, target: "edgeshard-latency"))
  Strategy("route-confidence", .route(.confidence(threshold: 0.6), cloud: "edgeshard-latency"))
  Strategy("route-oracle", .route(.oracle, cloud: "edgeshard-latency"))
  Strategy("cloud-only", .route(.cloudOnly, cloud: "edgeshard-latency"))
  Strategy("edge-only", .route(.edgeOnly, cloud: "edgeshard-latency"))
  Sweep(.linkBandwidth, [.mbit(1), .mbit(10), .mbit(100)], label: "bandwidth")
  Sweep(.linkLatency, [.ms(2.5), .ms(25), .ms(50), .ms(100)], label: "latency")
  Seed(3)
}
