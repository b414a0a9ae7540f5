import DSL

/// distributed-llama's scaling table, simulated: Llama 2 7B with Q4_0 weights on 1, 2, 4 and 8 Raspberry Pi 4
/// joined by gigabit Ethernet, every decoder block split evenly over the devices (tensor parallelism, `tp`: a
/// ring all-reduce after the attention and after the FFN; `tp-star`: TPI-LLM's star through the source), beside
/// the pipeline split (`even`), one request at a time.
///
/// The Pi's memory efficiency (0.226 of 12.8 GB/s) is fitted to the one-node number alone (1312 ms per token);
/// what the paper did not publish is swept or named here: the one-way latency per message (switch and network
/// stack; 50–500 µs, the paper's numbers compared at 300 µs), and activations on the wire in FP16 (distributed-llama sends 8-bit blocks; the lab's wire carries
/// FP32, FP16 or BF16). The paper's 2-, 4- and 8-node numbers are compared, not fitted.
let dllamaScaling = Experiment(
  "dllama-scaling",
  "tensor parallelism on 1–8 Raspberry Pi 4 (Llama 2 7B Q4_0, 1 Gbit/s): distributed-llama's speed-up and its regression at 8"
) {
  Model(.llama2_7B, precision: .q4_0)
  Device("pi", .raspberryPi4, count: 8).source()
  Network(bandwidth: .gbit(1), latency: .us(150))
  Workload(requests: 4, prompt: 16, output: 32, arrival: .closedLoop(concurrency: 1))
  for n in [1, 2, 4, 8] { Algorithm("tp", label: "tp-\(n)", ["devices": .number(Double(n))]) }
  for n in [2, 4, 8] { Algorithm("tp-star", label: "tp-star-\(n)", ["devices": .number(Double(n))]) }
  Algorithm("even", label: "pipeline-8")
  Calibrate(Calibration(computeEfficiency: 1, memoryEfficiency: 0.226))
  Execution(ExecutionOptions(wirePrecision: .fp16, planMemory: .weightsOnly))
  Paper("distributed-llama, 1 Pi 4: 1312 ms per token", .tpot, of: "tp-1", at: ["latency": "300us"], value: 1.312)
  Paper("distributed-llama, 2 Pi 4: 794 ms per token", .tpot, of: "tp-2", at: ["latency": "300us"], value: 0.794)
  Paper("distributed-llama, 4 Pi 4: 494 ms per token", .tpot, of: "tp-4", at: ["latency": "300us"], value: 0.494)
  Paper("distributed-llama, 8 Pi 4: 588 ms per token", .tpot, of: "tp-8", at: ["latency": "300us"], value: 0.588)
  // Link latency per message, which the paper does not state: where the eighth node stops paying.
  Sweep(.linkLatency, [.us(50), .us(150), .us(300), .us(500)], label: "latency")
  Seed(2)
}

/// TPI-LLM's finding (../shared/reference/literature.md): at the edge, link latency, not bandwidth, decides what
/// tensor parallelism costs, and a star all-reduce beats a ring there. Eight Raspberry Pi 4 share every block of
/// Llama 2 7B (Q4_0) with a ring (`tp`) or a star (`tp-star`), at 10 Mbit/s to 1 Gbit/s and 50 µs to 5 ms of
/// one-way latency, beside the pipeline over the same eight devices (simulated, one request at a time).
let tpiLatencyBandwidth = Experiment(
  "tpi-latency-bandwidth",
  "tensor parallelism over 8 Raspberry Pi 4: link latency against bandwidth, ring against star (TPI-LLM's finding)"
) {
  Model(.llama2_7B, precision: .q4_0)
  Device("pi", .raspberryPi4, count: 8).source()
  Network(bandwidth: .gbit(1), latency: .us(150))
  Workload(requests: 2, prompt: 16, output: 32, arrival: .closedLoop(concurrency: 1))
  Algorithm("tp", label: "tp-ring-8", ["devices": 8])
  Algorithm("tp-star", label: "tp-star-8", ["devices": 8])
  Algorithm("even", label: "pipeline-8")
  Calibrate(Calibration(computeEfficiency: 1, memoryEfficiency: 0.226))
  Execution(ExecutionOptions(wirePrecision: .fp16, planMemory: .weightsOnly))
  Sweep(.linkBandwidth, [.mbit(10), .mbit(100), .gbit(1)], label: "bandwidth")
  Sweep(.linkLatency, [.us(50), .us(500), .ms(2), .ms(5)], label: "latency")
  Seed(2)
}
