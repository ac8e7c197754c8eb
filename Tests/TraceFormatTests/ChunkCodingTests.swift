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
