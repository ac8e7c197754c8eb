// Issue 13 item 6: what indexing costs is bounded by the file's size, whatever the file holds, and the
// memory a stream costs is bounded per stream and in the number of streams (what is past a bound is counted).
import Foundation
import Testing
import TraceFormat
@testable import TraceReader

@Suite struct ReaderBoundsTests {
    private func header() -> [UInt8] {
        FileHeader(pid: 1, monotonicStartNs: 1_000, realtimeStartNs: 0, program: "bounds").encode()
    }

    private func oneEventChunk(tid: UInt32, sequence: UInt64 = 0, final: Bool = true) -> [UInt8] {
        var b = ChunkBuilder(pid: 1, tid: tid, startNs: 2_000, startTicks: 2_000, reserve: 16)
        b.beginEvent(.before, ticks: 2_000)
        b.putAsyncID(UInt64(tid))
        return b.seal(sequence: sequence, endNs: 3_000, endTicks: 3_000, droppedCumulative: 0, flags: final ? .final : [])
    }

    private func open(_ bytes: [UInt8], _ name: String) throws -> TraceReader {
        let path = temporaryTracePath(name)
        writeFile(path, bytes)
        defer { removeFile(path) }
        return try TraceReader(path: path)
    }

    /// A fake chunk header every 80 bytes, each claiming a payload that reaches to the end of the file (its
    /// checksum wrong), `count` of them.
    private func fakeHeaders(_ count: Int, fileEnd: Int, at start: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count * 80)
        for i in 0..<count {
            var h = [UInt8](repeating: 0, count: 80)
            h.withUnsafeMutableBytes { p in
                ChunkHeader(
                    payloadLength: UInt32(fileEnd - (start + i * 80) - 80), pid: 1, tid: 2, sequence: 0,
                    startNs: 0, endNs: 0, startTicks: 0, endTicks: 0, droppedCumulative: 0, crc: 1
                ).store(to: p.baseAddress!)
            }
            out += h
        }
        return out
    }

    @Test func resynchronisingThroughFakeHeadersCostsAFewFileLengthsAndFindsEveryChunk() throws {
        // Two runs of fake headers, each claiming a payload to the end of the file, with real chunks after each.
        // Checking every candidate by reading its payload read ~n^2/2 bytes (a 4 MiB file: ~28 s); a budget on
        // that work then gave up on the rest of the file, losing the real chunks after the fakes.
        let run = 8_000  // 640 KB of fake headers per run
        var bytes = header()
        let start = bytes.count
        let chunkSize = oneEventChunk(tid: 7, sequence: 0, final: false).count
        let end = start + 2 * (run * 80 + chunkSize)
        bytes += fakeHeaders(run, fileEnd: end, at: bytes.count)
        bytes += oneEventChunk(tid: 7, sequence: 0, final: false)
        bytes += fakeHeaders(run, fileEnd: end, at: bytes.count)
        bytes += oneEventChunk(tid: 7, sequence: 1, final: true)
        #expect(bytes.count == end)
        let r = try open(bytes, "bomb")
        #expect(r.streams.count == 1 && r.eventCount == 2 && r.streams.first?.endedCleanly == true)
        #expect(r.indexStatistics.candidatesChecked >= UInt64(2 * run))
        // Indexing read the file a few times over, not once per candidate.
        #expect(r.indexStatistics.bytesRead <= UInt64(bytes.count) * 5 + (4 << 20), "read \(r.indexStatistics.bytesRead) of \(bytes.count)")
        // Everything but the two real chunks is accounted for as damage.
        #expect(r.damage.reduce(0) { $0 + $1.byteCount } == UInt64(bytes.count - start - 2 * chunkSize))
        #expect(r.damage.allSatisfy { $0.kind == .garbage })
    }

    @Test func garbageBeforeEveryChunkReadsTheFileAboutOnce() throws {
        // One stray byte before each of 3,000 small chunks: each resynchronisation used to read a fresh 1 MiB.
        var bytes = header()
        for i in 0..<3_000 { bytes += [0xEE] + oneEventChunk(tid: 2, sequence: UInt64(i), final: i == 2_999) }
        let r = try open(bytes, "stray")
        #expect(r.streams.count == 1 && r.eventCount == 3_000)
        #expect(r.indexStatistics.bytesRead <= UInt64(bytes.count) * 3 + (2 << 20), "read \(r.indexStatistics.bytesRead) of \(bytes.count)")
        // 3,000 garbage regions: the first 1,000 listed, the rest counted in one entry.
        let listed = r.damage.filter { $0.count == 1 }
        let counted = r.damage.filter { $0.count > 1 }
        #expect(listed.count == ChunkIndexer.maxDamageEntries && counted.count == 1)
        #expect(r.damage.reduce(0) { $0 + $1.count } == 3_000 && r.damage.reduce(0) { $0 + $1.byteCount } == 3_000)
        #expect(counted.first?.message.contains("2,000 more damaged regions") == true)
    }

    @Test func streamsAreBoundedInNumberAndInWhatEachCosts() throws {
        // 70,000 one-event streams, none closed: 100,000 such streams used to cost ~5.5 KB each (549 MB).
        var bytes = header()
        bytes.reserveCapacity(70_000 * 100)
        for tid in 1...70_000 { bytes += oneEventChunk(tid: UInt32(tid), final: false) }
        let r = try open(bytes, "streams")
        #expect(r.streams.count == ChunkIndexer.maxStreams)
        let skipped = try #require(r.damage.first { $0.kind == .tooManyStreams })
        #expect(skipped.eventsLost == UInt64(70_000 - ChunkIndexer.maxStreams) && skipped.message.contains("4,464 chunks"))
        // Unterminated streams: 100 listed, the rest in one entry that counts them.
        let open = r.damage.filter { $0.kind == .unterminatedStream }
        #expect(open.count == TraceReader.maxUnterminatedListed + 1)
        #expect(open.reduce(0) { $0 + $1.count } == UInt64(ChunkIndexer.maxStreams))
        // The merge's decode buffers fit what each stream holds (a one-event stream: a few hundred bytes, not a page).
        let it = r.events()
        #expect(it.decodeBufferBytes / r.streams.count < 512, "\(it.decodeBufferBytes / r.streams.count) bytes per stream")
        var n = 0
        while it.next() != nil { n += 1 }
        #expect(n == ChunkIndexer.maxStreams)
    }
}
