public import EdgeLabCore
import Foundation

/// How many drafted tokens a verification accepts, for a simulation.
public enum Acceptance: Hashable, Sendable {
  /// Each drafted token is accepted with probability α, independently, up to the first rejection (Leviathan
  /// et al. 2023's i.i.d. model).
  case rate(Double)
  /// What a real draft model did: per query, how far its greedy continuation agreed with the target's (`MatchTrace`).
  case measured
}

/// For one query and one draft model: at each position of the target's greedy reply, how many of the draft's
/// greedy tokens from there on agree with the target's, up to `depth`. Greedy verification accepts exactly
/// this agreement (capped at the lookahead), so a trace replays a real run's verifications for every lookahead
/// up to `depth` without running it again.
public struct MatchTrace: Hashable, Sendable, Codable {
  /// `runs[j]`: after the target's tokens 0…j, the number of draft tokens that agree with tokens j+1, j+2, …
  /// (a stop token is never counted: verification stops at it). One entry per position but the last.
  public var runs: [Int]
  /// The longest agreement measured.
  public var depth: Int
  /// The cap on the reply's length the target was run with.
  public var maxNewTokens: Int
  /// Tokens in the target's reply.
  public var outputTokens: Int

  public init(runs: [Int], depth: Int, maxNewTokens: Int, outputTokens: Int) {
    self.runs = runs
    self.depth = depth
    self.maxNewTokens = maxNewTokens
    self.outputTokens = outputTokens
  }
}

/// One verification: tokens proposed and, of them, accepted.
public struct Verification: Hashable, Sendable, Codable {
  public var proposed: Int
  public var accepted: Int
  public init(proposed: Int, accepted: Int) {
    self.proposed = proposed
    self.accepted = accepted
  }
}

public enum SpeculationMath {
  /// Expected tokens per verification with lookahead k at i.i.d. acceptance α: (1 − α^(k+1)) / (1 − α)
  /// (k + 1 at α = 1).
  public static func expectedTokensPerVerification(acceptance alpha: Double, lookahead k: Int) -> Double {
    if alpha >= 1 { return Double(k + 1) }
    return (1 - pow(alpha, Double(k + 1))) / (1 - alpha)
  }

  /// P(accepted = i) for i = 0…k under i.i.d. acceptance α: α^i (1 − α) below k, α^k at k.
  public static func acceptedDistribution(acceptance alpha: Double, lookahead k: Int) -> [Double] {
    (0...max(0, k)).map { i in i < k ? pow(alpha, Double(i)) * (1 - alpha) : pow(alpha, Double(k)) }
  }

  /// One draw of the accepted count of `proposed` drafted tokens.
  public static func sampleAccepted(acceptance alpha: Double, proposed: Int, _ rng: inout SeededRandom) -> Int {
    var a = 0
    while a < proposed && rng.nextUnit() < alpha { a += 1 }
    return a
  }

  /// The verifications of a greedy speculative run with lookahead `k` (k ≤ the trace's depth), as
  /// `LocalPipeline.generateSpeculative` with the same draft model makes them: the first token comes from the
  /// prefill, then each verification proposes min(k, room) tokens and accepts the agreement, producing one more.
  public static func replay(_ trace: MatchTrace, lookahead k: Int) -> [Verification] {
    var out: [Verification] = []
    var produced = min(1, trace.outputTokens)
    while produced < trace.outputTokens {
      let proposed = min(k, trace.maxNewTokens - produced)
      let j = produced - 1
      let agree = j < trace.runs.count ? trace.runs[j] : 0
      let accepted = min(agree, proposed)
      out.append(Verification(proposed: proposed, accepted: accepted))
      produced += accepted + 1
    }
    return out
  }
}
