/// The staging slots of one device's offloaded layers, as a pure state machine: which layer to read from storage
/// next, whether a computation can use a layer now, and when a slot frees. LIME's cost model, the simulator
/// (both through `VirtualOffloadTimeline`) and the worker's offload store (in wall time) all execute it.
///
/// The model:
/// - Offloaded layers are read one at a time, in order of use: the device's offloaded layers in pipeline order,
///   repeating (every token visits them in that order). The prediction continues after the layer used last.
/// - A read needs a free staging slot. `slots` slots hold layers being read, read and waiting, or in use; a slot
///   frees when the computation that used its layer ends.
/// - A use of a layer that is neither read nor being read (the prediction was wrong, e.g. several micro-batches
///   in flight through one chunk) is read next, evicting the waiting layer used furthest in the future when
///   every slot is taken.
///
/// - Without `prefetch` a layer is read only when a use asks for it (on-demand loading, as a memory-mapped
///   file's pages are faulted in): no read starts ahead of its use.
///
/// Layers are small non-negative integers (problem-layer indices); state is kept in arrays indexed by them.
public struct OffloadTimeline: Sendable {
  enum Hold: Sendable, Equatable {
    case free, reading, waiting
    case inUse(Int)
  }

  /// Offloaded layers in order of use.
  public private(set) var order: [Int]
  public let slots: Int
  /// Whether layers are read ahead of their use in predicted order; false reads only what a use waits for.
  public let prefetch: Bool
  private var hold: [Hold] = []
  private var position: [Int] = []
  private var heldCount = 0
  private var lastUsed: Int?
  private var demanded: [Int] = []
  /// Layers a use has asked for and not yet got.
  private var waitingUses: Set<Int> = []

  /// - Parameters:
  ///   - order: the offloaded layers in order of use.
  ///   - slots: staging slots (≥ 1).
  ///   - prefetch: read ahead in order of use (false: on demand only).
  public init(order: [Int], slots: Int, prefetch: Bool = true) {
    precondition(slots >= 1, "an offload timeline needs at least one staging slot")
    self.order = []
    self.slots = slots
    self.prefetch = prefetch
    setOrder(order)
  }

  /// Layers held in slots (being read, waiting, or in use).
  public var held: Int { heldCount }

  /// Whether `layer` is read and not in use.
  public func isWaiting(_ layer: Int) -> Bool { state(layer) == .waiting }
  /// Whether `layer` occupies a slot (being read, waiting, or in use).
  public func isHeld(_ layer: Int) -> Bool { state(layer) != .free }

  private func state(_ l: Int) -> Hold { l >= 0 && l < hold.count ? hold[l] : .free }

  private mutating func grow(_ l: Int) {
    if l >= hold.count {
      hold += [Hold](repeating: .free, count: l + 1 - hold.count)
      position += [Int](repeating: -1, count: l + 1 - position.count)
    }
  }

  private mutating func set(_ l: Int, _ h: Hold) {
    grow(l)
    let was = hold[l] != .free
    let now = h != .free
    heldCount += (now ? 1 : 0) - (was ? 1 : 0)
    hold[l] = h
  }

  /// A read to start: the layer, and a waiting layer evicted to make room for it (its memory can go).
  public struct Read: Equatable, Sendable {
    public var layer: Int
    public var evicted: Int?
    public init(layer: Int, evicted: Int?) {
      self.layer = layer
      self.evicted = evicted
    }
  }

  /// The next layer to read, when a slot is free (or can be freed for a use that waits): a layer a use waits
  /// for first, else the next layer in order of use that is not held. Marks it as being read. The caller reads
  /// one layer at a time and reports `readFinished` before asking again.
  public mutating func nextRead() -> Read? {
    var evicted: Int?
    if heldCount >= slots {
      guard !demanded.isEmpty, let victim = evictionCandidate() else { return nil }
      set(victim, .free)
      evicted = victim
    }
    if !demanded.isEmpty {
      let l = demanded.removeFirst()
      set(l, .reading)
      return Read(layer: l, evicted: evicted)
    }
    guard prefetch, !order.isEmpty else { return nil }
    let start = lastUsed.map { position(of: $0) + 1 } ?? 0
    for k in 0..<order.count {
      let l = order[(start + k) % order.count]
      if state(l) == .free {
        set(l, .reading)
        return Read(layer: l, evicted: evicted)
      }
    }
    return nil
  }

  private func position(of l: Int) -> Int { l >= 0 && l < position.count ? position[l] : -1 }

  /// The waiting layer whose next use (in order, from the last use) is furthest away.
  private func evictionCandidate() -> Int? {
    let n = max(order.count, 1)
    let start = lastUsed.map { position(of: $0) + 1 } ?? 0
    var best: (layer: Int, distance: Int)?
    for l in hold.indices where hold[l] == .waiting && !demanded.contains(l) {
      let p = position(of: l)
      let distance = p < 0 ? Int.max : (p - start + n) % n
      if best == nil || distance > best!.distance { best = (l, distance) }
    }
    return best?.layer
  }

  /// A read has finished. Returns false if nothing wants the layer any more (it is no longer offloaded and no
  /// use waits for it): its memory can go.
  @discardableResult
  public mutating func readFinished(_ layer: Int) -> Bool {
    guard state(layer) == .reading else { return false }
    if position(of: layer) < 0 && !waitingUses.contains(layer) {
      set(layer, .free)
      return false
    }
    set(layer, .waiting)
    return true
  }

  public enum Acquire: Equatable, Sendable {
    /// The layer is in a slot; use it, then `release` it.
    case ready
    /// The layer is being read or will be read next: wait for `readFinished(layer)`, then acquire again.
    case pending
  }

  /// A computation wants `layer` now.
  public mutating func acquire(_ layer: Int) -> Acquire {
    if position(of: layer) >= 0 { lastUsed = layer }
    switch state(layer) {
    case .waiting:
      set(layer, .inUse(1))
      waitingUses.remove(layer)
      return .ready
    case .inUse(let n):
      set(layer, .inUse(n + 1))
      waitingUses.remove(layer)
      return .ready
    case .reading:
      waitingUses.insert(layer)
      return .pending
    case .free:
      if !demanded.contains(layer) { demanded.append(layer) }
      waitingUses.insert(layer)
      return .pending
    }
  }

  /// The computation that acquired `layer` has ended: its slot frees once no computation uses it.
  public mutating func release(_ layer: Int) {
    guard case .inUse(let n) = state(layer) else { return }
    set(layer, n > 1 ? .inUse(n - 1) : .free)
  }

  /// Residency changed: `order` is the new list of offloaded layers in order of use. Returns the waiting layers
  /// that are no longer offloaded (their memory can go, or become resident).
  @discardableResult
  public mutating func setOrder(_ newOrder: [Int]) -> [Int] {
    for l in order where l >= 0 && l < position.count { position[l] = -1 }
    order = newOrder
    for (i, l) in newOrder.enumerated() {
      precondition(l >= 0, "layer indices are non-negative")
      grow(l)
      position[l] = i
    }
    var dropped: [Int] = []
    for l in hold.indices where hold[l] == .waiting && position[l] < 0 && !waitingUses.contains(l) {
      set(l, .free)
      dropped.append(l)
    }
    if let u = lastUsed, position(of: u) < 0 { lastUsed = nil }
    return dropped
  }
}

/// `OffloadTimeline` in virtual time, for the simulator and cost models: a read of layer l takes
/// `readSeconds[l]`, and one device computes one thing at a time, so its uses and releases arrive in time order.
///
/// Reads proceed in the background between computations: `advance(to:)` finishes every read due by then and
/// starts the next read the moment the storage is idle and a slot is free.
public struct VirtualOffloadTimeline: Sendable {
  public private(set) var timeline: OffloadTimeline
  private var reading: (layer: Int, finish: Double)?
  private var storageIdleAt: Double
  private let readSeconds: [Double]
  /// Seconds computations waited for reads.
  public private(set) var stallSeconds = 0.0
  /// Reads started.
  public private(set) var reads = 0

  /// - Parameters:
  ///   - readSeconds: seconds to read each layer, indexed by layer.
  ///   - start: when reading may begin (the run's start).
  public init(order: [Int], slots: Int, readSeconds: [Double], start: Double = 0, prefetch: Bool = true) {
    timeline = OffloadTimeline(order: order, slots: slots, prefetch: prefetch)
    self.readSeconds = readSeconds
    storageIdleAt = start
    startRead(at: start)
  }

  private mutating func startRead(at t: Double) {
    guard reading == nil, let r = timeline.nextRead() else { return }
    let begin = max(t, storageIdleAt)
    let seconds = r.layer < readSeconds.count ? readSeconds[r.layer] : 0
    reading = (r.layer, begin + seconds)
    reads += 1
  }

  /// Finishes the reads due by `t`, starting each next read as the storage frees.
  public mutating func advance(to t: Double) {
    while let r = reading, r.finish <= t {
      reading = nil
      storageIdleAt = r.finish
      timeline.readFinished(r.layer)
      startRead(at: r.finish)
    }
  }

  /// A computation ready at `t` needs `layer`: returns when it can start (t, or when the layer's read ends);
  /// `.infinity` if the layer can never be read (no slot can be freed).
  public mutating func acquire(_ layer: Int, at t: Double) -> Double {
    advance(to: t)
    var now = t
    while timeline.acquire(layer) == .pending {
      startRead(at: now)
      guard let r = reading else { return .infinity }
      now = max(now, r.finish)
      advance(to: now)
    }
    stallSeconds += now - t
    return now
  }

  /// The computation that used `layer` ended at `t`.
  public mutating func release(_ layer: Int, at t: Double) {
    advance(to: t)
    timeline.release(layer)
    startRead(at: t)
  }

  /// Residency changed at `t`: `order` is the new list of offloaded layers in order of use.
  public mutating func setOrder(_ order: [Int], at t: Double) {
    advance(to: t)
    timeline.setOrder(order)
    startRead(at: t)
  }
}
