// An experiment file needs only `import DSL`: the spec types, presets and units come with it.
@_exported public import Catalog
@_exported public import Collaboration
@_exported public import EdgeLabCore
@_exported public import Spec
