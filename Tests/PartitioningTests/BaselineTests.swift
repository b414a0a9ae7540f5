import EdgeLabCore
import Foundation
import Partitioning
import Pipeline
import TestSupport
import Testing

/// Small problems written out by hand.
enum Problems {
  /// `n` identical layers; devices named d0… with the given memories (bytes) and per-layer times (s).
  static func uniform(
    layers n: Int, memory: [Double], time: [Double], layerBytes: Double = 1, outputBytes: Double = 100,
    bandwidth: Double = 1000, latency: Double = 0.001, objective: Objective = .latency,
    returnToSource: Bool = false
  ) -> PartitionProblem {
    let names = memory.indices.map { "d\($0)" }
    return PartitionProblem(
      objective: objective, source: "d0", returnToSource: returnToSource,
      devices: names.enumerated().map { .init(name: $1, memoryBytes: memory[$0]) },
      layers: (0..<n).map { i in
        .init(
          name: "L\(i)", memoryBytes: layerBytes, outputBytes: outputBytes,
          timeS: Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, time[$0]) }))
      },
      links: names.flatMap { a in
        names.filter { $0 != a }.map { .init(from: a, to: $0, bandwidthBytesPerS: bandwidth, latencyS: latency) }
      })
  }
}

@Suite("Even split and Edge-Solo")
struct BaselineTests {
  @Test(arguments: [(10, 3, [4, 3, 3]), (7, 4, [2, 2, 2, 1]), (2, 3, [1, 1]), (9, 3, [3, 3, 3])])
  func evenSplitSizes(layers: Int, devices: Int, sizes: [Int]) throws {
    let p = Problems.uniform(
      layers: layers, memory: Array(repeating: 100, count: devices), time: Array(repeating: 0.01, count: devices))
    let plan = try Partitioners.solve(p, algorithm: "even")
    #expect(plan.stages.map { $0.endLayer - $0.firstLayer } == sizes)
    #expect(plan.stages.map(\.device) == Array(["d0", "d1", "d2", "d3"].prefix(sizes.count)))
    #expect(plan.stages.first?.firstLayer == 0 && plan.stages.last?.endLayer == layers)
  }

  @Test func evenSplitStartsAtTheSource() throws {
    var p = Problems.uniform(layers: 6, memory: [10, 10, 10], time: [0.01, 0.01, 0.01])
    p.source = "d2"
    let plan = try Partitioners.solve(p, algorithm: "even")
    #expect(plan.stages.map(\.device) == ["d2", "d0", "d1"])
  }

  @Test func evenSplitValueFollowsTheSemantics() throws {
    // 6 layers, 2 per device at 10 ms; transfers 100 B at 1000 B/s + 1 ms = 101 ms each.
    let p = Problems.uniform(layers: 6, memory: [10, 10, 10], time: [0.01, 0.01, 0.01])
    let plan = try Partitioners.solve(p, algorithm: "even")
    #expect(isClose(plan.valueSeconds, 6 * 0.01 + 2 * 0.101))
    #expect(plan.explanation == "3 stages; bottleneck: link d0→d1, 39% of step time")
    var q = p
    q.objective = .throughput
    #expect(isClose(try Partitioners.solve(q, algorithm: "even").valueSeconds, 0.101))
  }

  @Test func evenSplitThatDoesNotFitIsInfeasible() {
    let p = Problems.uniform(layers: 10, memory: [4e9, 3e9, 4e9], time: [0.01, 0.01, 0.01], layerBytes: 1e9)
    var q = p
    q.devices[0].memoryBytes = 3.5e9
    do {
      _ = try Partitioners.solve(q, algorithm: "even")
      Issue.record("the even split accepted an overfull device")
    } catch {
      #expect(error.description == "infeasible: the even split: stage 0 needs 4.0 GB on d0, which offers 3.5 GB")
    }
  }

  @Test func edgeSoloPutsEverythingOnTheSource() throws {
    let p = Problems.uniform(layers: 5, memory: [10, 10], time: [0.02, 0.01])
    let plan = try Partitioners.solve(p, algorithm: "edge-solo")
    #expect(plan.stages == [Plan.Stage(device: "d0", firstLayer: 0, endLayer: 5)])
    #expect(isClose(plan.valueSeconds, 0.1))
    var q = p
    q.devices[0].memoryBytes = 3
    #expect(throws: PartitionError.infeasible("the model needs 5.0 B; the source d0 offers 3.0 B")) {
      try Partitioners.solve(q, algorithm: "edge-solo")
    }
  }

  @Test func unknownAlgorithmAndParametersAreNamed() {
    let p = Problems.uniform(layers: 2, memory: [10], time: [0.01])
    #expect(throws: PartitionError.unknownAlgorithm("magic", known: Partitioners.names)) {
      try Partitioners.solve(p, algorithm: "magic")
    }
    do {
      _ = try Partitioners.solve(p, algorithm: "cloud-edge-opt", parameters: ["clod": "d1"])
      Issue.record("accepted a misspelt parameter")
    } catch {
      #expect(error == .unknownParameters(algorithm: "cloud-edge-opt", ["clod"], known: ["cloud"]))
    }
  }

  @Test func malformedProblemsAreRejected() {
    var p = Problems.uniform(layers: 2, memory: [10, 10], time: [0.01, 0.01])
    p.source = "d9"
    p.layers[1].timeS["ghost"] = 1
    p.links[0].bandwidthBytesPerS = 0
    do {
      _ = try Partitioners.solve(p, algorithm: "even")
      Issue.record("solved a malformed problem")
    } catch {
      let d = error.description
      #expect(d.contains("source: 'd9' is not one of the devices"))
      #expect(d.contains("'ghost' is not a device"))
      #expect(d.contains("bandwidth_bytes_per_s must be a finite rate > 0"))
    }
  }

  @Test func problemJSONHasTheDocumentedKeys() throws {
    let json = """
      {"objective": "latency", "source": "d0", "return_to_source": false,
       "devices": [{"name": "d0", "memory_bytes": 8000000000}, {"name": "d1", "memory_bytes": 8000000000}],
       "layers": [{"name": "L0", "memory_bytes": 500000000, "output_bytes": 16384, "time_s": {"d0": 0.0012, "d1": 0.0031}},
                  {"name": "L1", "memory_bytes": 500000000, "output_bytes": 16384, "time_s": {"d0": 0.0012, "d1": 0.0031}}],
       "links": [{"from": "d0", "to": "d1", "bandwidth_bytes_per_s": 12500000, "latency_s": 0.002}]}
      """
    let p = try JSONCoding.decoder.decode(
      PartitionProblem.self, from: Array(json.utf8).withUnsafeBufferPointer { Data($0) })
    #expect(p.layers[1].timeS["d1"] == 0.0031 && p.links[0].latencyS == 0.002)
    let plan = try Partitioners.solve(p, algorithm: "even")
    let out = try JSONCoding.compactString(plan)
    #expect(
      out.contains(
        #""stages":[{"device":"d0","end_layer":1,"first_layer":0},{"device":"d1","end_layer":2,"first_layer":1}]"#))
    #expect(
      out.contains(#""value_s":"#) && out.contains(#""algorithm":"even""#) && out.contains(#""objective":"latency""#))
  }
}
