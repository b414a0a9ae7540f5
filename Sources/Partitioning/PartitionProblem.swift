public import EdgeLabCore

/// What a partitioner is given: ordered layers, devices, directed links, the source and the objective.
///
/// JSON (the form `edgelab partition --problem` reads):
/// ```json
/// {"objective": "latency", "source": "d0", "return_to_source": false,
///  "devices": [{"name": "d0", "memory_bytes": 8000000000}],
///  "layers": [{"name": "L0", "memory_bytes": 500000000, "output_bytes": 16384, "time_s": {"d0": 0.0012}}],
///  "links": [{"from": "d0", "to": "d1", "bandwidth_bytes_per_s": 12500000, "latency_s": 0.002}]}
/// ```
/// Optional fields: `prompt_tokens` and `output_tokens` (the workload's mean lengths), `requests_in_flight` (how
/// many requests the workload keeps in the pipeline at once: a throughput plan is only as good as that many
/// micro-batches make it), `layers[].prefill_time_s`
/// (per device), `layers[].weight_bytes` (bytes loaded from storage when the layer is offloaded; `memory_bytes` by
/// default), `devices[].storage_bytes_per_s` (read bandwidth for offloading), `devices[].server` (EdgeShard's
/// cloud device), and `options` (free-form).
public struct PartitionProblem: Codable, Hashable, Sendable {
  public var objective: Objective
  public var source: String
  public var returnToSource: Bool
  public var devices: [Device]
  public var layers: [Layer]
  public var links: [Link]
  /// Mean prompt and output lengths of the workload (tokens), for objectives that weigh prefill against decode.
  public var promptTokens: Double?
  public var outputTokens: Double?
  /// Requests the workload keeps in flight at once (closed-loop concurrency, or an open loop's arrival rate × the
  /// time a request spends); nil: as many as the pipeline can hold.
  public var requestsInFlight: Double?
  /// The model's shape inside a layer, for plans that split layers across devices (tensor parallelism).
  public var shape: ModelShape?

  /// What tensor-parallel plans need of the model: the layers that are decoder blocks, how their heads and FFN
  /// columns divide, the hidden size an all-reduce carries, and the weight of attention against FFN in a block.
  public struct ModelShape: Codable, Hashable, Sendable {
    public var hiddenSize: Int
    public var kvHeads: Int
    public var ffnColumns: Int
    /// Parameters of a block's attention and of its FFN (their ratio weighs a member's share of the work).
    public var attentionParameters: Double
    public var ffnParameters: Double
    /// The problem's layers that are decoder blocks: `firstBlock..<endBlock`.
    public var firstBlock: Int
    public var endBlock: Int
    /// Bytes per activation value on the wire.
    public var wireBytesPerValue: Double
    /// A member's FFN columns come in multiples of this (the weights' quantization block, which a share cannot
    /// cut); nil or 1: any count.
    public var ffnColumnQuantum: Int?

    public init(
      hiddenSize: Int, kvHeads: Int, ffnColumns: Int, attentionParameters: Double, ffnParameters: Double,
      firstBlock: Int, endBlock: Int, wireBytesPerValue: Double, ffnColumnQuantum: Int? = nil
    ) {
      self.ffnColumnQuantum = ffnColumnQuantum
      self.hiddenSize = hiddenSize
      self.kvHeads = kvHeads
      self.ffnColumns = ffnColumns
      self.attentionParameters = attentionParameters
      self.ffnParameters = ffnParameters
      self.firstBlock = firstBlock
      self.endBlock = endBlock
      self.wireBytesPerValue = wireBytesPerValue
    }

    enum CodingKeys: String, CodingKey {
      case hiddenSize = "hidden_size"
      case kvHeads = "kv_heads"
      case ffnColumns = "ffn_columns"
      case attentionParameters = "attention_parameters"
      case ffnParameters = "ffn_parameters"
      case firstBlock = "first_block"
      case endBlock = "end_block"
      case wireBytesPerValue = "wire_bytes_per_value"
      case ffnColumnQuantum = "ffn_column_quantum"
    }

    /// The quantum the columns are shared in: the declared one where it divides the columns, else 1.
    public var columnQuantum: Int {
      guard let q = ffnColumnQuantum, q > 1, ffnColumns % q == 0 else { return 1 }
      return q
    }
  }

  public struct Device: Codable, Hashable, Sendable {
    public var name: String
    public var memoryBytes: Double
    public var storageBytesPerS: Double?
    public var server: Bool?
    public init(name: String, memoryBytes: Double, storageBytesPerS: Double? = nil, server: Bool? = nil) {
      self.name = name
      self.memoryBytes = memoryBytes
      self.storageBytesPerS = storageBytesPerS
      self.server = server
    }
    enum CodingKeys: String, CodingKey {
      case name
      case memoryBytes = "memory_bytes"
      case storageBytesPerS = "storage_bytes_per_s"
      case server
    }
  }

  public struct Layer: Codable, Hashable, Sendable {
    public var name: String
    public var memoryBytes: Double
    public var outputBytes: Double
    /// Decode-step compute time on each device (a device that is missing cannot run the layer).
    public var timeS: [String: Double]
    public var prefillTimeS: [String: Double]?
    public var weightBytes: Double?
    public init(
      name: String, memoryBytes: Double, outputBytes: Double, timeS: [String: Double],
      prefillTimeS: [String: Double]? = nil, weightBytes: Double? = nil
    ) {
      self.name = name
      self.memoryBytes = memoryBytes
      self.outputBytes = outputBytes
      self.timeS = timeS
      self.prefillTimeS = prefillTimeS
      self.weightBytes = weightBytes
    }
    enum CodingKeys: String, CodingKey {
      case name
      case memoryBytes = "memory_bytes"
      case outputBytes = "output_bytes"
      case timeS = "time_s"
      case prefillTimeS = "prefill_time_s"
      case weightBytes = "weight_bytes"
    }
  }

  public struct Link: Codable, Hashable, Sendable {
    public var from: String
    public var to: String
    public var bandwidthBytesPerS: Double
    public var latencyS: Double
    /// One-way latency of a collective's message (a tensor-parallel group's all-reduce), whose receiver has just
    /// reached the same barrier and so wakes faster than a pipeline stage waiting for its input; `latencyS`
    /// when absent.
    public var exchangeLatencyS: Double?
    public init(
      from: String, to: String, bandwidthBytesPerS: Double, latencyS: Double, exchangeLatencyS: Double? = nil
    ) {
      self.from = from
      self.to = to
      self.bandwidthBytesPerS = bandwidthBytesPerS
      self.latencyS = latencyS
      self.exchangeLatencyS = exchangeLatencyS
    }
    enum CodingKeys: String, CodingKey {
      case from, to
      case bandwidthBytesPerS = "bandwidth_bytes_per_s"
      case latencyS = "latency_s"
      case exchangeLatencyS = "exchange_latency_s"
    }
  }

  public init(
    objective: Objective, source: String, returnToSource: Bool = false, devices: [Device], layers: [Layer],
    links: [Link]
  ) {
    self.objective = objective
    self.source = source
    self.returnToSource = returnToSource
    self.devices = devices
    self.layers = layers
    self.links = links
  }

  enum CodingKeys: String, CodingKey {
    case objective, source
    case returnToSource = "return_to_source"
    case devices, layers, links
    case promptTokens = "prompt_tokens"
    case outputTokens = "output_tokens"
    case requestsInFlight = "requests_in_flight"
    case shape
  }
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    objective = try c.decode(Objective.self, forKey: .objective)
    source = try c.decode(String.self, forKey: .source)
    returnToSource = try c.decodeIfPresent(Bool.self, forKey: .returnToSource) ?? false
    devices = try c.decode([Device].self, forKey: .devices)
    layers = try c.decode([Layer].self, forKey: .layers)
    links = try c.decodeIfPresent([Link].self, forKey: .links) ?? []
    promptTokens = try c.decodeIfPresent(Double.self, forKey: .promptTokens)
    outputTokens = try c.decodeIfPresent(Double.self, forKey: .outputTokens)
    requestsInFlight = try c.decodeIfPresent(Double.self, forKey: .requestsInFlight)
    shape = try c.decodeIfPresent(ModelShape.self, forKey: .shape)
  }

  /// Structural problems (names, sizes, missing times), each a sentence naming the field.
  public func problems() -> [String] {
    var p: [String] = []
    let names = devices.map(\.name)
    if devices.isEmpty { p.append("devices: the problem has no devices") }
    if layers.isEmpty { p.append("layers: the problem has no layers") }
    if Set(names).count != names.count { p.append("devices: device names must be unique") }
    if !names.contains(source) {
      p.append("source: '\(source)' is not one of the devices (\(names.joined(separator: ", ")))")
    }
    func finite(_ v: Double, _ low: Double) -> Bool { v >= low && v.isFinite }
    if let m = shape {
      let ceiling = 1 << 24
      if ![m.hiddenSize, m.kvHeads, m.ffnColumns, m.ffnColumnQuantum ?? 1].allSatisfy({ (1...ceiling).contains($0) })
        || !(0 <= m.firstBlock && m.firstBlock < m.endBlock && m.endBlock <= layers.count)
        || !finite(m.attentionParameters, 0) || !finite(m.ffnParameters, 0) || !(m.wireBytesPerValue > 0)
        || !m.wireBytesPerValue.isFinite
      {
        p.append(
          "shape: sizes in 1…\(ceiling), blocks a range of the layers, parameters ≥ 0 and wire bytes > 0")
      }
    }
    for d in devices {
      if !finite(d.memoryBytes, 0) {
        p.append("devices[\(d.name)].memory_bytes must be a finite number ≥ 0 (it is \(d.memoryBytes))")
      }
      if let s = d.storageBytesPerS, !(s > 0 && s.isFinite) {
        p.append(
          "devices[\(d.name)].storage_bytes_per_s must be a finite rate > 0 (it is \(s)); leave it out for a device that cannot offload"
        )
      }
    }
    for (i, l) in layers.enumerated() {
      let field = "layers[\(i)] (\(l.name))"
      if !finite(l.memoryBytes, 0) || !finite(l.outputBytes, 0) {
        p.append("\(field): memory_bytes and output_bytes must be finite numbers ≥ 0")
      }
      if let w = l.weightBytes, !finite(w, 0) || w > l.memoryBytes {
        p.append("\(field).weight_bytes must be a finite number in [0, memory_bytes] (it is \(w))")
      }
      for (key, times) in [("time_s", l.timeS), ("prefill_time_s", l.prefillTimeS ?? [:])] {
        for (d, t) in times.sorted(by: { $0.key < $1.key }) where !names.contains(d) || !finite(t, 0) {
          p.append(
            "\(field).\(key)[\(d)]: "
              + (names.contains(d) ? "must be a finite time ≥ 0 (it is \(t))" : "'\(d)' is not a device"))
        }
      }
    }
    for (key, v) in [("prompt_tokens", promptTokens), ("output_tokens", outputTokens)] {
      if let v, !(v >= 1 && v.isFinite) { p.append("\(key) must be a finite number ≥ 1 (it is \(v))") }
    }
    if let v = requestsInFlight, !(v >= 1 && v.isFinite) {
      p.append("requests_in_flight must be a finite number ≥ 1 (it is \(v)); leave it out for a full pipeline")
    }
    for (i, l) in links.enumerated() {
      if !names.contains(l.from) || !names.contains(l.to) {
        p.append("links[\(i)]: '\(l.from)' → '\(l.to)' names an unknown device")
      }
      if !(l.bandwidthBytesPerS > 0 && l.bandwidthBytesPerS.isFinite) {
        p.append("links[\(i)] (\(l.from)→\(l.to)).bandwidth_bytes_per_s must be a finite rate > 0")
      }
      if !finite(l.latencyS, 0) { p.append("links[\(i)] (\(l.from)→\(l.to)).latency_s must be a finite time ≥ 0") }
      if let e = l.exchangeLatencyS, !finite(e, 0) {
        p.append("links[\(i)] (\(l.from)→\(l.to)).exchange_latency_s must be a finite time ≥ 0")
      }
    }
    return p
  }
}

/// A problem in index form for the algorithms: prefix sums and dense link tables, built once per solve.
public struct IndexedProblem: Sendable {
  public let problem: PartitionProblem
  public let deviceCount: Int
  public let layerCount: Int
  public let sourceIndex: Int
  /// memoryPrefix[i] = Σ memory of layers 0..<i.
  public let memoryPrefix: [Double]
  /// timePrefix[d][i] = Σ decode time of layers 0..<i on device d (∞ when d cannot run a layer).
  public let timePrefix: [[Double]]
  public let memory: [Double]
  /// bandwidth[k][j] in bytes/s, 0 when there is no link; latency[k][j] in seconds.
  public let bandwidth: [[Double]]
  public let latency: [[Double]]
  /// exchangeLatency[k][j]: a collective message's latency (`Link.exchangeLatencyS`).
  public let exchangeLatency: [[Double]]

  public init(_ problem: PartitionProblem) throws(PartitionError) {
    let issues = problem.problems()
    if !issues.isEmpty { throw .invalidProblem(issues) }
    self.problem = problem
    let names = problem.devices.map(\.name)
    deviceCount = names.count
    layerCount = problem.layers.count
    sourceIndex = names.firstIndex(of: problem.source)!
    var mp = [0.0]
    for l in problem.layers { mp.append(mp.last! + l.memoryBytes) }
    memoryPrefix = mp
    timePrefix = names.map { d in
      var tp = [0.0]
      for l in problem.layers { tp.append(tp.last! + (l.timeS[d] ?? .infinity)) }
      return tp
    }
    memory = problem.devices.map(\.memoryBytes)
    var bw = [[Double]](repeating: [Double](repeating: 0, count: names.count), count: names.count)
    var lat = bw
    var exchange = bw
    let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
    for l in problem.links {
      bw[index[l.from]!][index[l.to]!] = l.bandwidthBytesPerS
      lat[index[l.from]!][index[l.to]!] = l.latencyS
      exchange[index[l.from]!][index[l.to]!] = l.exchangeLatencyS ?? l.latencyS
    }
    bandwidth = bw
    latency = lat
    exchangeLatency = exchange
  }

  public func name(_ d: Int) -> String { problem.devices[d].name }
  public func index(of name: String) -> Int? { problem.devices.firstIndex { $0.name == name } }

  /// Memory of layers first..<end.
  @inline(__always) public func memory(_ first: Int, _ end: Int) -> Double { memoryPrefix[end] - memoryPrefix[first] }
  /// Compute time of layers first..<end on device d.
  @inline(__always) public func compute(_ d: Int, _ first: Int, _ end: Int) -> Double {
    timePrefix[d][end] - timePrefix[d][first]
  }
  @inline(__always) public func hasLink(_ k: Int, _ j: Int) -> Bool { bandwidth[k][j] > 0 }
  /// Time to move the output of layer `layer` from k to j (∞ without a link, 0 on the same device).
  @inline(__always) public func transfer(_ k: Int, _ j: Int, afterLayer layer: Int) -> Double {
    if k == j { return 0 }
    let b = bandwidth[k][j]
    return b > 0 ? problem.layers[layer].outputBytes / b + latency[k][j] : .infinity
  }
  /// The return of the last layer's output to the source (0 when not asked for or already there).
  @inline(__always) public func returnTransfer(from k: Int) -> Double {
    problem.returnToSource ? transfer(k, sourceIndex, afterLayer: layerCount - 1) : 0
  }
}
