public import EdgeLabCore

/// One point of the sweep: the values of every axis, and the experiment with them applied.
public struct SweepPoint: Sendable {
  public struct Setting: Hashable, Sendable {
    public var path: String
    public var label: String
    public var value: JSONValue
  }
  public var index: Int
  public var settings: [Setting]
  public var experiment: ResolvedExperiment
}

/// One run: a sweep point × an algorithm × a repetition.
public struct RunDescriptor: Sendable {
  /// Position in the experiment's run order; names the run's group in the results file.
  public var index: Int
  public var point: SweepPoint
  public var algorithmIndex: Int
  /// The partition algorithm: the run's own, or the one that places a strategy's target model (labelled with the
  /// strategy's name).
  public var algorithm: AlgorithmChoice
  /// The cooperation strategy this run compares, if it is one (`algorithmIndex` counts on after the algorithms).
  public var strategy: StrategyChoice? = nil
  public var repetition: Int
  /// Seed of this run's workload and randomness. Derived from the experiment seed and the repetition only, so
  /// every algorithm and sweep point of one repetition sees the same requests.
  public var seed: UInt64

  /// A stable identifier for resuming: the same sweep values, algorithm and repetition give the same key.
  public var key: String {
    let params = point.settings.map { "\($0.path)=\($0.value)" }.joined(separator: ";")
    return "\(params)|\(algorithm.displayLabel)|\(repetition)"
  }
}

extension ExperimentSpec {
  /// The Cartesian product of the sweep axes, each point validated and resolved.
  ///
  /// - Throws: `SpecError` naming the sweep path and value that made a point invalid.
  public func expandPoints(knownAlgorithms: Set<String>? = nil) throws(SpecError) -> [SweepPoint] {
    var base = self
    base.sweeps = []
    let tree: JSONValue
    do { tree = try JSONValue(encoding: base) } catch {
      throw SpecError(field: "(spec)", "cannot encode the experiment: \(error)")
    }
    var paths: [JSONPath] = []
    for (i, axis) in sweeps.enumerated() {
      do { paths.append(try JSONPath(axis.path)) } catch {
        throw SpecError(field: "sweeps[\(i)].path", error.description)
      }
      if axis.values.isEmpty { throw SpecError(field: "sweeps[\(i)].values", "a sweep needs at least one value") }
    }
    if let why = Self.sweepSizeProblem(sweeps) { throw SpecError(field: "sweeps", why) }
    var points: [SweepPoint] = []
    var combination = [Int](repeating: 0, count: sweeps.count)
    while true {
      var t = tree
      var settings: [SweepPoint.Setting] = []
      for (axis, (s, path)) in zip(combination, zip(sweeps, paths)) {
        let v = s.values[axis]
        do { try t.set(v, at: path) } catch { throw SpecError(field: "sweeps: \(s.path)", error.reason) }
        settings.append(.init(path: s.path, label: s.displayLabel, value: s.recorded(axis)))
      }
      let spec: ExperimentSpec
      do { spec = try t.decode(ExperimentSpec.self) } catch {
        let assignments = settings.map { "\($0.path) = \($0.value)" }.joined(separator: ", ")
        throw SpecError(field: "sweeps", "with \(assignments): \(JSONCoding.explain(error))")
      }
      if points.isEmpty { try Self.checkSweepPaths(sweeps, paths, base: tree) }
      do {
        let resolved = try spec.resolve(knownAlgorithms: knownAlgorithms)
        points.append(SweepPoint(index: points.count, settings: settings, experiment: resolved))
      } catch {
        var e = error
        if !settings.isEmpty {
          e.context = "experiment '\(name)' at " + settings.map { "\($0.path) = \($0.value)" }.joined(separator: ", ")
        }
        throw e
      }
      // Odometer over the axes; the last axis varies fastest.
      var k = sweeps.count - 1
      while k >= 0 {
        combination[k] += 1
        if combination[k] < sweeps[k].values.count { break }
        combination[k] = 0
        k -= 1
      }
      if k < 0 { break }
    }
    return points
  }

  /// A sweep path the experiment does not have (a typo, or a setting that does not exist) would be created in
  /// the JSON tree and then ignored by decoding, so every point would run the same experiment. Each axis's
  /// setting, applied alone with its first value that is not null or false (encoders leave those out), must
  /// survive decoding and encoding again.
  static func checkSweepPaths(_ sweeps: [SweepAxis], _ paths: [JSONPath], base: JSONValue) throws(SpecError) {
    for (i, (axis, path)) in zip(sweeps, paths).enumerated() {
      guard let value = axis.values.first(where: { $0 != .null && $0 != .bool(false) }) else { continue }
      var t = base
      guard (try? t.set(value, at: path)) != nil, let decoded = try? t.decode(ExperimentSpec.self),
        let tree = try? JSONValue(encoding: decoded)
      else { continue }  // errors in the value itself are reported by the expansion
      if tree.value(at: path) != nil { continue }
      let (reached, keys) = tree.deepestKeys(along: path)
      let known =
        keys.isEmpty
        ? "" : "; settings under '\(reached.isEmpty ? "(top level)" : reached)': \(keys.joined(separator: ", "))"
      throw SpecError(field: "sweeps[\(i)].path", "the experiment has no setting '\(axis.path)'\(known)")
    }
  }

  /// The seed of repetition `rep`: one stream per repetition, shared by every algorithm and sweep point.
  public static func runSeed(_ seed: UInt64, repetition rep: Int) -> UInt64 {
    var g = SeededRandom.derived(seed: seed, UInt64(rep))
    return g.next()
  }

  /// Every run of the experiment, in order: for each sweep point, each algorithm, each repetition.
  public func expand(knownAlgorithms: Set<String>? = nil) throws(SpecError) -> [RunDescriptor] {
    let points = try expandPoints(knownAlgorithms: knownAlgorithms)
    var total = 0
    for p in points {
      let (n, overflow) = (p.experiment.spec.algorithms.count + p.experiment.spec.strategies.count)
        .multipliedReportingOverflow(
          by: p.experiment.spec.repetitions)
      total = total.addingReportingOverflow(n).partialValue
      if overflow || total > SpecLimits.runs {
        throw SpecError(
          field: "(experiment)",
          "more than \(SpecLimits.runs) runs (sweep points × algorithms × repetitions); split the experiment or shard the sweep"
        )
      }
    }
    var runs: [RunDescriptor] = []
    runs.reserveCapacity(total)
    for p in points {
      for (ai, a) in p.experiment.spec.algorithms.enumerated() {
        for rep in 0..<p.experiment.spec.repetitions {
          runs.append(
            RunDescriptor(
              index: runs.count, point: p, algorithmIndex: ai, algorithm: a, repetition: rep,
              seed: Self.runSeed(seed, repetition: rep)))
        }
      }
      let first = p.experiment.spec.algorithms.count
      for (si, s) in p.experiment.spec.strategies.enumerated() {
        guard var target = s.target else { continue }
        target.label = s.name
        for rep in 0..<p.experiment.spec.repetitions {
          runs.append(
            RunDescriptor(
              index: runs.count, point: p, algorithmIndex: first + si, algorithm: target, strategy: s,
              repetition: rep, seed: Self.runSeed(seed, repetition: rep)))
        }
      }
    }
    return runs
  }
}
