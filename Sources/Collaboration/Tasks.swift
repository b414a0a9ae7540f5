public import EdgeLabCore
public import Foundation

/// One question with its reference answer.
///
/// Free-text items are scored by normalised exact match of the first line of the reply; multiple-choice items
/// (`choices` set) by the letter whose token the model finds most likely after "Answer:", as MMLU's harnesses do.
public struct TaskItem: Hashable, Sendable, Codable {
  public var id: Int
  /// The question as the model sees it (with any worked examples before it).
  public var prompt: String
  /// The reference: the text for free-text items, the letter ("A", "B", …) for multiple choice.
  public var answer: String
  public var choices: [String]?
  public var subject: String?

  public init(id: Int, prompt: String, answer: String, choices: [String]? = nil, subject: String? = nil) {
    self.id = id
    self.prompt = prompt
    self.answer = answer
    self.choices = choices
    self.subject = subject
  }

  public var isMultipleChoice: Bool { choices != nil }

  /// The letters of the choices, "A" … .
  public static func letter(_ i: Int) -> String { String(UnicodeScalar(UInt8(65 + i))) }
}

/// A task file that cannot be read as tasks: the file, the line (1-based; 0 for the file as a whole), the field
/// and what is wrong.
public struct TaskFileError: Error, Equatable, Sendable, CustomStringConvertible, ReportableError {
  public enum Kind: String, Sendable {
    case unreadable
    case tooLarge = "too_large"
    case malformed
    case missingField = "missing_field"
    case badAnswer = "bad_answer"
    case empty
  }
  public var kind: Kind
  public var path: String
  public var line: Int
  public var field: String?
  public var reason: String

  public init(_ kind: Kind, path: String, line: Int = 0, field: String? = nil, _ reason: String) {
    self.kind = kind
    self.path = path
    self.line = line
    self.field = field
    self.reason = reason
  }

  public var description: String {
    var place = path
    if line > 0 { place += ":\(line)" }
    if let field { place += " (\(field))" }
    return "\(place): \(reason)"
  }
  public var failureClass: FailureClass { .inputCorrupt }
  public var code: String { "tasks_" + kind.rawValue }
  public var details: [String: JSONValue] {
    ["path": .string(path), "line": .number(Double(line)), "field": .optional(field)]
  }
}

/// Reading task files: JSON Lines and MMLU's CSV layout. Everything read is untrusted: sizes are bounded before
/// anything is kept, and each problem names the file, the line and the field.
public enum TaskFiles {
  /// The largest task file read (bytes) and the most items kept.
  public static let maxFileBytes = 64 << 20
  public static let maxItems = 100_000
  public static let maxChoices = 26

  public enum Format: String, Codable, Hashable, Sendable, CaseIterable {
    /// One JSON object per line: `prompt`, `answer`, optional `choices` and `subject`.
    case jsonl
    /// MMLU's files: `question,A,B,C,D,answer` rows without a header, one file per subject
    /// (`<subject>_test.csv`); a directory reads every `.csv` in it, in name order.
    case mmlu
  }

  /// The format a path's name suggests: a directory or `.csv` is MMLU's layout, anything else JSON Lines.
  public static func format(of path: String) -> Format {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return .mmlu }
    return path.lowercased().hasSuffix(".csv") ? .mmlu : .jsonl
  }

  /// The items of a task file or (MMLU) directory.
  public static func load(_ path: String, format: Format? = nil) throws(TaskFileError) -> [TaskItem] {
    let format = format ?? Self.format(of: path)
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw TaskFileError(.unreadable, path: path, "no such file; give the path of a task file (JSONL or MMLU CSV)")
    }
    if isDirectory.boolValue {
      guard format == .mmlu else {
        throw TaskFileError(.unreadable, path: path, "a directory is read as MMLU CSV files; give a .jsonl file")
      }
      let names: [String]
      do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
        throw TaskFileError(.unreadable, path: path, "cannot list the directory: \(error.localizedDescription)")
      }
      var items: [TaskItem] = []
      for name in names.sorted() where name.lowercased().hasSuffix(".csv") {
        let file = path + "/" + name
        for var item in try parseMMLU(try read(file), path: file, subject: subject(of: name)) {
          guard items.count < maxItems else {
            throw TaskFileError(.tooLarge, path: path, "more than \(maxItems) questions; use a smaller subset")
          }
          item.id = items.count
          items.append(item)
        }
      }
      if items.isEmpty { throw TaskFileError(.empty, path: path, "no .csv file with questions in this directory") }
      return items
    }
    let data = try read(path)
    switch format {
    case .jsonl: return try parseJSONL(data, path: path)
    case .mmlu: return try parseMMLU(data, path: path, subject: subject(of: (path as NSString).lastPathComponent))
    }
  }

  static func read(_ path: String) throws(TaskFileError) -> Data {
    let attributes = try? FileManager.default.attributesOfItem(atPath: path)
    if let size = attributes?[.size] as? Int, size > maxFileBytes {
      throw TaskFileError(
        .tooLarge, path: path, "\(size) bytes; task files are read up to \(maxFileBytes >> 20) MiB: split it")
    }
    guard let h = FileHandle(forReadingAtPath: path) else {
      throw TaskFileError(.unreadable, path: path, "cannot open it for reading")
    }
    defer { try? h.close() }
    let data: Data
    do { data = try h.read(upToCount: maxFileBytes + 1) ?? Data() } catch {
      throw TaskFileError(.unreadable, path: path, "cannot read it: \(error.localizedDescription)")
    }
    if data.count > maxFileBytes {
      throw TaskFileError(.tooLarge, path: path, "task files are read up to \(maxFileBytes >> 20) MiB: split it")
    }
    return data
  }

  /// `abstract_algebra_test.csv` → `abstract_algebra`.
  static func subject(of fileName: String) -> String {
    var s = fileName
    if s.lowercased().hasSuffix(".csv") { s.removeLast(4) }
    for suffix in ["_test", "_val", "_dev"] where s.hasSuffix(suffix) { s.removeLast(suffix.count) }
    return s
  }

  /// JSON Lines: `{"prompt": …, "answer": …, "choices": [...], "subject": …}` per line; blank lines are skipped.
  /// A multiple-choice answer is a letter (A, B, …), a 0-based index, or the text of one choice.
  public static func parseJSONL(_ data: Data, path: String) throws(TaskFileError) -> [TaskItem] {
    guard let text = String(data: data, encoding: .utf8) else {
      throw TaskFileError(.malformed, path: path, "not UTF-8 text")
    }
    var items: [TaskItem] = []
    for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
      if line.isEmpty { continue }
      let lineNo = n + 1
      guard items.count < maxItems else {
        throw TaskFileError(.tooLarge, path: path, line: lineNo, "more than \(maxItems) questions; use a subset")
      }
      let value: JSONValue
      do { value = try JSONCoding.decoder.decode(JSONValue.self, from: Data(line.utf8)) } catch {
        throw TaskFileError(.malformed, path: path, line: lineNo, "not a JSON object: \(JSONCoding.explain(error))")
      }
      guard let o = value.objectValue else {
        throw TaskFileError(.malformed, path: path, line: lineNo, "each line must be one JSON object")
      }
      guard let prompt = o["prompt"]?.stringValue, !prompt.isEmpty else {
        throw TaskFileError(.missingField, path: path, line: lineNo, field: "prompt", "a non-empty string is required")
      }
      let choices: [String]?
      switch o["choices"] {
      case nil, .null?: choices = nil
      case .array(let a)?:
        let texts = a.compactMap(\.stringValue)
        guard texts.count == a.count, (2...maxChoices).contains(texts.count) else {
          throw TaskFileError(
            .malformed, path: path, line: lineNo, field: "choices", "2 to \(maxChoices) strings are required")
        }
        choices = texts
      default:
        throw TaskFileError(.malformed, path: path, line: lineNo, field: "choices", "must be a list of strings")
      }
      let answer: String
      switch o["answer"] {
      case .string(let s)?: answer = s
      case .number(let x)? where choices != nil: answer = String(Int(exactly: x) ?? -1)
      default:
        throw TaskFileError(.missingField, path: path, line: lineNo, field: "answer", "a string is required")
      }
      var item = TaskItem(
        id: items.count, prompt: prompt, answer: answer, choices: choices, subject: o["subject"]?.stringValue)
      if let choices {
        guard let letter = multipleChoiceLetter(answer, choices: choices) else {
          throw TaskFileError(
            .badAnswer, path: path, line: lineNo, field: "answer",
            "'\(answer)' is none of the \(choices.count) choices (give a letter A–\(TaskItem.letter(choices.count - 1)), an index or a choice's text)"
          )
        }
        item.answer = letter
        item.prompt = multipleChoicePrompt(question: prompt, choices: choices, subject: item.subject)
      } else if answer.trimmingCharacters(in: .whitespaces).isEmpty {
        throw TaskFileError(.badAnswer, path: path, line: lineNo, field: "answer", "the reference answer is empty")
      }
      items.append(item)
    }
    if items.isEmpty { throw TaskFileError(.empty, path: path, "no questions in the file") }
    return items
  }

  static func multipleChoiceLetter(_ answer: String, choices: [String]) -> String? {
    let a = answer.trimmingCharacters(in: .whitespaces)
    if a.count == 1, let c = a.uppercased().unicodeScalars.first, c.value >= 65, Int(c.value) - 65 < choices.count {
      return String(c)
    }
    if let i = Int(a), choices.indices.contains(i) { return TaskItem.letter(i) }
    if let i = choices.firstIndex(of: a) { return TaskItem.letter(i) }
    return nil
  }

  /// MMLU's prompt (Hendrycks et al. 2021, as the evaluation harnesses write it), zero-shot.
  public static func multipleChoicePrompt(question: String, choices: [String], subject: String?) -> String {
    var s = ""
    if let subject, !subject.isEmpty {
      s +=
        "The following are multiple choice questions (with answers) about \(subject.replacingOccurrences(of: "_", with: " ")).\n\n"
    }
    s += question.trimmingCharacters(in: .whitespacesAndNewlines) + "\n"
    for (i, c) in choices.enumerated() { s += "\(TaskItem.letter(i)). \(c)\n" }
    return s + "Answer:"
  }

  /// MMLU's CSV rows: question, four choices, the answer letter. Quoted fields may hold commas, doubled quotes
  /// and line breaks (RFC 4180). A header row (`question,…,answer`) is skipped.
  public static func parseMMLU(_ data: Data, path: String, subject: String?) throws(TaskFileError) -> [TaskItem] {
    guard let text = String(data: data, encoding: .utf8) else {
      throw TaskFileError(.malformed, path: path, "not UTF-8 text")
    }
    let rows = try csvRows(text, path: path)
    var items: [TaskItem] = []
    for (lineNo, fields) in rows {
      if fields.allSatisfy({ $0.isEmpty }) { continue }
      if items.isEmpty && fields.last?.lowercased() == "answer" { continue }
      guard fields.count == 6 else {
        throw TaskFileError(
          .malformed, path: path, line: lineNo,
          "\(fields.count) fields; MMLU rows have 6: question, A, B, C, D, answer")
      }
      guard items.count < maxItems else {
        throw TaskFileError(.tooLarge, path: path, line: lineNo, "more than \(maxItems) questions; use a subset")
      }
      if fields[0].trimmingCharacters(in: .whitespaces).isEmpty {
        throw TaskFileError(.missingField, path: path, line: lineNo, field: "question", "the question is empty")
      }
      let choices = Array(fields[1...4])
      guard let letter = multipleChoiceLetter(fields[5], choices: choices), fields[5].count == 1 else {
        throw TaskFileError(
          .badAnswer, path: path, line: lineNo, field: "answer", "'\(fields[5])' is not a letter A–D")
      }
      items.append(
        TaskItem(
          id: items.count, prompt: multipleChoicePrompt(question: fields[0], choices: choices, subject: subject),
          answer: letter, choices: choices, subject: subject))
    }
    if items.isEmpty { throw TaskFileError(.empty, path: path, "no questions in the file") }
    return items
  }

  /// RFC 4180 rows with the line each starts on.
  static func csvRows(_ text: String, path: String) throws(TaskFileError) -> [(Int, [String])] {
    var rows: [(Int, [String])] = []
    var fields: [String] = []
    var field = ""
    var quoted = false
    var line = 1
    var rowStart = 1
    var it = Array(text.unicodeScalars)[...]
    var atFieldStart = true
    while let c = it.popFirst() {
      if quoted {
        if c == "\"" {
          if it.first == "\"" {
            field.unicodeScalars.append("\"")
            it.removeFirst()
          } else {
            quoted = false
          }
        } else {
          if c == "\n" { line += 1 }
          field.unicodeScalars.append(c)
        }
        continue
      }
      switch c {
      case "\"" where atFieldStart:
        quoted = true
        atFieldStart = false
      case ",":
        fields.append(field)
        field = ""
        atFieldStart = true
      case "\r":
        continue
      case "\n":
        fields.append(field)
        rows.append((rowStart, fields))
        fields = []
        field = ""
        line += 1
        rowStart = line
        atFieldStart = true
      default:
        field.unicodeScalars.append(c)
        atFieldStart = false
      }
    }
    if quoted {
      throw TaskFileError(.malformed, path: path, line: rowStart, "a quoted field is not closed before the end")
    }
    if !field.isEmpty || !fields.isEmpty {
      fields.append(field)
      rows.append((rowStart, fields))
    }
    return rows
  }
}

/// Scoring of replies against references.
public enum Scoring {
  /// Lower case, punctuation other than inside numbers removed, the articles "a", "an", "the" dropped, runs of
  /// white space made one (SQuAD's normalisation, keeping "-" and "." between digits so numbers survive).
  public static func normalize(_ text: String) -> String {
    let lower = Array(text.lowercased())
    var kept = ""
    for (i, ch) in lower.enumerated() {
      if ch.isLetter || ch.isNumber || ch.isWhitespace {
        kept.append(ch)
      } else if ch == "-" || ch == "." {
        // A sign or decimal point belongs to a number: keep it when a digit follows.
        let next = i + 1 < lower.count ? lower[i + 1] : " "
        if next.isNumber { kept.append(ch) } else { kept.append(" ") }
      } else {
        kept.append(" ")
      }
    }
    let words = kept.split(whereSeparator: \.isWhitespace).filter { !["a", "an", "the"].contains($0) }
    return words.joined(separator: " ")
  }

  /// The part of a reply that answers: its first non-empty line.
  public static func answerLine(_ reply: String) -> String {
    reply.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? ""
  }

  /// Normalised exact match of a free-text reply's first line with the reference.
  public static func exactMatch(reply: String, answer: String) -> Bool {
    let r = normalize(answerLine(reply))
    return !r.isEmpty && r == normalize(answer)
  }
}
