import Catalog
import CostModel
import DSL
import EdgeLabCore
import Foundation
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
    var spec = Experiment("share") {
      Model(.small)
      Device("host", .orinNano8GB, count: 2)
      Workload(requests: 1, prompt: 8, output: 2)
      Algorithm("even")
      Calibrate(profile: Self.shipped, scaling: .host)
    }.spec
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
}
