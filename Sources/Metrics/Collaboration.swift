public import EdgeLabCore

/// How one query of an edge–cloud run was served: by which model, whether the answer was right, what each side
/// read and wrote, and — for speculative decoding — each verification.
public struct QueryRecord: Hashable, Sendable, Codable {
  public enum Server: String, Hashable, Sendable, Codable {
    /// The edge model answered alone.
    case edge
    /// The cloud (target) model answered; the edge may have probed or drafted.
    case cloud
  }
  public var id: Int
  public var servedBy: Server
  /// Whether the answer was right; nil when nothing was measured.
  public var correct: Bool?
  public var edgePromptTokens: Int
  public var edgeCompletionTokens: Int
  public var cloudPromptTokens: Int
  public var cloudCompletionTokens: Int
  /// Bytes the edge device sent to, and received from, the devices of the cloud model.
  public var bytesToCloud: Double
  public var bytesFromCloud: Double
  /// Per verification of a speculative run: drafted tokens and accepted ones.
  public var proposed: [Int]
  public var accepted: [Int]

  public init(
    id: Int, servedBy: Server, correct: Bool?, edgePromptTokens: Int = 0, edgeCompletionTokens: Int = 0,
    cloudPromptTokens: Int = 0, cloudCompletionTokens: Int = 0, bytesToCloud: Double = 0, bytesFromCloud: Double = 0,
    proposed: [Int] = [], accepted: [Int] = []
  ) {
    self.id = id
    self.servedBy = servedBy
    self.correct = correct
    self.edgePromptTokens = edgePromptTokens
    self.edgeCompletionTokens = edgeCompletionTokens
    self.cloudPromptTokens = cloudPromptTokens
    self.cloudCompletionTokens = cloudCompletionTokens
    self.bytesToCloud = bytesToCloud
    self.bytesFromCloud = bytesFromCloud
    self.proposed = proposed
    self.accepted = accepted
  }
}

/// The metrics the edge–cloud benchmark of KubeEdge-Ianvs reports, over a run's queries (NaN without them).
public struct CollaborationSummary: Hashable, Sendable, Codable {
  public var accuracy = Double.nan
  /// Share of queries the edge model answered alone.
  public var edgeRatio = Double.nan
  public var edgePromptTokens = Double.nan
  public var edgeCompletionTokens = Double.nan
  public var cloudPromptTokens = Double.nan
  public var cloudCompletionTokens = Double.nan
  public var bytesToCloud = Double.nan
  public var bytesFromCloud = Double.nan
  /// Accepted ÷ drafted tokens, and tokens per verification (accepted + the target's own), over every
  /// verification of the run.
  public var acceptanceRate = Double.nan
  public var tokensPerVerification = Double.nan

  public init(_ queries: [QueryRecord]?) {
    guard let q = queries, !q.isEmpty else { return }
    let n = Double(q.count)
    let known = q.compactMap(\.correct)
    accuracy = known.count == q.count ? Double(known.filter { $0 }.count) / n : .nan
    edgeRatio = Double(q.filter { $0.servedBy == .edge }.count) / n
    func sum(_ f: (QueryRecord) -> Int) -> Double { Double(q.reduce(0) { $0 + f($1) }) }
    edgePromptTokens = sum(\.edgePromptTokens)
    edgeCompletionTokens = sum(\.edgeCompletionTokens)
    cloudPromptTokens = sum(\.cloudPromptTokens)
    cloudCompletionTokens = sum(\.cloudCompletionTokens)
    bytesToCloud = q.reduce(0) { $0 + $1.bytesToCloud }
    bytesFromCloud = q.reduce(0) { $0 + $1.bytesFromCloud }
    let proposed = q.reduce(0) { $0 + $1.proposed.reduce(0, +) }
    let accepted = q.reduce(0) { $0 + $1.accepted.reduce(0, +) }
    let verifications = q.reduce(0) { $0 + $1.proposed.count }
    if proposed > 0 { acceptanceRate = Double(accepted) / Double(proposed) }
    if verifications > 0 { tokensPerVerification = Double(accepted + verifications) / Double(verifications) }
  }

  public var scalars: [(String, Double)] {
    [
      ("accuracy", accuracy), ("edge_ratio", edgeRatio), ("edge_prompt_tokens", edgePromptTokens),
      ("edge_completion_tokens", edgeCompletionTokens), ("cloud_prompt_tokens", cloudPromptTokens),
      ("cloud_completion_tokens", cloudCompletionTokens), ("bytes_to_cloud", bytesToCloud),
      ("bytes_from_cloud", bytesFromCloud), ("acceptance_rate", acceptanceRate),
      ("tokens_per_verification", tokensPerVerification),
    ]
  }
}
