import Catalog
import CostModel
import DSL
import EdgeLabCore
import Foundation
import Pipeline
import Runner
import Spec
import TestSupport
import Testing

@Suite("Host profiles")
struct ProfileTests {
  /// The profile of this project's machine class that the repository ships.
  static let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("profiles/dev-epyc-2core.json").path

  @Test func leastSquaresRecoversAPiecewiseLinearFunction() throws {
    let truth = PiecewiseLinear(knots: [1, 10, 100], values: [2, 5, 50])
    let xs: [Double] = [1, 3, 7, 10, 20, 55, 80, 100]
    let f = try #require(PiecewiseLinear.fit(knots: [1, 10, 100], points: xs.map { ($0, truth($0)) }))
    for (k, v) in zip(f.values, truth.values) { #expect(isClose(k, v, rtol: 1e-9)) }
    // Beyond the last knot the last segment goes on; below zero it is clamped.
    #expect(isClose(f(200), 100))
    #expect(PiecewiseLinear(knots: [0, 1], values: [1, -1])(5) == 0)
    // Too few points to pin every knot: no fit.
    #expect(PiecewiseLinear.fit(knots: [1, 10, 100], points: [(1, 1), (2, 2)]) == nil)
  }

  @Test func theShippedProfileIsValidAndItsFitReproducesItsOwnPointsWithinFivePercent() throws {
    let (profile, hash) = try ProfileLibrary.read(Self.shipped)
    #expect(hash.hasPrefix("fnv1a64:"))
    #expect(profile.problems().isEmpty)
    let m = try #require(profile.model(ModelPreset.small.config, .fp32))
    for p in m.decode {
      let contexts = [Int](repeating: p.context, count: p.batch)
      #expect(abs(m.time(.block(0), .decode(contexts: contexts)) / p.block - 1) <= 0.05, "decode \(p)")
    }
    // The head does not depend on the context: its fit goes through each batch size's median.
    for b in Set(m.decode.map(\.batch)) {
      let heads = m.decode.filter { $0.batch == b }.map(\.head).sorted()
      #expect(
        abs(m.time(.head, .decode(contexts: [Int](repeating: 64, count: b))) / heads[heads.count / 2] - 1) <= 0.05)
    }
    for p in m.prefill {
      #expect(abs(m.time(.block(0), .prefill(tokens: p.tokens)) / p.block - 1) <= 0.05, "prefill \(p)")
    }
    for p in profile.message.points {
      #expect(abs(profile.message.seconds(bytes: Double(p.bytes)) / p.seconds - 1) <= 0.05)
    }
  }

  @Test func aProfiledDeviceTakesTheMeasuredTimesScaledAndOthersTheRoofline() throws {
    let (profile, hash) = try ProfileLibrary.read(Self.shipped)
    let x = try Experiment("p") {
      Model(.small)
      Device("host", .orinNano8GB)
      Device("other", .orinNano8GB)
      Workload(requests: 1, prompt: 8, output: 2)
      Algorithm("even")
    }.spec.resolve()
    let model = ProfiledTimeModel(
      bindings: ["host": .init(profile: profile, hash: hash, scale: 2)], fallback: RooflineModel())
    let layers = ModelLayers(config: x.model, precision: .fp32)
    let nano = x.devices[0].profile
    let block = layers.layers[1]
    let measured = try #require(profile.model(x.model, .fp32)).time(block.kind, .decode(contexts: [16]))
    #expect(
      isClose(
        model.time(block, device: "host", on: nano, work: .decode(contexts: [16]), precision: .fp32).value,
        2 * measured))
    #expect(
      model.time(block, device: "other", on: nano, work: .decode(contexts: [16]), precision: .fp32)
        == RooflineModel().time(block, on: nano, work: .decode(contexts: [16]), precision: .fp32))
    // A shape the profile did not measure: the host's measured rates as a roofline.
    let big = ModelLayers(config: ModelPreset.llama32_1B.config, precision: .fp32).layers[1]
    let t = profile.time(big, work: .decode(contexts: [16]), precision: .fp32)
    #expect(isClose(t, big.bytesMoved(.decode(contexts: [16])) / profile.decodeBandwidth.bytesPerSecond))
    // Message costs and storage come from a profile only where its times are taken as they are.
    #expect(model.messageSeconds(from: "host", to: "other", bytes: 2000) == 0)
    #expect(model.provenance.contains(hash))
  }

  @Test func experimentsBindTheirProfileAndScaleItByBandwidth() throws {
    var spec = Experiment("bind") {
      Model(.small)
      Device("nano", .orinNano8GB)
      Workload(requests: 1, prompt: 8, output: 2)
      Algorithm("even")
      Calibrate(profile: Self.shipped, scaling: .bandwidth)
    }.spec
    let library = ProfileLibrary()
    let scaled = try #require(try library.timeModel(for: spec.resolve()) as? ProfiledTimeModel)
    let (profile, _) = try ProfileLibrary.read(Self.shipped)
    let expected = profile.decodeBandwidth.bytesPerSecond / (68e9 * 0.94)
    #expect(isClose(try #require(scaled.profile(of: "nano")).scale, expected))
    spec.calibration.profileScaling = .host
    let host = try #require(try library.timeModel(for: spec.resolve()) as? ProfiledTimeModel)
    #expect(host.profile(of: "nano")?.scale == 1)
    #expect(host.messageSeconds(from: "nano", to: "x", bytes: 100) > 0)
    spec.calibration.profile = nil
    #expect(try library.timeModel(for: spec.resolve()) is RooflineModel)
  }

  /// Two devices that are this host (the shipped profile, scaling `.host`), for the `small` model.
  static func twoHosts(_ name: String) -> ExperimentSpec {
    Experiment(name) {
      Model(.small)
      Device("host", .orinNano8GB, count: 2)
      Workload(requests: 1, prompt: 8, output: 2)
      Algorithm("even")
      Calibrate(profile: Self.shipped, scaling: .host)
    }.spec
  }

  /// A device's worker speeds multiply its profiled times, decode steps and prompts each by their own ratio; a
  /// name that is not a profiled device is refused by its field.
  @Test func workerSpeedsScaleTheirDevicesProfiledTimes() throws {
    var spec = Self.twoHosts("speeds")
    let library = ProfileLibrary()
    let plain = try #require(try library.timeModel(for: spec.resolve()) as? ProfiledTimeModel)
    spec.calibration.workerSpeeds = ["host1": WorkerSpeed(decode: 1.25, prefill: 0.8)]
    let x = try spec.resolve()
    let fast = try #require(try library.timeModel(for: x) as? ProfiledTimeModel)
    let block = ModelLayers(config: x.model, precision: .fp32).layers[1]
    let nano = x.devices[0].profile
    for (work, ratio) in [(Work.decode(contexts: [16, 40]), 1.25), (.prefill(tokens: 32), 0.8)] {
      let base = plain.time(block, device: "host1", on: nano, work: work, precision: .fp32).value
      #expect(isClose(fast.time(block, device: "host1", on: nano, work: work, precision: .fp32).value, ratio * base))
      #expect(
        fast.time(block, device: "host0", on: nano, work: work, precision: .fp32)
          == plain.time(block, device: "host0", on: nano, work: work, precision: .fp32))
    }
    spec.calibration.workerSpeeds = ["host7": WorkerSpeed(decode: 1, prefill: 1)]
    #expect(throws: SpecError.self) { try library.timeModel(for: spec.resolve()) }
    do { _ = try library.timeModel(for: spec.resolve()) } catch let e as SpecError {
      #expect(e.issues.first?.field == "calibration.worker_speeds.host7" && e.description.contains("host0, host1"))
    }
    // A ratio no process could have is refused when the spec is read.
    spec.calibration.workerSpeeds = ["host1": WorkerSpeed(decode: 0, prefill: 1)]
    #expect(spec.problems().contains { $0.field == "calibration.worker_speeds.host1.decode" })
  }

  /// Where a worker timed several sizes of a phase, a step takes the ratio of the sizes around it (in log size)
  /// and the nearest one's beyond them; the points survive the run's facts and a spec's JSON, and bad ones are
  /// refused by their field.
  @Test func workerSpeedPointsGiveEachSizeItsOwnRatio() throws {
    let speed = WorkerSpeed(
      decode: 1.1, prefill: 1.0, decodePoints: [.init(size: 4, ratio: 1.2), .init(size: 1, ratio: 1.0)],
      prefillPoints: [.init(size: 5, ratio: 1.13), .init(size: 32, ratio: 1.05)])
    #expect(speed.ratio(prefill: false, size: 1) == 1.0)
    #expect(speed.ratio(prefill: false, size: 4) == 1.2)
    #expect(isClose(speed.ratio(prefill: false, size: 2), 1.1))
    #expect(speed.ratio(prefill: false, size: 8) == 1.2)
    #expect(speed.ratio(prefill: true, size: 2) == 1.13)
    #expect(speed.ratio(prefill: true, size: 128) == 1.05)
    #expect(WorkerSpeed(decode: 1.1, prefill: 0.9).ratio(prefill: false, size: 4) == 1.1)
    let broken = WorkerSpeed(
      decode: 1.1, prefill: 0.9, decodePoints: [.init(size: 0, ratio: 2), .init(size: 2, ratio: .nan)])
    #expect(broken.ratio(prefill: false, size: 1) == 1.1)
    let facts = speed.facts(device: "host1", after: true)
    #expect(facts["worker_speed.host1.prefill.tokens_5.after"] == 1.13)
    let back = try #require(WorkerSpeed(device: "host1", after: true, facts: facts))
    #expect(back.decodePoints == [.init(size: 1, ratio: 1.0), .init(size: 4, ratio: 1.2)])
    #expect(back.prefillPoints == [.init(size: 5, ratio: 1.13), .init(size: 32, ratio: 1.05)])
    #expect(WorkerSpeed(device: "host1", after: false, facts: facts) == nil)
    let json = try JSONEncoder().encode(speed)
    #expect(try JSONDecoder().decode(WorkerSpeed.self, from: json) == speed)
    #expect(String(decoding: json, as: UTF8.self).contains("prefill_points"))
    // The time model takes a step's own point.
    var spec = Self.twoHosts("points")
    let library = ProfileLibrary()
    let plain = try #require(try library.timeModel(for: spec.resolve()) as? ProfiledTimeModel)
    spec.calibration.workerSpeeds = ["host1": speed]
    let x = try spec.resolve()
    let timed = try #require(try library.timeModel(for: x) as? ProfiledTimeModel)
    let block = ModelLayers(config: x.model, precision: .fp32).layers[1]
    let nano = x.devices[0].profile
    for (work, ratio) in [(Work.decode(contexts: [16, 40, 9, 9]), 1.2), (.prefill(tokens: 5), 1.13)] {
      let base = plain.time(block, device: "host1", on: nano, work: work, precision: .fp32).value
      #expect(isClose(timed.time(block, device: "host1", on: nano, work: work, precision: .fp32).value, ratio * base))
    }
    spec.calibration.workerSpeeds = [
      "host1": WorkerSpeed(decode: 1, prefill: 1, decodePoints: [.init(size: 0, ratio: 1), .init(size: 2, ratio: 99)])
    ]
    let fields = spec.problems().map(\.field)
    #expect(fields.contains("calibration.worker_speeds.host1.decode_points[0].size"), "\(fields)")
    #expect(fields.contains("calibration.worker_speeds.host1.decode_points[1].ratio"), "\(fields)")
  }

  @Test func aBadProfileFileIsRefusedNamingTheFileAndTheField() throws {
    let dir = NSTemporaryDirectory() + "edgelab-profile-test-\(getpid())"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let missing = dir + "/none.json"
    do { _ = try ProfileLibrary.read(missing) } catch RunnerError.profile(let field, let path, let problem) {
      #expect(field == "calibration.profile" && path == missing && problem == .missing)
    }
    let text = try String(contentsOfFile: Self.shipped, encoding: .utf8)
    let bad = dir + "/bad.json"
    try text.replacingOccurrences(of: "\"decode_bandwidth\" : \"", with: "\"decode_bandwidth\" : \"-").write(
      toFile: bad, atomically: true, encoding: .utf8)
    do {
      _ = try ProfileLibrary.read(bad)
      Issue.record("a negative bandwidth was accepted")
    } catch RunnerError.profile(_, let path, .invalid(let problems)) {
      #expect(path == bad && problems.contains { $0.contains("decode_bandwidth") }, "\(problems)")
    }
    try "{\"format\": 3}".write(toFile: bad, atomically: true, encoding: .utf8)
    #expect(throws: RunnerError.self) { try ProfileLibrary.read(bad) }
  }

  @Test func aMessageCostsMoreTheLongerItsReceiverWaitedAndOldProfilesIgnoreTheWait() throws {
    let fit = PiecewiseLinear(knots: [100, 10_000], values: [20e-6, 40e-6])
    let m = MessageProfile(
      points: [], fit: fit, wakePoints: [.init(idle: 0, seconds: 0), .init(idle: 0.004, seconds: 40e-6)],
      wake: PiecewiseLinear(knots: [0, 0.001, 0.004], values: [0, 10e-6, 40e-6]), referenceIdle: 0.002)
    #expect(isClose(m.seconds(bytes: 100, idle: 0), 20e-6))
    #expect(isClose(m.seconds(bytes: 100, idle: 0.001), 30e-6))
    // Beyond the longest wait measured the cost stays; an unknown wait is the reference (2 ms: 20 µs more).
    #expect(isClose(m.seconds(bytes: 100, idle: 1), 60e-6))
    #expect(isClose(m.seconds(bytes: 100), 40e-6))
    #expect(m.problems().isEmpty)
    // A profile without the wake (measured with the receiver idle for the profiler's gap) is its fit.
    let old = try JSONDecoder().decode(
      MessageProfile.self, from: Data(#"{"points": [], "fit": {"knots": [100], "values": [5e-05]}}"#.utf8))
    #expect(old.wake == nil && old.seconds(bytes: 100, idle: 0) == 5e-5 && old.seconds(bytes: 100, idle: 9) == 5e-5)
    let back = try JSONDecoder().decode(MessageProfile.self, from: JSONEncoder().encode(m))
    #expect(back == m)
    var bad = m
    bad.wake = PiecewiseLinear(knots: [-1, 0.004], values: [0, 1e-5])
    bad.referenceIdle = .nan
    #expect(bad.problems().contains("message.wake: idle seconds must be ≥ 0"))
    #expect(bad.problems().contains("message.reference_idle must be a finite time ≥ 0"))
  }

  @Test func workersDecodingAtOnceOnTheProfiledHostShareItsMemoryBandwidth() throws {
    var (profile, hash) = try ProfileLibrary.read(Self.shipped)
    // A profile measured before the shared bandwidth: nobody slows anybody.
    #expect(profile.sharedDecodeBandwidth == nil && profile.sharedSlowdown(workers: 2) == 1)
    profile.sharedDecodeBandwidth = [.init(bitsPerSecond: 80e9), .init(bitsPerSecond: 128e9)]
    #expect(profile.sharedSlowdown(workers: 1) == 1)
    #expect(isClose(profile.sharedSlowdown(workers: 2), 1.25))
    // Past the workers measured the bandwidth is saturated: three share the two's.
    #expect(isClose(profile.sharedSlowdown(workers: 3), 1.875))
    let shared = ProfiledTimeModel(
      bindings: [
        "a": .init(profile: profile, hash: hash, scale: 1, sharesHost: true),
        "b": .init(profile: profile, hash: hash, scale: 1, sharesHost: true),
        "own": .init(profile: profile, hash: hash, scale: 1),
      ], fallback: RooflineModel())
    #expect(shared.sharedHost(of: "a") != nil && shared.sharedHost(of: "a") == shared.sharedHost(of: "b"))
    #expect(shared.sharedHost(of: "own") == nil && shared.sharedHost(of: "unbound") == nil)
    #expect(isClose(shared.sharedSlowdown(device: "a", workers: 2, work: .decode(contexts: [16])), 1.25))
    // Prefill is taken as compute-bound; a device with hardware of its own shares nothing.
    #expect(shared.sharedSlowdown(device: "a", workers: 2, work: .prefill(tokens: 32)) == 1)
    // More workers than cores take turns on them, whatever they compute.
    let cores = profile.host.cores
    #expect(isClose(shared.sharedSlowdown(device: "a", workers: 4 * cores, work: .prefill(tokens: 32)), 4))
    #expect(shared.sharedSlowdown(device: "a", workers: 40 * cores, work: .decode(contexts: [16])) >= 40)
    #expect(shared.sharedSlowdown(device: "own", workers: 2, work: .decode(contexts: [16])) == 1)
    #expect(RooflineModel().sharedSlowdown(device: "a", workers: 4, work: .decode(contexts: [16])) == 1)
    // Experiments bind the devices that are this host as sharing it, scaled (emulated) devices not.
    var spec = Self.twoHosts("share")
    let library = ProfileLibrary()
    let host = try #require(try library.timeModel(for: spec.resolve()) as? ProfiledTimeModel)
    #expect(host.sharedHost(of: "host0") != nil && host.sharedHost(of: "host0") == host.sharedHost(of: "host1"))
    spec.calibration.profileScaling = .bandwidth
    let scaled = try #require(try library.timeModel(for: spec.resolve()) as? ProfiledTimeModel)
    #expect(scaled.sharedHost(of: "host0") == nil)
    // Read back from JSON, and refused when a bandwidth is not positive.
    let back = try JSONDecoder().decode(HostProfile.self, from: JSONEncoder().encode(profile))
    #expect(back.sharedDecodeBandwidth == profile.sharedDecodeBandwidth)
    profile.sharedDecodeBandwidth = [.init(bitsPerSecond: 80e9), .init(bitsPerSecond: 0)]
    #expect(profile.problems().contains("shared_decode_bandwidth: every bandwidth must be positive and finite"))
  }

  @Test func eachPointKeepsHowFarItsPassesSpread() throws {
    var (profile, _) = try ProfileLibrary.read(Self.shipped)
    var m = try #require(profile.models.first)
    // Profiles measured before have no spread; a measured one reads back from JSON.
    #expect(m.decode.allSatisfy { $0.blockSpread == nil })
    m.decode[0].blockSpread = 0.03
    m.prefill[0].blockSpread = 0
    let text = try String(decoding: JSONEncoder().encode(m.decode[0]), as: UTF8.self)
    #expect(text.contains("\"block_spread\":0.03"), "\(text)")
    let back = try JSONDecoder().decode(ModelProfile.self, from: JSONEncoder().encode(m))
    #expect(back.decode[0].blockSpread == 0.03 && back.prefill[0].blockSpread == 0)
    m.decode[1].blockSpread = -1
    profile.models[0] = m
    #expect(profile.problems().contains("models[0].points: block_spread must be finite and ≥ 0"))
  }

  @Test func aTensorParallelMemberTakesItsShareOfTheBlockTimesTheMeasuredRatio() throws {
    var (profile, hash) = try ProfileLibrary.read(Self.shipped)
    var m = try #require(profile.models.first)
    let whole = Dictionary(uniqueKeysWithValues: m.prefill.map { ($0.tokens, $0.block) })
    let lengths = m.prefill.map(\.tokens).sorted()
    let (t0, t1) = (lengths[1], lengths[2])
    // Without shard points (profiles measured before) a member's part is its share.
    #expect(m.shards == nil && m.shardRatio(share: 0.5, work: .prefill(tokens: t0)) == 1)
    // Halves 10% and 20% slower than half the block at the two lengths, quarters 40% at both.
    m.shards = [
      .init(members: 2, tokens: t0, block: whole[t0]! / 2 * 1.1),
      .init(members: 2, tokens: t1, block: whole[t1]! / 2 * 1.2),
      .init(members: 4, tokens: t0, block: whole[t0]! / 4 * 1.4),
      .init(members: 4, tokens: t1, block: whole[t1]! / 4 * 1.4),
    ]
    #expect(isClose(m.shardRatio(share: 0.5, work: .prefill(tokens: t0)), 1.1))
    #expect(isClose(m.shardRatio(share: 0.5, work: .prefill(tokens: t1)), 1.2))
    // Linear in the length between measured lengths, clamped outside them.
    let mid = (t0 + t1) / 2
    let expected = 1.1 + 0.1 * Double(mid - t0) / Double(t1 - t0)
    #expect(isClose(m.shardRatio(share: 0.5, work: .prefill(tokens: mid)), expected))
    #expect(isClose(m.shardRatio(share: 0.5, work: .prefill(tokens: 100_000)), 1.2))
    // Decode computes one row per sequence: the shortest length's ratio.
    #expect(isClose(m.shardRatio(share: 0.5, work: .decode(contexts: [16, 64])), 1.1))
    // Linear in the share between the splits and 1 at the whole block; clamped below the smallest share.
    #expect(isClose(m.shardRatio(share: 0.375, work: .prefill(tokens: t0)), 1.25))
    #expect(isClose(m.shardRatio(share: 0.75, work: .prefill(tokens: t0)), 1.05))
    #expect(isClose(m.shardRatio(share: 0.1, work: .prefill(tokens: t0)), 1.4))
    #expect(m.shardRatio(share: 1, work: .prefill(tokens: t0)) == 1)
    // The simulator's time model reads it for a bound device; the roofline knows nothing of it.
    profile.models[0] = m
    let model = ProfiledTimeModel(
      bindings: ["a": .init(profile: profile, hash: hash, scale: 2)], fallback: RooflineModel())
    let config = try #require(ModelPreset.named(m.model)).config
    let layer = try #require(ModelLayers(config: config, precision: m.precision).layers.first { $0.kind == .block(0) })
    #expect(
      isClose(model.shardRatio(layer, device: "a", share: 0.5, work: .prefill(tokens: t1), precision: m.precision), 1.2)
    )
    #expect(model.shardRatio(layer, device: "b", share: 0.5, work: .prefill(tokens: t1), precision: m.precision) == 1)
    // A group's block: each part as slow as its slowest member's share × the ratio.
    let g = TensorGroup(members: ["a", "b"], kvHeads: [1, 1], ffnColumns: [3, 1], collective: .star)
    let t = g.blockSeconds([1, 1], attention: 1, ffn: 1) { i, share in i == 0 ? 2 : 1 }
    #expect(isClose(t, 0.5 * 0.5 * 2 + 0.5 * 0.75 * 2))
    #expect(isClose(g.blockSeconds([1, 1], attention: 1, ffn: 1), 0.5 * 0.5 + 0.5 * 0.75))
    // Read back from JSON; a point at a length the whole block was not measured at is refused.
    let back = try JSONDecoder().decode(HostProfile.self, from: JSONEncoder().encode(profile))
    #expect(back.models[0].shards == m.shards)
    profile.models[0].shards?.append(.init(members: 1, tokens: 7777, block: -1))
    let problems = profile.problems()
    #expect(problems.contains("models[0].shards[4].members must be 2…1024 (it is 1)"), "\(problems)")
    #expect(problems.contains("models[0].shards[4].tokens (7777) must be one of the prefill points' lengths"))
    #expect(problems.contains("models[0].shards[4].block must be a positive, finite time"))
  }

  /// An emulated worker paces to its device's time model as a value it can hold: the same seconds as the model.
  @Test func aDevicePaceGivesTheTimeModelsSecondsAndRefusesBadValues() throws {
    let (profile, hash) = try ProfileLibrary.read(Self.shipped)
    let nano = DevicePreset.orinNano8GB.profile
    let calibration = Calibration(computeEfficiency: 0.4, memoryEfficiency: 0.9)
    let roofline = RooflineModel(calibration: calibration)
    let profiled = ProfiledTimeModel(
      bindings: ["p": .init(profile: profile, hash: hash, scale: 0.25)], fallback: roofline)
    let config = try #require(ModelPreset.named(profile.models[0].model)).config
    let layers = Array(ModelLayers(config: config, precision: .fp32).layers.prefix(3))
    for work in [Work.prefill(tokens: 32), .prefill(tokens: 4, past: 20), .decode(contexts: [16, 80])] {
      let r = try #require(profiled.pace(device: "other", on: nano))
      #expect(r == .roofline(device: nano, calibration: calibration))
      let expected = layers.reduce(0) { $0 + roofline.time($1, on: nano, work: work, precision: .fp32).value }
      #expect(isClose(r.seconds(layers, work: work, precision: .fp32), expected))
      let p = try #require(profiled.pace(device: "p", on: nano))
      let measured = layers.reduce(0) {
        $0 + profiled.time($1, device: "p", on: nano, work: work, precision: .fp32).value
      }
      #expect(isClose(p.seconds(layers, work: work, precision: .fp32), measured))
    }
    let pace = DevicePace.profiled(profile: profile, scale: 0.25)
    #expect(try JSONDecoder().decode(DevicePace.self, from: JSONEncoder().encode(pace)) == pace)
    #expect(pace.problems().isEmpty && DevicePace.roofline(device: nano, calibration: calibration).problems().isEmpty)
    #expect(DevicePace.profiled(profile: profile, scale: -1).problems() == ["pace: scale must be positive"])
    var bad = nano
    bad.memoryBandwidth = .gigabytesPerSecond(0)
    #expect(
      DevicePace.roofline(device: bad, calibration: calibration).problems() == [
        "pace: memory_bandwidth must be positive and finite"
      ])
  }
}
