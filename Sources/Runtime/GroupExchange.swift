import EdgeLabCore
public import Engine
import Foundation
public import Transport

/// The messages between the members of a tensor-parallel group, on `group` frames: an `ActivationMessage` whose
/// `batch` names the kind. The leader sends a `step` (the stage, the spans, whether it is a verification, the
/// hidden states entering the first block) to every member; after each attention and each FFN every member
/// sends its `partial` result and receives the `sum`; `release` ends sequences.
public enum GroupMessage {
  public static let step: UInt64 = 0
  public static let partial: UInt64 = 1
  public static let sum: UInt64 = 2
  public static let release: UInt64 = 3
}

/// Why a group's exchange failed: a member (or the leader) is gone or sent what the exchange does not expect.
public struct GroupExchangeError: Error, CustomStringConvertible {
  public var device: String
  public var stage: Int
  public var detail: String
  public var description: String { "stage \(stage)'s tensor-parallel group member \(device): \(detail)" }
}

/// The leader's side: it sends the step and the hidden states to the members in member order, and sums the
/// members' partial results in member order (its own first), sending every member the same total. A member
/// whose connection fails or who sends a partial of the wrong size fails the exchange by name.
struct LeaderExchange: GroupExchange {
  typealias Failure = GroupExchangeError
  let stage: Int
  let members: [(name: String, connection: Connection)]
  let header: ActivationMessage
  let maxWait: UInt64

  func broadcast(_ values: inout [Float]) throws(GroupExchangeError) {
    var m = header
    m.batch = GroupMessage.step
    m.values = values
    let payload = m.encoded()
    for member in members { try send(member, payload) }
  }

  func allReduce(_ values: inout [Float]) throws(GroupExchangeError) {
    var total = values
    for member in members {
      let frame: Frame
      do {
        frame = try member.connection.receive(deadline: monotonicNanoseconds() &+ maxWait)
      } catch {
        throw GroupExchangeError(device: member.name, stage: stage, detail: "no partial sum (\(error))")
      }
      guard frame.type == .group, let m = try? ActivationMessage.decode(frame.payload),
        m.batch == GroupMessage.partial, m.values.count == total.count
      else {
        throw GroupExchangeError(
          device: member.name, stage: stage, detail: "sent a \(frame.type) frame where a partial sum was due")
      }
      for i in total.indices { total[i] += m.values[i] }
    }
    let payload = ActivationMessage(
      batch: GroupMessage.sum, stage: UInt32(stage), prefill: false, spans: [], values: total
    ).encoded()
    for member in members { try send(member, payload) }
    values = total
  }

  private func send(_ member: (name: String, connection: Connection), _ payload: [UInt8]) throws(GroupExchangeError) {
    do { try member.connection.send(.group, payload) } catch {
      throw GroupExchangeError(device: member.name, stage: stage, detail: "cannot be reached (\(error))")
    }
  }
}

/// A member's side, on its connection from the leader: the hidden states came with the step (the broadcast
/// has nothing more to do); each partial result goes to the leader and the total comes back.
struct MemberExchange: GroupExchange {
  typealias Failure = GroupExchangeError
  let stage: Int
  let leader: String
  let connection: Connection

  func broadcast(_ values: inout [Float]) throws(GroupExchangeError) {}

  func allReduce(_ values: inout [Float]) throws(GroupExchangeError) {
    let partial = ActivationMessage(
      batch: GroupMessage.partial, stage: UInt32(stage), prefill: false, spans: [], values: values)
    do {
      try connection.send(.group, partial.encoded())
      let f = try connection.receive()
      guard f.type == .group, let m = try? ActivationMessage.decode(f.payload), m.batch == GroupMessage.sum,
        m.values.count == values.count
      else {
        throw GroupExchangeError(device: leader, stage: stage, detail: "sent a \(f.type) frame where a sum was due")
      }
      values = m.values
    } catch let e as GroupExchangeError {
      throw e
    } catch {
      throw GroupExchangeError(device: leader, stage: stage, detail: "the leader is gone (\(error))")
    }
  }
}

/// A ring all-reduce among the members (distributed-llama's): the values cut into one chunk per member; in
/// n − 1 steps each member sends a chunk to the next member and adds the chunk it receives from the previous
/// one (reduce-scatter), so that each ends with the whole sum of one chunk; in n − 1 more steps the sums go
/// round (all-gather). Every chunk's sum is formed once, in a fixed order, and copied to every member, so all
/// members hold the same bits and a run is reproducible. The leader still sends the stage's input to every
/// member first (`leader`); the members' step arrives with it.
struct RingExchange: GroupExchange {
  typealias Failure = GroupExchangeError
  let stage: Int
  /// This worker's place in the ring (the leader 0) and the ring's size.
  let position: Int
  let count: Int
  let successor: String
  let predecessor: String
  /// Sends a frame payload to the successor; receives the predecessor's next message.
  let send: ([UInt8]) throws -> Void
  let receive: () throws -> ActivationMessage
  /// The leader's sending of the input (nil on members).
  let leader: LeaderExchange?

  func broadcast(_ values: inout [Float]) throws(GroupExchangeError) {
    try leader?.broadcast(&values)
  }

  func allReduce(_ values: inout [Float]) throws(GroupExchangeError) {
    let n = count
    let length = values.count
    func chunk(_ c: Int) -> Range<Int> { (c * length / n)..<((c + 1) * length / n) }
    func wrap(_ c: Int) -> Int { ((c % n) + n) % n }
    func exchange(sending c: Int, receiving r: Int) throws(GroupExchangeError) -> [Float] {
      let out = ActivationMessage(
        batch: GroupMessage.partial, stage: UInt32(stage), prefill: false, spans: [],
        values: Array(values[chunk(c)]))
      do { try send(out.encoded()) } catch {
        throw GroupExchangeError(device: successor, stage: stage, detail: "cannot be reached (\(error))")
      }
      let m: ActivationMessage
      do { m = try receive() } catch {
        throw GroupExchangeError(device: predecessor, stage: stage, detail: "no ring message (\(error))")
      }
      guard m.batch == GroupMessage.partial, m.values.count == chunk(r).count else {
        throw GroupExchangeError(
          device: predecessor, stage: stage, detail: "sent \(m.values.count) values where \(chunk(r).count) were due")
      }
      return m.values
    }
    let i = position
    for s in 0..<(n - 1) {
      let r = wrap(i - s - 1)
      let got = try exchange(sending: wrap(i - s), receiving: r)
      for (k, j) in chunk(r).enumerated() { values[j] = got[k] + values[j] }
    }
    for s in 0..<(n - 1) {
      let r = wrap(i - s)
      let got = try exchange(sending: wrap(i + 1 - s), receiving: r)
      for (k, j) in chunk(r).enumerated() { values[j] = got[k] }
    }
  }
}
