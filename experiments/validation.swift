public import DSL

/// The cases `edgelab validate` (`make validate`) runs to check the simulator against real runs on this machine:
/// each experiment is run first by the simulator, from a host profile measured just before (the prediction),
/// then for real by the loopback backend, and the two are compared run for run (docs/validation.md).
///
/// All use the `small` model (8 layers, hidden 512) with synthetic weights, so that a case takes seconds. Plain
/// cases run worker processes on this host (`Emulation(.none)`): the devices *are* this host (profile scaling
/// `.host`), and links are loopback TCP, declared as 100 Gbit/s with no latency (the measured per-message cost
/// stands for them). Emulated cases run in network namespaces with tc shaping, cgroup CPU quotas and time
/// dilation (root only): the devices are Orin Nanos, emulated at their memory bandwidth, so the prediction
/// scales the host profile by each device's speed-up (profile scaling `.bandwidth`, the dilation plan's).
///
/// `edgelab validate` replaces the profile path below with the profile it measured or was given.
public enum ValidationCases {
  public static let profilePlaceholder = "profiles/this-host.json"

  public static let all: [Experiment] = [
    plain(
      "plain-1-stage", stages: 1, "closed loop, batch 1: one worker",
      workload: Workload(requests: 12, prompt: 32, output: 48, arrival: .closedLoop())),
    plain(
      "plain-2-stages", stages: 2, "closed loop, batch 1: two workers, one hop and the token's return",
      workload: Workload(requests: 12, prompt: 32, output: 48, arrival: .closedLoop())),
    plain(
      "plain-3-stages", stages: 3, "closed loop, batch 1: three workers",
      workload: Workload(requests: 12, prompt: 32, output: 48, arrival: .closedLoop())),
    plain(
      "plain-2-stages-poisson", stages: 2,
      "Poisson arrivals at 1 request/s (about half of what this VM's 2 cores serve; 3/s saturated them)",
      workload: Workload(requests: 24, prompt: 32, output: 48, arrival: .poisson(rate: 1))),
    plain(
      "plain-2-stages-batched", stages: 2,
      "four requests in flight, decoded together in micro-batches of 4 (the planner assumes batch 1)",
      workload: Workload(requests: 16, prompt: 32, output: 48, arrival: .saturation(inFlight: 4)), maxBatch: 4),
    plain(
      "plain-2-stages-batched-2", stages: 2, "two requests in flight, decoded together in micro-batches of 2",
      workload: Workload(requests: 12, prompt: 32, output: 48, arrival: .saturation(inFlight: 2)), maxBatch: 2),
    plain(
      "plain-2-stages-batched-8", stages: 2, "eight requests in flight, decoded together in micro-batches of 8",
      workload: Workload(requests: 24, prompt: 32, output: 48, arrival: .saturation(inFlight: 8)), maxBatch: 8),
    plain(
      "plain-3-stages-full", stages: 3,
      "three requests in flight, one per stage: three workers computing at once on two cores",
      workload: Workload(requests: 12, prompt: 32, output: 48, arrival: .saturation(inFlight: 3))),
    plain(
      "plain-4-stages-full", stages: 4,
      "four requests in flight, one per stage: four workers computing at once on two cores",
      workload: Workload(requests: 16, prompt: 32, output: 48, arrival: .saturation(inFlight: 4))),
    plain(
      "plain-tp-2", stages: 2,
      "closed loop, batch 1: every block shared by two workers (tensor parallelism; workers exchange through the first, a star)",
      workload: Workload(requests: 12, prompt: 32, output: 48, arrival: .closedLoop()), algorithm: "tp-star"),
    emulated(
      "emulated-2-stages-10mbit", stages: 2, bandwidth: .mbit(10), "Orin Nano × 2 at 10 Mbit/s, 1 ms",
      workload: Workload(requests: 8, prompt: 32, output: 32, arrival: .closedLoop())),
    emulated(
      "emulated-2-stages-100mbit", stages: 2, bandwidth: .mbit(100), "Orin Nano × 2 at 100 Mbit/s, 1 ms",
      workload: Workload(requests: 8, prompt: 32, output: 32, arrival: .closedLoop())),
    emulated(
      "emulated-2-stages-1gbit", stages: 2, bandwidth: .gbit(1), "Orin Nano × 2 at 1 Gbit/s, 1 ms",
      workload: Workload(requests: 8, prompt: 32, output: 32, arrival: .closedLoop())),
    emulated(
      "emulated-tp-2-1gbit", stages: 2, bandwidth: .gbit(1),
      "Orin Nano × 2 sharing every block (tensor parallelism, a star) at 1 Gbit/s, 1 ms",
      workload: Workload(requests: 8, prompt: 32, output: 32, arrival: .closedLoop()), algorithm: "tp-star"),
    emulated(
      "emulated-3-stages-100mbit-poisson", stages: 3, bandwidth: .mbit(100),
      "Orin Nano × 3 at 100 Mbit/s, Poisson arrivals at 4 requests/s",
      workload: Workload(requests: 16, prompt: 32, output: 32, arrival: .poisson(rate: 4))),
    offload,
    speculative,
    speculativeSmolLM2,
  ]

  /// The same with a real model: SmolLM2-135M-Instruct (Q4_1 GGUF, `make smollm2`) drafting with its first 24 of
  /// 30 blocks, on real questions in its chat template. Skipped when the model file is absent.
  static let speculativeSmolLM2 = Experiment(
    "validate-smollm2-speculative",
    "SmolLM2-135M, speculative decoding, k = 4: its first 24 of 30 blocks draft at the source, the whole model verifies"
  ) {
    Model(.smolLM2_135M, precision: .q4_1, checkpoint: smolLM2, arithmetic: .llamaCpp)
    Device("host", .orinNano8GB, count: 2).source()
    Network(bandwidth: .gbit(100), latency: .zero)
    Workload(requests: 4, prompts: "experiments/prompts/smollm2.txt", chat: true, output: 32, arrival: .closedLoop())
    Collaboration(edge: "host0", model: .earlyExit(24))
    Strategy("speculative-4", .speculative(lookahead: 4, target: "even"))
    Execution(ExecutionOptions(maxBatch: 1))
    Calibrate(profile: profilePlaceholder, scaling: .host)
    Sweep(path: "backend", ["simulated", "loopback"], label: "backend")
    Backend(.loopback)
    Emulation(.none)
    Seed(5)
  }

  /// Where `make smollm2` puts SmolLM2-135M-Instruct.
  public static let smolLM2 = "models/SmolLM2-135M-Instruct.Q4_1.gguf"

  /// Speculative decoding across workers: the source drafts with the `small` model's first 6 of 8 blocks and its
  /// head, the whole target on a second worker verifies 4 drafted tokens at a time. The prediction replays the
  /// draft's agreement measured on the same prompts before the runs.
  static let speculative = Experiment(
    "validate-plain-speculative",
    "speculative decoding, k = 4: an early-exit draft at the source, the target on a second worker"
  ) {
    Model(.small, precision: .fp32, weightsSeed: 21)
    Device("host", .orinNano8GB, count: 2).source()
    Network(bandwidth: .gbit(100), latency: .zero)
    Workload(requests: 8, prompt: 32, output: 48, arrival: .closedLoop())
    Collaboration(edge: "host0", model: .earlyExit(6))
    Strategy("speculative-4", .speculative(lookahead: 4, target: "even"))
    Execution(ExecutionOptions(maxBatch: 1))
    Calibrate(profile: profilePlaceholder, scaling: .host)
    Sweep(path: "backend", ["simulated", "loopback"], label: "backend")
    Backend(.loopback)
    Emulation(.none)
    Seed(5)
  }

  /// One emulated device whose memory holds about half the blocks and whose storage is an SD card (300 MB/s):
  /// LIME offloads the rest, read before every use. The reads are paced to the card's rate (far below this
  /// machine's disk, whose speed moves between 0.9 and 1.9 GB/s from one minute to the next as the VM's host
  /// caches it), so they take the declared time.
  static let offload = Experiment(
    "validate-emulated-1-stage-offload", "LIME on one device with 80 MB of memory and SD-card storage"
  ) {
    Model(.small, precision: .fp32, weightsSeed: 21)
    Device(
      "sd",
      profile: DeviceProfile(
        model: "Orin Nano with SD-card storage", memory: .GB(8), usableMemory: .MB(80),
        memoryBandwidth: .gigabytesPerSecond(68), fp32Peak: .tflops(1.28), fp16Peak: .tflops(10.2),
        storageReadBandwidth: .megabytesPerSecond(300))
    ).source()
    Workload(requests: 3, prompt: 32, output: 16, arrival: .closedLoop())
    Algorithm("lime")
    Execution(ExecutionOptions(maxBatch: 1))
    Calibrate(profile: profilePlaceholder, scaling: .bandwidth)
    Sweep(path: "backend", ["simulated", "loopback"], label: "backend")
    Backend(.loopback)
    Emulation(.namespaces)
    Seed(5)
  }

  public static func named(_ name: String) -> Experiment? { all.first { $0.spec.name == name } }

  /// Whether a case runs in an emulated cluster (needs root).
  public static func isEmulated(_ e: Experiment) -> Bool { e.spec.emulation.mode == .namespaces }

  static func plain(
    _ name: String, stages: Int, _ summary: String, workload: Workload, maxBatch: Int = 1, algorithm: String = "even"
  ) -> Experiment {
    validationCase(
      name, summary, device: "host", stages: stages, network: Network(bandwidth: .gbit(100), latency: .zero),
      workload: workload, maxBatch: maxBatch, scaling: .host, emulation: .none, algorithm: algorithm)
  }

  static func emulated(
    _ name: String, stages: Int, bandwidth: Bandwidth, _ summary: String, workload: Workload,
    algorithm: String = "even"
  ) -> Experiment {
    validationCase(
      name, summary, device: "nano", stages: stages, network: Network(bandwidth: bandwidth, latency: .ms(1)),
      workload: workload, maxBatch: 1, scaling: .bandwidth, emulation: .namespaces, algorithm: algorithm)
  }

  /// The `small` model split over `stages` Orin Nanos (evenly, or by `algorithm`), simulated from the host profile, then run for real.
  static func validationCase(
    _ name: String, _ summary: String, device: String, stages: Int, network: Network, workload: Workload,
    maxBatch: Int, scaling: Calibration.ProfileScaling, emulation: EmulationOptions.Mode, algorithm: String = "even"
  ) -> Experiment {
    Experiment("validate-" + name, summary) {
      Model(.small, precision: .fp32, weightsSeed: 21)
      Device(device, .orinNano8GB, count: stages).source()
      network
      workload
      Algorithm(algorithm)
      Execution(ExecutionOptions(maxBatch: maxBatch))
      Calibrate(profile: profilePlaceholder, scaling: scaling)
      Sweep(path: "backend", ["simulated", "loopback"], label: "backend")
      Backend(.loopback)
      Emulation(emulation)
      Seed(5)
    }
  }
}
