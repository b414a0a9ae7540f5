// swift-tools-version: 6.1
// EdgeLab: a reproducible lab for splitting Llama-family models across edge devices.
//
// One target per subsystem; the folder names are the architecture:
//   EdgeLabCore  units, seeded randomness, JSON values, text tables (no dependencies)
//   Catalog      model architectures and device presets (facts, cited)
//   Spec         the experiment as plain Codable data, sweeps, validation, workload materialisation
//   DSL          result builders that produce a Spec
//   CostModel    per-layer costs and rooflines (the time model of layers on devices)
//   Pipeline     what a plan is and how a pipeline executes it, as pure state machines: Plan, ResidencyPolicy,
//                PipelineScheduler (admission, micro-batches), OffloadTimeline (staging slots) — one copy that
//                LIME's cost model, the simulator and the workers all run
//   Partitioning partition problems, the Partitioner protocol, the algorithms (no other target's code depends
//                on a particular algorithm; experiments and benchmarks name the ones they run, as data)
//   Metrics      what a run measured (requests, links, devices) and its summary statistics
//   Execution    the seams of the execution stack: ExecutionBackend, RunJob, BackendError, WorkerLauncher, clocks
//   Simulator    the simulated backend (discrete-event, virtual time)
//   Engine       Llama inference on OpenBLAS and our C kernels; safetensors; synthetic weights; offload store
//   Transport    wire format, handshake, sockets between workers
//   Runtime      worker processes (a pure state machine and its I/O shell), the coordinator, the loopback backend
//   Emulation    emulated clusters: namespaces, tc/nft links, cgroup devices, time dilation, cleanup
//   Results      HDF5 results files (the only importer of CHDF5), TSV export
//   Runner       expands experiments into runs, builds partition problems, runs the backends it is given,
//                writes results
//   Benchmarks   performance measurements behind `edgelab bench` (never timed assertions in tests)
//   Experiments  the experiment files in experiments/ (compiled in)
//   UserAlgorithms  a researcher's own algorithms in algorithms/ (compiled in; depends on Partitioning only)
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
    .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
    .package(url: "https://github.com/apple/swift-system", from: "1.8.0"),
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
    // Linux calls Swift's Glibc module lacks (O_DIRECT, prctl, setns, pidfd_open). Imported by Engine (offload
    // store), Runtime (workers die with their coordinator), Emulation (namespaces) and the tests' process helpers.
    .target(name: "CLinux"),

    .target(name: "EdgeLabCore"),
    .target(name: "Catalog", dependencies: ["EdgeLabCore"]),
    .target(name: "Spec", dependencies: ["EdgeLabCore", "Catalog"]),
    .target(name: "DSL", dependencies: ["EdgeLabCore", "Catalog", "Spec"]),
    .target(name: "CostModel", dependencies: ["EdgeLabCore", "Catalog", "Spec"]),
    .target(name: "Pipeline", dependencies: ["EdgeLabCore"]),
    .target(name: "Partitioning", dependencies: ["EdgeLabCore", "Pipeline"]),
    .target(name: "Metrics", dependencies: ["EdgeLabCore"]),
    .target(name: "Execution", dependencies: ["EdgeLabCore", "Catalog", "Spec", "CostModel", "Pipeline", "Metrics"]),
    .target(
      name: "Simulator",
      dependencies: [
        "EdgeLabCore", "Catalog", "Spec", "CostModel", "Pipeline", "Metrics", "Execution",
        .product(name: "HeapModule", package: "swift-collections"),
      ]),
    .target(name: "Results", dependencies: ["EdgeLabCore", "Metrics", "Pipeline", "CHDF5"]),
    .target(
      name: "Runner",
      dependencies: [
        "EdgeLabCore", "Catalog", "Spec", "CostModel", "Pipeline", "Partitioning", "Metrics", "Execution", "Results",
      ]),
    .target(name: "Engine", dependencies: ["EdgeLabCore", "Catalog", "Pipeline", "CKernels", "COpenBLAS", "CLinux"]),
    // Text ↔ token ids (byte-level and SentencePiece BPE, chat templates), from tokenizer.json or a GGUF file.
    .target(
      name: "Tokenizer",
      dependencies: ["Catalog", "Engine", .product(name: "HeapModule", package: "swift-collections")]),
    .target(
      name: "Transport",
      dependencies: ["EdgeLabCore", .product(name: "SystemPackage", package: "swift-system")]),
    .target(
      name: "Runtime",
      dependencies: [
        "EdgeLabCore", "Catalog", "Spec", "CostModel", "Pipeline", "Metrics", "Execution", "Engine", "Transport",
        "CLinux",
        .product(name: "HeapModule", package: "swift-collections"), .product(name: "Logging", package: "swift-log"),
        .product(name: "SystemPackage", package: "swift-system"),
      ]),
    .target(
      name: "Emulation",
      dependencies: [
        "EdgeLabCore", "Catalog", "Spec", "Execution", "Transport", "CLinux",
        .product(name: "Logging", package: "swift-log"),
      ]),
    .target(name: "Boards", dependencies: ["EdgeLabCore", "Catalog", "Spec", "Execution", "Emulation"]),
    .target(
      name: "Validation",
      dependencies: ["EdgeLabCore", "Spec", "DSL", "Pipeline", "Metrics", "Results", "Runner", "Experiments"]),
    .target(
      name: "Profiling", dependencies: ["EdgeLabCore", "Catalog", "CostModel", "Engine", "Transport"]),
    .target(
      name: "Benchmarks",
      dependencies: [
        "EdgeLabCore", "Catalog", "Spec", "DSL", "CostModel", "Pipeline", "Partitioning", "Engine", "Metrics",
        "Results", "Execution", "Runner", "Runtime", "Transport", "Experiments", "Simulator",
      ]),
    .target(
      name: "Experiments", dependencies: ["EdgeLabCore", "Catalog", "Spec", "DSL"], path: "experiments",
      exclude: ["prompts"]),
    // A researcher's extensions, outside Sources/: one file per algorithm and one list (algorithms/Registry.swift).
    .target(name: "UserAlgorithms", dependencies: ["Partitioning"], path: "algorithms"),
    .executableTarget(
      name: "edgelab",
      dependencies: [
        "EdgeLabCore", "Catalog", "Spec", "DSL", "CostModel", "Pipeline", "Partitioning", "Metrics", "Execution",
        "Results",
        "Runner", "Simulator", "Experiments", "Benchmarks", "Engine", "Runtime", "Transport", "Emulation",
        "Profiling", "Validation", "Boards", "Tokenizer", "UserAlgorithms",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ]),

    .target(name: "TestSupport", dependencies: ["CLinux"], path: "Tests/TestSupport"),
    .testTarget(name: "EdgeLabCoreTests", dependencies: ["EdgeLabCore", "TestSupport"]),
    .testTarget(
      name: "SpecTests", dependencies: ["EdgeLabCore", "Catalog", "Spec", "DSL", "Experiments", "TestSupport"]),
    .testTarget(
      name: "CostModelTests",
      dependencies: ["EdgeLabCore", "Catalog", "Spec", "DSL", "CostModel", "Partitioning", "Runner", "TestSupport"]),
    .testTarget(
      name: "PipelineTests",
      dependencies: [
        "EdgeLabCore", "Pipeline", "TestSupport", .product(name: "PropertyBased", package: "swift-property-based"),
      ]),
    .testTarget(
      name: "PartitioningTests",
      dependencies: [
        "EdgeLabCore", "Pipeline", "Partitioning", "TestSupport",
        .product(name: "PropertyBased", package: "swift-property-based"),
      ]),
    .testTarget(
      name: "SimulatorTests",
      dependencies: [
        "EdgeLabCore", "Spec", "DSL", "Catalog", "CostModel", "Pipeline", "Metrics", "Execution", "Simulator",
        "TestSupport",
      ]),
    .testTarget(name: "ResultsTests", dependencies: ["EdgeLabCore", "Metrics", "Pipeline", "Results", "TestSupport"]),
    .testTarget(
      name: "RunnerTests",
      dependencies: [
        "EdgeLabCore", "Spec", "DSL", "Catalog", "Metrics", "Pipeline", "Partitioning", "Execution", "Runner",
        "Simulator", "Results", "Experiments", "UserAlgorithms", "TestSupport",
      ]),
    .testTarget(
      name: "EngineTests", dependencies: ["EdgeLabCore", "Catalog", "Pipeline", "Engine", "TestSupport"],
      resources: [.copy("Fixtures")]),
    .testTarget(
      name: "TokenizerTests", dependencies: ["Engine", "Tokenizer", "TestSupport"], resources: [.copy("Fixtures")]),
    .testTarget(
      name: "TransportTests",
      dependencies: ["Transport", "TestSupport", .product(name: "SystemPackage", package: "swift-system")]),
    .testTarget(
      name: "RuntimeTests",
      dependencies: [
        "EdgeLabCore", "Catalog", "DSL", "Spec", "CostModel", "Pipeline", "Partitioning", "Execution", "Runner",
        "Simulator",
        "Runtime",
        "Results", "Metrics", "Transport", "Engine", "Experiments", "TestSupport",
        .product(name: "PropertyBased", package: "swift-property-based"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "SystemPackage", package: "swift-system"),
      ]),
    .testTarget(
      name: "EmulationTests",
      dependencies: [
        "EdgeLabCore", "DSL", "Spec", "Execution", "Runner", "Runtime", "Results", "Metrics", "Engine", "Emulation",
        "TestSupport",
        .product(name: "Logging", package: "swift-log"),
      ]),
    .testTarget(
      name: "BoardsTests",
      dependencies: [
        "EdgeLabCore", "DSL", "Spec", "Execution", "Runner", "Runtime", "Results", "Metrics", "Emulation", "Boards",
        "Experiments", "TestSupport",
      ]),
    .testTarget(
      name: "SweepTests", dependencies: ["EdgeLabCore", "Metrics", "Results", "Runner", "Runtime", "TestSupport"]),
    .testTarget(name: "CLITests", dependencies: ["EdgeLabCore", "TestSupport"]),
    .testTarget(
      name: "RobustnessTests",
      dependencies: [
        "EdgeLabCore", "DSL", "Spec", "Engine", "Partitioning", "Results", "Runner", "Simulator", "Benchmarks",
        "TestSupport",
      ]),
  ]
)

for target in package.targets where target.type != .system && !["CKernels", "CLinux"].contains(target.name) {
  target.swiftSettings = (target.swiftSettings ?? []) + swiftSettings
}
