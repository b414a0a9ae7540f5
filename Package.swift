// swift-tools-version: 6.1
// EdgeLab: a reproducible lab for splitting Llama-family models across edge devices.
//
// One target per subsystem; the folder names are the architecture:
//   EdgeLabCore  units, seeded randomness, JSON values, text tables (no dependencies)
//   Catalog      model architectures and device presets (facts, cited)
//   Spec         the experiment as plain Codable data, sweeps, validation, workload materialisation
//   DSL          result builders that produce a Spec
//   Partitioning partition problems, plans, the Partitioner protocol, the algorithms
//   CostModel    per-layer costs, rooflines, Spec -> partition problem
//   Metrics      what a run measured (requests, links, devices) and its summary statistics
//   Simulator    the simulated backend (discrete-event, virtual time)
//   Engine       Llama inference on OpenBLAS and our C kernels; safetensors; synthetic weights
//   Transport    wire format, handshake, sockets between workers
//   Runtime      worker processes, the coordinator, the loopback backend
//   Emulation    emulated clusters: namespaces, tc/nft links, cgroup devices, time dilation, cleanup
//   Results      HDF5 results files (the only importer of CHDF5), TSV export
//   Runner       expands experiments into runs, dispatches them to backends, writes results
//   Benchmarks   performance measurements behind `edgelab bench` (never timed assertions in tests)
//   Experiments  the experiment files in experiments/ (compiled in)
//   edgelab      the thin command-line interface
import PackageDescription

let swiftSettings: [SwiftSetting] = [
  .enableUpcomingFeature("ExistentialAny"),
  .enableUpcomingFeature("InternalImportsByDefault"),
  .enableUpcomingFeature("MemberImportVisibility"),
]

var package = Package(
  name: "EdgeLab",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "edgelab", targets: ["edgelab"])
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
    .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
  ],
  targets: [
    // C libraries, through pkg-config. Exactly one Swift target imports each.
    .systemLibrary(
      name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5",
      providers: [.apt(["libhdf5-dev"])]),

    .systemLibrary(
      name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
      providers: [.apt(["libopenblas-dev"])]),
    // Our own decode kernels in C (runtime instruction-set dispatch); only Engine imports them.
    .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
    // Linux calls Swift's Glibc module lacks (O_DIRECT, prctl). Imported by Engine (offload store) and
    // Runtime (workers die with their coordinator): two small, unrelated uses, so one shim serves both.
    .target(name: "CLinux"),

    .target(name: "EdgeLabCore"),
    .target(name: "Catalog", dependencies: ["EdgeLabCore"]),
    .target(name: "Spec", dependencies: ["EdgeLabCore", "Catalog"]),
    .target(name: "DSL", dependencies: ["EdgeLabCore", "Catalog", "Spec"]),
    .target(name: "Partitioning", dependencies: ["EdgeLabCore"]),
    .target(name: "CostModel", dependencies: ["EdgeLabCore", "Catalog", "Spec", "Partitioning"]),
    .target(name: "Metrics", dependencies: ["EdgeLabCore"]),
    .target(
      name: "Simulator",
      dependencies: [
        "EdgeLabCore", "Catalog", "Spec", "CostModel", "Partitioning", "Metrics",
        .product(name: "HeapModule", package: "swift-collections"),
      ]),
    .target(name: "Results", dependencies: ["EdgeLabCore", "Metrics", "CHDF5"]),
    .target(
      name: "Runner",
      dependencies: [
        "EdgeLabCore", "Catalog", "Spec", "CostModel", "Partitioning", "Metrics", "Simulator", "Results",
      ]),
    .target(name: "Engine", dependencies: ["EdgeLabCore", "Catalog", "CKernels", "COpenBLAS", "CLinux"]),
    .target(name: "Transport", dependencies: ["EdgeLabCore"]),
    .target(
      name: "Runtime",
      dependencies: ["EdgeLabCore", "Catalog", "Spec", "Partitioning", "Metrics", "Engine", "Transport", "Runner", "CLinux"]),
    .target(
      name: "Emulation", dependencies: ["EdgeLabCore", "Catalog", "Spec", "Engine", "Transport", "Runtime", "CLinux"]),
    .target(name: "Benchmarks",
      dependencies: [
        "EdgeLabCore", "Catalog", "Spec", "DSL", "CostModel", "Partitioning", "Engine", "Metrics", "Results", "Runner", "Runtime",
        "Transport",
      ]),
    .target(name: "Experiments", dependencies: ["EdgeLabCore", "Catalog", "Spec", "DSL"], path: "experiments"),
    .executableTarget(
      name: "edgelab",
      dependencies: [
        "EdgeLabCore", "Spec", "DSL", "CostModel", "Partitioning", "Metrics", "Results", "Runner", "Experiments", "Benchmarks", "Engine", "Catalog", "Runtime", "Transport", "Emulation",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),

    .target(name: "TestSupport", path: "Tests/TestSupport"),
    .testTarget(name: "EdgeLabCoreTests", dependencies: ["EdgeLabCore", "TestSupport"]),
    .testTarget(name: "SpecTests", dependencies: ["EdgeLabCore", "Catalog", "Spec", "DSL", "Experiments", "TestSupport"]),
    .testTarget(name: "CostModelTests", dependencies: ["EdgeLabCore", "Catalog", "Spec", "DSL", "CostModel", "Partitioning", "TestSupport"]),
    .testTarget(
      name: "PartitioningTests",
      dependencies: [
        "EdgeLabCore", "Partitioning", "TestSupport", .product(name: "PropertyBased", package: "swift-property-based"),
      ]),
    .testTarget(
      name: "SimulatorTests",
      dependencies: ["EdgeLabCore", "Spec", "DSL", "Catalog", "CostModel", "Partitioning", "Metrics", "Simulator", "TestSupport"]),
    .testTarget(name: "ResultsTests", dependencies: ["EdgeLabCore", "Metrics", "Partitioning", "Results", "TestSupport"]),
    .testTarget(
      name: "RunnerTests",
      dependencies: ["EdgeLabCore", "Spec", "DSL", "Catalog", "Metrics", "Runner", "Results", "Experiments", "TestSupport"]),
    .testTarget(
      name: "EngineTests", dependencies: ["EdgeLabCore", "Catalog", "Engine", "TestSupport"],
      resources: [.copy("Fixtures")]),
    .testTarget(name: "TransportTests", dependencies: ["Transport", "TestSupport"]),
    .testTarget(
      name: "RuntimeTests",
      dependencies: ["EdgeLabCore", "DSL", "Spec", "Runner", "Runtime", "Results", "Metrics", "Transport", "Engine", "Partitioning", "Experiments", "TestSupport"]),
    .testTarget(
      name: "EmulationTests",
      dependencies: ["EdgeLabCore", "DSL", "Spec", "Runner", "Runtime", "Results", "Metrics", "Emulation", "TestSupport"]),
    .testTarget(name: "CLITests", dependencies: ["EdgeLabCore", "TestSupport"]),
  ]
)

for target in package.targets where target.type != .system && !["CKernels", "CLinux"].contains(target.name) {
  target.swiftSettings = (target.swiftSettings ?? []) + swiftSettings
}
