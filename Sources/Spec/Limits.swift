/// The largest experiment the lab expands. Each ceiling is checked before anything is materialised (devices,
/// sweep points, runs, requests), so a mistyped `1e9` is refused with a sentence instead of exhausting memory.
/// An experiment beyond them is split: several experiments, or a sweep sharded on a cluster.
public enum SpecLimits {
  /// Device instances in one experiment (all groups together).
  public static let devices = 1024
  /// Requests in one run's workload.
  public static let requests = 1_000_000
  /// Longest prompt or output of one request, in tokens.
  public static let tokensPerRequest = 1 << 20
  /// Output tokens of one run (requests × longest output): each token's time is recorded.
  public static let outputTokensPerRun = 50_000_000
  /// Prompt tokens of one run (requests × longest prompt): every prompt is materialised.
  public static let promptTokensPerRun = 50_000_000
  /// Repetitions of each point and algorithm.
  public static let repetitions = 10_000
  /// Points of the sweep (the product of every axis's number of values).
  public static let sweepPoints = 10_000
  /// Runs of one experiment (points × algorithms × repetitions).
  public static let runs = 200_000
  /// Points of one bandwidth trace.
  public static let tracePoints = 100_000
}
