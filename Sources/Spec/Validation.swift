public import Catalog
import EdgeLabCore

/// An experiment with every name resolved: devices expanded, presets looked up, links materialised.
public struct ResolvedExperiment: Sendable {
  public var spec: ExperimentSpec
  public var model: ModelConfig
  public var devices: [ResolvedDevice]
  public var source: String
  /// Every directed link between distinct devices that are connected.
  public var links: [ResolvedLink]
  /// Each direction of each shared segment.
  public var segments: [ResolvedSegment] = []

  public func device(_ name: String) -> ResolvedDevice? { devices.first { $0.name == name } }
  public func link(from: String, to: String) -> ResolvedLink? { links.first { $0.from == from && $0.to == to } }
}

extension ExperimentSpec {
  /// Every problem with this experiment, each naming its field; empty when it can run.
  ///
  /// - Parameter knownAlgorithms: registered partitioner names, to check `algorithms` against (skipped if nil).
  public func problems(knownAlgorithms: Set<String>? = nil) -> [SpecError.Issue] {
    var issues: [SpecError.Issue] = []
    func add(_ field: String, _ message: String) { issues.append(.init(field: field, message: message)) }

    if name.isEmpty || !name.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) {
      add("name", "'\(name)' must be non-empty and use only letters, digits, '.', '_' and '-' (it names files)")
    }

    var config: ModelConfig?
    do { config = try model.resolvedConfig() } catch { issues += error.issues }
    if model.preset == nil, let c = model.config {
      for p in c.problems() { add("model.config", p) }
    }
    if let c = config, model.precision.blockValues > 1 {
      let q = model.precision.blockValues
      let widths = [("hidden_size", c.hiddenSize), ("intermediate_size", c.intermediateSize), ("q dim", c.qDim)]
      if let (what, n) = widths.first(where: { $0.1 % q != 0 }) {
        add(
          "model.precision",
          "\(model.precision.rawValue) stores rows in blocks of \(q) values, but the model's \(what) is \(n); pick q8_0, q4_0 or q4_1 (blocks of 32) or a floating-point precision"
        )
      }
    }
    if execution.wirePrecision.isQuantized {
      add(
        "execution.wire_precision",
        "hidden states travel as fp32, fp16 or bf16, not \(execution.wirePrecision.rawValue)")
    }

    if devices.isEmpty { add("devices", "declare at least one device") }
    // Counted before any instance is named: a count of 10⁶ must not materialise 10⁶ names.
    var total = 0
    for g in devices { total = total.addingReportingOverflow(max(0, g.count)).partialValue }
    if total > SpecLimits.devices {
      add(
        "devices",
        "\(total) device instances, more than the \(SpecLimits.devices) an experiment may have; lower the counts")
      return issues
    }
    var names: [String: String] = [:]
    for (i, g) in devices.enumerated() {
      let field = "devices[\(g.name.isEmpty ? String(i) : g.name)]"
      if g.name.isEmpty { add(field + ".name", "a device group needs a name") }
      if g.count < 1 { add(field + ".count", "must be at least 1 (it is \(g.count))") }
      if let m = g.usableMemory, !(m.value > 0 && m.value.isFinite) {
        add(field + ".usable_memory", "must be a positive, finite size (it is \(m.value) bytes)")
      }
      do {
        let p = try g.resolvedProfile()
        for problem in p.problems() { add(field, problem) }
        if let m = g.usableMemory, m > p.memory {
          add(
            field + ".usable_memory",
            "device '\(g.name)' has \(p.memory) but the budget asks for \(m); lower usable_memory or pick a larger device"
          )
        }
      } catch { issues += error.issues }
      for n in g.instanceNames {
        if let other = names[n] { add(field, "device name '\(n)' is used twice (also in group '\(other)')") }
        names[n] = g.name
      }
    }
    let groupNames = Set(devices.map(\.name))
    if let source, names[source] == nil {
      add("source", "'\(source)' is not a device; devices are \(names.keys.sorted().joined(separator: ", "))")
    }

    let l = network.link
    checkLink(l, field: "network.link", add: add)
    for (i, o) in network.overrides.enumerated() {
      let field = "network.overrides[\(o.name ?? String(i))]"
      for n in o.from + o.to where names[n] == nil && !groupNames.contains(n) {
        add(field, "'\(n)' is neither a device nor a device group")
      }
      if o.from.isEmpty || o.to.isEmpty { add(field, "'from' and 'to' must each name at least one device") }
      checkLink(
        LinkSpec(
          bandwidth: o.bandwidth ?? l.bandwidth, latency: o.latency ?? l.latency,
          jitter: o.jitter ?? l.jitter, loss: o.loss ?? l.loss), field: field, add: add)
      if let t = o.trace {
        if t.points.isEmpty { add(field + ".trace", "a trace needs at least one point") }
        if t.points.count > SpecLimits.tracePoints {
          add(field + ".trace", "\(t.points.count) points, more than \(SpecLimits.tracePoints); use a periodic trace")
        }
        if t.points.contains(where: { !$0.at.value.isFinite || !$0.bandwidth.bitsPerSecond.isFinite }) {
          add(field + ".trace", "times and bandwidths must be finite")
        }
        if zip(t.points, t.points.dropFirst()).contains(where: { $0.at >= $1.at }) {
          add(field + ".trace", "points must be in increasing time order")
        }
        if t.points.contains(where: { $0.bandwidth.bitsPerSecond <= 0 || $0.at.value < 0 }) {
          add(field + ".trace", "times must be ≥ 0 and bandwidths > 0")
        }
      }
    }

    var segmentNames = Set<String>()
    for (i, g) in network.segments.enumerated() {
      let field = "network.segments[\(g.name.isEmpty ? String(i) : g.name)]"
      if g.name.isEmpty || !segmentNames.insert(g.name).inserted {
        add(field + ".name", "every segment needs a name of its own")
      }
      for n in g.from + g.to where names[n] == nil && !groupNames.contains(n) {
        add(field, "'\(n)' is neither a device nor a device group")
      }
      if g.from.isEmpty || g.to.isEmpty { add(field, "'from' and 'to' must each name at least one device") }
      if !(g.bandwidth.bitsPerSecond > 0 && g.bandwidth.bitsPerSecond.isFinite) {
        add(field + ".bandwidth", "must be a positive, finite bandwidth")
      }
    }
    if network.segments.count > SpecLimits.devices {
      add("network.segments", "at most \(SpecLimits.devices) segments")
    }

    let w = workload
    if w.requests < 1 { add("workload.requests", "must be at least 1") }
    if w.requests > SpecLimits.requests {
      add(
        "workload.requests", "\(w.requests) is more than the \(SpecLimits.requests) requests a run may have; lower it")
    }
    for (f, d) in [("workload.prompt_tokens", w.promptTokens), ("workload.output_tokens", w.outputTokens)] {
      if d.bounds.lowerBound < 1 { add(f, "lengths must be at least 1 token") }
      if d.bounds.upperBound > SpecLimits.tokensPerRequest {
        add(f, "lengths up to \(d.bounds.upperBound) tokens; at most \(SpecLimits.tokensPerRequest)")
      }
      if case .choice(let v) = d, v.isEmpty { add(f, "choice needs at least one length") }
      if case .normal(let mean, let std, _, _) = d, !mean.isFinite || !(std >= 0 && std.isFinite) {
        add(f, "normal needs a finite mean and a finite std ≥ 0")
      }
    }
    for (kind, d, limit) in [
      ("output", w.outputTokens, SpecLimits.outputTokensPerRun),
      ("prompt", w.promptTokens, SpecLimits.promptTokensPerRun),
    ] {
      let (tokens, overflow) = max(0, w.requests).multipliedReportingOverflow(by: max(0, d.bounds.upperBound))
      if overflow || tokens > limit {
        add(
          "workload",
          "\(w.requests) requests × up to \(d.bounds.upperBound) \(kind) tokens is more than the \(limit) \(kind) tokens a run may have; lower requests or \(kind)_tokens"
        )
      }
    }
    if let config, w.promptTokens.bounds.upperBound + w.outputTokens.bounds.upperBound > config.maxPositionEmbeddings {
      add(
        "workload",
        "prompt + output can reach \(w.promptTokens.bounds.upperBound + w.outputTokens.bounds.upperBound) tokens, beyond the model's \(config.maxPositionEmbeddings) positions"
      )
    }
    switch w.arrival {
    case .closedLoop(let n, let think):
      if n < 1 { add("workload.arrival.concurrency", "must be at least 1") }
      if !(think.value >= 0 && think.value.isFinite) { add("workload.arrival.think", "must be a finite time ≥ 0") }
    case .poisson(let rate):
      if !(rate > 0 && rate.isFinite) { add("workload.arrival.rate", "must be a finite rate > 0 requests per second") }
    case .bursty(let burst, let every):
      if burst < 1 { add("workload.arrival.burst", "must be at least 1") }
      if !(every.value > 0 && every.value.isFinite) { add("workload.arrival.every", "must be a finite time > 0") }
    case .onOff(let on, let off, let rate):
      if !(on.value > 0 && on.value.isFinite) || !(off.value >= 0 && off.value.isFinite) {
        add("workload.arrival", "'on' must be a finite time > 0 and 'off' a finite time ≥ 0")
      }
      if !(rate > 0 && rate.isFinite) { add("workload.arrival.rate", "must be a finite rate > 0 requests per second") }
    }

    if let slo = w.slo {
      for (f, v) in [("workload.slo.ttft", slo.ttft), ("workload.slo.tpot", slo.tpot)] {
        if let v, !(v.value > 0 && v.value.isFinite) { add(f, "must be a finite time > 0") }
      }
      if slo.ttft == nil && slo.tpot == nil { add("workload.slo", "give 'ttft', 'tpot' or both") }
    }
    if let p = calibration.profile, p.isEmpty {
      add("calibration.profile", "name a profile file (edgelab profile --out FILE), or leave it out for the roofline")
    }
    for g in devices where g.measuredProfile?.isEmpty == true {
      add("devices[\(g.name)].measured_profile", "name a profile file, or leave it out")
    }

    if algorithms.isEmpty && strategies.isEmpty {
      add("algorithms", "name at least one partition algorithm (or strategy) to run")
    }
    issues += collaborationProblems(knownAlgorithms: knownAlgorithms)
    var labels = Set<String>()
    for (i, a) in algorithms.enumerated() {
      if let known = knownAlgorithms, !known.contains(a.name) {
        add("algorithms[\(i)]", "unknown algorithm '\(a.name)'; registered: \(known.sorted().joined(separator: ", "))")
      }
      if !labels.insert(a.displayLabel).inserted {
        add("algorithms[\(i)]", "label '\(a.displayLabel)' is used twice; give each choice a distinct 'label'")
      }
    }
    if repetitions < 1 { add("repetitions", "must be at least 1") }
    if repetitions > SpecLimits.repetitions {
      add("repetitions", "\(repetitions) is more than \(SpecLimits.repetitions)")
    }
    for (i, s) in sweeps.enumerated() {
      do { _ = try JSONPath(s.path) } catch { add("sweeps[\(i)].path", error.description) }
      if s.values.isEmpty { add("sweeps[\(i)].values", "a sweep needs at least one value") }
      if let names = s.names, names.count != s.values.count || Set(names).count != names.count {
        add("sweeps[\(i)].names", "needs one distinct name per value (\(s.values.count) values, \(names.count) names)")
      }
    }
    if let why = Self.sweepSizeProblem(sweeps) { add("sweeps", why) }
    let c = calibration
    if !(c.computeEfficiency > 0 && c.computeEfficiency <= 1) {
      add("calibration.compute_efficiency", "must be in (0, 1]")
    }
    if !(c.memoryEfficiency > 0 && c.memoryEfficiency <= 1) {
      add("calibration.memory_efficiency", "must be in (0, 1]")
    }
    if !(c.layerOverhead.value >= 0 && c.layerOverhead.value.isFinite) {
      add("calibration.layer_overhead", "must be a finite time ≥ 0")
    }
    if !(c.messageOverhead.value >= 0 && c.messageOverhead.value.isFinite) {
      add("calibration.message_overhead", "must be a finite time ≥ 0")
    }
    let groups = Set(devices.map(\.name))
    for (name, d) in c.devices.sorted(by: { $0.key < $1.key }) {
      let field = "calibration.devices.\(name)"
      if !groups.contains(name) {
        add(field, "names no device group; groups: \(groups.sorted().joined(separator: ", "))")
      }
      if let e = d.computeEfficiency, !(e > 0 && e <= 1) { add(field + ".compute_efficiency", "must be in (0, 1]") }
      if let e = d.memoryEfficiency, !(e > 0 && e <= 1) { add(field + ".memory_efficiency", "must be in (0, 1]") }
      for (key, t) in [("layer_overhead", d.layerOverhead), ("message_overhead", d.messageOverhead)] {
        if let t, !(t.value >= 0 && t.value.isFinite) { add(field + "." + key, "must be a finite time ≥ 0") }
      }
    }
    for (name, w) in c.workerSpeeds.sorted(by: { $0.key < $1.key }) {
      let field = "calibration.worker_speeds.\(name)"
      let bounds = "[\(WorkerSpeed.bounds.lowerBound), \(WorkerSpeed.bounds.upperBound)]"
      for (key, v) in [("decode", w.decode), ("prefill", w.prefill)] where !WorkerSpeed.bounds.contains(v) {
        add(field + "." + key, "must be a ratio in \(bounds) (it is \(v))")
      }
      for (key, points) in [("decode_points", w.decodePoints), ("prefill_points", w.prefillPoints)] {
        guard let points else { continue }
        if points.count > WorkerSpeed.maxPoints {
          add(field + "." + key, "lists \(points.count) points; at most \(WorkerSpeed.maxPoints)")
        }
        for (i, p) in points.enumerated().prefix(WorkerSpeed.maxPoints) {
          if !(1...WorkerSpeed.maxPointSize).contains(p.size) {
            add(field + ".\(key)[\(i)].size", "must be in 1...\(WorkerSpeed.maxPointSize) (it is \(p.size))")
          }
          if !WorkerSpeed.bounds.contains(p.ratio) {
            add(field + ".\(key)[\(i)].ratio", "must be a ratio in \(bounds) (it is \(p.ratio))")
          }
        }
      }
    }
    if execution.maxBatch < 1 { add("execution.max_batch", "must be at least 1") }
    if execution.maxBatch > 1 << 16 { add("execution.max_batch", "\(execution.maxBatch) is more than \(1 << 16)") }
    for (i, n) in paper.enumerated() {
      for problem in n.problems(field: "paper[\(i)]") { add(problem.field, problem.message) }
      let labels = Set(algorithms.map { $0.label ?? $0.name })
      for name in [n.algorithm] + (n.relativeTo.map { [$0] } ?? []) where !labels.contains(name) {
        add("paper[\(i)]", "'\(name)' is not the label of any of the experiment's algorithms")
      }
    }
    if let d = emulation.dilation, !(d >= 1 && d.isFinite) {
      add("emulation.dilation", "must be a finite number ≥ 1 (it is \(d))")
    }
    if let b = emulation.hostBandwidth, !(b.bitsPerSecond > 0 && b.bitsPerSecond.isFinite) {
      add("emulation.host_bandwidth", "must be a finite rate > 0")
    }
    if !(emulation.memoryHeadroom.value >= 0 && emulation.memoryHeadroom.value.isFinite) {
      add("emulation.memory_headroom", "must be a finite size ≥ 0")
    }
    if !(emulation.coordinatorShare >= 0 && emulation.coordinatorShare < 1) {
      add("emulation.coordinator_share", "must be in [0, 1)")
    }
    if let m = execution.microBatches, m < 1 { add("execution.micro_batches", "must be at least 1") }
    if let t = execution.progressTimeout, !(t.value > 0 && t.value.isFinite) {
      add("execution.progress_timeout", "must be a positive, finite duration (e.g. \"30s\")")
    }
    return issues
  }

  /// Why the sweep is too large to expand, if it is (the product of the axes' lengths, without overflow).
  static func sweepSizeProblem(_ sweeps: [SweepAxis]) -> String? {
    var points = 1
    for axis in sweeps {
      let (p, overflow) = points.multipliedReportingOverflow(by: max(1, axis.values.count))
      if overflow || p > SpecLimits.sweepPoints {
        return
          "\(sweeps.map { String($0.values.count) }.joined(separator: " × ")) points, more than the \(SpecLimits.sweepPoints) an experiment may have; split the experiment or shorten an axis"
      }
      points = p
    }
    return nil
  }

  private func checkLink(_ l: LinkSpec, field: String, add: (String, String) -> Void) {
    if !(l.bandwidth.bitsPerSecond > 0 && l.bandwidth.bitsPerSecond.isFinite) {
      add(field + ".bandwidth", "must be a finite rate > 0 (use 'disconnected' for no link)")
    }
    if !(l.latency.value >= 0 && l.latency.value.isFinite) { add(field + ".latency", "must be a finite time ≥ 0") }
    if !(l.jitter.value >= 0 && l.jitter.value.isFinite) { add(field + ".jitter", "must be a finite time ≥ 0") }
    if !(l.loss >= 0 && l.loss < 1) { add(field + ".loss", "must be a fraction in [0, 1) (it is \(l.loss))") }
  }

  /// Throws a `SpecError` listing every problem, or returns the experiment with all names resolved.
  public func resolve(knownAlgorithms: Set<String>? = nil) throws(SpecError) -> ResolvedExperiment {
    let issues = problems(knownAlgorithms: knownAlgorithms)
    if !issues.isEmpty { throw SpecError(issues: issues, context: "experiment '\(name)'") }
    let config = try model.resolvedConfig()
    var devs: [ResolvedDevice] = []
    for g in devices {
      let p = try g.resolvedProfile()
      devs += g.instanceNames.map { ResolvedDevice(name: $0, group: g.name, profile: p) }
    }
    let src = collaboration?.edge ?? source ?? devs[0].name
    func members(_ names: [String]) -> Set<String> {
      Set(names.flatMap { n in devs.filter { $0.name == n || $0.group == n }.map(\.name) })
    }
    var links: [String: ResolvedLink] = [:]
    func key(_ a: String, _ b: String) -> String { a + "\u{1}" + b }
    for a in devs {
      for b in devs where a.name != b.name {
        links[key(a.name, b.name)] = ResolvedLink(from: a.name, to: b.name, spec: network.link, trace: nil)
      }
    }
    for o in network.overrides {
      let f = members(o.from)
      let t = members(o.to)
      var pairs: [(String, String)] = []
      for a in f { for b in t where a != b { pairs.append((a, b)) } }
      if !o.oneWay { pairs += pairs.map { ($0.1, $0.0) } }
      for (a, b) in pairs {
        let k = key(a, b)
        if o.disconnected {
          links[k] = nil
          continue
        }
        var l = links[k] ?? ResolvedLink(from: a, to: b, spec: network.link, trace: nil)
        if let v = o.bandwidth { l.spec.bandwidth = v }
        if let v = o.latency { l.spec.latency = v }
        if let v = o.jitter { l.spec.jitter = v }
        if let v = o.loss { l.spec.loss = v }
        if let tr = o.trace {
          l.trace = tr
          l.spec.bandwidth = tr.bandwidth(at: .zero)
        }
        links[k] = l
      }
    }
    let ordered = devs.flatMap { a in devs.compactMap { b in links[key(a.name, b.name)] } }
    var segments: [ResolvedSegment] = []
    for g in network.segments {
      let f = devs.map(\.name).filter(members(g.from).contains)
      let t = devs.map(\.name).filter(members(g.to).contains)
      let forward = f.flatMap { a in t.filter { $0 != a }.map { DevicePair(from: a, to: $0) } }
      segments.append(ResolvedSegment(name: g.name, bandwidth: g.bandwidth, pairs: forward))
      if !g.oneWay {
        segments.append(
          ResolvedSegment(
            name: g.name + " (reverse)", bandwidth: g.bandwidth,
            pairs: forward.map { DevicePair(from: $0.to, to: $0.from) }))
      }
    }
    return ResolvedExperiment(
      spec: self, model: config, devices: devs, source: src, links: ordered, segments: segments)
  }
}
