public import Collaboration
public import Partitioning

/// A researcher's own algorithms, compiled into `edgelab` beside the lab's: add one file to this folder and
/// its type to the list below, and the name works in experiments (`Algorithm("fastest-first")`), in JSON specs
/// and in `edgelab partition`; `edgelab algorithms` marks it `user`. Nothing under `Sources/` changes.
///
/// A name the lab already uses is refused by every command that resolves algorithms (`run`, `algorithms`, …). This folder depends on the `Partitioning`
/// and `Collaboration` modules only (their public APIs: docs/partitioning.md, docs/collaboration.md); it is also where other kinds of extension go as the
/// lab grows them, each with its own list here.
public enum UserAlgorithms {
  /// The partition algorithms of this folder, in the order `edgelab algorithms` lists them.
  public static let partitioners: [any Partitioner.Type] = [
    FastestFirst.self,
    NearestPair.self,
  ]

  /// Query routers of this folder (`Strategy(..., .route(RouterChoice("name"), cloud: ...))`), after the lab's.
  public static let routers: [RouterRegistry.Entry] = [
    ShortAndSureRouter.entry
  ]
}
