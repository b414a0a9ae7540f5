// An algorithm file (the lab's, or a researcher's in algorithms/) needs only `import Partitioning`: plans
// (`Plan`, `ResidencyPolicy`) and the shared value types (`Objective`, `JSONValue`) come with it.
@_exported public import EdgeLabCore
@_exported public import Pipeline
