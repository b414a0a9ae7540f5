import Catalog
public import CostModel
public import EdgeLabCore
public import Partitioning
public import Spec

/// Builds the partition problem for an experiment (at one sweep point): per-layer memory, activation sizes and
/// per-device times from the cost model, links from the network.
///
/// Choices the papers leave open, made here:
/// - **Per-layer memory** is weights plus the KV cache of `kvSequences` sequences at the longest context the
///   workload can reach (prompt + output upper bounds); weights only with `execution.plan_memory: weights-only`. `kvSequences` is the closed loop's concurrency, or the
///   smaller of `max_batch` and the request count for open-loop arrivals.
/// - **Per-layer time** (`time_s`) is one decode step at batch 1 with the mean context (mean prompt + half the
///   mean output); `prefill_time_s` is the mean prompt's prefill.
/// - **Output bytes** are one token's activations (hidden size × wire precision), 4 bytes (a token id) for the head.
/// - **Links** carry their bandwidth at time 0 and their one-way latency.
public struct ProblemBuilder: Sendable {
  public var timeModel: any LayerTimeModel

  public init(timeModel: any LayerTimeModel) { self.timeModel = timeModel }

  public static func roofline(_ calibration: Calibration) -> ProblemBuilder {
    ProblemBuilder(timeModel: RooflineModel(calibration: calibration))
  }

  /// Sequences whose KV cache the plan must hold at once.
  public static func kvSequences(_ w: WorkloadSpec, _ e: ExecutionOptions) -> Int {
    switch w.arrival {
    case .closedLoop(let n, _): return max(1, min(n, w.requests))
    default: return max(1, min(e.maxBatch, w.requests))
    }
  }

  public func layers(for x: ResolvedExperiment) -> ModelLayers {
    ModelLayers(config: x.model, precision: x.spec.model.precision, wirePrecision: x.spec.execution.wirePrecision)
  }

  /// The model's shape inside a block, for plans that split blocks across devices.
  static func shape(_ x: ResolvedExperiment, _ model: ModelLayers) -> PartitionProblem.ModelShape? {
    let blocks = model.layers.indices.filter {
      if case .block = model.layers[$0].kind { return true }
      return false
    }
    guard let first = blocks.first, let last = blocks.last else { return nil }
    let c = x.model
    return PartitionProblem.ModelShape(
      hiddenSize: c.hiddenSize, kvHeads: c.numKeyValueHeads, ffnColumns: c.intermediateSize,
      attentionParameters: Double(c.attentionParametersPerBlock),
      ffnParameters: Double(c.ffnParametersPerBlock), firstBlock: first, endBlock: last + 1,
      wireBytesPerValue: x.spec.execution.wirePrecision.bytesPerWeight,
      ffnColumnQuantum: x.spec.model.precision.blockValues)
  }

  /// Requests the workload keeps in flight, for throughput plans: a closed loop's concurrency (think time not
  /// deducted), a burst's size, an open loop's arrival rate × the least time a request can spend (its mean
  /// prompt's prefill and mean output's decode steps with every layer on its fastest device); at least 1, at
  /// most the workload's requests.
  static func requestsInFlight(_ w: WorkloadSpec, layers: [PartitionProblem.Layer]) -> Double {
    func fastest(_ times: [String: Double]?) -> Double { times?.values.min() ?? 0 }
    let least =
      layers.reduce(0) { $0 + fastest($1.prefillTimeS) } + w.outputTokens.mean
      * layers.reduce(0) { $0 + fastest($1.timeS) }
    let c: Double
    switch w.arrival {
    case .closedLoop(let n, _): c = Double(n)
    case .bursty(let burst, _): c = Double(burst)
    case .poisson(let rate): c = rate * least
    case .onOff(_, _, let rate): c = rate * least
    }
    return min(Double(max(1, w.requests)), max(1, c.isFinite ? c : 1))
  }

  public func problem(for x: ResolvedExperiment, objective: Objective) -> PartitionProblem {
    let model = layers(for: x)
    let w = x.spec.workload
    let maxContext = w.promptTokens.bounds.upperBound + w.outputTokens.bounds.upperBound
    let kvTokens =
      x.spec.execution.planMemory == .weightsOnly ? 0 : Double(Self.kvSequences(w, x.spec.execution) * maxContext)
    let meanPrompt = max(1, Int(w.promptTokens.mean.rounded()))
    let meanContext = meanPrompt + Int((w.outputTokens.mean / 2).rounded())
    let precision = x.spec.model.precision
    let layers = model.layers.map { l in
      PartitionProblem.Layer(
        name: l.kind.name,
        memoryBytes: l.weightBytes.value + l.kvBytesPerToken.value * kvTokens,
        outputBytes: l.outputBytesPerToken.value,
        timeS: Dictionary(
          uniqueKeysWithValues: x.devices.map {
            (
              $0.name,
              timeModel.time(
                l, device: $0.name, on: $0.profile, work: .decode(contexts: [meanContext]), precision: precision
              ).value
            )
          }),
        prefillTimeS: Dictionary(
          uniqueKeysWithValues: x.devices.map {
            (
              $0.name,
              timeModel.time(
                l, device: $0.name, on: $0.profile, work: .prefill(tokens: meanPrompt), precision: precision
              ).value
            )
          }),
        weightBytes: l.weightBytes.value)
    }
    var problem = PartitionProblem(
      objective: objective, source: x.source, returnToSource: x.spec.execution.returnToSource,
      devices: x.devices.map {
        .init(
          name: $0.name, memoryBytes: $0.profile.usableMemory.value,
          storageBytesPerS: timeModel.storageBytesPerSecond(device: $0.name, on: $0.profile),
          server: $0.profile.isServer)
      },
      layers: layers,
      links: x.links.map {
        // A message also costs its sender's per-message time (measured on this host by a profile; 0 for a
        // roofline), here for one token's hidden state, as the simulator charges it: a pipeline hop's receiver
        // has waited the profile's reference time, a collective's has just started waiting.
        let bytes = Double(x.model.hiddenSize) * x.spec.execution.wirePrecision.bytesPerWeight
        return .init(
          from: $0.from, to: $0.to, bandwidthBytesPerS: $0.spec.bandwidth.bytesPerSecond,
          latencyS: $0.spec.latency.value + timeModel.messageSeconds(from: $0.from, to: $0.to, bytes: bytes),
          exchangeLatencyS: $0.spec.latency.value
            + timeModel.messageSeconds(from: $0.from, to: $0.to, bytes: bytes, idle: 0))
      })
    problem.promptTokens = max(1, w.promptTokens.mean)
    problem.outputTokens = max(1, w.outputTokens.mean)
    problem.requestsInFlight = Self.requestsInFlight(w, layers: layers)
    problem.shape = Self.shape(x, model)
    return problem
  }
}
