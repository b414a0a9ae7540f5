public import DSL

/// Every experiment that `edgelab list` shows and `make exp NAME=…` runs.
/// To add one: write `experiments/<name>.swift` declaring an `Experiment`, and add it to this list.
public enum ExperimentCatalog {
  public static let all: [Experiment] = [
    quickstart,
    edgeShard7B,
    edgeShard13B,
    edgeShard70B,
    edgeShard7BServer,
    edgeShardHopOverhead,
    lime70B,
    lime70BBursts,
    demo3xOrinNano,
    demoSmolLM2,
    emulatedOrinNano,
    collabEdgeCloud,
    specRTTCrossover,
    dllamaScaling,
    tpiLatencyBandwidth,
    hybridVsPipeline,
    throughputCrossover,
  ]

  public static func named(_ name: String) -> Experiment? { all.first { $0.spec.name == name } }
}
