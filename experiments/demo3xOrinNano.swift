import DSL

/// The real-time multi-edge demo (2025; ../shared/reference/literature.md, "Demo"): Llama-3.2-3B in full
/// precision split across three Jetson Orin Nano boards on a gigabit switch — run for real on this machine by
/// the loopback backend: three worker processes, real TCP between them, synthetic weights at the model's true
/// shapes (set `checkpoint:` in `Model` to a local Hugging Face checkpoint directory or a Llama-3.2-3B GGUF file,
/// with the matching `precision:` such as `.q4_0`, to use real weights instead). Every run is checked
/// token for token against the unsplit model.
/// Compared: the naive even split, EdgeShard's latency DP and LIME. Figure: plots/demo-3x-orin-nano.gp.
/// Each algorithm runs twice (the `backend` sweep): simulated on the three boards (EdgeShard's fitted Orin
/// efficiencies; the paper publishes no speed, only the setup, so the bound is 12.9 GB ÷ 68 GB/s ≈ 190 ms per
/// token), and for real as plain processes on this host (`Emulation(.none)`: this host's times, not the boards').
let demo3xOrinNano = Experiment(
  "demo-3x-orin-nano", "Llama-3.2-3B FP32 on 3 Orin Nano, real workers over TCP (loopback): even vs EdgeShard vs LIME"
) {
  Model(.llama32_3B, precision: .fp32)
  Device("nano", .orinNano8GB, count: 3).source()
  Network(bandwidth: .gbit(1), latency: .us(200))
  Workload(requests: 4, prompt: 16, output: 16, arrival: .poisson(rate: 0.5))
  Algorithm("even")
  Algorithm("edgeshard-latency")
  Algorithm("lime")
  Backend(.loopback)
  Sweep(path: "backend", [.string("simulated"), .string("loopback")], label: "backend")
  Calibrate(EdgeShardFit.calibration)
  // Plain processes: faithful emulation of three Orin Nanos' memory bandwidth on two host cores would dilate
  // time about fivefold (see emulated-orin-nano-10mbit and docs/emulation.md).
  Emulation(.none)
  Seed(3)
}
