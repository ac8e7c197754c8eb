// Active timers, Node's way: one FIFO list per distinct delay (timers of equal delay are set in
// due-time order, so appending keeps each list sorted) and a small min-heap of lists keyed by
// their head's (due time, creation sequence). Insert, clear and refresh are O(1) on the lists; the
// heap holds one entry per distinct delay, not per timer.

final class TimerList {
    let delayNs: UInt64
    var head: Timeout?
    unowned(unsafe) var tail: Timeout?
    var heapIndex = -1
    init(delayNs: UInt64) { self.delayNs = delayNs }
}

struct TimerHeap {
    private var heap = ContiguousArray<TimerList>()
    private var lists: [UInt64: TimerList] = [:]
    private(set) var count = 0

    /// The timer due first.
    var first: Timeout? { heap.first?.head }

    @inline(__always)
    private static func less(_ a: TimerList, _ b: TimerList) -> Bool {
        let x = a.head!, y = b.head!
        return x.dueNs < y.dueNs || (x.dueNs == y.dueNs && x.sequence < y.sequence)
    }

    /// Appends `t` (its dueNs must be >= every due time already in its delay's list).
    mutating func insert(_ t: Timeout) {
        let list: TimerList
        if let l = lists[t.delayNs] {
            list = l
        } else {
            list = TimerList(delayNs: t.delayNs)
            lists[t.delayNs] = list
        }
        t.list = list
        t.next = nil
        t.prev = list.tail
        count += 1
        if let tail = list.tail {
            tail.next = t
            list.tail = t
        } else {
            list.head = t
            list.tail = t
            list.heapIndex = heap.count
            heap.append(list)
            siftUp(heap.count - 1)
        }
    }

    mutating func removeFirst() {
        if let t = first { remove(t) }
    }

    mutating func remove(_ t: Timeout) {
        guard let list = t.list else { return }
        let wasHead = list.head === t
        if let p = t.prev { p.next = t.next } else { list.head = t.next }
        if let n = t.next { n.prev = t.prev } else { list.tail = t.prev }
        t.next = nil
        t.prev = nil
        t.list = nil
        count -= 1
        if list.head == nil {
            removeList(list)
        } else if wasHead {
            siftDown(list.heapIndex)  // the head moved later: the key only grew
        }
    }

    private mutating func removeList(_ list: TimerList) {
        lists[list.delayNs] = nil
        let i = list.heapIndex
        let last = heap.removeLast()
        list.heapIndex = -1
        if i < heap.count {
            heap[i] = last
            last.heapIndex = i
            siftDown(i)
            siftUp(last.heapIndex)
        }
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        let t = heap[i]
        while i > 0 {
            let parent = (i - 1) / 2
            let p = heap[parent]
            if !TimerHeap.less(t, p) { break }
            heap[i] = p
            p.heapIndex = i
            i = parent
        }
        heap[i] = t
        t.heapIndex = i
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let t = heap[i]
        let n = heap.count
        while true {
            let l = 2 * i + 1
            if l >= n { break }
            var c = l
            if l + 1 < n && TimerHeap.less(heap[l + 1], heap[l]) { c = l + 1 }
            let child = heap[c]
            if !TimerHeap.less(child, t) { break }
            heap[i] = child
            child.heapIndex = i
            i = c
        }
        heap[i] = t
        t.heapIndex = i
    }
}
