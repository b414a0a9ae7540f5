import DSL
import Experiments
import Foundation
import Testing

@Suite("Experiment DSL")
struct DSLTests {
  static func make(withServer: Bool, nxCount: Int) -> Experiment {
    Experiment("dsl-test", "a test") {
      Model(.llama2_13B, precision: .fp16)
      Device("agx", .agxOrin32GB).source()
      for i in 0..<nxCount {
        Device("nx\(i)", .orinNX16GB)
      }
      if withServer {
        Device("server", .rtx3090Server)
      } else {
        Device("nano", .orinNano8GB, count: 2)
      }
      Network(bandwidth: .mbit(100), latency: .ms(2)) {
        if withServer {
          Link("wan", from: ["agx"], to: ["server"], bandwidth: .mbit(10))
        }
      }
      Workload(requests: 8, prompt: .uniform(min: 16, max: 64), output: 96, arrival: .poisson(rate: 0.5))
      Algorithm("even")
      Algorithm("edgeshard-latency", label: "es")
      Sweep(.bandwidth(of: "wan"), [.mbit(1), .mbit(50)])
      Repetitions(3)
      Seed(11)
    }
  }

  @Test func ifAndForBuildTheRightDevices() {
    let a = Self.make(withServer: true, nxCount: 2).spec
    #expect(a.devices.map(\.name) == ["agx", "nx0", "nx1", "server"])
    #expect(a.network.overrides.map(\.name) == ["wan"])
    let b = Self.make(withServer: false, nxCount: 0).spec
    #expect(b.devices.map(\.name) == ["agx", "nano"])
    #expect(b.devices[1].count == 2)
    #expect(b.network.overrides.isEmpty)
    #expect(a.source == "agx")
    #expect(a.model.precision == .fp16)
    #expect(a.repetitions == 3 && a.seed == 11)
    #expect(a.algorithms.map(\.displayLabel) == ["even", "es"])
  }

  @Test func jsonRoundTripIsExact() throws {
    let spec = Self.make(withServer: true, nxCount: 1).spec
    let data = try JSONCoding.encoder.encode(spec)
    let back = try JSONCoding.decoder.decode(ExperimentSpec.self, from: data)
    #expect(back == spec)
    // And the JSON is stable (sorted keys): encoding twice gives the same bytes.
    #expect(try JSONCoding.encoder.encode(back) == data)
  }

  @Test(arguments: ExperimentCatalog.all.map(\.spec.name))
  func catalogExperimentsRoundTripAndValidate(name: String) throws {
    let spec = try #require(ExperimentCatalog.named(name)).spec
    let back = try JSONCoding.decoder.decode(ExperimentSpec.self, from: JSONCoding.encoder.encode(spec))
    #expect(back == spec)
    #expect(spec.problems().isEmpty, "\(spec.problems())")
    #expect(!spec.summary.isEmpty)
  }

  @Test func minimalJSONGetsDefaults() throws {
    let json =
      #"{"name": "tiny-json", "model": {"preset": "tiny"}, "devices": [{"name": "a", "preset": "jetson-orin-nano-8gb"}], "algorithms": [{"name": "even"}]}"#
    let spec = try JSONCoding.decoder.decode(ExperimentSpec.self, from: Data(json.utf8))
    #expect(spec.repetitions == 1 && spec.backend == .simulated)
    #expect(spec.network.link.bandwidth == .gbit(1))
    #expect(spec.workload.requests == 4)
    let resolved = try spec.resolve()
    #expect(resolved.source == "a")
  }

  @Test func quantitiesAcceptNumbersInBaseUnits() throws {
    let json = #"{"bandwidth": 10000000, "latency": 0.002, "loss": 0.01}"#
    let link = try JSONCoding.decoder.decode(LinkSpec.self, from: Data(json.utf8))
    #expect(link.bandwidth == .mbit(10))
    #expect(link.latency == .ms(2))
  }
}

@Suite("Sweeps")
struct SweepTests {
  @Test func cartesianProductInOrder() throws {
    var spec = DSLTests.make(withServer: true, nxCount: 1).spec
    spec.sweeps.append(SweepAxis(path: "workload.requests", values: [2, 4, 6], label: "requests"))
    let points = try spec.expandPoints()
    #expect(points.count == 6)
    #expect(
      points.map { $0.settings.map(\.value) } == [
        ["1Mbit/s", 2], ["1Mbit/s", 4], ["1Mbit/s", 6], ["50Mbit/s", 2], ["50Mbit/s", 4], ["50Mbit/s", 6],
      ])
    let wan = try #require(points[3].experiment.link(from: "agx", to: "server"))
    #expect(wan.spec.bandwidth == .mbit(50))
    #expect(points[5].experiment.spec.workload.requests == 6)
    let runs = try spec.expand()
    #expect(runs.count == 6 * 2 * 3)
    // Every algorithm and point of a repetition sees the same seed; repetitions differ.
    #expect(Set(runs.filter { $0.repetition == 0 }.map(\.seed)).count == 1)
    #expect(Set(runs.map(\.seed)).count == 3)
  }

  @Test func deviceCountSweepRenamesInstances() throws {
    let e = Experiment("count-sweep") {
      Model(.llama2_7B)
      Device("agx", .agxOrin32GB, count: 2)
      Algorithm("even")
      Sweep(.count(of: "agx"), [1, 3])
    }
    let points = try e.spec.expandPoints()
    #expect(points.map { $0.experiment.devices.map(\.name) } == [["agx"], ["agx0", "agx1", "agx2"]])
  }

  @Test func invalidSweepValueNamesTheSetting() throws {
    var spec = DSLTests.make(withServer: true, nxCount: 1).spec
    spec.sweeps = [SweepAxis(path: "workload.requests", values: [4, 0])]
    do {
      _ = try spec.expandPoints()
      Issue.record("accepted requests = 0")
    } catch {
      #expect(error.description.contains("workload.requests = 0"))
      #expect(error.description.contains("must be at least 1"))
    }
  }

  @Test func sweepOfAMissingOverrideIsNamed() {
    var spec = DSLTests.make(withServer: false, nxCount: 1).spec
    spec.sweeps = [SweepAxis(path: "network.overrides[wan].bandwidth", values: ["1Mbit/s"])]
    #expect(throws: SpecError.self) { try spec.expandPoints() }
  }
}
