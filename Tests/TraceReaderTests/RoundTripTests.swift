import Testing
import TraceFormat
@testable import TraceReader

@Suite struct RoundTripTests {
    /// ≥ 10 M events over 4 user threads (ticks ≠ ns) and a kernel stream, chunks interleaved in the
    /// file as a recorder writes them; every event comes back, in time order, each stream in its order.
    @Test func tenMillionEventsAcrossStreams() throws {
        let path = temporaryTracePath("roundtrip")
        defer { removeFile(path) }
        let users = 4
        let perChunk = 20_000
        let chunksPerStream = 100
        let total = (users + 1) * perChunk * chunksPerStream  // 10,000,000
        let w = TraceFileWriter(path: path, header: FileHeader(pid: 42, monotonicStartNs: 1_000, realtimeStartNs: 1, program: "rt"))
        var next = [UInt64](repeating: 0, count: users + 1)
        for c in 0..<chunksPerStream {
            for s in 0...users {
                let kernel = s == users
                // User clocks tick 3 times per ns, shifted; the kernel stream's ticks are ns.
                let startNs = UInt64(1_000 + c * perChunk * 10 + s)
                let endNs = startNs + UInt64(perChunk * 10)
                let startTicks = kernel ? startNs : startNs * 3 + 777
                let endTicks = kernel ? endNs : endNs * 3 + 777
                var b = ChunkBuilder(
                    pid: 42, tid: kernel ? 0 : UInt32(10 + s), startNs: startNs, startTicks: startTicks,
                    reserve: perChunk * 6)
                for i in 0..<perChunk {
                    let ns = startNs + UInt64(i * 10)
                    if kernel {
                        b.beginEvent(.syscall, ticks: ns)
                        b.putUnsigned(42); b.putUnsigned(10); b.putUnsigned(1); b.putSigned(3)
                        b.putUnsigned(next[s]); b.putSigned(1); b.putUnsigned(5)
                    } else {
                        b.beginEvent(i % 2 == 0 ? .before : .after, ticks: ns * 3 + 777)
                        b.putAsyncID(next[s])
                    }
                    next[s] += 1
                }
                var flags: ChunkFlags = kernel ? [.kernel] : []
                if c == chunksPerStream - 1 { flags.insert(.final) }
                w.append(
                    chunk: b.seal(
                        sequence: UInt64(c), endNs: endNs, endTicks: endTicks, droppedCumulative: 0,
                        flags: flags),
                    pid: 42, tid: kernel ? 0 : UInt32(10 + s), sequence: UInt64(c), eventCount: perChunk)
            }
        }
        w.close()

        let r = try TraceReader(path: path)
        #expect(r.damage.isEmpty)
        #expect(r.eventCount == UInt64(total))
        #expect(r.streams.count == users + 1 && r.streams.last!.isKernel)
        var expected = [UInt64](repeating: 0, count: users + 1)
        var lastNs: UInt64 = 0
        var outOfOrder = 0, wrongID = 0, wrongTime = 0
        let it = r.events()
        while let e = it.next() {
            let st = r.streams[e.stream]
            let s = st.isKernel ? users : Int(st.tid) - 10
            let id = st.isKernel ? e.event.u(4) : e.event.u(0)
            if id != expected[s] { wrongID += 1 }
            // Event n of a stream was written at ns = 1_000 + s + 10 * n (chunks are contiguous).
            let want = UInt64(1_000 + s) + 10 * expected[s]
            if e.timestampNs > want + 1 || e.timestampNs + 1 < want { wrongTime += 1 }
            expected[s] += 1
            if e.timestampNs < lastNs { outOfOrder += 1 }
            lastNs = e.timestampNs
        }
        #expect(it.damage.isEmpty)
        #expect(outOfOrder == 0 && wrongID == 0 && wrongTime == 0)
        #expect(expected == [UInt64](repeating: UInt64(perChunk * chunksPerStream), count: users + 1))
        #expect(it.eventsRead == UInt64(total) && it.bytesRead == r.payloadBytes)
    }

    @Test func streamMetadataAndDroppedCounts() throws {
        let path = temporaryTracePath("meta")
        defer { removeFile(path) }
        let w = TraceFileWriter(path: path, header: FileHeader(pid: 7, monotonicStartNs: 0, realtimeStartNs: 0, program: "./meta"))
        var b = ChunkBuilder(pid: 7, tid: 8, startNs: 100, startTicks: 100)
        let name = b.intern("main", ticks: 100)
        b.beginEvent(.threadInfo, ticks: 100); b.putStringID(name)
        let prog = b.intern("./meta --x", ticks: 100)
        b.beginEvent(.processInfo, ticks: 100); b.putUnsigned(1); b.putStringID(prog)
        w.append(chunk: b.seal(sequence: 0, endNs: 200, endTicks: 200, droppedCumulative: 0), pid: 7, tid: 8, sequence: 0, eventCount: 2)
        // The recorder skips a sequence number for each chunk it drops and counts the events: not damage.
        var b2 = ChunkBuilder(pid: 7, tid: 8, startNs: 300, startTicks: 300)
        b2.beginEvent(.before, ticks: 300); b2.putAsyncID(5)
        w.append(
            chunk: b2.seal(sequence: 2, endNs: 400, endTicks: 400, droppedCumulative: 11, flags: [.final]),
            pid: 7, tid: 8, sequence: 2, eventCount: 1)
        var k = ChunkBuilder(pid: 7, tid: 0, startNs: 150, startTicks: 150)
        k.beginEvent(.processExit, ticks: 150); k.putUnsigned(7); k.putSigned(0)
        w.append(
            chunk: k.seal(sequence: 0, endNs: 150, endTicks: 150, droppedCumulative: 3, flags: [.kernel]),
            pid: 7, tid: 0, sequence: 0, eventCount: 1)
        w.close()

        let r = try TraceReader(path: path)
        // The kernel stream has no final chunk: its end is reported missing, from its last chunk's end on.
        #expect(r.damage.map(\.kind) == [.unterminatedStream])
        #expect(
            r.damage.first?.stream == StreamKey(pid: 7, tid: 0, isKernel: true) && r.damage.first?.startNs == 150
                && r.damage.first?.endNs == 400 && r.damage.first?.eventsLost == nil)
        #expect(r.streams.count == 2)
        let main = r.streams[0]
        #expect(main.threadName == "main" && main.program == "./meta --x" && main.parentPid == 1)
        #expect(main.dropped == 11 && main.chunkCount == 2 && main.endedCleanly)
        // Header counts include the two string definitions the iterator consumes.
        #expect(main.eventCount == 5 && main.endedCleanly)
        #expect(r.streams[1].isKernel && r.streams[1].dropped == 3 && !r.streams[1].endedCleanly)
        #expect(r.droppedUser == 11 && r.droppedKernel == 3)
        #expect(r.firstNs == 100 && r.lastNs == 400)
        let kinds = Array(r.events()).map(\.kind)
        #expect(kinds == [.threadInfo, .processInfo, .processExit, .before])
    }

    @Test func chunksOfAStreamAreReadInSequenceOrderWhateverTheFileOrder() throws {
        let path = temporaryTracePath("order")
        defer { removeFile(path) }
        let w = TraceFileWriter(path: path, header: FileHeader(pid: 1, monotonicStartNs: 0, realtimeStartNs: 0, program: "o"))
        var sealed: [[UInt8]] = []
        for c in 0..<4 {
            var b = ChunkBuilder(pid: 1, tid: 2, startNs: UInt64(c * 100), startTicks: UInt64(c * 100))
            for i in 0..<3 { b.beginEvent(.before, ticks: UInt64(c * 100 + i)); b.putAsyncID(UInt64(c * 3 + i)) }
            sealed.append(b.seal(sequence: UInt64(c), endNs: UInt64(c * 100 + 50), endTicks: UInt64(c * 100 + 50), droppedCumulative: 0))
        }
        for c in [2, 0, 3, 1] { w.append(chunk: sealed[c], pid: 1, tid: 2, sequence: UInt64(c), eventCount: 3) }
        w.close()
        let r = try TraceReader(path: path)
        #expect(Array(r.events()).map { $0.event.u(0) } == Array(0..<12))
    }

    @Test func selectedStreamsOnly() throws {
        let path = temporaryTracePath("select")
        defer { removeFile(path) }
        _ = writeSmallTrace(path: path)
        let r = try TraceReader(path: path)
        let events = Array(r.events(streams: [1]))
        #expect(events.allSatisfy { $0.stream == 1 })
        #expect(events.compactMap { testID($0.event) } == (0..<150).map { UInt64(1) << 32 | UInt64($0) })
        #expect(r.streams[1].threadName == "worker-1")
    }
}
