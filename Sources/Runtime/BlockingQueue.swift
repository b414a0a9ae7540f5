import Foundation

/// A FIFO that blocks readers until an element arrives (or a timeout passes).
final class BlockingQueue<Element>: @unchecked Sendable {
  private var items: [Element] = []
  private var head = 0
  private let condition = NSCondition()

  func push(_ e: Element) {
    condition.lock()
    items.append(e)
    condition.signal()
    condition.unlock()
  }

  /// The next element, or nil after `timeout` seconds.
  func pop(timeout: Double? = nil) -> Element? {
    condition.lock()
    defer { condition.unlock() }
    let deadline = timeout.map { Date().addingTimeInterval($0) }
    while head == items.count {
      if let deadline {
        if !condition.wait(until: deadline) && head == items.count { return nil }
      } else {
        condition.wait()
      }
    }
    let e = items[head]
    head += 1
    if head > 1024 && head * 2 > items.count {
      items.removeFirst(head)
      head = 0
    }
    return e
  }
}

/// Starts a detached thread.
func spawnThread(_ name: String, _ body: @escaping @Sendable () -> Void) {
  let t = Thread { body() }
  t.name = name
  t.stackSize = 1 << 20
  t.start()
}
