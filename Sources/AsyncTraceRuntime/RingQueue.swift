// A FIFO on a power-of-two ring: the loop's tick, microtask and immediate queues. Push and pop
// never allocate once the ring has grown to the workload's high-water mark.

@usableFromInline
struct RingQueue<Element>: ~Copyable {
    @usableFromInline var storage: UnsafeMutablePointer<Element>
    @usableFromInline var capacity: Int
    @usableFromInline var head = 0
    @usableFromInline var count = 0

    init(capacity: Int = 64) {
        var c = 16
        while c < capacity { c <<= 1 }
        storage = .allocate(capacity: c)
        self.capacity = c
    }

    deinit {
        var i = head
        for _ in 0..<count {
            (storage + i).deinitialize(count: 1)
            i = (i + 1) & (capacity - 1)
        }
        storage.deallocate()
    }

    @inlinable var isEmpty: Bool { count == 0 }

    @inlinable
    mutating func push(_ e: consuming Element) {
        if count == capacity { grow() }
        (storage + ((head + count) & (capacity - 1))).initialize(to: e)
        count += 1
    }

    @inlinable
    mutating func pop() -> Element? {
        guard count > 0 else { return nil }
        let e = (storage + head).move()
        head = (head + 1) & (capacity - 1)
        count -= 1
        return e
    }

    @usableFromInline
    mutating func grow() {
        let newCapacity = capacity * 2
        let n = UnsafeMutablePointer<Element>.allocate(capacity: newCapacity)
        let firstPart = min(count, capacity - head)
        (n).moveInitialize(from: storage + head, count: firstPart)
        (n + firstPart).moveInitialize(from: storage, count: count - firstPart)
        storage.deallocate()
        storage = n
        capacity = newCapacity
        head = 0
    }
}
