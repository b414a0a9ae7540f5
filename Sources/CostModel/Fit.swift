/// A piecewise-linear function of one variable: straight segments between knots, extended beyond the first and
/// last knot along the first and last segment, never below zero.
public struct PiecewiseLinear: Codable, Hashable, Sendable {
  /// Increasing x positions of the knots.
  public var knots: [Double]
  /// The function's value at each knot.
  public var values: [Double]

  public init(knots: [Double], values: [Double]) {
    self.knots = knots
    self.values = values
  }

  public func callAsFunction(_ x: Double) -> Double {
    guard knots.count > 1 else { return max(0, values.first ?? 0) }
    var i = 0
    while i + 2 < knots.count && x > knots[i + 1] { i += 1 }
    let (x0, x1, y0, y1) = (knots[i], knots[i + 1], values[i], values[i + 1])
    return max(0, y0 + (y1 - y0) * (x - x0) / (x1 - x0))
  }

  /// What is wrong with this function as read from a file, if anything.
  public func problems(_ name: String) -> [String] {
    var p: [String] = []
    if knots.isEmpty || knots.count != values.count {
      p.append("\(name): needs as many values as knots, at least one (\(knots.count) knots, \(values.count) values)")
    }
    if !(knots + values).allSatisfy(\.isFinite) { p.append("\(name): knots and values must be finite numbers") }
    if zip(knots, knots.dropFirst()).contains(where: { $0 >= $1 }) {
      p.append("\(name): knots must increase")
    }
    return p
  }

  /// The least-squares piecewise-linear function with the given knots through the points (x, y): the values at
  /// the knots minimise Σ (f(x) − y)². Nil when the points do not determine every knot's value (a segment
  /// without points on either side, or fewer points than knots).
  public static func fit(knots: [Double], points: [(x: Double, y: Double)]) -> PiecewiseLinear? {
    let n = knots.count
    guard n >= 1, points.count >= n else { return nil }
    if n == 1 { return PiecewiseLinear(knots: knots, values: [points.map(\.y).reduce(0, +) / Double(points.count)]) }
    // f(x) = Σ_k v_k · b_k(x) with hat functions b_k; normal equations (BᵀB) v = Bᵀy.
    var a = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
    var rhs = [Double](repeating: 0, count: n)
    for p in points {
      var i = 0
      while i + 2 < n && p.x > knots[i + 1] { i += 1 }
      let t = (p.x - knots[i]) / (knots[i + 1] - knots[i])
      let w = [(i, 1 - t), (i + 1, t)]
      for (r, wr) in w {
        rhs[r] += wr * p.y
        for (c, wc) in w { a[r][c] += wr * wc }
      }
    }
    guard let v = solve(a, rhs) else { return nil }
    return PiecewiseLinear(knots: knots, values: v)
  }

  /// Gaussian elimination with partial pivoting; nil for a singular system.
  static func solve(_ m: [[Double]], _ b: [Double]) -> [Double]? {
    var a = m
    var y = b
    let n = y.count
    for c in 0..<n {
      guard let p = (c..<n).max(by: { abs(a[$0][c]) < abs(a[$1][c]) }), abs(a[p][c]) > 1e-300 else { return nil }
      a.swapAt(c, p)
      y.swapAt(c, p)
      for r in (c + 1)..<n {
        let f = a[r][c] / a[c][c]
        if f == 0 { continue }
        for k in c..<n { a[r][k] -= f * a[c][k] }
        y[r] -= f * y[c]
      }
    }
    var x = [Double](repeating: 0, count: n)
    for r in stride(from: n - 1, through: 0, by: -1) {
      var s = y[r]
      for k in (r + 1)..<n { s -= a[r][k] * x[k] }
      x[r] = s / a[r][r]
    }
    return x.allSatisfy(\.isFinite) ? x : nil
  }
}
