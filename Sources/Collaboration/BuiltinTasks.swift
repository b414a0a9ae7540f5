import EdgeLabCore

/// Task sets the lab writes itself, with answers it computes, so that experiments run offline. Each question is
/// preceded by `shots` worked examples of its kind (drawn from a separate stream, never the question itself).
public enum BuiltinTasks {
  public enum Kind: String, Codable, Hashable, Sendable, CaseIterable {
    /// Sums, differences and products of small numbers ("What is 7 + 5?" → "12").
    case arithmetic
    /// Unit conversions as multiple choice ("How many centimetres are in 3 metres?" A–D).
    case units
    /// Three numbers in increasing order ("Sort: 5, 2, 9" → "2, 5, 9").
    case ordering
    /// The three interleaved.
    case mixed
  }

  public static func generate(_ kind: Kind, count: Int, seed: UInt64, shots: Int = 3) -> [TaskItem] {
    var questions = SeededRandom.derived(seed: seed, 11)
    var examples = SeededRandom.derived(seed: seed, 12)
    let kinds: [Kind] = kind == .mixed ? [.arithmetic, .units, .ordering] : [kind]
    return (0..<max(0, count)).map { i in
      let k = kinds[i % kinds.count]
      let q = question(k, &questions)
      var prompt = ""
      for _ in 0..<max(0, shots) {
        let e = question(k, &examples)
        prompt += e.text + " " + e.shownAnswer + "\n\n"
      }
      prompt += q.text
      return TaskItem(id: i, prompt: prompt, answer: q.answer, choices: q.choices, subject: k.rawValue)
    }
  }

  struct Question {
    var text: String
    var answer: String
    var choices: [String]?
    /// The answer as a worked example shows it (the letter for multiple choice).
    var shownAnswer: String { answer }
  }

  static func int(_ r: inout SeededRandom, _ range: ClosedRange<Int>) -> Int {
    range.lowerBound + Int(r.next() % UInt64(range.count))
  }

  static func question(_ kind: Kind, _ r: inout SeededRandom) -> Question {
    switch kind {
    case .arithmetic, .mixed:
      let a = int(&r, 2...49)
      let b = int(&r, 2...49)
      switch int(&r, 0...2) {
      case 0: return Question(text: "Question: What is \(a) + \(b)?\nAnswer:", answer: "\(a + b)")
      case 1:
        let (x, y) = (max(a, b), min(a, b))
        return Question(text: "Question: What is \(x) - \(y)?\nAnswer:", answer: "\(x - y)")
      default:
        let (x, y) = (a % 12 + 1, b % 12 + 1)
        return Question(text: "Question: What is \(x) times \(y)?\nAnswer:", answer: "\(x * y)")
      }
    case .units:
      let conversions: [(String, String, Int)] = [
        ("metres", "centimetres", 100), ("kilograms", "grams", 1000), ("hours", "minutes", 60),
        ("minutes", "seconds", 60), ("kilometres", "metres", 1000), ("days", "hours", 24),
      ]
      let (from, to, factor) = conversions[int(&r, 0...(conversions.count - 1))]
      let n = int(&r, 2...9)
      let right = n * factor
      // Wrong answers: the factor off by ten either way and a near miss, in a shuffled order.
      var options = [right, n * factor * 10, max(1, n * factor / 10), (n + 1) * factor]
      for i in stride(from: options.count - 1, to: 0, by: -1) { options.swapAt(i, int(&r, 0...i)) }
      let letter = TaskItem.letter(options.firstIndex(of: right)!)
      let text = TaskFiles.multipleChoicePrompt(
        question: "How many \(to) are in \(n) \(from)?", choices: options.map(String.init), subject: nil)
      return Question(text: text, answer: letter, choices: options.map(String.init))
    case .ordering:
      var xs: [Int] = []
      while xs.count < 3 {
        let x = int(&r, 1...99)
        if !xs.contains(x) { xs.append(x) }
      }
      return Question(
        text: "Question: Sort from smallest to largest: \(xs.map(String.init).joined(separator: ", "))\nAnswer:",
        answer: xs.sorted().map(String.init).joined(separator: ", "))
    }
  }
}
