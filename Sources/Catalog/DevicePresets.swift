import EdgeLabCore

/// Device presets. Sources, so every number can be checked:
/// - memory, memory bandwidth, FP32 peak: NVIDIA datasheets as collected in ../shared/reference/literature.md
///   ("Devices"). The AGX Orin 32GB row is the *module* (1792 CUDA cores at 930 MHz); the original 32 GB
///   developer kit carried the full 2048-core GPU (5.32 TFLOPS). Use `jetson-agx-orin-64gb`'s compute, or a
///   custom profile, for such kits.
/// - FP16 peak: dense tensor-core FP16 = CUDA cores × 16 × max GPU clock on Ampere Jetsons (half NVIDIA's dense
///   INT8 TOPS; a measured 10.18 TFLOPS FP16 matmul on an Orin Nano agrees, zzc0721/torch-performance-test-data
///   #110). RTX 3090: 142 TFLOPS with FP16 accumulation (NVIDIA Ampere GA102 whitepaper figure). Xavier: 64
///   multiply-adds per tensor core and clock (an assumption; not found stated).
/// - usable memory: EdgeShard's budgets (14 GB on a 16 GB Orin NX, 29 GB on a 32 GB AGX Orin; arXiv 2405.14371);
///   literature.md's "≈5–6 GB usable" for the Orin Nano 8GB (5.5 GB taken); elsewhere rated minus an OS reserve
///   of 1.5 GB (boards of ≤ 8 GB), 3 GB (32–64 GB boards) or 1 GB (the 3090's CUDA context) — assumptions.
/// - storage read bandwidth (offloading): 1.36 GB/s, NVMe measured with hdparm on an Orin Nano developer kit's
///   M.2 slot (jetsonhacks/rootOnNVMe #27), assumed for every Jetson with an NVMe SSD; 3.5 GB/s for the server
///   (a PCIe 3.0 x4 NVMe SSD such as the Samsung 970 Pro, datasheet sequential read).
public struct DevicePreset: Hashable, Sendable {
  public var name: String
  public var profile: DeviceProfile

  public init(name: String, profile: DeviceProfile) {
    self.name = name
    self.profile = profile
  }

  static let jetsonNVMe = Bandwidth.megabytesPerSecond(1360)

  public static let orinNano8GB = DevicePreset(
    name: "jetson-orin-nano-8gb",
    profile: DeviceProfile(
      model: "Jetson Orin Nano 8GB", memory: .GB(8), usableMemory: .GB(5.5), memoryBandwidth: .gigabytesPerSecond(68),
      fp32Peak: .tflops(1.28), fp16Peak: .tflops(10.2), storageReadBandwidth: jetsonNVMe))
  public static let orinNano8GBSuper = DevicePreset(
    name: "jetson-orin-nano-8gb-super",
    profile: DeviceProfile(
      model: "Jetson Orin Nano 8GB (Super mode)", memory: .GB(8), usableMemory: .GB(5.5),
      memoryBandwidth: .gigabytesPerSecond(102), fp32Peak: .tflops(2.09), fp16Peak: .tflops(16.7),
      storageReadBandwidth: jetsonNVMe))
  public static let orinNano4GB = DevicePreset(
    name: "jetson-orin-nano-4gb",
    profile: DeviceProfile(
      model: "Jetson Orin Nano 4GB", memory: .GB(4), usableMemory: .GB(2.5), memoryBandwidth: .gigabytesPerSecond(34),
      fp32Peak: .tflops(0.64), fp16Peak: .tflops(5.1), storageReadBandwidth: jetsonNVMe))
  public static let orinNX16GB = DevicePreset(
    name: "jetson-orin-nx-16gb",
    profile: DeviceProfile(
      model: "Jetson Orin NX 16GB", memory: .GB(16), usableMemory: .GB(14), memoryBandwidth: .gigabytesPerSecond(102),
      fp32Peak: .tflops(1.88), fp16Peak: .tflops(15.0), storageReadBandwidth: jetsonNVMe))
  public static let orinNX8GB = DevicePreset(
    name: "jetson-orin-nx-8gb",
    profile: DeviceProfile(
      model: "Jetson Orin NX 8GB", memory: .GB(8), usableMemory: .GB(6.5), memoryBandwidth: .gigabytesPerSecond(102),
      fp32Peak: .tflops(1.57), fp16Peak: .tflops(12.5), storageReadBandwidth: jetsonNVMe))
  public static let agxOrin32GB = DevicePreset(
    name: "jetson-agx-orin-32gb",
    profile: DeviceProfile(
      model: "Jetson AGX Orin 32GB", memory: .GB(32), usableMemory: .GB(29),
      memoryBandwidth: .gigabytesPerSecond(204.8),
      fp32Peak: .tflops(3.33), fp16Peak: .tflops(26.7), storageReadBandwidth: jetsonNVMe))
  public static let agxOrin64GB = DevicePreset(
    name: "jetson-agx-orin-64gb",
    profile: DeviceProfile(
      model: "Jetson AGX Orin 64GB", memory: .GB(64), usableMemory: .GB(61),
      memoryBandwidth: .gigabytesPerSecond(204.8),
      fp32Peak: .tflops(5.32), fp16Peak: .tflops(42.6), storageReadBandwidth: jetsonNVMe))
  public static let xavierNX = DevicePreset(
    name: "jetson-xavier-nx",
    profile: DeviceProfile(
      model: "Jetson Xavier NX 8GB", memory: .GB(8), usableMemory: .GB(6.5), memoryBandwidth: .gigabytesPerSecond(59.7),
      fp32Peak: .tflops(0.845), fp16Peak: .tflops(6.8), storageReadBandwidth: jetsonNVMe))
  public static let agxXavier = DevicePreset(
    name: "jetson-agx-xavier",
    profile: DeviceProfile(
      model: "Jetson AGX Xavier 32GB", memory: .GB(32), usableMemory: .GB(29),
      memoryBandwidth: .gigabytesPerSecond(136.5),
      fp32Peak: .tflops(1.41), fp16Peak: .tflops(11.3), storageReadBandwidth: jetsonNVMe))
  public static let rtx3090Server = DevicePreset(
    name: "rtx3090-server",
    profile: DeviceProfile(
      model: "Server with RTX 3090 24GB", memory: .GB(24), usableMemory: .GB(23),
      memoryBandwidth: .gigabytesPerSecond(936),
      fp32Peak: .tflops(35.6), fp16Peak: .tflops(142), storageReadBandwidth: .megabytesPerSecond(3500), isServer: true))

  /// Raspberry Pi 4 Model B, 8 GB (Raspberry Pi 4 product brief: 4 × Cortex-A72 at 1.5 GHz, LPDDR4-3200 on a
  /// 32-bit bus = 12.8 GB/s; 128-bit NEON, 8 FP32 FLOP per cycle and core; no FP16 arithmetic; microSD storage).
  /// distributed-llama's scaling measurements ran on these (../shared/reference/literature.md).
  public static let raspberryPi4 = DevicePreset(
    name: "raspberry-pi-4-8gb",
    profile: DeviceProfile(
      model: "Raspberry Pi 4 Model B 8GB", memory: .GB(8), usableMemory: .GB(7),
      memoryBandwidth: .gigabytesPerSecond(12.8), fp32Peak: .tflops(0.048), fp16Peak: .tflops(0.048),
      storageReadBandwidth: .megabytesPerSecond(45)))

  public static let all: [DevicePreset] = [
    orinNano8GB, orinNano8GBSuper, orinNano4GB, orinNX16GB, orinNX8GB, agxOrin32GB, agxOrin64GB, xavierNX, agxXavier,
    rtx3090Server, raspberryPi4,
  ]

  public static func named(_ name: String) -> DevicePreset? {
    all.first { $0.name.lowercased() == name.lowercased() }
  }
}
