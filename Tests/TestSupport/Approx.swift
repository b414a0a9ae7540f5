/// The one floating-point comparison of the test suite: |a − b| ≤ atol + rtol·|b| (NumPy's `isclose`).
/// Defaults: rtol 1e-9 (values computed by different summation orders), atol 1e-12.
public func isClose(_ a: Double, _ b: Double, rtol: Double = 1e-9, atol: Double = 1e-12) -> Bool {
  if a.isNaN || b.isNaN { return a.isNaN && b.isNaN }
  if a.isInfinite || b.isInfinite { return a == b }
  return abs(a - b) <= atol + rtol * abs(b)
}

/// Element-wise `isClose` of two float arrays; returns the first offending index, or nil when all are close.
public func firstMismatch(_ a: [Float], _ b: [Float], rtol: Double, atol: Double) -> Int? {
  guard a.count == b.count else { return min(a.count, b.count) }
  for i in a.indices where !isClose(Double(a[i]), Double(b[i]), rtol: rtol, atol: atol) { return i }
  return nil
}

/// A fresh temporary directory for a test.
public func temporaryDirectory(_ label: String = "edgelab-test") -> String {
  var template = Array("/tmp/\(label)-XXXXXX".utf8CString)
  return template.withUnsafeMutableBufferPointer { buf in String(cString: mkdtemp(buf.baseAddress!)) }
}

#if canImport(Glibc)
import Glibc
#endif
