import DSL

/// Where speculative decoding stops paying, and which draft length is best at each round trip: a Jetson Orin
/// Nano Super drafts with Llama 3.2 1B for Llama 3.1 8B on an RTX 3090 server, for k = 1…8 drafted tokens per
/// verification, over 5–200 ms RTT, beside the ways without speculation: the target split by EdgeShard's latency
/// DP with the edge holding the token loop (a round trip per token), the target streamed from the server, and
/// the draft model alone on the edge. The setting of arXiv 2606.20591 (Orin Nano Super drafting for
/// an RTX 3090 Ti), whose best draft length changes near 83 and 111 ms RTT (../shared/reference/literature.md).
///
/// Timing only, simulated: the acceptance rate is assumed (α = 0.7 per drafted token, independent; a measured
/// trace replaces it where both models run here, as in `collab-edge-cloud`), so accuracy is not on the board.
let specRTTCrossover = Experiment(
  "spec-rtt-crossover",
  "speculative decoding's best draft length against RTT: Orin Nano Super drafts (Llama 3.2 1B) for Llama 3.1 8B"
) {
  Model(.llama31_8B, precision: .fp16)
  Device("nano", .orinNano8GBSuper)
  Device("server", .rtx3090Server)
  Network(bandwidth: .mbit(100), latency: .ms(25))
  Workload(requests: 8, prompt: 128, output: 64, arrival: .closedLoop())
  Collaboration(edge: "nano", model: .model(.llama32_1B, precision: .fp16), acceptanceRate: 0.7)
  Algorithm("edgeshard-latency", label: "split")
  Strategy("cloud-only", .route(.cloudOnly, cloud: "edgeshard-latency"))
  Strategy("draft-alone", .route(.edgeOnly, cloud: "edgeshard-latency"))
  for k in [1, 2, 3, 4, 6, 8] {
    Strategy("speculative-\(k)", .speculative(lookahead: k, target: "edgeshard-latency"))
  }
  Sweep(
    .linkLatency, [.ms(2.5), .ms(10), .ms(20), .ms(30), .ms(40), .ms(50), .ms(60), .ms(70), .ms(80), .ms(100)],
    label: "latency")
  Seed(5)
}
