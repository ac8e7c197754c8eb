// Finding the next whole chunk in damaged bytes. Each candidate (a chunk magic and a plausible header)
// is checked against its checksum from running CRCs of the file (CRC32C.zeroShift), not by reading its
// payload: a crafted file with a fake header every few bytes, each claiming a payload of megabytes, costs
// about one read of the file instead of one read per candidate (quadratic), and no candidate is skipped
// for cost, so the valid chunks after any amount of crafted garbage are still found.
import TraceFormat

/// Where a search stopped.
enum ChunkSearchResult: Equatable {
    /// A whole chunk whose checksum matches starts here.
    case chunk(UInt64)
    /// A chunk header starts here whose chunk runs past the searched limit (a follower waits for it).
    case incomplete(UInt64)
}

struct ChunkSearch: ~Copyable {
    static let windowSize = 1 << 20
    /// Distance between running-CRC checkpoints: checking a candidate reads at most this many bytes at
    /// each end of its payload; the checkpoints kept cost 4 bytes each.
    static let spacing = 256
    /// Checkpoints behind the scan are dropped once there are this many (memory stays ~0.5 MiB).
    static let releaseThreshold = 1 << 16

    private let file: TraceFileHandle
    private var window = ByteBuffer(capacity: ChunkSearch.windowSize)
    private var windowStart: UInt64 = 0
    private var windowCount = 0
    private var header = ByteBuffer(capacity: TraceFileFormat.chunkHeaderSize)
    private var sequential = ByteBuffer(capacity: ChunkSearch.windowSize)
    private var tail = ByteBuffer(capacity: ChunkSearch.spacing)
    /// checkpoints[i] is the raw CRC of the file's bytes [origin, origin + (dropped + i) * spacing).
    private var origin: UInt64 = 0
    private var dropped: UInt64 = 0
    private var checkpoints: [UInt32] = [0]
    /// The last far-end prefix computed: candidates often claim the same end (the end of the file).
    private var lastFar: (x: UInt64, q: UInt32)?
    /// Bytes read from the file by all searches.
    private(set) var bytesRead: UInt64 = 0
    /// Candidates whose checksum was computed.
    private(set) var candidatesChecked: UInt64 = 0

    init(file: TraceFileHandle) { self.file = file }

    /// The first whole chunk at or after `from` that ends at or before `limit`; with `stopAtIncomplete`,
    /// also a header whose chunk would end past `limit` (or is cut by it), whichever comes first.
    mutating func next(from: UInt64, limit: UInt64, stopAtIncomplete: Bool) -> ChunkSearchResult? {
        let magic = TraceFileFormat.chunkMagic
        var base = from
        while limit >= 4, base <= limit - 4 {
            if base < windowStart || base + 4 > windowStart + UInt64(windowCount) {
                windowStart = base
                windowCount = read(into: window.pointer, count: Int(min(UInt64(Self.windowSize), limit - base)), at: base)
                if windowCount < 4 { return nil }
                release(below: base)
            }
            let p = UnsafeRawPointer(window.pointer)
            let n = Int(min(UInt64(windowCount), limit - windowStart))
            var i = Int(base - windowStart)
            while i + 4 <= n {
                if p.load(fromByteOffset: i, as: UInt8.self) == 0x41,
                    UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt32.self)) == magic,
                    let found = check(at: windowStart + UInt64(i), limit: limit, stopAtIncomplete: stopAtIncomplete)
                {
                    return found
                }
                i += 1
            }
            if windowStart + UInt64(n) >= limit { break }
            base = windowStart + UInt64(n - 3)  // overlap: a magic may straddle windows
        }
        return nil
    }

    private mutating func read(into p: UnsafeMutableRawPointer, count: Int, at offset: UInt64) -> Int {
        let n = file.read(into: p, count: count, at: offset)
        bytesRead &+= UInt64(n)
        return n
    }

    private mutating func check(at pos: UInt64, limit: UInt64, stopAtIncomplete: Bool) -> ChunkSearchResult? {
        let size = TraceFileFormat.chunkHeaderSize
        guard limit - pos >= UInt64(size), read(into: header.pointer, count: size, at: pos) == size else {
            return stopAtIncomplete ? .incomplete(pos) : nil
        }
        guard let h = ChunkHeader.load(from: header.pointer), Int(h.payloadLength) <= TraceFileFormat.maxPayloadBytes else {
            return nil
        }
        let a = pos + UInt64(size)
        let length = h.payloadLength
        guard limit - a >= UInt64(length) else { return stopAtIncomplete ? .incomplete(pos) : nil }
        candidatesChecked += 1
        // computeCRC over the header alone: the CRC32C state after the header (its crc field zeroed).
        let afterHeader = ChunkHeader.computeCRC(header: header.pointer, payload: UnsafeRawBufferPointer(start: nil, count: 0))
        guard let qa = prefix(at: a, limit: limit, mayRestart: true),
            let qb = prefix(at: a + UInt64(length), limit: limit, mayRestart: false)
        else {
            return nil
        }
        // update(c, P) = ~raw(~c, P) = ~(zeroShift(~c, |P|) ^ raw(0, P)), raw(0, P) = Q(b) ^ zeroShift(Q(a), |P|).
        let crc = ~(CRC32C.zeroShift(~afterHeader ^ qa, count: length) ^ qb)
        return crc == h.crc ? .chunk(pos) : nil
    }

    /// The raw CRC of the bytes [origin, x). `mayRestart`: when x is before the kept checkpoints or far past
    /// them, start afresh at x rather than read what lies between (the indexer skips over valid chunks
    /// between searches).
    private mutating func prefix(at x: UInt64, limit: UInt64, mayRestart: Bool) -> UInt32? {
        let spacing = UInt64(Self.spacing)
        let firstKept = origin + dropped * spacing
        let frontier = origin + (dropped + UInt64(checkpoints.count) - 1) * spacing
        if x < firstKept || (mayRestart && x > frontier + UInt64(Self.windowSize)) {
            origin = x
            dropped = 0
            checkpoints.removeAll(keepingCapacity: true)
            checkpoints.append(0)
            lastFar = nil
            return 0
        }
        if !mayRestart, let last = lastFar, last.x == x { return last.q }
        guard x >= firstKept else { return nil }
        guard extend(to: x, limit: limit) else { return nil }
        let index = Int((x - origin) / spacing - dropped)
        let at = origin + (dropped + UInt64(index)) * spacing
        let n = Int(x - at)
        if n == 0 { return checkpoints[index] }
        if at >= windowStart && x <= windowStart + UInt64(windowCount) {
            let bytes = UnsafeRawBufferPointer(start: window.pointer + Int(at - windowStart), count: n)
            return CRC32C.rawUpdate(checkpoints[index], bytes)
        }
        guard read(into: tail.pointer, count: n, at: at) == n else { return nil }
        let q = CRC32C.rawUpdate(checkpoints[index], UnsafeRawBufferPointer(start: tail.pointer, count: n))
        if !mayRestart { lastFar = (x, q) }
        return q
    }

    /// Adds checkpoints until one lies within `spacing` bytes before x, reading ahead (up to a window,
    /// not past `limit`) so that candidates claiming nearby ends cost no read of their own.
    private mutating func extend(to x: UInt64, limit: UInt64) -> Bool {
        let spacing = UInt64(Self.spacing)
        var frontier = origin + (dropped + UInt64(checkpoints.count) - 1) * spacing
        while x >= frontier + spacing {
            let blocks = Int(min(UInt64(Self.windowSize) / spacing, (limit - frontier) / spacing))
            let want = blocks * Self.spacing
            guard blocks > 0, read(into: sequential.pointer, count: want, at: frontier) == want else { return false }
            var q = checkpoints[checkpoints.count - 1]
            for b in 0..<blocks {
                q = CRC32C.rawUpdate(q, UnsafeRawBufferPointer(start: sequential.pointer + b * Self.spacing, count: Self.spacing))
                checkpoints.append(q)
            }
            frontier += UInt64(want)
        }
        return true
    }

    /// Drops checkpoints before `pos` (no later candidate needs them), in batches.
    private mutating func release(below pos: UInt64) {
        guard pos >= origin else { return }
        let behind = (pos - origin) / UInt64(Self.spacing)
        guard behind > dropped else { return }
        let k = Int(min(behind - dropped, UInt64(checkpoints.count - 1)))
        guard k >= Self.releaseThreshold else { return }
        checkpoints.removeFirst(k)
        dropped += UInt64(k)
    }
}
