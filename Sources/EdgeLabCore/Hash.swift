/// FNV-1a, 64 bits: a stable hash of bytes (the same in every process and on every machine), for names and
/// file contents. Not for security.
public enum FNV1a {
  public static let offset: UInt64 = 0xcbf2_9ce4_8422_2325
  public static let prime: UInt64 = 0x100_0000_01b3

  public static func hash<S: Sequence>(_ bytes: S) -> UInt64 where S.Element == UInt8 {
    var h = offset
    for b in bytes { h = (h ^ UInt64(b)) &* prime }
    return h
  }

  /// "fnv1a64:" and the hash in 16 hex digits.
  public static func label<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    let hex = String(hash(bytes), radix: 16)
    return "fnv1a64:" + String(repeating: "0", count: 16 - hex.count) + hex
  }
}
