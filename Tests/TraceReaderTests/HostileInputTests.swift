// Issue 13: files a user may be handed or tricked into reading. Whatever the path or the contents, the
// reader answers at once, with an error or a damage entry, and never traps, blocks or calls a non-trace empty.
import Foundation
import Testing
import TraceFormat
@testable import TraceReader

@Suite struct HostileInputTests {
    /// `chunk` (as ChunkBuilder sealed it) with its header changed by `patch` and its checksum made right again:
    /// contents a writer never produces, that the checksum vouches for.
    private func resealed(_ chunk: [UInt8], _ patch: (inout ChunkHeader) -> Void) -> [UInt8] {
        var out = chunk
        out.withUnsafeMutableBytes { p in
            var h = ChunkHeader.load(from: p.baseAddress!)!
            patch(&h)
            h.store(to: p.baseAddress!)
            let payload = UnsafeRawBufferPointer(rebasing: p[TraceFileFormat.chunkHeaderSize...])
            h.crc = ChunkHeader.computeCRC(header: p.baseAddress!, payload: payload)
            h.store(to: p.baseAddress!)
        }
        return out
    }

    private func userChunk(tid: UInt32, sequence: UInt64, startNs: UInt64, ids: [UInt64], final: Bool) -> [UInt8] {
        // Ticks run at 3 per ns (not the kernel's identity clock), so the linear time conversion is used.
        var b = ChunkBuilder(pid: 9, tid: tid, startNs: startNs, startTicks: startNs * 3)
        for (i, id) in ids.enumerated() {
            b.beginEvent(.before, ticks: startNs * 3 + UInt64(i) * 30)
            b.putAsyncID(id)
        }
        return b.seal(
            sequence: sequence, endNs: startNs + 1_000, endTicks: startNs * 3 + 3_000, droppedCumulative: 0,
            flags: final ? .final : [])
    }

    @Test func chunkWhoseClockRunsBackwardsIsSkippedWithADamageEntry() throws {
        let path = temporaryTracePath("backwards")
        defer { removeFile(path) }
        let w = TraceFileWriter(path: path, header: FileHeader(pid: 9, monotonicStartNs: 0, realtimeStartNs: 0, program: "b"))
        let good = userChunk(tid: 1, sequence: 0, startNs: 10_000, ids: [1, 2], final: true)
        // Valid checksum, end before start: converting its ticks used to trap (UInt64 of a Double beyond 2^64).
        let bad = resealed(userChunk(tid: 2, sequence: 0, startNs: 20_000, ids: [3, 4, 5], final: true)) { $0.endNs = 5 }
        w.append(chunk: good, pid: 9, tid: 1, sequence: 0, eventCount: 2)
        w.append(chunk: bad, pid: 9, tid: 2, sequence: 0, eventCount: 3)
        w.close()
        let r = try TraceReader(path: path)
        #expect(r.damage.map(\.kind) == [.inconsistentChunk])
        let d = try #require(r.damage.first)
        #expect(d.stream == StreamKey(pid: 9, tid: 2, isKernel: false) && d.eventsLost == 3 && d.fileOffset == UInt64(w.chunks[1].offset))
        #expect(d.message.contains("clock runs backwards"))
        var ids: [UInt64] = []
        let it = r.events()
        while let e = it.next() { ids.append(e.event.u(0)) }
        #expect(ids == [1, 2] && it.damage.isEmpty)
    }

    @Test func droppedCountsThatOverflowSaturate() throws {
        let path = temporaryTracePath("dropped")
        defer { removeFile(path) }
        let w = TraceFileWriter(path: path, header: FileHeader(pid: 9, monotonicStartNs: 0, realtimeStartNs: 0, program: "d"))
        for tid: UInt32 in [1, 2] {
            let c = resealed(userChunk(tid: tid, sequence: 0, startNs: 100, ids: [UInt64(tid)], final: true)) {
                $0.droppedCumulative = .max - 1
            }
            w.append(chunk: c, pid: 9, tid: tid, sequence: 0, eventCount: 1)
        }
        w.close()
        let r = try TraceReader(path: path)
        #expect(r.droppedUser == .max && r.droppedKernel == 0)
    }

    @Test func aFIFOIsRefusedAtOnce() throws {
        let path = temporaryTracePath("fifo")
        #expect(mkfifo(path, 0o600) == 0)
        defer { removeFile(path) }
        // Hold the FIFO open for writing, so an open that does not refuse FIFOs neither blocks nor fails the test by hanging:
        // it would read it as an empty file instead.
        let writer = open(path, O_RDWR | O_NONBLOCK)
        #expect(writer >= 0)
        defer { close(writer) }
        #expect(throws: TraceOpenError.notRegularFile(path: path, kind: "a FIFO (named pipe)")) { try TraceReader(path: path) }
        // With no writer at all, opening it must not wait for one.
        close(writer)
        let started = Date()
        #expect(throws: TraceOpenError.notRegularFile(path: path, kind: "a FIFO (named pipe)")) { try TraceReader(path: path) }
        #expect(Date().timeIntervalSince(started) < 5)
    }

    @Test func devicesAreRefusedNotCalledEmpty() throws {
        #expect(throws: TraceOpenError.notRegularFile(path: "/dev/zero", kind: "a character device")) {
            try TraceReader(path: "/dev/zero")
        }
        let e = TraceOpenError.notRegularFile(path: "/dev/zero", kind: "a character device")
        #expect(!e.description.contains("empty") && e.description.contains("not a trace file"))
    }

    @Test func procFilesAreNotCalledEmpty() throws {
        #expect(throws: TraceOpenError.unsizedFile(path: "/proc/self/status")) { try TraceReader(path: "/proc/self/status") }
        #expect(!TraceOpenError.unsizedFile(path: "/proc/self/status").description.contains("recording wrote nothing"))
        // A truly empty regular file is still reported as such.
        let path = temporaryTracePath("empty")
        writeFile(path, [])
        defer { removeFile(path) }
        #expect(throws: TraceOpenError.emptyFile(path: path)) { try TraceReader(path: path) }
    }

    @Test func fileIdentityFollowsLinks() throws {
        let path = temporaryTracePath("ident")
        let w = writeSmallTrace(path: path, streams: 1, chunksPerStream: 1, perChunk: 1, kernel: false)
        defer { removeFile(path); removeFile(path + ".sym"); removeFile(path + ".hard") }
        #expect(symlink(w.path, path + ".sym") == 0 && link(w.path, path + ".hard") == 0)
        let a = try TraceReader(path: path), b = try TraceReader(path: path + ".sym"), c = try TraceReader(path: path + ".hard")
        #expect(a.fileIdentity == b.fileIdentity && a.fileIdentity == c.fileIdentity)
    }
}
