import DSL

/// LIME's setting (Sun et al., arXiv 2512.21835; ../shared/reference/literature.md): LLaMA-3.3-70B, lossless,
/// on four heterogeneous Jetsons, under sporadic and bursty requests; LIME against offloading-capable baselines.
/// The method and the results: docs/reproductions.md.
///
/// Not published by the paper, chosen here (each a named value in `LimeSetup`):
/// - **Devices**: AGX Orin 64GB, AGX Orin 32GB, Orin NX 16GB and Orin Nano 8GB — the four Orin modules, one of
///   each, so the set is heterogeneous in memory (61 + 29 + 14 + 5.5 = 109.5 GB usable) and speed (204.8, 204.8,
///   102 and 68 GB/s). Their memory is below the model's 141 GB of BF16 weights, so about a quarter of the model
///   must be read from storage (each board's NVMe, 1.36 GB/s) for every token: the regime LIME is for.
/// - **Precision**: BF16, the checkpoint's own format ("lossless": no quantisation).
/// - **Network**: a gigabit switch, 0.5 ms one way (the EdgeShard testbed's and the demo's LAN).
/// - **Arrivals**: *sporadic* — Poisson at one request per 10 minutes, so requests almost never overlap;
///   *bursty* — all 16 requests at once. 64 prompt tokens, 32 generated.
/// - **Calibration**: EdgeShard's fit (the same Orin boards and a similar framework; docs/reproductions.md).
/// - **Baselines**: `edgeshard-ondemand` and `even-ondemand` — the partitions of EdgeShard and of the even split,
///   with what does not fit read from storage when it is used (no interleaving, no prefetch), as llama.cpp's
///   memory-mapped weights behave.
enum LimeSetup {
  static let sporadic = ArrivalProcess.poisson(rate: 1.0 / 600)
  static let bursty = ArrivalProcess.bursty(burst: 16, every: Seconds(3600))
  /// The model and the four boards on their switch.
  static var cluster: [ExperimentPart] {
    Model(.llama33_70B, precision: .bf16).parts + Device("agx64", .agxOrin64GB).source().parts
      + Device("agx32", .agxOrin32GB).parts + Device("nx16", .orinNX16GB).parts + Device("nano8", .orinNano8GB).parts
      + Network(bandwidth: .gbit(1), latency: .us(500)).parts
  }
  /// LIME against the two offloading baselines, with EdgeShard's calibration.
  static var comparison: [ExperimentPart] {
    Algorithm("lime").parts + Algorithm("edgeshard-ondemand").parts + Algorithm("even-ondemand").parts
      + [Calibrate(EdgeShardFit.calibration), Execution(ExecutionOptions(memoryAdmission: .wait))]
  }
}

let lime70B = Experiment(
  "lime-70b", "LIME's setting: Llama-3.3-70B BF16 on 4 heterogeneous Jetsons (109.5 GB < 141 GB), sporadic and bursty"
) {
  LimeSetup.cluster
  Workload(requests: 16, prompt: 64, output: 32, arrival: LimeSetup.sporadic)
  LimeSetup.comparison
  Sweep(.arrival, named: ["sporadic": LimeSetup.sporadic, "bursty": LimeSetup.bursty], label: "arrival")
  Seed(2512)
  for baseline in ["edgeshard-ondemand", "even-ondemand"] {
    Paper(
      "LIME vs \(baseline), sporadic: latency speed-up (1.7×)", .endToEnd, of: "lime", over: baseline,
      at: ["arrival": "sporadic"], value: 1.7)
    Paper(
      "LIME vs \(baseline), bursty: throughput speed-up (3.7×)", .throughput, of: "lime", over: baseline,
      at: ["arrival": "bursty"], value: 3.7)
  }
}

/// How LIME's advantage moves with the size of a burst, which the paper does not publish: bursts of 1 (sporadic)
/// to 32 requests, 32 requests in all, an hour apart; the speed-up in mean end-to-end latency over each baseline.
/// Twice: decode steps of up to 8 requests batched together (every algorithm shares a layer's read across the
/// batch), and no batching (`max_batch` 1: every request's step reads the offloaded layers itself).
let lime70BBursts = Experiment(
  "lime-70b-bursts", "LIME's speed-up over on-demand offloading against the burst size (1–32 requests at once)"
) {
  LimeSetup.cluster
  Workload(requests: 32, prompt: 64, output: 32, arrival: .bursty(burst: 1, every: Seconds(3600)))
  LimeSetup.comparison
  Sweep(path: "execution.max_batch", [8, 1], label: "max_batch")
  Sweep(path: "workload.arrival.burst", [1, 2, 4, 8, 16, 32], label: "burst")
  Seed(2512)
}
