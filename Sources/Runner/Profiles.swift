import Catalog
public import CostModel
import EdgeLabCore
import Foundation
public import Spec

/// Reads host profiles (`edgelab profile`) named by experiments, once per path, and binds them to devices.
public final class ProfileLibrary: @unchecked Sendable {
  private let lock = NSLock()
  private var loaded: [String: (HostProfile, String)] = [:]

  public init() {}

  /// Largest profile file read (a profile is a few hundred kilobytes at most).
  public static let maxFileBytes = 16 << 20

  /// The profile at `path` and its content hash.
  ///
  /// - Throws: `RunnerError` naming the file and what is wrong with it.
  public func load(_ path: String, field: String) throws -> (HostProfile, String) {
    if let p = lock.withLock({ loaded[path] }) { return p }
    let p = try Self.read(path, field: field)
    lock.withLock { loaded[path] = p }
    return p
  }

  public static func read(_ path: String, field: String = "calibration.profile") throws -> (HostProfile, String) {
    let attributes = try? FileManager.default.attributesOfItem(atPath: path)
    guard let size = attributes?[.size] as? Int else {
      throw RunnerError.profile(field: field, path: path, .missing)
    }
    guard size <= maxFileBytes else {
      throw RunnerError.profile(field: field, path: path, .tooLarge(bytes: size, limit: maxFileBytes))
    }
    guard let data = FileManager.default.contents(atPath: path) else {
      throw RunnerError.profile(field: field, path: path, .unreadable)
    }
    let profile: HostProfile
    do {
      profile = try JSONDecoder().decode(HostProfile.self, from: data)
    } catch {
      throw RunnerError.profile(field: field, path: path, .notAProfile(JSONCoding.explain(error, in: data)))
    }
    let problems = profile.problems()
    if !problems.isEmpty {
      throw RunnerError.profile(field: field, path: path, .invalid(problems))
    }
    return (profile, FNV1a.label(data))
  }

  /// The time model of an experiment: measured profiles for the devices that have one (their own, else the
  /// experiment's host profile scaled as `calibration.profile_scaling` says), the roofline for the rest.
  public func timeModel(for x: ResolvedExperiment) throws -> any LayerTimeModel {
    let calibration = x.spec.calibration
    var perDevice: [String: Calibration] = [:]
    for d in x.devices where calibration.devices[d.group] != nil { perDevice[d.name] = calibration.forGroup(d.group) }
    let roofline = RooflineModel(calibration: calibration, perDevice: perDevice)
    let groups = Dictionary(x.spec.devices.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    var bindings: [String: ProfiledTimeModel.Binding] = [:]
    for d in x.devices {
      if let own = groups[d.group]?.measuredProfile {
        let (p, hash) = try load(own, field: "devices[\(d.group)].measured_profile")
        bindings[d.name] = .init(profile: p, hash: hash, scale: 1)
      } else if let path = calibration.profile {
        let (p, hash) = try load(path, field: "calibration.profile")
        switch calibration.profileScaling {
        case .host:
          // The devices are this host: their workers share it.
          bindings[d.name] = .init(profile: p, hash: hash, scale: 1, sharesHost: true)
        case .bandwidth:
          let scale =
            p.decodeBandwidth.bytesPerSecond
            / (d.profile.memoryBandwidth.bytesPerSecond * calibration.forGroup(d.group).memoryEfficiency)
          bindings[d.name] = .init(profile: p, hash: hash, scale: scale)
        }
      }
    }
    for (name, speed) in calibration.workerSpeeds.sorted(by: { $0.key < $1.key }) {
      guard bindings[name] != nil else {
        throw SpecError(
          field: "calibration.worker_speeds.\(name)",
          x.devices.contains { $0.name == name }
            ? "\(name) has no measured profile to scale (set calibration.profile or its group's measured_profile)"
            : "names no device; devices: \(x.devices.map(\.name).joined(separator: ", "))")
      }
      bindings[name]?.speed = speed
    }
    if bindings.isEmpty { return roofline }
    return ProfiledTimeModel(bindings: bindings, fallback: roofline)
  }
}
