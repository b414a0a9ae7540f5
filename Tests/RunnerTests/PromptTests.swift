import DSL
import Execution
import Foundation
import Metrics
import Results
import Runner
import Simulator
import Spec
import TestSupport
import Testing

/// A stand-in tokenizer: one token per character (its code point modulo 1000); counts its calls.
private final class CharacterEncoder: PromptEncoder, @unchecked Sendable {
  private let lock = NSLock()
  private var count = 0
  var calls: Int {
    lock.lock()
    defer { lock.unlock() }
    return count
  }
  func encode(_ prompts: [String], chat: Bool, experiment: ResolvedExperiment) throws -> [[Int32]] {
    lock.lock()
    count += 1
    lock.unlock()
    return prompts.map { p in (chat ? "<" + p + ">" : p).unicodeScalars.map { Int32($0.value % 1000) } }
  }
  func decode(_ ids: [Int32], experiment: ResolvedExperiment) -> String? { nil }
}

@Suite("Workloads with real prompts")
struct PromptTests {
  static func write(_ text: String, _ name: String) throws -> String {
    let path = temporaryDirectory("prompts") + "/" + name
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  @Test func textAndJSONLinesFilesAreRead() throws {
    let text = try Self.write("first prompt\n\n  second one\r\nthird\n", "p.txt")
    #expect(try PromptFile(path: text).read() == ["first prompt", "  second one", "third"])
    let jsonl = try Self.write("\"a string\"\n{\"prompt\": \"an object\", \"id\": 3}\n\n", "p.jsonl")
    let file = PromptFile(path: jsonl)
    #expect(file.format == .jsonl)
    #expect(try file.read() == ["a string", "an object"])
  }

  @Test func badPromptFilesNameTheFileAndLine() throws {
    let bad = try Self.write("\"ok\"\n{\"text\": 1}\n", "bad.jsonl")
    let e = #expect(throws: SpecError.self) { try PromptFile(path: bad).read() }
    #expect(e?.description.contains("line 2") == true)
    let empty = try Self.write("\n\n", "empty.txt")
    #expect(throws: SpecError.self) { try PromptFile(path: empty).read() }
    #expect(throws: SpecError.self) { try PromptFile(path: "/nonexistent/prompts.txt").read() }
  }

  @Test func promptsSetTheRequestsTokensAndLengths() {
    let w = WorkloadSpec(requests: 5, outputTokens: .fixed(4), prompts: PromptFile(path: "unused.txt"))
    let prompts: [[Int32]] = [[1, 2, 3], [4], [5, 6]]
    let requests = w.materialize(seed: 1, vocabularySize: 100, prompts: prompts)
    #expect(requests.map(\.promptTokens) == [[1, 2, 3], [4], [5, 6], [1, 2, 3], [4]])
    #expect(requests.map(\.promptLength) == [3, 1, 2, 3, 1])
  }

  static func experiment(_ path: String) -> ExperimentSpec {
    Experiment("prompt-test", "real prompts") {
      Model(.llama32_1B)
      Device("a", .agxOrin32GB).source()
      Workload(requests: 3, prompts: path, chat: true, output: 4)
      Algorithm("even")
      Repetitions(2)
    }.spec
  }

  @Test func theRunnerTokenizesOnceAndRecordsThePromptLengths() throws {
    let path = try Self.write("hello\nworld, again\n", "p.txt")
    let out = temporaryDirectory() + "/out.h5"
    var options = RunOptions(outputPath: out)
    let encoder = CharacterEncoder()
    options.promptEncoder = encoder
    _ = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(Self.experiment(path), options: options)
    let runs = try ResultsStore.read(out).runs
    #expect(runs.count == 2)
    for run in runs {
      #expect(run.outcome.status == .complete)
      // "<hello>" and "<world, again>" (chat), then the first again.
      #expect(run.outcome.requests.map(\.promptTokens) == [7, 14, 7])
    }
    #expect(encoder.calls == 1, "the prompts are tokenized once for the whole sweep")
  }

  @Test func withoutATokenizerTheRunFailsWithAMessage() throws {
    let path = try Self.write("hello\n", "p.txt")
    let out = temporaryDirectory() + "/out.h5"
    _ = try ExperimentRunner(backends: [.simulated: SimulatedBackend()]).run(
      Self.experiment(path), options: RunOptions(outputPath: out))
    let run = try #require(try ResultsStore.read(out).runs.first)
    #expect(run.outcome.status == .failed)
    #expect(run.outcome.message?.contains("tokenizer") == true)
  }
}
