/// The tc commands that shape a host's links on one interface's egress: a root HTB qdisc with an unshaped default
/// class (traffic to anyone else: the coordinator, ssh), and per destination a class at the link's rate selected
/// by a u32 filter on the destination address, with a netem child for delay, jitter and loss where the kernel
/// has netem. The emulated cluster shapes its namespaces' `eth0` with it; the boards backend a board's own
/// interface over SSH. Pure: commands as argument lists, `tc` included, for the caller to prefix and run.
public enum LinkShaping {
  public struct Egress: Sendable, Hashable {
    /// The destination's IPv4 address.
    public var destination: String
    /// Class minor number, unique per interface (≥ 10, below the default class's).
    public var minor: Int
    /// Bytes per second.
    public var rate: Double
    /// One-way delay and its jitter (seconds) and loss (fraction), applied with netem when `netem` is set.
    public var latency: Double
    public var jitter: Double
    public var loss: Double

    public init(
      destination: String, minor: Int, rate: Double, latency: Double = 0, jitter: Double = 0, loss: Double = 0
    ) {
      self.destination = destination
      self.minor = minor
      self.rate = rate
      self.latency = latency
      self.jitter = jitter
      self.loss = loss
    }

    var needsNetem: Bool { latency > 0 || jitter > 0 || loss > 0 }
  }

  /// The default class's minor number: traffic to no shaped destination.
  public static let defaultMinor = 9999

  /// tc's rate argument (at least 8 bit/s).
  public static func rateArg(_ bytesPerSecond: Double) -> String {
    "\(max(8, Int((bytesPerSecond * 8).rounded())))bit"
  }
  /// Burst = max(rate/100, 2 MTU): at least rate/HZ for any kernel HZ ≥ 100.
  public static func burst(_ bytesPerSecond: Double) -> String { String(max(3028, Int(bytesPerSecond / 100))) }

  /// The root HTB and its default class on `interface` (`replace`: a board's own default qdisc gives way).
  public static func root(interface: String, handle: String, replace: Bool = false) -> [[String]] {
    [
      [
        "tc", "qdisc", replace ? "replace" : "add", "dev", interface, "root", "handle", handle + ":", "htb", "default",
        String(defaultMinor), "r2q", "1000",
      ],
      [
        "tc", "class", "add", "dev", interface, "parent", handle + ":", "classid", "\(handle):\(defaultMinor)", "htb",
        "rate", "10gbit",
      ],
    ]
  }

  /// One destination's class, filter and (with `netem`, when the link has delay, jitter or loss) netem child.
  public static func egress(interface: String, handle: String, _ e: Egress, netem: Bool) -> [[String]] {
    let rate = rateArg(e.rate)
    let burst = burst(e.rate)
    let classID = "\(handle):\(e.minor)"
    var out: [[String]] = [
      [
        "tc", "class", "add", "dev", interface, "parent", handle + ":", "classid", classID, "htb", "rate", rate, "ceil",
        rate, "burst", burst, "cburst", burst,
      ],
      [
        "tc", "filter", "add", "dev", interface, "parent", handle + ":", "protocol", "ip", "prio", "1", "u32", "match",
        "ip", "dst", e.destination + "/32", "flowid", classID,
      ],
    ]
    if netem && e.needsNetem { out.append(netemChild(interface: interface, parent: classID, minor: e.minor, e)) }
    return out
  }

  /// A netem qdisc under class `parent`.
  public static func netemChild(interface: String, parent: String, minor: Int, _ e: Egress) -> [String] {
    var args = [
      "tc", "qdisc", "add", "dev", interface, "parent", parent, "handle", "\(minor):", "netem", "delay",
      "\(e.latency * 1e3)ms",
    ]
    if e.jitter > 0 { args += ["\(e.jitter * 1e3)ms", "distribution", "normal"] }
    if e.loss > 0 { args += ["loss", "\(e.loss * 100)%"] }
    return args + ["limit", "100000"]
  }

  /// Removes the root qdisc on `interface` if it is this handle's HTB (someone else's is left alone), as one
  /// shell command line.
  public static func removeRootScript(interface: String, handle: String, tc: String = "tc") -> String {
    "if \(tc) qdisc show dev \(interface) | grep -q 'htb \(handle): root'; then \(tc) qdisc del dev \(interface) root; fi"
  }
}
