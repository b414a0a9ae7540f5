import DSL

/// The emulated cluster's showcase: Llama-3.2-1B in FP32 on two emulated Jetson Orin Nano boards behind a switch whose
/// links are shaped to 10, 100 and 1000 Mbit/s, one user at a time and Poisson arrivals — each point run twice,
/// by the simulator and for real in an
/// emulated cluster (network namespaces, kernel shaping, cgroup CPU and memory limits, time dilation), so the
/// calibrated simulator can be checked against real computation run for run. Needs root (namespaces).
/// Figure: plots/emulated-orin-nano.gp.
let emulatedOrinNano = Experiment(
  "emulated-orin-nano",
  "Llama-3.2-1B FP32 on 2 emulated Orin Nano at 10–1000 Mbit/s: simulator vs emulated cluster (root)"
) {
  Model(.llama32_1B, precision: .fp32)
  Device("nano", .orinNano8GB, count: 2).source()
  Network(bandwidth: .gbit(1), latency: .ms(1))
  Workload(requests: 4, prompt: 32, output: 8, arrival: .closedLoop())
  Algorithm("even")
  Algorithm("edgeshard-latency")
  Sweep(path: "backend", ["simulated", "loopback"], label: "backend")
  // One user at a time, and Poisson arrivals at about one request per device second (requests then queue).
  Sweep(
    path: "workload.arrival",
    [.object(["kind": "closed_loop"]), .object(["kind": "poisson", "rate": .number(1)])], label: "arrival")
  Sweep(.linkBandwidth, [10, 100, 1000].map { Bandwidth.mbit($0) }, label: "bandwidth")
  Backend(.loopback)
  Emulation(.namespaces)
  Seed(17)
}
