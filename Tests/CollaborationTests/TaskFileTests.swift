import EdgeLabCore
import Foundation
import TestSupport
import Testing

@testable import Collaboration

@Suite("Task files")
struct TaskFileTests {
  static func jsonl(_ lines: String) throws(TaskFileError) -> [TaskItem] {
    try TaskFiles.parseJSONL(Data(lines.utf8), path: "t.jsonl")
  }

  @Test func jsonlFreeTextAndMultipleChoice() throws {
    let items = try Self.jsonl(
      """
      {"prompt": "What is 2 + 2?", "answer": "4"}

      {"prompt": "Capital of France?", "choices": ["Rome", "Paris", "Oslo"], "answer": "B", "subject": "geo"}
      {"prompt": "Pick one", "choices": ["x", "y"], "answer": 1}
      {"prompt": "Pick text", "choices": ["x", "y"], "answer": "x"}
      """)
    #expect(items.count == 4)
    #expect(items.map(\.id) == [0, 1, 2, 3])
    #expect(items[0].answer == "4" && items[0].choices == nil && items[0].prompt == "What is 2 + 2?")
    #expect(items[1].answer == "B" && items[1].subject == "geo")
    #expect(items[1].prompt.hasSuffix("A. Rome\nB. Paris\nC. Oslo\nAnswer:"))
    #expect(items[1].prompt.hasPrefix("The following are multiple choice questions (with answers) about geo."))
    #expect(items[2].answer == "B")
    #expect(items[3].answer == "A")
  }

  @Test(
    arguments: [
      ("{\"answer\": \"4\"}", TaskFileError.Kind.missingField, 1, "prompt"),
      ("{\"prompt\": \"q\"}", .missingField, 1, "answer"),
      ("{\"prompt\": \"q\", \"answer\": \"\"}", .badAnswer, 1, "answer"),
      ("\n\n{\"prompt\": \"q\", \"answer\": \"E\", \"choices\": [\"a\", \"b\"]}", .badAnswer, 3, "answer"),
      ("{\"prompt\": \"q\", \"answer\": \"A\", \"choices\": [\"a\"]}", .malformed, 1, "choices"),
      ("{\"prompt\": \"q\", \"answer\": \"A\", \"choices\": \"ab\"}", .malformed, 1, "choices"),
      ("{\"prompt\": \"q\", \"answer\": \"1\"}\nnot json", .malformed, 2, nil),
      ("[1, 2]", .malformed, 1, nil),
      ("\n  \n", .empty, 0, nil),
    ] as [(String, TaskFileError.Kind, Int, String?)])
  func badJSONLNamesLineAndField(text: String, kind: TaskFileError.Kind, line: Int, field: String?) {
    #expect {
      _ = try Self.jsonl(text)
    } throws: { error in
      guard let e = error as? TaskFileError else { return false }
      return e.kind == kind && e.line == line && e.field == field && e.path == "t.jsonl"
        && e.failureClass == .inputCorrupt
    }
  }

  @Test func mmluCSVWithQuotesHeaderAndSubject() throws {
    let csv = """
      question,A,B,C,D,answer
      "What is 1, plus 1?",1,2,3,4,B
      "He said ""hi""
      twice",a,b,c,d,D\r
      Plain,w,x,y,z,A
      """
    let items = try TaskFiles.parseMMLU(Data(csv.utf8), path: "abstract_algebra_test.csv", subject: "abstract_algebra")
    #expect(items.count == 3)
    #expect(items[0].choices == ["1", "2", "3", "4"] && items[0].answer == "B")
    #expect(items[0].prompt.contains("What is 1, plus 1?\nA. 1\n"))
    #expect(items[1].prompt.contains("He said \"hi\"\ntwice"))
    #expect(items[1].answer == "D")
    #expect(items[2].answer == "A")
    #expect(items.allSatisfy { $0.subject == "abstract_algebra" })
    #expect(
      items[0].prompt.hasPrefix("The following are multiple choice questions (with answers) about abstract algebra."))
    #expect(TaskFiles.subject(of: "college_physics_test.csv") == "college_physics")
  }

  @Test(
    arguments: [
      ("q,a,b,c,d\n", TaskFileError.Kind.malformed, 1),
      ("q,a,b,c,d,A\nq2,a,b,c,d,E\n", .badAnswer, 2),
      ("q,a,b,c,d,A\n\"open,a,b,c,d,A\n", .malformed, 2),
      (",a,b,c,d,A\n", .missingField, 1),
      ("", .empty, 0),
    ] as [(String, TaskFileError.Kind, Int)])
  func badMMLURowsAreNamed(text: String, kind: TaskFileError.Kind, line: Int) {
    #expect {
      _ = try TaskFiles.parseMMLU(Data(text.utf8), path: "x_test.csv", subject: "x")
    } throws: { error in
      guard let e = error as? TaskFileError else { return false }
      return e.kind == kind && e.line == line && e.path == "x_test.csv"
    }
  }

  @Test func mmluDirectoryAndMissingFiles() throws {
    let dir = temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try "q1,a,b,c,d,C\n".write(toFile: dir + "/b_subject_test.csv", atomically: true, encoding: .utf8)
    try "q0,a,b,c,d,A\nq0b,a,b,c,d,B\n".write(toFile: dir + "/a_subject_test.csv", atomically: true, encoding: .utf8)
    try "ignored".write(toFile: dir + "/notes.txt", atomically: true, encoding: .utf8)
    let items = try TaskFiles.load(dir)
    #expect(items.map(\.id) == [0, 1, 2])
    #expect(items.map(\.subject) == ["a_subject", "a_subject", "b_subject"])
    #expect(items.map(\.answer) == ["A", "B", "C"])
    do {
      _ = try TaskFiles.load(dir + "/nothing.jsonl")
      Issue.record("a missing file was read")
    } catch {
      #expect(error.kind == .unreadable && error.code == "tasks_unreadable")
    }
    let empty = temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: empty) }
    do {
      _ = try TaskFiles.load(empty)
      Issue.record("an empty directory gave questions")
    } catch {
      #expect(error.kind == .empty)
    }
  }

  @Test func builtinTasksAreDeterministicAndTheirAnswersRight() throws {
    let a = BuiltinTasks.generate(.mixed, count: 30, seed: 5, shots: 2)
    #expect(a == BuiltinTasks.generate(.mixed, count: 30, seed: 5, shots: 2))
    #expect(a != BuiltinTasks.generate(.mixed, count: 30, seed: 6, shots: 2))
    #expect(a.count == 30)
    for item in a {
      // The question is the last one in the prompt; shots come before it, each with its answer.
      let question = item.prompt.components(separatedBy: "\n\n").last!
      #expect(item.prompt.components(separatedBy: "\n\n").count == 3)
      switch item.subject {
      case "arithmetic":
        let words = question.split(separator: " ")
        let x = Int(words[3])!
        let y = Int(words.last!.split(separator: "?")[0])!
        let op = String(words[4])
        let value = op == "+" ? x + y : op == "-" ? x - y : x * y
        #expect(item.answer == String(value), "\(question)")
      case "units":
        let choices = try #require(item.choices)
        let n = Int(question.split(separator: " ").first { Int($0) != nil }!)!
        let factor =
          question.contains("centimetres")
          ? 100
          : question.contains("grams")
            ? 1000
            : question.contains("minutes are") || question.contains("seconds")
              ? 60
              : question.contains("metres are in") ? 1000 : 24
        let i = Int(item.answer.unicodeScalars.first!.value) - 65
        #expect(choices[i] == String(n * factor), "\(question)")
        #expect(Set(choices).count == 4)
      case "ordering":
        let numbers = question.split(separator: ":")[2].split(separator: "\n")[0]
          .split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces))! }
        #expect(item.answer == numbers.sorted().map(String.init).joined(separator: ", "))
      default: Issue.record("unexpected subject \(item.subject ?? "nil")")
      }
    }
  }

  @Test func normalisedExactMatch() {
    #expect(Scoring.exactMatch(reply: " 12\nQuestion: more", answer: "12"))
    #expect(Scoring.exactMatch(reply: "The Answer.", answer: "answer"))
    #expect(Scoring.exactMatch(reply: "2, 5, 9", answer: "2, 5, 9"))
    #expect(Scoring.exactMatch(reply: "-3.5", answer: "-3.5"))
    #expect(!Scoring.exactMatch(reply: "3.5", answer: "-3.5"))
    #expect(!Scoring.exactMatch(reply: "12 apples", answer: "12"))
    #expect(!Scoring.exactMatch(reply: "\n\n", answer: ""))
    #expect(Scoring.normalize("  A  quick,  brown!  ") == "quick brown")
  }
}
