// The fds a process has open, in order, for close_range(first, last): finding the fds in a range must not
// cost a walk over every fd of the trace (a crafted file of many fds and many close_range calls would make
// that quadratic). Sorted blocks of at most 1,024: inserting or removing moves at most a block.

struct OrderedFDs {
    private var blocks: [[Int64]] = []
    static let maxBlock = 1_024

    /// The first block whose last fd is >= fd (or the last block), or nil when empty.
    private func block(for fd: Int64) -> Int? {
        guard !blocks.isEmpty else { return nil }
        var lo = 0, hi = blocks.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if blocks[mid].last! < fd { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Index of the first element >= fd in a sorted array.
    private static func lowerBound(_ a: [Int64], _ fd: Int64) -> Int {
        var lo = 0, hi = a.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if a[mid] < fd { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    mutating func insert(_ fd: Int64) {
        guard let b = block(for: fd) else {
            blocks = [[fd]]
            return
        }
        let i = Self.lowerBound(blocks[b], fd)
        if i < blocks[b].count && blocks[b][i] == fd { return }
        blocks[b].insert(fd, at: i)
        if blocks[b].count > Self.maxBlock {
            let tail = Array(blocks[b][(Self.maxBlock / 2)...])
            blocks[b].removeSubrange((Self.maxBlock / 2)...)
            blocks.insert(tail, at: b + 1)
        }
    }

    mutating func remove(_ fd: Int64) {
        guard let b = block(for: fd) else { return }
        let i = Self.lowerBound(blocks[b], fd)
        guard i < blocks[b].count && blocks[b][i] == fd else { return }
        blocks[b].remove(at: i)
        if blocks[b].isEmpty { blocks.remove(at: b) }
    }

    /// The fds in first...last, ascending (the first `limit` of them).
    func inRange(_ first: Int64, _ last: Int64, atMost limit: Int = .max) -> [Int64] {
        guard first <= last, limit > 0, var b = block(for: first) else { return [] }
        var out: [Int64] = []
        var i = Self.lowerBound(blocks[b], first)
        while b < blocks.count {
            while i < blocks[b].count {
                if blocks[b][i] > last || out.count >= limit { return out }
                out.append(blocks[b][i])
                i += 1
            }
            b += 1
            i = 0
        }
        return out
    }

    var isEmpty: Bool { blocks.isEmpty }
}
