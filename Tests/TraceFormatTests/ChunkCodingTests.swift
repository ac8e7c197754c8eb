import Testing
@testable import TraceFormat

@Suite struct ChunkCodingTests {
    @Test func builderAndDecoderAgreeOnEveryKind() throws {
        var b = ChunkBuilder(pid: 42, tid: 43, startNs: 1_000, startTicks: 5_000)
        let t = b.intern("Timeout", ticks: 5_000)
        b.beginEvent(.initResource, ticks: 5_010); b.putAsyncID(100); b.putStringID(t); b.putRelatedID(1)
        b.beginEvent(.before, ticks: 5_020); b.putAsyncID(100)
        b.beginEvent(.pollEnd, ticks: 5_030); b.putUnsigned(2); b.putList([7, 9])
        b.beginEvent(.after, ticks: 5_040); b.putAsyncID(100)
        b.beginEvent(.syscall, ticks: 5_050)
        for v: UInt64 in [42, 44, 1] { b.putUnsigned(v) }
        b.putSigned(-1); b.putUnsigned(7); b.putSigned(-11); b.putUnsigned(300)
        let chunk = b.seal(sequence: 3, endNs: 1_100, endTicks: 5_100, droppedCumulative: 9)
        try chunk.withUnsafeBytes { raw in
            let h = try #require(ChunkHeader.load(from: raw.baseAddress!))
            #expect(h.pid == 42 && h.tid == 43 && h.sequence == 3 && h.droppedCumulative == 9 && h.eventCount == 6)
            let payload = UnsafeRawBufferPointer(rebasing: raw[TraceFileFormat.chunkHeaderSize...])
            #expect(ChunkHeader.computeCRC(header: raw.baseAddress!, payload: payload) == h.crc)
            var d = ChunkDecoder(header: h, payload: payload)
            var events: [DecodedEvent] = []
            while let r = d.next() { events.append(try r.get()) }
            #expect(events.map(\.kind) == [.stringDef, .initResource, .before, .pollEnd, .after, .syscall])
            #expect(events[1].u(0) == 100 && events[1].text == "Timeout" && events[1].u(2) == 1)
            #expect(events[3].list == [7, 9])
            #expect(events[5].s(3) == -1 && events[5].s(5) == -11 && events[5].u(6) == 300)
            // ticks 5_000...5_100 map onto 1_000...1_100 ns
            #expect(events[2].timestampNs == 1_020)
        }
    }

    /// `sample` (format 8): pid, tid and stack as differences from the chunk's previous ones, so a thread
    /// sampled again costs a byte for each; any values (both directions, the widest) read back as written,
    /// and every chunk starts again from 0 (it decodes on its own).
    @Test func samplesCarryDifferencesWithinTheirChunk() throws {
        let samples: [(pid: UInt64, tid: UInt64, stack: UInt64, kernel: UInt64)] = [
            (91_234, 91_240, 570, 0), (91_234, 91_240, 570, 0), (91_234, 91_240, 571, 3), (91_234, 91_251, 12, 0),
            (7, 8, 0, 0), (UInt64(UInt32.max), UInt64(UInt32.max), UInt64.max, 1), (0, 0, 1, 0), (91_234, 91_240, 571, 0),
        ]
        func chunk(_ part: ArraySlice<(pid: UInt64, tid: UInt64, stack: UInt64, kernel: UInt64)>) -> [UInt8] {
            var b = ChunkBuilder(pid: 1, tid: 0, startNs: 1_000, startTicks: 1_000)
            for (i, s) in part.enumerated() {
                b.beginEvent(.sample, ticks: 1_000 + UInt64(i))
                b.putPid(s.pid); b.putTid(s.tid); b.putStackID(s.stack); b.putUnsigned(s.kernel)
            }
            return b.seal(sequence: 0, endNs: 2_000, endTicks: 2_000, droppedCumulative: 0, flags: .kernel)
        }
        var decoded: [[UInt64]] = []
        for part in [samples[0..<4], samples[4...]] {
            let bytes = chunk(part)
            try bytes.withUnsafeBytes { raw in
                let h = try #require(ChunkHeader.load(from: raw.baseAddress!))
                var d = ChunkDecoder(header: h, payload: UnsafeRawBufferPointer(rebasing: raw[TraceFileFormat.chunkHeaderSize...]))
                while let r = d.next() {
                    let e = try r.get()
                    #expect(e.kind == .sample)
                    decoded.append((0..<4).map { e.u($0) })
                }
            }
        }
        #expect(decoded == samples.map { [$0.pid, $0.tid, $0.stack, $0.kernel] })
        // A chunk's first sample states its pid and tid (3 bytes each here) and stack (2); the next one of the
        // same thread and stack: kind, time delta and four single bytes.
        var one = ChunkBuilder(pid: 1, tid: 0, startNs: 0, startTicks: 0)
        one.beginEvent(.sample, ticks: 0); one.putPid(91_234); one.putTid(91_240); one.putStackID(570); one.putUnsigned(0)
        let first = one.byteCount
        one.beginEvent(.sample, ticks: 0); one.putPid(91_234); one.putTid(91_240); one.putStackID(570); one.putUnsigned(0)
        #expect(first == 1 + 1 + 3 + 3 + 2 + 1)
        #expect(one.byteCount - first == 6)
        // The stack defined right after the previous one: one byte too.
        one.beginEvent(.sample, ticks: 0); one.putPid(91_234); one.putTid(91_240); one.putStackID(571); one.putUnsigned(0)
        #expect(one.byteCount - first == 12)
    }

    @Test func fileHeaderRoundTripsAndRejectsDamage() {
        let h = FileHeader(pid: 7, monotonicStartNs: 1, realtimeStartNs: 2, program: "./app --flag é")
        var bytes = h.encode()
        bytes.withUnsafeBytes { raw in
            guard case .success(let (d, n)) = FileHeader.decode(raw) else { Issue.record("decode failed"); return }
            #expect(d == h && n == bytes.count)
        }
        bytes[20] ^= 0xff
        bytes.withUnsafeBytes { raw in
            guard case .failure(.corrupt) = FileHeader.decode(raw) else { Issue.record("damage not found"); return }
        }
        var newer = h.encode()
        newer[8] = 99
        newer.withUnsafeBytes { raw in
            guard case .failure(.unsupportedVersion(99)) = FileHeader.decode(raw) else { Issue.record("version"); return }
        }
    }
}

@Suite struct PhaseCodeTests {
    @Test func phaseCodesAreNodesOrder() {
        #expect(TraceLoopPhase.allCases.map(\.name) == ["timers", "pending", "idle", "prepare", "poll", "check", "close"])
    }
}
