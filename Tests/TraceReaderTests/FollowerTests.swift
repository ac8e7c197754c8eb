// Following a trace file while it grows: a partly written last chunk is waited for, never damage;
// real damage is still found; every event is handed out once, in time order within a batch.
import Foundation
import Testing
import TraceFormat
@testable import TraceReader

@Suite struct FollowerTests {
    /// One chunk of `before` events with ids `ids`, one every ms from `startMs`.
    private func chunk(tid: UInt32, sequence: UInt64, startMs: UInt64, ids: [UInt64], final: Bool = false) -> [UInt8] {
        let start = startMs * 1_000_000
        var b = ChunkBuilder(pid: 7, tid: tid, startNs: start, startTicks: start)
        for (i, id) in ids.enumerated() {
            b.beginEvent(.before, ticks: start + UInt64(i) * 1_000_000)
            b.putAsyncID(id)
        }
        let end = start + UInt64(max(ids.count, 1) - 1) * 1_000_000
        return b.seal(sequence: sequence, endNs: end, endTicks: end, droppedCumulative: 0, flags: final ? [.final] : [])
    }

    private func ids(_ f: TraceFollower, all: Bool = true) -> [UInt64] {
        var out: [UInt64] = []
        f.forEachEvent(all: all) { _, e in out.append(e.u(0)) }
        return out
    }

    private func append(_ path: String, _ bytes: [UInt8]) {
        let h = FileHandle(forWritingAtPath: path)!
        h.seekToEndOfFile()
        h.write(Data(bytes))
        try? h.close()
    }

    @Test func partialChunksAreWaitedForAndEveryEventComesOnce() throws {
        let path = temporaryTracePath("follow")
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        defer { removeFile(path) }
        let f = try TraceFollower(path: path)
        f.holdbackNs = 0
        #expect(try f.poll() == false)  // empty file: no header yet
        let header = FileHeader(pid: 7, monotonicStartNs: 0, realtimeStartNs: 0, program: "app").encode()
        append(path, Array(header[0..<10]))
        #expect(try f.poll() == true)  // half a header: still waiting, not an error
        #expect(f.header == nil)
        append(path, Array(header[10...]))
        try f.poll()
        #expect(f.header?.program == "app")
        #expect(ids(f).isEmpty)

        let c1 = chunk(tid: 1, sequence: 0, startMs: 0, ids: [1, 2, 3])
        let c2 = chunk(tid: 2, sequence: 0, startMs: 1, ids: [10, 11])
        append(path, c1)
        append(path, Array(c2[0..<40]))  // the second chunk's write is in progress
        try f.poll()
        #expect(ids(f) == [1, 2, 3])
        #expect(f.pendingBytes == 40)
        #expect(f.damage.isEmpty)
        #expect(f.snapshot()?.damage.isEmpty == true)

        append(path, Array(c2[40...]))
        append(path, chunk(tid: 1, sequence: 1, startMs: 5, ids: [4], final: true))
        try f.poll()
        #expect(ids(f) == [10, 11, 4])  // time order across streams
        #expect(f.pendingBytes == 0)
        #expect(f.damage.isEmpty)
        #expect(f.streams.count == 2)
        #expect(f.snapshot()?.streams.count == 2)
        #expect(f.streams[0].endedCleanly && !f.streams[1].endedCleanly)
        #expect(!f.allStreamsEnded)
        #expect(try f.poll() == false)
        #expect(ids(f).isEmpty)  // nothing is handed out twice
    }

    @Test func chunksAreHeldBackUntilLaterOnesArrive() throws {
        let path = temporaryTracePath("holdback")
        writeFile(path, FileHeader(pid: 7, monotonicStartNs: 0, realtimeStartNs: 0, program: "app").encode())
        defer { removeFile(path) }
        let f = try TraceFollower(path: path)
        f.holdbackNs = 300_000_000
        append(path, chunk(tid: 1, sequence: 0, startMs: 1_000, ids: [1, 2, 3]))
        try f.poll()
        #expect(ids(f, all: false).isEmpty)  // the latest chunk itself is within the hold-back
        // A chunk of another thread overlapping the first: events are cut by time, not by chunk.
        append(path, chunk(tid: 2, sequence: 0, startMs: 1_001, ids: [10, 11, 12, 13, 14]))
        append(path, chunk(tid: 1, sequence: 1, startMs: 1_400, ids: [4]))
        try f.poll()
        #expect(ids(f, all: false) == [1, 2, 10, 3, 11, 12, 13, 14])  // ties: lower stream first
        #expect(f.chunksWaiting == 1)
        #expect(ids(f) == [4])
    }

    @Test func aChunkStraddlingTheCutIsHandedOutInTwoParts() throws {
        let path = temporaryTracePath("straddle")
        writeFile(path, FileHeader(pid: 7, monotonicStartNs: 0, realtimeStartNs: 0, program: "app").encode())
        defer { removeFile(path) }
        let f = try TraceFollower(path: path)
        f.holdbackNs = 300_000_000
        append(path, chunk(tid: 1, sequence: 0, startMs: 1_000, ids: Array(1...10)))  // 1000...1009 ms
        append(path, chunk(tid: 2, sequence: 0, startMs: 1_305, ids: [100]))
        try f.poll()
        #expect(ids(f, all: false) == [1, 2, 3, 4, 5, 6])  // cut at 1005 ms
        append(path, chunk(tid: 2, sequence: 1, startMs: 1_400, ids: [101]))
        try f.poll()
        #expect(ids(f, all: false) == [7, 8, 9, 10])  // cut at 1100 ms: the rest of the first chunk, once
        #expect(ids(f) == [100, 101])
        #expect(f.chunksWaiting == 0)
    }

    @Test func realDamageIsStillReported() throws {
        let path = temporaryTracePath("follow-damage")
        writeFile(path, FileHeader(pid: 7, monotonicStartNs: 0, realtimeStartNs: 0, program: "app").encode())
        defer { removeFile(path) }
        let f = try TraceFollower(path: path)
        var bad = chunk(tid: 1, sequence: 0, startMs: 0, ids: [1, 2])
        bad[bad.count - 1] ^= 0xFF  // a flipped payload byte: the checksum fails
        append(path, bad)
        append(path, chunk(tid: 1, sequence: 1, startMs: 5, ids: [3]))
        append(path, [UInt8](repeating: 0x55, count: 100))  // bytes that are no chunk
        append(path, chunk(tid: 1, sequence: 2, startMs: 10, ids: [4]))
        try f.poll()
        #expect(ids(f) == [3, 4])
        let kinds = f.damage.map(\.kind)
        #expect(kinds == [.checksumFailed, .garbage])
        #expect(f.damage.last?.byteCount == 100)
        #expect(f.pendingBytes == 0)
    }

    @Test func aHeaderClaimingMoreThanFollowsDoesNotHideTheChunksAfterIt() throws {
        // A writer appends each chunk with one write(), so a whole chunk after an incomplete one means the
        // incomplete one's length is a lie: the follower used to wait for its megabyte forever.
        let path = temporaryTracePath("follow-liar")
        writeFile(path, FileHeader(pid: 7, monotonicStartNs: 0, realtimeStartNs: 0, program: "app").encode())
        defer { removeFile(path) }
        let f = try TraceFollower(path: path)
        append(path, chunk(tid: 1, sequence: 0, startMs: 0, ids: [1]))
        var liar = chunk(tid: 1, sequence: 1, startMs: 2, ids: [99])
        liar.replaceSubrange(8..<12, with: [0, 0, 0x10, 0])  // payload length (little-endian): 1 MiB
        append(path, liar)
        try f.poll()
        #expect(ids(f) == [1])
        #expect(f.pendingBytes == UInt64(liar.count) && f.damage.isEmpty)  // could still be a write in progress
        append(path, chunk(tid: 1, sequence: 2, startMs: 5, ids: [3]))
        append(path, chunk(tid: 1, sequence: 3, startMs: 9, ids: [4], final: true))
        try f.poll()
        #expect(ids(f) == [3, 4])
        #expect(f.pendingBytes == 0)
        // The lying chunk is skipped as garbage, and its sequence number is then missing.
        #expect(f.damage.map(\.kind) == [.garbage, .missingChunks], "\(f.damage.map(\.message))")
        #expect(f.damage.first?.byteCount == UInt64(liar.count))
        #expect(f.allStreamsEnded)
    }

    @Test func aFileThatIsNotATraceIsRefused() throws {
        let path = temporaryTracePath("not-a-trace")
        writeFile(path, Array("hello, this is not a trace at all".utf8))
        defer { removeFile(path) }
        let f = try TraceFollower(path: path)
        #expect(throws: TraceOpenError.self) { _ = try f.poll() }
    }
}
