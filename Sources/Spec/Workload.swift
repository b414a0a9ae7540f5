public import EdgeLabCore
import Foundation

/// The requests of a run: how they arrive and how long their prompts and outputs are.
public struct WorkloadSpec: Codable, Hashable, Sendable {
  public var arrival: ArrivalProcess
  public var requests: Int
  public var promptTokens: LengthDistribution
  public var outputTokens: LengthDistribution
  /// The service level a request must meet to count towards goodput.
  public var slo: ServiceLevel?
  /// Real prompts: request i takes prompt i (cycling), tokenized once with the model's tokenizer; its length is
  /// the prompt's, not `promptTokens`'.
  public var prompts: PromptFile?

  public init(
    arrival: ArrivalProcess = .closedLoop(), requests: Int = 4, promptTokens: LengthDistribution = .fixed(32),
    outputTokens: LengthDistribution = .fixed(96), slo: ServiceLevel? = nil, prompts: PromptFile? = nil
  ) {
    self.arrival = arrival
    self.requests = requests
    self.promptTokens = promptTokens
    self.outputTokens = outputTokens
    self.slo = slo
    self.prompts = prompts
  }

  enum CodingKeys: String, CodingKey {
    case arrival, requests, slo, prompts
    case promptTokens = "prompt_tokens"
    case outputTokens = "output_tokens"
  }
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = WorkloadSpec()
    arrival = try c.decodeIfPresent(ArrivalProcess.self, forKey: .arrival) ?? d.arrival
    requests = try c.decodeIfPresent(Int.self, forKey: .requests) ?? d.requests
    promptTokens = try c.decodeIfPresent(LengthDistribution.self, forKey: .promptTokens) ?? d.promptTokens
    outputTokens = try c.decodeIfPresent(LengthDistribution.self, forKey: .outputTokens) ?? d.outputTokens
    slo = try c.decodeIfPresent(ServiceLevel.self, forKey: .slo)
    prompts = try c.decodeIfPresent(PromptFile.self, forKey: .prompts)
  }
}

/// A file of prompts: plain text with one prompt per non-empty line, or JSON Lines whose lines are strings or
/// objects with a "prompt" string. With `chat`, each becomes a user turn in the model's chat template.
///
/// JSON: `{"path": "experiments/prompts/smollm2.txt", "format": "text", "chat": true}`.
public struct PromptFile: Codable, Hashable, Sendable {
  public enum Format: String, Codable, Hashable, Sendable {
    case text
    case jsonl
  }
  public var path: String
  public var format: Format
  public var chat: Bool

  public init(path: String, format: Format? = nil, chat: Bool = false) {
    self.path = path
    self.format = format ?? (path.hasSuffix(".jsonl") ? .jsonl : .text)
    self.chat = chat
  }

  enum CodingKeys: String, CodingKey { case path, format, chat }
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let path = try c.decode(String.self, forKey: .path)
    self.init(
      path: path, format: try c.decodeIfPresent(Format.self, forKey: .format),
      chat: try c.decodeIfPresent(Bool.self, forKey: .chat) ?? false)
  }

  /// Largest prompt file read, and most prompts taken from it.
  public static let maxBytes = 64 << 20
  public static let maxPrompts = 100_000

  /// The prompts of the file, in order.
  ///
  /// - Throws: `SpecError` naming the file (and line) when it cannot be read or a line is not a prompt.
  /// A relative path is taken from the working directory (the repository root for `make exp`).
  public func read() throws(SpecError) -> [String] {
    let full = path
    guard let attributes = try? FileManager.default.attributesOfItem(atPath: full),
      let size = attributes[.size] as? Int, attributes[.type] as? FileAttributeType == .typeRegular
    else {
      throw SpecError(field: "workload.prompts.path", "cannot read '\(full)'; give an existing text or JSONL file")
    }
    guard size <= Self.maxBytes else {
      throw SpecError(
        field: "workload.prompts.path", "'\(full)' has \(size) bytes, more than the \(Self.maxBytes) read")
    }
    guard let data = FileManager.default.contents(atPath: full) else {
      throw SpecError(field: "workload.prompts.path", "cannot read '\(full)'")
    }
    let text = String(decoding: data, as: UTF8.self)
    var out: [String] = []
    for (n, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
      let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
      if trimmed.isEmpty { continue }
      switch format {
      case .text:
        out.append(String(line))
      case .jsonl:
        let value = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8), options: [.fragmentsAllowed])
        if let s = value as? String {
          out.append(s)
        } else if let o = value as? [String: Any], let s = o["prompt"] as? String {
          out.append(s)
        } else {
          throw SpecError(
            field: "workload.prompts.path",
            "'\(full)' line \(n + 1) is neither a JSON string nor an object with a \"prompt\" string")
        }
      }
      if out.count > Self.maxPrompts {
        throw SpecError(field: "workload.prompts.path", "'\(full)' has more than \(Self.maxPrompts) prompts")
      }
    }
    if out.isEmpty { throw SpecError(field: "workload.prompts.path", "'\(full)' holds no prompt") }
    return out
  }
}

/// A service-level objective per request: its time to first token and time per output token (each optional).
/// A completed request meets it when it is within every bound given.
public struct ServiceLevel: Codable, Hashable, Sendable {
  public var ttft: Seconds?
  public var tpot: Seconds?

  public init(ttft: Seconds? = nil, tpot: Seconds? = nil) {
    self.ttft = ttft
    self.tpot = tpot
  }
}

/// How requests arrive.
///
/// JSON: `{"kind": "closed_loop", "concurrency": 1, "think": "0s"}`, `{"kind": "saturation", "concurrency": 16}`
/// (a closed loop without think time), `{"kind": "poisson", "rate": 2}` (requests per
/// second), `{"kind": "bursty", "burst": 8, "every": "10s"}` (batch arrivals) or
/// `{"kind": "on_off", "on": "5s", "off": "20s", "rate": 4}` (Poisson at `rate` while on, nothing while off).
public enum ArrivalProcess: Codable, Hashable, Sendable {
  /// `concurrency` requests outstanding at any time; each completion releases the next after `think`.
  case closedLoop(concurrency: Int = 1, think: Seconds = .zero)
  /// Sporadic: independent arrivals at `rate` requests per second.
  case poisson(rate: Double)
  /// Bursty, batch arrivals: `burst` requests at once, every `every`.
  case bursty(burst: Int, every: Seconds)
  /// Bursty, on/off: Poisson at `rate` during `on` periods, silence during `off` periods.
  case onOff(on: Seconds, off: Seconds, rate: Double)

  enum CodingKeys: String, CodingKey { case kind, concurrency, think, rate, burst, every, on, off }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let kind = try c.decode(String.self, forKey: .kind)
    switch kind {
    case "closed_loop":
      self = .closedLoop(
        concurrency: try c.decodeIfPresent(Int.self, forKey: .concurrency) ?? 1,
        think: try c.decodeIfPresent(Seconds.self, forKey: .think) ?? .zero)
    case "saturation":
      self = .saturation(inFlight: try c.decode(Int.self, forKey: .concurrency))
    case "poisson": self = .poisson(rate: try c.decode(Double.self, forKey: .rate))
    case "bursty":
      self = .bursty(burst: try c.decode(Int.self, forKey: .burst), every: try c.decode(Seconds.self, forKey: .every))
    case "on_off":
      self = .onOff(
        on: try c.decode(Seconds.self, forKey: .on), off: try c.decode(Seconds.self, forKey: .off),
        rate: try c.decode(Double.self, forKey: .rate))
    default:
      throw DecodingError.dataCorruptedError(
        forKey: .kind, in: c,
        debugDescription: "unknown arrival kind '\(kind)'; use closed_loop, saturation, poisson, bursty or on_off")
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    switch self {
    case .closedLoop(let n, let think):
      try c.encode("closed_loop", forKey: .kind)
      try c.encode(n, forKey: .concurrency)
      try c.encode(think, forKey: .think)
    case .poisson(let rate):
      try c.encode("poisson", forKey: .kind)
      try c.encode(rate, forKey: .rate)
    case .bursty(let burst, let every):
      try c.encode("bursty", forKey: .kind)
      try c.encode(burst, forKey: .burst)
      try c.encode(every, forKey: .every)
    case .onOff(let on, let off, let rate):
      try c.encode("on_off", forKey: .kind)
      try c.encode(on, forKey: .on)
      try c.encode(off, forKey: .off)
      try c.encode(rate, forKey: .rate)
    }
  }

  public var isClosedLoop: Bool { if case .closedLoop = self { true } else { false } }

  /// Saturation, for comparing planners' throughput: `inFlight` requests in the system at every moment (each
  /// completion admits the next at once) — a closed loop without think time. JSON:
  /// `{"kind": "saturation", "concurrency": 16}`.
  public static func saturation(inFlight: Int) -> ArrivalProcess { .closedLoop(concurrency: inFlight, think: .zero) }
}

/// A length in tokens: fixed or drawn per request.
///
/// JSON: a bare integer for a fixed length, or `{"uniform": [8, 64]}`, `{"normal": {"mean": 32, "std": 8, "min": 1,
/// "max": 128}}`, `{"choice": [16, 32, 64]}`.
public enum LengthDistribution: Codable, Hashable, Sendable {
  case fixed(Int)
  case uniform(min: Int, max: Int)
  case normal(mean: Double, std: Double, min: Int, max: Int)
  case choice([Int])

  struct NormalParams: Codable {
    var mean: Double
    var std: Double
    var min: Int
    var max: Int
  }
  enum CodingKeys: String, CodingKey { case uniform, normal, choice }

  public init(from decoder: any Decoder) throws {
    if let single = try? decoder.singleValueContainer(), let n = try? single.decode(Int.self) {
      self = .fixed(n)
      return
    }
    let c = try decoder.container(keyedBy: CodingKeys.self)
    if let u = try c.decodeIfPresent([Int].self, forKey: .uniform) {
      guard u.count == 2 else {
        throw DecodingError.dataCorruptedError(forKey: .uniform, in: c, debugDescription: "uniform takes [min, max]")
      }
      self = .uniform(min: u[0], max: u[1])
    } else if let n = try c.decodeIfPresent(NormalParams.self, forKey: .normal) {
      self = .normal(mean: n.mean, std: n.std, min: n.min, max: n.max)
    } else if let ch = try c.decodeIfPresent([Int].self, forKey: .choice) {
      self = .choice(ch)
    } else {
      throw DecodingError.dataCorrupted(
        .init(
          codingPath: decoder.codingPath,
          debugDescription:
            "a length is an integer or one of {\"uniform\": [a, b]}, {\"normal\": {...}}, {\"choice\": [...]}"))
    }
  }

  public func encode(to encoder: any Encoder) throws {
    switch self {
    case .fixed(let n):
      var c = encoder.singleValueContainer()
      try c.encode(n)
    case .uniform(let a, let b):
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode([a, b], forKey: .uniform)
    case .normal(let mean, let std, let lo, let hi):
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(NormalParams(mean: mean, std: std, min: lo, max: hi), forKey: .normal)
    case .choice(let values):
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(values, forKey: .choice)
    }
  }

  /// The smallest and largest length this distribution can produce.
  public var bounds: ClosedRange<Int> {
    switch self {
    case .fixed(let n): n...n
    case .uniform(let a, let b): min(a, b)...max(a, b)
    case .normal(_, _, let lo, let hi): min(lo, hi)...max(lo, hi)
    case .choice(let v): (v.min() ?? 0)...(v.max() ?? 0)
    }
  }

  public var mean: Double {
    switch self {
    case .fixed(let n): Double(n)
    case .uniform(let a, let b): Double(a + b) / 2
    case .normal(let m, _, let lo, let hi): Swift.min(Swift.max(m, Double(lo)), Double(hi))
    case .choice(let v): v.isEmpty ? 0 : Double(v.reduce(0, +)) / Double(v.count)
    }
  }

  public func sample(_ rng: inout SeededRandom) -> Int {
    switch self {
    case .fixed(let n): return n
    case .uniform(let a, let b):
      let lo = min(a, b)
      let hi = max(a, b)
      return lo + Int(rng.next() % UInt64(hi - lo + 1))
    case .normal(let m, let s, let lo, let hi):
      let v = (m + s * rng.nextGaussian()).rounded()
      return Int(Swift.min(Swift.max(v, Double(lo)), Double(hi)))
    case .choice(let v): return v[Int(rng.next() % UInt64(v.count))]
    }
  }
}

/// One request of a run, materialised from the workload and a seed.
public struct RequestPlan: Hashable, Sendable, Codable {
  public var id: Int
  /// Arrival time for open-loop processes; nil in a closed loop (the backend releases it).
  public var arrival: Seconds?
  public var promptLength: Int
  public var outputLength: Int
  /// Prompt token ids (uniform over the vocabulary), for backends that run the real model.
  public var promptTokens: [Int32]

  public init(id: Int, arrival: Seconds?, promptLength: Int, outputLength: Int, promptTokens: [Int32]) {
    self.id = id
    self.arrival = arrival
    self.promptLength = promptLength
    self.outputLength = outputLength
    self.promptTokens = promptTokens
  }
}

extension WorkloadSpec {
  /// The requests of one run. Deterministic: the same spec, seed and vocabulary give the same requests.
  ///
  /// - Parameter prompts: the tokenized prompts of `self.prompts` (request i takes prompt i mod count); nil draws
  ///   uniform token ids of `promptTokens`' lengths.
  public func materialize(seed: UInt64, vocabularySize: Int, prompts: [[Int32]]? = nil) -> [RequestPlan] {
    var arrivals = SeededRandom.derived(seed: seed, 1)
    var lengths = SeededRandom.derived(seed: seed, 2)
    var tokens = SeededRandom.derived(seed: seed, 3)
    let times = arrivalTimes(&arrivals)
    return (0..<requests).map { i in
      let sampled = max(1, promptTokens.sample(&lengths))
      let o = max(1, outputTokens.sample(&lengths))
      if let prompts, !prompts.isEmpty {
        let ids = prompts[i % prompts.count]
        return RequestPlan(id: i, arrival: times?[i], promptLength: ids.count, outputLength: o, promptTokens: ids)
      }
      let ids = (0..<sampled).map { _ in Int32(truncatingIfNeeded: tokens.next() % UInt64(max(vocabularySize, 1))) }
      return RequestPlan(id: i, arrival: times?[i], promptLength: sampled, outputLength: o, promptTokens: ids)
    }
  }

  private func arrivalTimes(_ rng: inout SeededRandom) -> [Seconds]? {
    switch arrival {
    case .closedLoop: return nil
    case .poisson(let rate):
      var t = 0.0
      return (0..<requests).map { i in
        if i > 0 { t += rng.nextExponential(rate: rate) }
        return Seconds(t)
      }
    case .bursty(let burst, let every):
      return (0..<requests).map { i in Seconds(Double(i / max(burst, 1)) * every.value) }
    case .onOff(let on, let off, let rate):
      var t = 0.0
      var out: [Seconds] = []
      while out.count < requests {
        let cycle = on.value + off.value
        let phase = t.truncatingRemainder(dividingBy: cycle)
        if phase >= on.value {
          t += cycle - phase
          continue
        }
        out.append(Seconds(t))
        t += rng.nextExponential(rate: rate)
      }
      return out
    }
  }
}
