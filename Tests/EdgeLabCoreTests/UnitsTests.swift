import EdgeLabCore
import Testing

@Suite("Units")
struct UnitsTests {
  @Test(arguments: [
    ("100Mbit/s", 1e8), ("1Gbit/s", 1e9), ("100Mbps", 1e8), ("12.5MB/s", 1e8), ("68GB/s", 5.44e11), ("250000", 250_000),
  ])
  func bandwidthParses(text: String, bitsPerSecond: Double) throws {
    #expect(try Bandwidth(parsing: text).bitsPerSecond == bitsPerSecond)
  }

  @Test(arguments: [("8GB", 8e9), ("512MiB", 536_870_912), ("1.5kB", 1500), ("42", 42)])
  func bytesParse(text: String, value: Double) throws {
    #expect(try Bytes(parsing: text).value == value)
  }

  @Test(arguments: [("2ms", 0.002), ("250us", 0.00025), ("1.5s", 1.5), ("0", 0)])
  func secondsParse(text: String, value: Double) throws {
    #expect(try Seconds(parsing: text).value == value)
  }

  @Test func badQuantityNamesWhatWasExpected() {
    #expect(throws: UnitParseError.self) { try Bandwidth(parsing: "fast") }
    do {
      _ = try Bytes(parsing: "8 gigs")
      Issue.record("parsed nonsense")
    } catch {
      #expect("\(error)".contains("8 gigs"))
      #expect("\(error)".contains("bytes"))
    }
  }

  /// The canonical strings round-trip bit for bit, whatever the value.
  @Test(arguments: [1e6, 1.5e6, 123_456_789.0, 0.1 * 3, 1e9 / 3, 7.0, 936e9 * 8])
  func canonicalFormsRoundTrip(value: Double) throws {
    #expect(try Bandwidth(parsing: Bandwidth(bitsPerSecond: value).canonical).bitsPerSecond == value)
    #expect(try Bytes(parsing: Bytes(value).canonical).value == value)
    #expect(try Seconds(parsing: Seconds(value / 1e9).canonical).value == value / 1e9)
  }

  @Test func transferTimeUsesBits() {
    #expect(Bytes(1_250_000) / Bandwidth.mbit(10) == Seconds(1))
  }

  @Test func fixedPointFormatting() {
    #expect(String(format: 3.14159, digits: 2) == "3.14")
    #expect(String(format: -0.005, digits: 2) == "-0.01")
    #expect(String(format: 2.999, digits: 2) == "3.00")
    #expect(String(format: 0.0, digits: 0) == "0")
  }

  @Test func scientificFormatting() {
    #expect(String(scientific: 1.9494240980837832e26, digits: 2) == "1.95e26")
    #expect(String(scientific: 9.996e26, digits: 2) == "1.00e27")
    #expect(String(scientific: 0.00042, digits: 1) == "4.2e-4")
  }
}

@Suite("Seeded randomness")
struct RandomTests {
  @Test func sameSeedSameStream() {
    var a = SeededRandom(seed: 42)
    var b = SeededRandom(seed: 42)
    var c = SeededRandom(seed: 43)
    let sa = (0..<5).map { _ in a.next() }
    let sb = (0..<5).map { _ in b.next() }
    let sc = (0..<5).map { _ in c.next() }
    #expect(sa == sb)
    #expect(sa != sc)
  }

  @Test func exponentialHasTheRightMean() {
    var g = SeededRandom(seed: 1)
    let n = 20000
    let mean = (0..<n).reduce(0.0) { acc, _ in acc + g.nextExponential(rate: 4) } / Double(n)
    #expect(abs(mean - 0.25) < 0.01)
  }

  @Test func unitIsInRange() {
    var g = SeededRandom(seed: 9)
    for _ in 0..<1000 {
      let u = g.nextUnit()
      #expect(u >= 0 && u < 1)
    }
  }
}

@Suite("JSON paths")
struct JSONPathTests {
  let tree: JSONValue = .object([
    "network": .object(["link": .object(["bandwidth": "1Gbit/s"])]),
    "devices": .array([.object(["name": "agx", "count": 1]), .object(["name": "nx", "count": 2])]),
  ])

  @Test func getsBySelectors() throws {
    #expect(tree.value(at: try JSONPath("network.link.bandwidth")) == "1Gbit/s")
    #expect(tree.value(at: try JSONPath("devices[1].count")) == 2)
    #expect(tree.value(at: try JSONPath("devices[nx].count")) == 2)
    #expect(tree.value(at: try JSONPath("devices[gpu].count")) == nil)
  }

  @Test func setsAndCreatesMissingKeys() throws {
    var t = tree
    try t.set("10Mbit/s", at: JSONPath("network.link.bandwidth"))
    try t.set(5, at: JSONPath("devices[nx].count"))
    try t.set(true, at: JSONPath("execution.return_to_source"))
    #expect(t.value(at: try JSONPath("network.link.bandwidth")) == "10Mbit/s")
    #expect(t.value(at: try JSONPath("devices[1].count")) == 5)
    #expect(t.value(at: try JSONPath("execution.return_to_source")) == true)
  }

  @Test func badPathsAreNamed() throws {
    var t = tree
    #expect(throws: JSONPathError.self) { try t.set(1, at: JSONPath("devices[7].count")) }
    do {
      try t.set(1, at: JSONPath("devices[tpu].count"))
      Issue.record("set a missing element")
    } catch {
      #expect(error.description.contains("tpu"))
      #expect(error.description.contains("agx, nx"))
    }
    #expect(throws: JSONPathError.self) { try JSONPath("devices[") }
  }
}

@Suite("Text tables")
struct TextTableTests {
  @Test func alignsColumns() {
    var t = TextTable(header: ["A", "NUM"], rightAligned: [1])
    t.append(["x", "1"])
    t.append(["long", "100"])
    let lines = t.render().split(separator: "\n").map(String.init)
    #expect(lines == ["A     NUM", "----  ---", "x       1", "long  100"])
  }
}
