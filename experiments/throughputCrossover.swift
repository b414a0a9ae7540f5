import DSL

/// When a throughput plan pays: Llama 2 70B FP16 (140 GB) on 24 Jetson Orin NX 16 GB and an AGX Orin 64 GB (the
/// source) on one gigabit switch, closed loop at 1–32 requests in flight (simulated).
///
/// - `edgeshard-latency`: the least time per token for one request, a few large stages.
/// - `edgeshard-throughput-paper`: EdgeShard's throughput objective as the paper states it, the least bottleneck
///   of a pipeline that is always full: many short stages, which few requests in flight cannot fill.
/// - `edgeshard-throughput`: the least max(latency / C, bottleneck) for the C requests the workload keeps in
///   flight: the least latency at C = 1 (here the latency plan), deeper pipelines as C grows.
/// The figure plots tokens per second against requests in flight for the three: the paper's plan loses to the
/// latency plan until the pipeline fills, and the workload's plan is never below either.
let throughputCrossover = Experiment(
  "throughput-crossover",
  "Llama 2 70B FP16 on 24 Orin NX + an AGX Orin: tokens/s against requests in flight for the latency plan, the paper's throughput plan and the plan for the workload"
) {
  Model(.llama2_70B, precision: .fp16)
  Device("agx", .agxOrin64GB).source()
  Device("nx", .orinNX16GB, count: 24)
  Network(bandwidth: .gbit(1), latency: .us(500))
  Workload(requests: 96, prompt: 32, output: 32, arrival: .closedLoop(concurrency: 1))
  Algorithm("edgeshard-latency")
  Algorithm("edgeshard-throughput-paper")
  Algorithm("edgeshard-throughput")
  Sweep(path: "workload.arrival.concurrency", (1...32).map { JSONValue.number(Double($0)) }, label: "concurrency")
  Seed(1)
}
