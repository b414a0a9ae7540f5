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
