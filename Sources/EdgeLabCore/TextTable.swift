/// A plain-text table with aligned columns, for `edgelab show` and benchmark output.
public struct TextTable: Sendable {
  public var header: [String]
  public var rows: [[String]] = []
  /// Columns whose cells are right-aligned (numbers).
  public var rightAligned: Set<Int> = []

  public init(header: [String], rightAligned: Set<Int> = []) {
    self.header = header
    self.rightAligned = rightAligned
  }

  public mutating func append(_ row: [String]) { rows.append(row) }

  public func render() -> String {
    let all = [header] + rows
    let widths = header.indices.map { c in all.map { c < $0.count ? $0[c].count : 0 }.max() ?? 0 }
    func line(_ r: [String]) -> String {
      r.indices.map { c in
        let cell = r[c]
        let pad = String(repeating: " ", count: max(0, widths[c] - cell.count))
        return rightAligned.contains(c) ? pad + cell : cell + pad
      }.joined(separator: "  ").trailingSpacesTrimmed
    }
    var out = [line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
    out += rows.map(line)
    return out.joined(separator: "\n")
  }

  /// GitHub-flavoured markdown, for tables that go into docs/.
  public func markdown() -> String {
    var out = ["| " + header.joined(separator: " | ") + " |"]
    out.append("|" + header.indices.map { rightAligned.contains($0) ? "---:" : "---" }.joined(separator: "|") + "|")
    out += rows.map { "| " + $0.joined(separator: " | ") + " |" }
    return out.joined(separator: "\n")
  }
}

extension String {
  var trailingSpacesTrimmed: String {
    var s = self
    while s.hasSuffix(" ") { s.removeLast() }
    return s
  }
}
