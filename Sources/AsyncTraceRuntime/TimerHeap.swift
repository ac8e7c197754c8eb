// A binary min-heap of active timers ordered by (due time, creation sequence), so timers run in
// due-time order and equal due times keep their scheduling order. Each timer knows its index,
// which makes clear and refresh O(log n).

struct TimerHeap {
    private(set) var items = ContiguousArray<Timeout>()

    var first: Timeout? { items.first }
    var count: Int { items.count }

    @inline(__always)
    private static func less(_ a: Timeout, _ b: Timeout) -> Bool {
        a.dueNs < b.dueNs || (a.dueNs == b.dueNs && a.sequence < b.sequence)
    }

    mutating func insert(_ t: Timeout) {
        t.heapIndex = items.count
        items.append(t)
        siftUp(items.count - 1)
    }

    mutating func removeFirst() {
        remove(at: 0)
    }

    mutating func remove(_ t: Timeout) {
        guard t.heapIndex >= 0, t.heapIndex < items.count, items[t.heapIndex] === t else { return }
        remove(at: t.heapIndex)
    }

    private mutating func remove(at i: Int) {
        let removed = items[i]
        let last = items.removeLast()
        removed.heapIndex = -1
        if i < items.count {
            items[i] = last
            last.heapIndex = i
            siftDown(i)
            siftUp(last.heapIndex)
        }
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        let t = items[i]
        while i > 0 {
            let parent = (i - 1) / 2
            let p = items[parent]
            if !TimerHeap.less(t, p) { break }
            items[i] = p
            p.heapIndex = i
            i = parent
        }
        items[i] = t
        t.heapIndex = i
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let t = items[i]
        let n = items.count
        while true {
            let l = 2 * i + 1
            if l >= n { break }
            var c = l
            if l + 1 < n && TimerHeap.less(items[l + 1], items[l]) { c = l + 1 }
            let child = items[c]
            if !TimerHeap.less(child, t) { break }
            items[i] = child
            child.heapIndex = i
            i = c
        }
        items[i] = t
        t.heapIndex = i
    }
}
