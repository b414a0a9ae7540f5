import Pipeline
import TestSupport
import Testing

@Suite("Offload timeline")
struct OffloadTimelineTests {
  @Test func readsFollowTheOrderOfUseIntoFreeSlots() {
    var t = OffloadTimeline(order: [3, 5, 7], slots: 2)
    #expect(t.nextRead() == .init(layer: 3, evicted: nil))
    t.readFinished(3)
    #expect(t.nextRead() == .init(layer: 5, evicted: nil))
    // Both slots are taken (3 waiting, 5 being read).
    #expect(t.nextRead() == nil)
    #expect(t.acquire(3) == .ready)
    t.readFinished(5)
    #expect(t.nextRead() == nil)
    t.release(3)
    // Layer 3's slot freed: the next in order of use is 7.
    #expect(t.nextRead() == .init(layer: 7, evicted: nil))
    #expect(t.acquire(5) == .ready)
    t.release(5)
    // Then round again: the next token needs 3 first.
    #expect(t.nextRead() == .init(layer: 3, evicted: nil))
  }

  @Test func onDemandReadsNothingBeforeAUseAsksForIt() {
    var t = OffloadTimeline(order: [3, 5], slots: 1, prefetch: false)
    #expect(t.nextRead() == nil)
    #expect(t.acquire(3) == .pending)
    #expect(t.nextRead() == .init(layer: 3, evicted: nil))
    t.readFinished(3)
    #expect(t.acquire(3) == .ready)
    t.release(3)
    // Layer 5 is next in order of use, but nothing is read until its use comes.
    #expect(t.nextRead() == nil)
    var v = VirtualOffloadTimeline(order: [3, 5], slots: 1, readSeconds: [0, 0, 0, 2, 0, 2], prefetch: false)
    // A use at t = 10 waits the whole read (2 s) although storage was idle since 0.
    #expect(v.acquire(5, at: 10) == 12)
  }

  @Test func aUseOutOfOrderIsReadNextEvictingTheFurthestWaitingLayer() {
    var t = OffloadTimeline(order: [1, 2, 3, 4], slots: 2)
    for l in [1, 2] {
      #expect(t.nextRead()?.layer == l)
      t.readFinished(l)
    }
    // A use of 4 (e.g. another micro-batch): not read, and both slots hold waiting layers.
    #expect(t.acquire(4) == .pending)
    let r = t.nextRead()
    #expect(r?.layer == 4)
    // From the last use (4), layer 1 comes next and layer 2 furthest: 2 goes.
    #expect(r?.evicted == 2)
    t.readFinished(4)
    #expect(t.acquire(4) == .ready)
  }

  @Test func changingTheOrderDropsLayersThatBecameResident() {
    var t = OffloadTimeline(order: [1, 2], slots: 2)
    for l in [1, 2] {
      _ = t.nextRead()
      t.readFinished(l)
    }
    #expect(t.setOrder([2]) == [1])
    #expect(t.held == 1)
    #expect(t.isWaiting(2))
  }

  @Test func aReadAUseWaitsForIsKeptEvenIfTheLayerStoppedBeingOffloaded() {
    var t = OffloadTimeline(order: [1, 2], slots: 2)
    #expect(t.acquire(5) == .pending)  // a use of a layer outside the order
    #expect(t.nextRead()?.layer == 5)
    let kept = t.readFinished(5)
    #expect(kept)
    #expect(t.acquire(5) == .ready)
    var v = VirtualOffloadTimeline(order: [1], slots: 1, readSeconds: [1, 1, 1, 1, 1, 1])
    #expect(v.acquire(5, at: 0) == 2)  // after the prefetch of layer 1, then its own read
  }

  /// In virtual time: a device computing 1 s per layer, reading 1.5 s per layer with two slots: reads run
  /// back to back from time 0, so layer k (k ≥ 1) is ready at 1.5·(k+1) and computing falls behind the reads.
  @Test func virtualTimeMatchesTheClosedForm() {
    let read = [Double](repeating: 1.5, count: 4)
    var v = VirtualOffloadTimeline(order: [0, 1, 2, 3], slots: 2, readSeconds: read)
    var t = 0.0
    var starts: [Double] = []
    for l in 0..<4 {
      t = v.acquire(l, at: t)
      starts.append(t)
      t += 1
      v.release(l, at: t)
    }
    #expect(starts == [1.5, 3.0, 4.5, 6.0])
    #expect(isClose(v.stallSeconds, 1.5 + 0.5 + 0.5 + 0.5))
    // A third slot does not help when reading is the bottleneck.
    var w = VirtualOffloadTimeline(order: [0, 1, 2, 3], slots: 3, readSeconds: read)
    t = 0
    for l in 0..<4 {
      t = w.acquire(l, at: t) + 1
      w.release(l, at: t)
    }
    #expect(t == 7)
  }

  /// With one slot a read can only start when the previous use ended: no overlap at all.
  @Test func oneSlotSerialisesReadsAndCompute() {
    var v = VirtualOffloadTimeline(order: [0, 1], slots: 1, readSeconds: [2, 2])
    var t = 0.0
    for l in [0, 1, 0] {
      t = v.acquire(l, at: t) + 1
      v.release(l, at: t)
    }
    #expect(t == 9)
  }
}

@Suite("Residency policy")
struct ResidencyTests {
  static let policy = ResidencyPolicy.Device(
    device: "d", layers: [1, 2, 3, 4], weightBytes: [10, 10, 10, 10], budgetBytes: 50, priority: [1, 3, 2, 4],
    stagingSlots: 1)

  @Test func layersStayResidentInPriorityOrderWhileTheyFit() throws {
    #expect(try #require(Self.policy.residency(kvBytes: 0)).resident == [1, 2, 3, 4])
    // 35 bytes left: a third resident layer would leave no room for the staging slot; two resident
    // (priority 1, 3), two offloaded in order of use.
    let r = try #require(Self.policy.residency(kvBytes: 15))
    #expect(r.resident == [1, 3])
    #expect(r.offloaded == [2, 4])
    let tight = try #require(Self.policy.residency(kvBytes: 25))
    #expect(tight.resident == [1])
    #expect(tight.offloaded == [2, 3, 4])
    #expect(tight.stagingBytes == 10)
    #expect(Self.policy.residency(kvBytes: 45) == nil)
  }

  @Test func theTrackerAdaptsOnlyWhenTheCacheMovesPastTheThreshold() {
    var u = ResidencyTracker(policy: Self.policy, initial: [4])
    #expect(u.update(kvBytes: 25) == .changed(offloaded: [2, 3, 4]))
    #expect(u.update(kvBytes: 25.1) == .unchanged)  // within 1% of the budget (0.5 bytes)
    #expect(u.update(kvBytes: 45) == .exhausted)
    #expect(u.update(kvBytes: 0) == .changed(offloaded: []))
    #expect(u.adaptations == 2)
  }
}
