/// A small, fast, seedable generator (xoshiro256**, seeded through SplitMix64) so that the same seed gives the
/// same workload, jitter and synthetic weights in every process and on every platform.
public struct SeededRandom: RandomNumberGenerator, Sendable {
  private var s: (UInt64, UInt64, UInt64, UInt64)

  public init(seed: UInt64) {
    var sm = seed
    func next() -> UInt64 {
      sm &+= 0x9E37_79B9_7F4A_7C15
      var z = sm
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    s = (next(), next(), next(), next())
  }

  /// A generator for an independent stream derived from this seed and a label (e.g. a repetition index).
  public static func derived(seed: UInt64, _ labels: UInt64...) -> SeededRandom {
    var h = seed
    for l in labels { h = mix(h ^ (l &* 0x9E37_79B9_7F4A_7C15)) }
    return SeededRandom(seed: h)
  }

  /// SplitMix64's finaliser: a bijective 64-bit mix.
  public static func mix(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  public mutating func next() -> UInt64 {
    let result = rotl(s.1 &* 5, 7) &* 9
    let t = s.1 << 17
    s.2 ^= s.0
    s.3 ^= s.1
    s.1 ^= s.2
    s.0 ^= s.3
    s.2 ^= t
    s.3 = rotl(s.3, 45)
    return result
  }

  private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

  /// Uniform in [0, 1) with 53 bits of precision.
  public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

  /// Exponentially distributed with the given rate (mean 1/rate).
  public mutating func nextExponential(rate: Double) -> Double {
    -log1pPortable(-nextUnit()) / rate
  }

  /// Standard normal (Box–Muller).
  public mutating func nextGaussian() -> Double {
    let u1 = max(nextUnit(), 1e-300)
    let u2 = nextUnit()
    return (-2 * logPortable(u1)).squareRoot() * cosPortable(2 * Double.pi * u2)
  }
}

// Elementary functions without Foundation, so this module has no dependencies.
@usableFromInline func logPortable(_ x: Double) -> Double { _log(x) }
@usableFromInline func log1pPortable(_ x: Double) -> Double { _log(1 + x) }
@usableFromInline func cosPortable(_ x: Double) -> Double { _cos(x) }

#if canImport(Glibc)
import Glibc
@inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#elseif canImport(Darwin)
import Darwin
@inline(__always) func _log(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Darwin.cos(x) }
#endif
