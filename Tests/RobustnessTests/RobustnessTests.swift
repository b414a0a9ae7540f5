import Benchmarks
import DSL
import EdgeLabCore
import Engine
import Foundation
import Partitioning
import Results
import Runner
import Simulator
import Spec
import TestSupport
import Testing

/// A safetensors file from a header text and data bytes, with the header length given or computed.
func safetensors(_ header: String, data: Int = 24, length: UInt64? = nil) -> [UInt8] {
  var out: [UInt8] = []
  withUnsafeBytes(of: (length ?? UInt64(header.utf8.count)).littleEndian) { out += $0 }
  return out + Array(header.utf8) + [UInt8](repeating: 0, count: data)
}

@Suite("Checkpoints cannot crash the lab")
struct CheckpointRobustnessTests {
  /// The headers that used to trap the parser, each now a named error.
  @Test(arguments: [
    (safetensors("{}", length: UInt64.max), "the header claims 18446744073709551615 bytes"),
    (safetensors("{}", length: 1 << 63), "the header claims"),
    (
      safetensors(#"{"a":{"dtype":"F32","shape":[6],"data_offsets":[8000000000000000000,8000000000000000024]}}"#),
      "the data ends"
    ),
    (
      safetensors(#"{"a":{"dtype":"F32","shape":[6],"data_offsets":[0,9223372036854775807]}}"#),
      "increasing pair of non-negative integers"
    ),
    (
      safetensors(#"{"a":{"dtype":"F32","shape":[3037000500,3037000500],"data_offsets":[0,24]}}"#),
      "more elements than can be counted"
    ),
    (safetensors(#"{"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,24]}}"#), "needs more than"),
    (safetensors(#"{"a":{"dtype":"F32","shape":[-2,-3],"data_offsets":[0,24]}}"#), "non-negative integers"),
    (safetensors(#"{"a":{"dtype":"F32","shape":[6],"data_offsets":[0,1e30]}}"#), "increasing pair"),
    (safetensors(#"{"a":{"dtype":"F32","shape":[6],"data_offsets":[-8,24]}}"#), "increasing pair"),
    (safetensors(#"{"a":{"dtype":"F32","shape":[7],"data_offsets":[0,24]}}"#), "needs 28 bytes, the file gives 24"),
    (safetensors(#"{"a":{"dtype":"F32","shape":[6],"data_offsets":[0,240]}}"#), "the data ends at byte"),
  ])
  func hostileHeadersAreNamedErrors(bytes: [UInt8], expected: String) throws {
    #expect(throws: CheckpointError.self) { _ = try SafeTensors.checkHeader(bytes, path: "x.safetensors") }
    do { _ = try SafeTensors.checkHeader(bytes, path: "x.safetensors") } catch {
      #expect(error.description.contains(expected), "\(error)")
      #expect(error.description.hasPrefix("x.safetensors"))
    }
  }

  @Test func aValidHeaderIsRead() throws {
    let bytes = safetensors(#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"__metadata__":{"x":"y"}}"#)
    #expect(try SafeTensors.checkHeader(bytes, path: "ok") == 1)
  }

  /// Property: mutated headers (lengths, numbers, bytes, truncation, shapes, types) end in a result or a named
  /// error. `edgelab bench fuzz` runs 10,000 of them; this runs a sample.
  @Test func mutatedHeadersNeverTrap() {
    let report = Fuzz.safetensors(count: 1000, seed: 77)
    #expect(report.cases == 1000 && report.accepted + report.refused == 1000)
  }

  /// Values the engine cannot compute with are refused with the field, before any weight is read.
  @Test(arguments: [
    (#""rms_norm_eps": -1"#, "rms_norm_eps must be a positive number"),
    (#""rope_theta": 0"#, "rope_theta must be a positive number"),
    (
      #""rope_scaling": {"rope_type": "llama3", "factor": 0, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 64}"#,
      "rope_scaling.factor must be a positive number"
    ),
    (
      #""rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 4, "high_freq_factor": 4, "original_max_position_embeddings": 64}"#,
      "must be above low_freq_factor"
    ),
    (#""head_dim": 0"#, "head_dim must be in"),
    (#""max_position_embeddings": 100000000"#, "above the supported"),
  ])
  func hostileConfigsAreRefused(field: String, expected: String) throws {
    let dir = temporaryDirectory("edgelab-config")
    var config =
      #"{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 256, "#
    config += field + "}"
    try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
    #expect {
      _ = try Checkpoint(directory: dir)
    } throws: { error in
      "\(error)".contains(expected) && "\(error)".contains("config.json")
    }
  }

  @Test func shardsOutsideTheDirectoryAreRefused() throws {
    let dir = temporaryDirectory("edgelab-shards")
    try
      #"{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 256}"#
      .write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
    try #"{"weight_map": {"model.embed_tokens.weight": "../../etc/passwd"}}"#
      .write(toFile: dir + "/model.safetensors.index.json", atomically: true, encoding: .utf8)
    #expect {
      _ = try Checkpoint(directory: dir)
    } throws: { "\($0)".contains("not a file of this directory") }
  }
}

@Suite("Specs cannot crash the lab")
struct SpecRobustnessTests {
  static func json(_ workload: String, extra: String = "") -> Data {
    Data(
      #"{"name": "x", "model": {"preset": "tiny"}, "devices": [{"name": "d", "preset": "jetson-orin-nano-8gb", "count": 2}], "algorithms": [{"name": "even"}], "workload": {\#(workload)}\#(extra)}"#
        .utf8)
  }

  /// Each refused with the field and what to change, before anything is materialised.
  @Test(arguments: [
    (
      #""requests": 1000000000, "prompt_tokens": 4, "output_tokens": 3"#, "",
      "workload.requests: 1000000000 is more than the 1000000"
    ),
    (
      #""requests": 1e30, "prompt_tokens": 4, "output_tokens": 3"#, "",
      "field 'workload.requests': 1e+30 is not a whole number"
    ),
    (
      #""requests": 2, "prompt_tokens": 4, "output_tokens": 3"#, #", "seed": -1"#,
      "field 'seed': -1 is not a whole number"
    ),
    (
      #""requests": 2, "prompt_tokens": 4, "output_tokens": 3"#, #", "repetitions": 1000000000"#,
      "repetitions: 1000000000 is more than"
    ),
    (#""requests": 200000, "prompt_tokens": 1000, "output_tokens": 3"#, "", "prompt tokens a run may have"),
    (
      #""requests": 2, "prompt_tokens": 4, "output_tokens": 3, "arrival": {"kind": "closed_loop", "think": "nan s"}"#,
      "", "workload.arrival.think"
    ),
    (
      #""requests": 2, "prompt_tokens": 4, "output_tokens": 3"#,
      #", "network": {"link": {"bandwidth": "1Gbit/s", "latency": "inf ms"}}"#, "network.link.latency"
    ),
    (
      #""requests": 2, "prompt_tokens": 4, "output_tokens": 3"#,
      #", "sweeps": [{"path": "workload.requests", "values": [\#((1...100).map(String.init).joined(separator: ","))]}, {"path": "seed", "values": [\#((1...100).map(String.init).joined(separator: ","))]}, {"path": "repetitions", "values": [\#((1...100).map(String.init).joined(separator: ","))]}]"#,
      "100 × 100 × 100 points, more than the 10000"
    ),
  ])
  func hostileSpecsAreRefusedByName(workload: String, extra: String, expected: String) {
    #expect {
      let spec = try ExperimentSpec.load(json: Self.json(workload, extra: extra), source: "s.json")
      _ = try ExperimentRunner.expand(spec)
    } throws: { error in
      "\(error)".contains(expected)
    }
  }

  /// A million devices are refused before a million names exist.
  @Test func aMillionDevicesAreRefusedByCount() {
    var spec = Experiment("many") {
      Model(.tiny)
      Device("d", .orinNano8GB, count: 2).source()
      Algorithm("even")
    }.spec
    spec.devices[0].count = 1_000_000
    #expect(spec.problems().contains { $0.message.contains("1000000 device instances, more than the 1024") })
  }

  /// Values a JSON file cannot hold but a Swift experiment can: NaN and infinities.
  @Test func nonFiniteNumbersAreRefused() {
    var spec = Experiment("nan") {
      Model(.tiny)
      Device("d", .orinNano8GB, count: 2).source()
      Network(bandwidth: .mbit(100), latency: Seconds(.nan), jitter: Seconds(.infinity))
      Workload(requests: 2, prompt: 4, output: 2, arrival: .closedLoop(concurrency: 1, think: Seconds(.infinity)))
      Algorithm("even")
    }.spec
    spec.devices[0].usableMemory = Bytes(.nan)
    let fields = Set(spec.problems().map(\.field))
    #expect(
      fields.isSuperset(of: [
        "network.link.latency", "network.link.jitter", "workload.arrival.think", "devices[d].usable_memory",
      ]), "\(fields)")
  }

  @Test func partitionProblemsWithImpossibleNumbersAreRefused() {
    let p = PartitionProblem(
      objective: .latency, source: "a",
      devices: [.init(name: "a", memoryBytes: 10, storageBytesPerS: 0)],
      layers: [
        .init(name: "l", memoryBytes: 1, outputBytes: 1, timeS: ["a": 1], prefillTimeS: ["a": -1], weightBytes: -5)
      ],
      links: [])
    let problems = p.problems().joined(separator: "\n")
    #expect(problems.contains("storage_bytes_per_s must be a finite rate > 0"))
    #expect(problems.contains("prefill_time_s[a]: must be a finite time ≥ 0"))
    #expect(problems.contains("weight_bytes must be a finite number"))
  }

  /// Property: mutated specs from the catalog (hostile numbers and strings, deleted keys, long sweeps, huge
  /// counts) end in expanded runs or a named error. `edgelab bench fuzz` runs 10,000.
  @Test func mutatedSpecsNeverTrap() {
    let report = Fuzz.specs(count: 300, seed: 91)
    #expect(report.cases == 300 && report.accepted + report.refused == 300)
  }
}

@Suite("Results files cannot be lost", .serialized)
struct ResultsRobustnessTests {
  @Test func aSecondWriterIsRefusedWithTheFirstOnesPid() throws {
    let path = temporaryDirectory() + "/r.h5"
    let lock = try ResultsStore.lock(path)
    #expect {
      _ = try ResultsStore.lock(path)
    } throws: { error in
      "\(error)".contains("another run is writing this file (pid \(getpid()))")
    }
    withExtendedLifetime(lock) {}
  }

  @Test func temporaryFilesOfAKilledWriterAreSweptByTheNext() throws {
    let dir = temporaryDirectory()
    _ = FileManager.default.createFile(atPath: dir + "/.r.h5.tmp-99999", contents: Data([1, 2, 3]))
    _ = FileManager.default.createFile(atPath: dir + "/.other.h5.tmp-99999", contents: Data([1]))
    let lock = try ResultsStore.lock(dir + "/r.h5")
    #expect(!FileManager.default.fileExists(atPath: dir + "/.r.h5.tmp-99999"))
    #expect(
      FileManager.default.fileExists(atPath: dir + "/.other.h5.tmp-99999"), "another file's temporary file is not ours")
    withExtendedLifetime(lock) {}
  }

  @Test func aRunIntoAFileBeingWrittenIsRefused() throws {
    let path = temporaryDirectory() + "/r.h5"
    let lock = try ResultsStore.lock(path)
    let spec = Experiment("locked") {
      Model(.tiny)
      Device("d", .orinNano8GB).source()
      Workload(requests: 1, prompt: 2, output: 2)
      Algorithm("even")
    }.spec
    #expect {
      _ = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
        spec, options: RunOptions(outputPath: path))
    } throws: { "\($0)".contains("another run is writing this file") }
    #expect(!FileManager.default.fileExists(atPath: path))
    withExtendedLifetime(lock) {}
  }

  @Test func resumingFromAnUnreadableFileIsBadInput() throws {
    let path = temporaryDirectory() + "/r.h5"
    try "not hdf5".write(toFile: path, atomically: true, encoding: .utf8)
    let spec = Experiment("unreadable") {
      Model(.tiny)
      Device("d", .orinNano8GB).source()
      Workload(requests: 1, prompt: 2, output: 2)
      Algorithm("even")
    }.spec
    #expect(throws: RunnerError.self) {
      _ = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
        spec, options: RunOptions(outputPath: path, resume: true))
    }
  }

  @Test(arguments: ["../../somewhere", "..", ".", "", "a/b", "ok-name_1.2"])
  func exportDirectoriesFromFileAttributesStayOneName(name: String) {
    let dir = Exporter.safeDirectoryName(name)
    #expect(!dir.contains("/") && dir != "." && dir != ".." && !dir.isEmpty)
    if name == "ok-name_1.2" { #expect(dir == name) }
  }

  /// Property: a results file damaged anywhere (bytes changed, or cut short) is refused with a named error, never
  /// handed to libhdf5 to crash on.
  @Test func damagedResultsFilesAreRefusedByName() throws {
    let dir = temporaryDirectory()
    let spec = Experiment("damaged") {
      Model(.tiny)
      Device("d", .orinNano8GB).source()
      Workload(requests: 2, prompt: 2, output: 2)
      Algorithm("even")
    }.spec
    _ = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
      spec, options: RunOptions(outputPath: dir + "/r.h5"))
    let original = try Data(contentsOf: URL(fileURLWithPath: dir + "/r.h5"))
    var g = SeededRandom(seed: 3)
    var refused = 0
    for i in 0..<200 {
      var bytes = [UInt8](original)
      for _ in 0..<(1 + Int(g.next() % 8)) { bytes[Int(g.next() % UInt64(bytes.count))] ^= UInt8(1 + g.next() % 255) }
      if i % 5 == 0 { bytes = Array(bytes.prefix(Int(g.next() % UInt64(bytes.count)))) }
      let path = dir + "/m\(i).h5"
      try Data(bytes).write(to: URL(fileURLWithPath: path))
      do { _ = try ResultsStore.read(path) } catch let e as ResultsError {
        #expect(e.description.hasPrefix(path))
        refused += 1
      }
    }
    #expect(refused > 150, "\(refused) of 200 damaged files refused")
  }

  @Test func hugeTimesPrintTheirExponent() {
    #expect(Seconds(4e300).description.contains("e300"), "\(Seconds(4e300))")
    #expect(Seconds(3.99e300).description.contains("e300"), "\(Seconds(3.99e300))")
  }
}

@Suite("Provenance keeps secrets out of results files")
struct ProvenanceTests {
  func git(_ args: [String], in dir: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["git", "-c", "user.email=t@t", "-c", "user.name=t"] + args
    p.currentDirectoryURL = URL(fileURLWithPath: dir)
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try? p.run()
    p.waitUntilExit()
  }

  @Test func untrackedFilesAreNamedNotCopiedAndSecretsNever() throws {
    let dir = temporaryDirectory("edgelab-git")
    git(["init", "-q"], in: dir)
    try "tracked\n".write(toFile: dir + "/code.swift", atomically: true, encoding: .utf8)
    try "old key\n".write(toFile: dir + "/server.key", atomically: true, encoding: .utf8)
    git(["add", "."], in: dir)
    git(["commit", "-q", "-m", "x"], in: dir)
    try "tracked, changed\n".write(toFile: dir + "/code.swift", atomically: true, encoding: .utf8)
    try "NEW-PRIVATE-KEY\n".write(toFile: dir + "/server.key", atomically: true, encoding: .utf8)
    try "API_TOKEN=hunter2\n".write(toFile: dir + "/.env", atomically: true, encoding: .utf8)
    try "my notes\n".write(toFile: dir + "/notes.txt", atomically: true, encoding: .utf8)

    let plain = Provenance.git(directory: dir)
    #expect(plain.dirty)
    #expect(plain.diff.contains("+tracked, changed"))
    #expect(plain.diff.contains("new file (untracked): notes.txt, 9 bytes"))
    #expect(plain.diff.contains("changed file server.key: looks secret"))
    for secret in ["hunter2", "NEW-PRIVATE-KEY", "my notes"] {
      #expect(!plain.diff.contains(secret), "\(secret) copied")
    }

    let withText = Provenance.git(untrackedText: true, directory: dir)
    #expect(withText.diff.contains("+my notes"))
    #expect(!withText.diff.contains("hunter2") && !withText.diff.contains("NEW-PRIVATE-KEY"))
  }
}
