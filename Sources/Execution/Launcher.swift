public import CostModel
public import Spec

/// Where and how a worker process runs: the seam between the runtime and the emulated cluster.
public protocol WorkerLauncher: Sendable {
  /// How links are realised, recorded per link in results ("loopback-tcp", "tc-htb+nft-loss+transport-delay", …).
  var mechanism: String { get }
  /// Sets up hosts for `devices`; returns how to start each worker and how to reach it.
  func prepare(devices: [String], experiment: ResolvedExperiment, runID: String) throws -> [String: LaunchTarget]
  /// The same, knowing each device's time model: an emulation sizes its time dilation so that this host can take
  /// every device's time in each phase.
  func prepare(devices: [String], experiment: ResolvedExperiment, runID: String, paces: [String: DevicePace]) throws
    -> [String: LaunchTarget]
  /// Undoes everything `prepare` did (called on every exit path).
  func teardown()
  /// Facts about the emulation for the results file (dilation factor, commands, kernel version, …).
  func facts() -> [String: String]
  /// How the link from → to is realised.
  func mechanism(from: String, to: String) -> String
  /// The workload starts now (time zero of the run): bandwidth traces start here.
  func runStarted()
}

extension WorkerLauncher {
  public func mechanism(from: String, to: String) -> String { mechanism }
  public func runStarted() {}
}

/// Makes the launcher for a run from its experiment (its emulation options, or its boards inventory).
public typealias LauncherFactory = @Sendable (ExperimentSpec) throws -> any WorkerLauncher

/// Without the Emulation module: plain processes only.
public let plainLauncherFactory: LauncherFactory = { spec in
  switch spec.emulation.mode {
  case .none: return LocalLauncher()
  default:
    throw BackendError.unavailable(
      .loopback, "emulation '\(spec.emulation.mode.rawValue)' is not available here; set emulation to none")
  }
}

/// What the transport of a worker adds to a link into it: delay when the kernel cannot delay (no netem), and
/// each message's serialization at the link's rate.
///
/// A token bucket (the kernel's HTB) limits a link's sustained rate but lets a message that fits in its burst
/// through at once, where a real link of that rate takes (wire bytes) / rate for every message; so the receiver
/// releases each frame no earlier than its link would have delivered it: the link serves frames in order from
/// their send times (`WireModel`'s bytes on the wire at `bytesPerSecond`), then the latency.
public struct LinkDelay: Codable, Sendable, Hashable {
  /// Added one-way delay and its jitter (standard deviation), seconds.
  public var latency: Double
  public var jitter: Double
  /// The link's rate in bytes per second of wall time; nil: no serialization added (a link whose bandwidth
  /// follows a trace is left to the kernel).
  public var bytesPerSecond: Double?

  public init(latency: Double, jitter: Double, bytesPerSecond: Double? = nil) {
    self.latency = latency
    self.jitter = jitter
    self.bytesPerSecond = bytesPerSecond
  }
}

/// Bytes a message puts on a network link: its frame, cut into TCP segments of 1448 payload bytes (Ethernet MTU
/// 1500 less IPv4 and TCP headers with timestamps), each with 66 bytes of headers as a shaper counts them
/// (Ethernet 14, IPv4 20, TCP 32). The simulator and the emulated links' serialization both use it.
public enum WireModel {
  public static let segmentPayloadBytes = 1448.0
  public static let segmentHeaderBytes = 66.0

  public static func onWire(frameBytes: Double) -> Double {
    frameBytes + (frameBytes / segmentPayloadBytes).rounded(.up) * segmentHeaderBytes
  }
}

extension WorkerLauncher {
  public func prepare(devices: [String], experiment: ResolvedExperiment, runID: String, paces: [String: DevicePace])
    throws -> [String: LaunchTarget]
  {
    try prepare(devices: devices, experiment: experiment, runID: runID)
  }
}

/// How to start and reach one worker.
public struct LaunchTarget: Sendable {
  /// Address the worker binds.
  public var listenHost: String
  /// Command prefix, e.g. `ip netns exec NS` (empty: run directly).
  public var prefix: [String]
  /// Emulated delays of links into this worker, by sending device (transport-level).
  public var delays: [String: LinkDelay]
  /// Scale from wall time to device time (time dilation); 1 without emulation.
  public var dilation: Double
  /// Storage read pacing for offloaded layers, bytes per second of wall time.
  public var storageBytesPerSecond: Double?
  /// Runs after the worker has started (e.g. put it into its cgroup).
  public var attach: (@Sendable (Int32) throws -> Void)?
  /// Sender-side rate pacing of links out of this worker, bytes/s by destination device (userspace shaping).
  public var pacing: [String: Double] = [:]
  /// Wall seconds each second of this host's CPU spent computing a stage is to take (1 / the device's CPU share
  /// of the dilation plan): the worker pads every computation to it, so a device is as slow as emulated during
  /// each burst of work, not only on average (a CPU quota caps the average; a pipeline stage that computes for a
  /// millisecond between idle gaps never reaches it). Nil: computations run at this host's speed.
  public var computeStretch: Double?
  /// The worker emulates its device: each computation takes the device's time (its time model's, `DevicePace`)
  /// × the dilation in wall time.
  public var emulatesDevice = false
  /// A worker on another machine, started through `prefix` (e.g. `ssh … --`): nil for a local one.
  public var remote: RemoteWorker?

  public init(
    listenHost: String, prefix: [String] = [], delays: [String: LinkDelay] = [:], dilation: Double = 1,
    storageBytesPerSecond: Double? = nil, attach: (@Sendable (Int32) throws -> Void)? = nil
  ) {
    self.listenHost = listenHost
    self.prefix = prefix
    self.delays = delays
    self.dilation = dilation
    self.storageBytesPerSecond = storageBytesPerSecond
    self.attach = attach
  }
}

/// How a worker on another machine is started and what it sees: the run token arrives on its standard input
/// (nothing is written to the remote disk but its offload store), its address is read from its output, and it
/// exits when its standard input closes (the coordinator stopped it, or the connection to it was lost).
public struct RemoteWorker: Sendable, Hashable {
  /// The `edgelab` executable on that machine.
  public var executable: String
  /// Where its offload store goes (removed after the run by the launcher).
  public var storageDirectory: String
  /// Where the experiment's checkpoint directory is found on that machine (its last path component is kept).
  public var checkpointRoot: String?
  /// A tag on the worker's command line that tells this run's workers apart (`edgelab boards clean`).
  public var tag: String

  public init(executable: String, storageDirectory: String, checkpointRoot: String?, tag: String) {
    self.executable = executable
    self.storageDirectory = storageDirectory
    self.checkpointRoot = checkpointRoot
    self.tag = tag
  }
}

/// Command lines for a POSIX shell on another machine (what `ssh HOST -- COMMAND` runs).
public enum RemoteShell {
  /// One word, single-quoted unless it needs no quoting.
  public static func quote(_ word: String) -> String {
    let plain =
      !word.isEmpty && word.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_./:=@,+".contains($0)) }
    return plain
      ? word : "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
  }

  /// Words joined into one command line, each quoted.
  public static func quote(_ words: [String]) -> String { words.map { quote($0) }.joined(separator: " ") }
}

/// Workers as plain processes on 127.0.0.1: real TCP over loopback, no shaping.
public struct LocalLauncher: WorkerLauncher {
  public init() {}
  public var mechanism: String { "loopback-tcp" }
  public func prepare(devices: [String], experiment: ResolvedExperiment, runID: String) throws -> [String: LaunchTarget]
  {
    Dictionary(uniqueKeysWithValues: devices.map { ($0, LaunchTarget(listenHost: "127.0.0.1")) })
  }
  public func teardown() {}
  public func facts() -> [String: String] { ["emulation": "none"] }
}
