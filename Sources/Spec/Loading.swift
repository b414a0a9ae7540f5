import EdgeLabCore
public import Foundation

extension ExperimentSpec {
  /// Reads an experiment written as JSON (a file, standard input, or another tool's output), refusing keys the
  /// decoder would ignore: a misspelt or unsupported setting is an error, not a silently default value.
  ///
  /// - Parameters:
  ///   - json: the document.
  ///   - source: what to name in errors (a file name, "-").
  /// - Throws: `SpecError` naming `source` and the field at fault.
  public static func load(json: Data, source: String) throws(SpecError) -> ExperimentSpec {
    let spec: ExperimentSpec
    do { spec = try JSONCoding.decoder.decode(ExperimentSpec.self, from: json) } catch {
      throw SpecError(issues: [.init(field: source, message: JSONCoding.explain(error, in: json))])
    }
    if let written = try? JSONCoding.decoder.decode(JSONValue.self, from: json),
      let understood = try? JSONValue(encoding: spec)
    {
      // model.config may be a Hugging Face config.json pasted whole: its other keys are ignored on purpose.
      let unknown = written.keysMissing(from: understood, opaque: ["model.config"])
      if !unknown.isEmpty {
        throw SpecError(issues: [
          .init(
            field: source,
            message:
              "unknown field\(unknown.count == 1 ? "" : "s") \(unknown.map { "'\($0)'" }.joined(separator: ", ")) (check the spelling; `edgelab spec quickstart` prints a complete spec)"
          )
        ])
      }
    }
    return spec
  }
}
