import BuildInfo
import Foundation
import TestSupport
import Testing

/// Runs the built `edgelab` binary (next to the test bundle, or $EDGELAB_BIN).
struct CLI {
  static var binary: String { Binary.path }

  struct Result {
    var status: Int32
    var stdout: String
    var stderr: String
  }

  static func run(_ args: [String], directory: String? = nil, environment: [String: String] = [:]) throws -> Result {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: binary)
    p.arguments = args
    if !environment.isEmpty {
      p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    }
    if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Result(
      status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
      stderr: String(decoding: e, as: UTF8.self))
  }
}

extension CLI.Result {
  /// The `--json-errors` object: the last line of standard error.
  var failure: [String: Any]? {
    guard let line = stderr.split(separator: "\n").last else { return nil }
    return (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
  }
  var failureDetails: [String: Any] { failure?["details"] as? [String: Any] ?? [:] }
}

@Suite("CLI exit codes")
struct CLITests {
  @Test func binaryExists() {
    #expect(
      FileManager.default.isExecutableFile(atPath: CLI.binary), "build the CLI first (swift build): \(CLI.binary)")
  }

  @Test func listAndDryRunSucceed() throws {
    let list = try CLI.run(["list"])
    #expect(list.status == 0 && list.stdout.contains("quickstart"))
    let dry = try CLI.run(["run", "quickstart", "--dry-run"])
    #expect(dry.status == 0 && dry.stdout.contains("quickstart: 50 runs on the simulated backend"))
  }

  @Test func unknownExperimentIsABadInput() throws {
    let r = try CLI.run(["run", "no-such-experiment"])
    #expect(r.status == 65)
    #expect(r.stderr.contains("no experiment named 'no-such-experiment'"))
  }

  @Test func specPrintsJSONThatRunAccepts() throws {
    let dir = temporaryDirectory()
    let spec = try CLI.run(["spec", "quickstart"])
    #expect(spec.status == 0)
    try spec.stdout.write(toFile: dir + "/q.json", atomically: true, encoding: .utf8)
    let dry = try CLI.run(["run", "--spec", dir + "/q.json", "--dry-run"])
    #expect(dry.status == 0 && dry.stdout.contains("50 runs"))
  }

  @Test func badSpecFilesNameTheField() throws {
    let dir = temporaryDirectory()
    try #"{"name": "x", "devices": []}"#.write(toFile: dir + "/missing.json", atomically: true, encoding: .utf8)
    let missing = try CLI.run(["run", "--spec", dir + "/missing.json"])
    #expect(missing.status == 65 && missing.stderr.contains("missing field 'model'"))
    let invalid =
      #"{"name": "x", "model": {"preset": "tiny"}, "devices": [{"name": "a", "preset": "jetson-orin-nano-8gb"}], "algorithms": [{"name": "even"}], "workload": {"requests": 0}}"#
    try invalid.write(toFile: dir + "/invalid.json", atomically: true, encoding: .utf8)
    let r = try CLI.run(["run", "--spec", dir + "/invalid.json", "--out", dir + "/x.h5"])
    #expect(r.status == 65 && r.stderr.contains("workload.requests: must be at least 1"))
    #expect(!FileManager.default.fileExists(atPath: dir + "/x.h5"))
  }

  /// Settings the decoder would ignore are refused before anything runs: misspelt keys, sweeps over settings
  /// that do not exist, parameters an algorithm does not take.
  @Test func misspeltSettingsAreRefused() throws {
    let dir = temporaryDirectory()
    let base =
      #""name": "x", "model": {"preset": "tiny"}, "devices": [{"name": "a", "preset": "jetson-orin-nano-8gb", "count": 2}]"#
    let cases: [(String, String)] = [
      (
        #"{\#(base), "algorithms": [{"name": "even"}], "workload": {"arival": {"kind": "closed_loop"}}}"#,
        "unknown field 'workload.arival'"
      ),
      (
        #"{\#(base), "algorithms": [{"name": "even"}], "sweeps": [{"path": "network.link.bandwdith", "values": ["1Mbit/s"]}]}"#,
        "the experiment has no setting 'network.link.bandwdith'; settings under 'network.link': bandwidth"
      ),
      (
        #"{\#(base), "algorithms": [{"name": "lime", "parameters": {"bogus": 1}}]}"#,
        "algorithm 'lime': unknown parameter 'bogus'"
      ),
    ]
    for (i, (json, message)) in cases.enumerated() {
      try json.write(toFile: dir + "/s\(i).json", atomically: true, encoding: .utf8)
      let r = try CLI.run(["run", "--spec", dir + "/s\(i).json", "--dry-run"])
      #expect(r.status == 65 && r.stderr.contains(message), "\(json): \(r.status) \(r.stderr)")
    }
  }

  /// What the check must not refuse: false flags and null sweep values (encoders leave them out), and a
  /// Hugging Face config pasted whole into model.config.
  @Test func explicitDefaultsAndPastedConfigsAreAccepted() throws {
    let dir = temporaryDirectory()
    let printed = try CLI.run(["spec", "edgeshard-7b"])
    var spec = try #require(try JSONSerialization.jsonObject(with: Data(printed.stdout.utf8)) as? [String: Any])
    var network = try #require(spec["network"] as? [String: Any])
    var overrides = try #require(network["overrides"] as? [[String: Any]])
    overrides[0]["one_way"] = false
    overrides[0]["disconnected"] = false
    network["overrides"] = overrides
    spec["network"] = network
    spec["sweeps"] = [
      ["path": "network.overrides[wan].disconnected", "values": [false, true]],
      ["path": "execution.micro_batches", "values": [NSNull(), 2]],
    ]
    spec["model"] = [
      "name": "pasted",
      "config": [
        "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "intermediate_size": 128, "vocab_size": 256, "rope_theta": 10000.0, "tie_word_embeddings": true,
        "max_position_embeddings": 128, "torch_dtype": "float32", "architectures": ["LlamaForCausalLM"],
      ] as [String: Any],
    ]
    try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: dir + "/v.json"))
    let r = try CLI.run(["run", "--spec", dir + "/v.json", "--dry-run"])
    #expect(r.status == 0, "\(r.stderr)")
  }

  @Test func generateAndBenchCheckTheirArguments() throws {
    let one = try CLI.run([
      "generate", "--model", "tiny", "--prompt-tokens", "1,2,3", "--max-new-tokens", "1", "--json",
    ])
    #expect(one.status == 0, "\(one.stderr)")
    #expect(
      one.stdout.hasPrefix(#"{"tokens": ["#) && one.stdout.contains(#""decode_tokens_per_s": null}"#), "\(one.stdout)")
    let three = try CLI.run([
      "generate", "--model", "tiny", "--prompt-tokens", "1,2,3", "--max-new-tokens", "3", "--json",
    ])
    let object = try JSONSerialization.jsonObject(with: Data(three.stdout.utf8)) as? [String: Any]
    #expect(
      (object?["tokens"] as? [Int])?.count == 3 && object?["prefill_s"] is Double
        && object?["decode_tokens_per_s"] is Double)
    for args in [["--top-p", "2"], ["--temperature=-1"], ["--threads", "0"]] {
      let r = try CLI.run(["generate", "--model", "tiny", "--prompt-tokens", "1", "--max-new-tokens", "2"] + args)
      #expect(r.status == 64, "\(args): \(r.status) \(r.stderr)")
    }
    let dump = try CLI.run([
      "generate", "--model", "tiny", "--prompt-tokens", "1", "--max-new-tokens", "2", "--dump-logits",
      "/nonexistent/x.f32",
    ])
    #expect(
      dump.status == 74 && dump.stderr.contains("cannot write --dump-logits file '/nonexistent/x.f32'"),
      "\(dump.stderr)")
    for args in [["--prompt", "0"], ["--new", "1"], ["--repetitions", "0"]] {
      let r = try CLI.run(["bench", "engine", "--model", "tiny"] + args)
      #expect(r.status == 64, "\(args): \(r.status) \(r.stderr)")
    }
  }

  /// A checkpoint alone is enough: its config.json gives the shapes; a preset that disagrees is refused before
  /// any worker starts.
  @Test func checkpointSpecsUseTheCheckpointsShapes() throws {
    let dir = temporaryDirectory()
    let checkpoint = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../EngineTests/Fixtures/f16-weights-sharded").standardized.path
    func spec(_ model: String) -> String {
      #"{"name": "ck", "model": \#(model), "devices": [{"name": "a", "preset": "jetson-orin-nano-8gb", "count": 2}], "algorithms": [{"name": "even"}], "workload": {"requests": 2, "prompt_tokens": 4, "output_tokens": 3}, "backend": "loopback", "emulation": {"mode": "none"}}"#
    }
    try spec(#"{"checkpoint": "\#(checkpoint)"}"#).write(toFile: dir + "/own.json", atomically: true, encoding: .utf8)
    let own = try CLI.run(["run", "--spec", dir + "/own.json", "--out", dir + "/own.h5", "--quiet"])
    #expect(own.status == 0, "\(own.stderr)")
    try spec(#"{"checkpoint": "\#(checkpoint)", "preset": "tiny"}"#).write(
      toFile: dir + "/tiny.json", atomically: true, encoding: .utf8)
    // Refused before anything ran: exit 65, and the results file at --out stays as it was.
    let tiny = try CLI.run(["run", "--spec", dir + "/tiny.json", "--out", dir + "/own.h5", "--quiet", "--json-errors"])
    #expect(tiny.status == 65 && tiny.failure?["code"] as? String == "setting_refused", "\(tiny.stderr)")
    #expect(tiny.failureDetails["field"] as? String == "model.checkpoint", "\(tiny.stderr)")
    #expect(!tiny.stderr.contains("--resume"))
    #expect(!FileManager.default.fileExists(atPath: dir + "/archive"))
    let show = try CLI.run(["show", dir + "/own.h5"])
    #expect(show.stdout.contains("experiment ck") && show.stdout.contains("1/1 runs\n"), "\(show.stdout)")
  }

  @Test func runShowAndExport() throws {
    let dir = temporaryDirectory()
    let spec =
      #"{"name": "cli-run", "model": {"preset": "tiny"}, "devices": [{"name": "a", "preset": "jetson-orin-nano-8gb", "count": 2}], "algorithms": [{"name": "even"}], "workload": {"requests": 2, "prompt_tokens": 4, "output_tokens": 4}}"#
    try spec.write(toFile: dir + "/s.json", atomically: true, encoding: .utf8)
    let run = try CLI.run(["run", "--spec", dir + "/s.json", "--out", dir + "/r.h5", "--quiet"])
    #expect(run.status == 0, "\(run.stderr)")
    let show = try CLI.run(["show", dir + "/r.h5"])
    #expect(show.status == 0 && show.stdout.contains("experiment cli-run") && show.stdout.contains("complete"))
    let export = try CLI.run(["export", dir + "/r.h5", "--dir", dir + "/tsv"])
    #expect(export.status == 0 && FileManager.default.fileExists(atPath: dir + "/tsv/even.tsv"))
  }

  @Test func showRejectsNonResults() throws {
    let r = try CLI.run(["show", "/etc/hostname"])
    #expect(r.status == 66, "\(r.stderr)")
  }

  /// `--json-errors`: one object a sweep driver reads instead of English, and the exit code of its class.
  @Test func jsonErrorsForABadSpec() throws {
    let dir = temporaryDirectory()
    let invalid =
      #"{"name": "x", "model": {"preset": "tiny"}, "devices": [{"name": "a", "preset": "jetson-orin-nano-8gb"}], "algorithms": [{"name": "even"}], "workload": {"requests": 0}}"#
    try invalid.write(toFile: dir + "/invalid.json", atomically: true, encoding: .utf8)
    let r = try CLI.run(["run", "--spec", dir + "/invalid.json", "--out", dir + "/x.h5", "--json-errors"])
    #expect(r.status == 65)
    #expect(r.failure?["class"] as? String == "spec_refused" && r.failure?["code"] as? String == "spec_invalid")
    #expect(r.failure?["exit_code"] as? Int == 65)
    let issues = r.failureDetails["issues"] as? [[String: Any]]
    #expect(issues?.map { $0["field"] as? String } == ["workload.requests"], "\(r.stderr)")
    let unknown = try CLI.run(["run", "no-such-experiment", "--json-errors"])
    #expect(unknown.status == 65 && unknown.failure?["code"] as? String == "no_such_experiment")
    #expect(unknown.failureDetails["name"] as? String == "no-such-experiment")
  }

  @Test func jsonErrorsForACorruptCheckpoint() throws {
    let dir = temporaryDirectory()
    try FileManager.default.createDirectory(atPath: dir + "/ck", withIntermediateDirectories: true)
    try "{\"hidden_size\": ".write(toFile: dir + "/ck/config.json", atomically: true, encoding: .utf8)
    let spec =
      #"{"name": "ck", "model": {"checkpoint": "\#(dir)/ck"}, "devices": [{"name": "a", "preset": "jetson-orin-nano-8gb"}], "algorithms": [{"name": "even"}], "workload": {"requests": 1, "prompt_tokens": 2, "output_tokens": 2}, "backend": "loopback", "emulation": {"mode": "none"}}"#
    try spec.write(toFile: dir + "/s.json", atomically: true, encoding: .utf8)
    let r = try CLI.run(["run", "--spec", dir + "/s.json", "--out", dir + "/x.h5", "--json-errors"])
    #expect(r.status == 66, "\(r.stderr)")
    #expect(r.failure?["class"] as? String == "input_corrupt", "\(r.stderr)")
    #expect((r.failure?["code"] as? String)?.hasPrefix("checkpoint_") == true, "\(r.stderr)")
    #expect(r.failureDetails["file"] as? String == dir + "/ck/config.json", "\(r.stderr)")
    #expect(!FileManager.default.fileExists(atPath: dir + "/x.h5"))
  }

  /// A worker that dies at its first micro-batch (the failpoint ends it as a board losing power would): the run stops
  /// naming it, what finished is saved, and the class says a device failed.
  @Test func jsonErrorsForADeadWorker() throws {
    let dir = temporaryDirectory()
    let spec =
      #"{"name": "dead", "model": {"preset": "tiny"}, "devices": [{"name": "d", "preset": "jetson-orin-nano-8gb", "count": 2}], "algorithms": [{"name": "even"}], "workload": {"requests": 2, "prompt_tokens": 3, "output_tokens": 3}, "backend": "loopback", "emulation": {"mode": "none"}}"#
    try spec.write(toFile: dir + "/s.json", atomically: true, encoding: .utf8)
    let r = try CLI.run(
      ["run", "--spec", dir + "/s.json", "--out", dir + "/x.h5", "--quiet", "--json-errors"],
      environment: ["EDGELAB_FAILPOINT": "worker-exit-on-compute:d1"])
    #expect(r.status == 69, "\(r.stderr)")
    #expect(r.failure?["class"] as? String == "device_failed", "\(r.stderr)")
    #expect((r.failure?["code"] as? String)?.hasPrefix("worker_") == true, "\(r.stderr)")
    #expect(r.failureDetails["device"] as? String == "d1", "\(r.stderr)")
    #expect(r.failureDetails["stages"] as? [Int] == [1], "\(r.stderr)")
  }

  @Test func algorithmsMarksTheUsersOwn() throws {
    let r = try CLI.run(["algorithms"])
    let rows = r.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
    #expect(rows.contains { $0.first == "fastest-first" && $0.dropFirst().first == "user" }, "\(r.stdout)")
    #expect(rows.contains { $0.first == "edgeshard-latency" && $0.dropFirst().first == "lab" }, "\(r.stdout)")
  }

  /// `generate --speculate` prints the tokens plain greedy decoding prints, and refuses sampling.
  @Test func speculativeGenerationGivesTheGreedyTokens() throws {
    let args = ["generate", "--model", "tiny", "--prompt-tokens", "5,17,3,99,42,5,17,3", "--max-new-tokens", "12"]
    let plain = try CLI.run(args)
    #expect(plain.status == 0, "\(plain.stderr)")
    for draft in ["lookup", "tiny"] {
      let spec = try CLI.run(args + ["--speculate", "4", "--draft", draft])
      #expect(spec.status == 0 && spec.stdout == plain.stdout, "\(draft): \(spec.stdout) \(spec.stderr)")
    }
    #expect(try CLI.run(args + ["--speculate", "4", "--temperature", "0.7"]).status == 64)
    #expect(try CLI.run(args + ["--speculate", "4", "--draft", "small"]).status == 65)
  }

  /// The command line's own exits go through ArgumentParser: help is a success, a bad option is usage (64).
  @Test func helpAndUsageKeepTheirExits() throws {
    let help = try CLI.run(["--help"])
    #expect(help.status == 0 && help.stdout.contains("OVERVIEW"), "\(help.stderr)")
    let sub = try CLI.run(["help", "run"])
    #expect(sub.status == 0 && sub.stdout.contains("--json-errors"), "\(sub.stderr)")
    let usage = try CLI.run(["run", "--bogus", "--json-errors"])
    #expect(usage.status == 64)
  }

  @Test func versionIsTheBuildIdentity() throws {
    let r = try CLI.run(["--version"])
    #expect(r.status == 0 && r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == BuildIdentity.current)
  }

  @Test func partitionExitCodes() throws {
    let dir = temporaryDirectory()
    let problem = """
      {"objective": "latency", "source": "d0", "devices": [{"name": "d0", "memory_bytes": 1000}, {"name": "d1", "memory_bytes": 1000}],
       "layers": [{"name": "L0", "memory_bytes": 800, "output_bytes": 10, "time_s": {"d0": 0.1, "d1": 0.1}},
                  {"name": "L1", "memory_bytes": 800, "output_bytes": 10, "time_s": {"d0": 0.1, "d1": 0.1}}],
       "links": [{"from": "d0", "to": "d1", "bandwidth_bytes_per_s": 1000, "latency_s": 0.001}]}
      """
    try problem.write(toFile: dir + "/p.json", atomically: true, encoding: .utf8)
    let ok = try CLI.run(["partition", "--problem", dir + "/p.json", "--algorithm", "even", "--json"])
    #expect(ok.status == 0)
    #expect(
      ok.stdout.contains(
        #""stages":[{"device":"d0","end_layer":1,"first_layer":0},{"device":"d1","end_layer":2,"first_layer":1}]"#))
    let infeasible = try CLI.run(["partition", "--problem", dir + "/p.json", "--algorithm", "edge-solo"])
    #expect(infeasible.status == 2)
    // The binding constraint, in the sizes of the problem: what a user reads to change the devices.
    #expect(infeasible.stderr.contains("the model needs 1.6 kB; the source d0 offers 1.0 kB"))
    let unknown = try CLI.run(["partition", "--problem", dir + "/p.json", "--algorithm", "magic", "--json-errors"])
    #expect(unknown.status == 65 && unknown.failure?["code"] as? String == "unknown_algorithm")
    #expect(unknown.failureDetails["algorithm"] as? String == "magic")
    let usage = try CLI.run(["partition", "--algorithm", "even"])
    #expect(usage.status == 64)
  }
}
