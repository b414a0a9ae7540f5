import Foundation

/// Power from a Jetson's `tegrastats` output, one line per sample, e.g.
/// `… VDD_IN 5234mW/5010mW VDD_CPU_GPU_CV 1120mW/1100mW …` (Orin: the module's input rail, instantaneous/average)
/// or `… POM_5V_IN 3216/3100 …` (older modules, mW). The input rail is the board's whole draw.
public enum Tegrastats {
  /// The board's input power in watts from one line, nil when the line has none.
  public static func inputPower(_ line: Substring) -> Double? {
    let words = line.split(separator: " ")
    for (i, w) in words.enumerated() where (w == "VDD_IN" || w == "POM_5V_IN") && i + 1 < words.count {
      let value = words[i + 1].split(separator: "/").first ?? ""
      let digits = value.prefix { $0.isNumber }
      if let mW = Double(digits), mW.isFinite { return mW / 1000 }
    }
    return nil
  }

  /// Mean input power and energy (sampling `interval` seconds apart) over a whole output; nil without samples.
  public static func summary(_ text: String, interval: Double) -> (watts: Double, joules: Double, samples: Int)? {
    let powers = text.split(separator: "\n").compactMap(inputPower)
    guard !powers.isEmpty else { return nil }
    let mean = powers.reduce(0, +) / Double(powers.count)
    return (mean, mean * interval * Double(powers.count), powers.count)
  }
}
