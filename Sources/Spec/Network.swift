public import EdgeLabCore

/// The network between devices. Devices hang off one switch (a star); a *link* is the path between two
/// devices through it. Every ordered pair gets `link` unless an override says otherwise.
public struct NetworkSpec: Codable, Hashable, Sendable {
  public var topology: Topology
  public var link: LinkSpec
  public var overrides: [LinkOverride]
  /// Shared media: links whose transfers contend for one segment's bandwidth (e.g. every edge device's uplink to
  /// the server through one router).
  public var segments: [SharedSegment]

  public init(
    topology: Topology = .star, link: LinkSpec = LinkSpec(), overrides: [LinkOverride] = [],
    segments: [SharedSegment] = []
  ) {
    self.topology = topology
    self.link = link
    self.overrides = overrides
    self.segments = segments
  }

  enum CodingKeys: String, CodingKey { case topology, link, overrides, segments }
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    topology = try c.decodeIfPresent(Topology.self, forKey: .topology) ?? .star
    link = try c.decodeIfPresent(LinkSpec.self, forKey: .link) ?? LinkSpec()
    overrides = try c.decodeIfPresent([LinkOverride].self, forKey: .overrides) ?? []
    segments = try c.decodeIfPresent([SharedSegment].self, forKey: .segments) ?? []
  }
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(topology, forKey: .topology)
    try c.encode(link, forKey: .link)
    try c.encode(overrides, forKey: .overrides)
    if !segments.isEmpty { try c.encode(segments, forKey: .segments) }
  }

  public enum Topology: String, Codable, Hashable, Sendable {
    /// One switch; every device reaches every other.
    case star
  }
}

/// Properties of a directed link.
public struct LinkSpec: Codable, Hashable, Sendable {
  public var bandwidth: Bandwidth
  /// One-way propagation delay.
  public var latency: Seconds
  /// Standard deviation of extra one-way delay (normal, truncated at zero).
  public var jitter: Seconds
  /// Packet loss probability, 0 ≤ loss < 1.
  public var loss: Double

  public init(bandwidth: Bandwidth = .gbit(1), latency: Seconds = .zero, jitter: Seconds = .zero, loss: Double = 0) {
    self.bandwidth = bandwidth
    self.latency = latency
    self.jitter = jitter
    self.loss = loss
  }

  enum CodingKeys: String, CodingKey { case bandwidth, latency, jitter, loss }
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = LinkSpec()
    bandwidth = try c.decodeIfPresent(Bandwidth.self, forKey: .bandwidth) ?? d.bandwidth
    latency = try c.decodeIfPresent(Seconds.self, forKey: .latency) ?? d.latency
    jitter = try c.decodeIfPresent(Seconds.self, forKey: .jitter) ?? d.jitter
    loss = try c.decodeIfPresent(Double.self, forKey: .loss) ?? d.loss
  }
}

/// Link properties for the pairs between two sets of devices (device or group names), in both directions
/// unless `oneWay`. Later overrides win over earlier ones.
public struct LinkOverride: Codable, Hashable, Sendable {
  /// Lets sweeps address this override: `network.overrides[wan].bandwidth`.
  public var name: String?
  public var from: [String]
  public var to: [String]
  public var oneWay: Bool
  public var bandwidth: Bandwidth?
  public var latency: Seconds?
  public var jitter: Seconds?
  public var loss: Double?
  /// Bandwidth that changes over time; replaces `bandwidth` while the run lasts.
  public var trace: BandwidthTrace?
  /// No link at all between these devices.
  public var disconnected: Bool

  public init(
    name: String? = nil, from: [String], to: [String], oneWay: Bool = false, bandwidth: Bandwidth? = nil,
    latency: Seconds? = nil, jitter: Seconds? = nil, loss: Double? = nil, trace: BandwidthTrace? = nil,
    disconnected: Bool = false
  ) {
    self.name = name
    self.from = from
    self.to = to
    self.oneWay = oneWay
    self.bandwidth = bandwidth
    self.latency = latency
    self.jitter = jitter
    self.loss = loss
    self.trace = trace
    self.disconnected = disconnected
  }

  enum CodingKeys: String, CodingKey {
    case name, from, to
    case oneWay = "one_way"
    case bandwidth, latency, jitter, loss, trace, disconnected
  }
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    name = try c.decodeIfPresent(String.self, forKey: .name)
    from = try c.decode([String].self, forKey: .from)
    to = try c.decode([String].self, forKey: .to)
    oneWay = try c.decodeIfPresent(Bool.self, forKey: .oneWay) ?? false
    bandwidth = try c.decodeIfPresent(Bandwidth.self, forKey: .bandwidth)
    latency = try c.decodeIfPresent(Seconds.self, forKey: .latency)
    jitter = try c.decodeIfPresent(Seconds.self, forKey: .jitter)
    loss = try c.decodeIfPresent(Double.self, forKey: .loss)
    trace = try c.decodeIfPresent(BandwidthTrace.self, forKey: .trace)
    disconnected = try c.decodeIfPresent(Bool.self, forKey: .disconnected) ?? false
  }
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encodeIfPresent(name, forKey: .name)
    try c.encode(from, forKey: .from)
    try c.encode(to, forKey: .to)
    if oneWay { try c.encode(oneWay, forKey: .oneWay) }
    try c.encodeIfPresent(bandwidth, forKey: .bandwidth)
    try c.encodeIfPresent(latency, forKey: .latency)
    try c.encodeIfPresent(jitter, forKey: .jitter)
    try c.encodeIfPresent(loss, forKey: .loss)
    try c.encodeIfPresent(trace, forKey: .trace)
    if disconnected { try c.encode(disconnected, forKey: .disconnected) }
  }
}

/// A medium shared by the transfers between two sets of devices (device or group names): each direction is
/// one server of `bandwidth` that serves its transfers one at a time (both directions unless `oneWay`). A
/// transfer that crosses it also keeps its own link's bandwidth and latency.
public struct SharedSegment: Codable, Hashable, Sendable {
  public var name: String
  public var from: [String]
  public var to: [String]
  public var oneWay: Bool
  public var bandwidth: Bandwidth

  public init(_ name: String, from: [String], to: [String], bandwidth: Bandwidth, oneWay: Bool = false) {
    self.name = name
    self.from = from
    self.to = to
    self.bandwidth = bandwidth
    self.oneWay = oneWay
  }

  enum CodingKeys: String, CodingKey {
    case name, from, to, bandwidth
    case oneWay = "one_way"
  }
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    name = try c.decode(String.self, forKey: .name)
    from = try c.decode([String].self, forKey: .from)
    to = try c.decode([String].self, forKey: .to)
    bandwidth = try c.decode(Bandwidth.self, forKey: .bandwidth)
    oneWay = try c.decodeIfPresent(Bool.self, forKey: .oneWay) ?? false
  }
}

/// One direction of a shared segment with the directed device pairs that cross it.
public struct ResolvedSegment: Hashable, Sendable {
  /// The segment's name, with " (reverse)" for the direction from `to` back to `from`.
  public var name: String
  public var bandwidth: Bandwidth
  public var pairs: [DevicePair]
  public init(name: String, bandwidth: Bandwidth, pairs: [DevicePair]) {
    self.name = name
    self.bandwidth = bandwidth
    self.pairs = pairs
  }
}

/// A directed pair of device names.
public struct DevicePair: Hashable, Sendable {
  public var from: String
  public var to: String
  public init(from: String, to: String) {
    self.from = from
    self.to = to
  }
}

/// Piecewise-constant bandwidth over the run's time: from `points[i].at` on, the bandwidth is `points[i].bandwidth`.
public struct BandwidthTrace: Codable, Hashable, Sendable {
  public struct Point: Codable, Hashable, Sendable {
    public var at: Seconds
    public var bandwidth: Bandwidth
    public init(at: Seconds, bandwidth: Bandwidth) {
      self.at = at
      self.bandwidth = bandwidth
    }
  }
  public var points: [Point]
  /// Start over after the last point's time plus `period` (nil: hold the last value).
  public var period: Seconds?

  public init(points: [Point], period: Seconds? = nil) {
    self.points = points
    self.period = period
  }

  /// Bandwidth at time `t` (before the first point, the first point's bandwidth).
  public func bandwidth(at t: Seconds) -> Bandwidth {
    guard let first = points.first else { return Bandwidth(bitsPerSecond: 0) }
    var time = t
    if let period, period.value > 0 { time = Seconds(t.value.truncatingRemainder(dividingBy: period.value)) }
    var current = first.bandwidth
    for p in points where p.at <= time { current = p.bandwidth }
    return current
  }

  /// Times in [from, to) at which the bandwidth changes, in order.
  public func changes(from: Seconds, to: Seconds) -> [Seconds] {
    guard !points.isEmpty else { return [] }
    guard let period, period.value > 0 else { return points.map(\.at).filter { $0 > from && $0 < to } }
    var out: [Seconds] = []
    var cycle = (from.value / period.value).rounded(.down)
    while cycle * period.value < to.value {
      for p in points {
        let t = Seconds(cycle * period.value + p.at.value)
        if t > from && t < to { out.append(t) }
      }
      cycle += 1
    }
    return out
  }
}

/// A resolved directed link between two devices.
public struct ResolvedLink: Hashable, Sendable {
  public var from: String
  public var to: String
  public var spec: LinkSpec
  public var trace: BandwidthTrace?
  public init(from: String, to: String, spec: LinkSpec, trace: BandwidthTrace? = nil) {
    self.from = from
    self.to = to
    self.spec = spec
    self.trace = trace
  }
}
