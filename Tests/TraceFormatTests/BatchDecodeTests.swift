import Testing
@testable import TraceFormat

/// `decodeBatch` (the reader's fast path) must yield exactly what `decodeNext` yields, event by event, and
/// stop at the same damage with the same error.
@Suite struct BatchDecodeTests {
    /// Every kind the writers use, strings defined midway, lists, multi-byte varints, a ticks clock that is not ns.
    static func chunk() -> [UInt8] {
        var b = ChunkBuilder(pid: 1, tid: 2, startNs: 1_000, startTicks: 7_000)
        var t: UInt64 = 7_000
        let tcp = b.intern("TCPWRAP", ticks: t)
        let name = b.intern("main é", ticks: t)
        let program = b.intern("./app", ticks: t)
        b.beginEvent(.threadInfo, ticks: t); b.putStringID(name)
        b.beginEvent(.processInfo, ticks: t); b.putUnsigned(1); b.putStringID(program)
        for i in 0..<40 {
            t += UInt64(i % 3 == 0 ? 3 : 300_000)
            let id = UInt64(100 + i * 997)
            b.beginEvent(.initResource, ticks: t); b.putAsyncID(id); b.putStringID(tcp); b.putRelatedID(1)
            b.beginEvent(.resourceFD, ticks: t + 1); b.putAsyncID(id); b.putSigned(i % 5 == 0 ? -1 : Int64(i))
            b.beginEvent(.before, ticks: t + 2); b.putAsyncID(id)
            b.beginEvent(.pollEnd, ticks: t + 3); b.putUnsigned(UInt64(i % 4)); b.putList((0..<UInt64(i % 4)).map { $0 * 1_000_003 })
            b.beginEvent(.syscall, ticks: t + 4)
            for v: UInt64 in [1, 2, UInt64(i)] { b.putUnsigned(v) }
            b.putSigned(-7); b.putUnsigned(.max); b.putSigned(.min); b.putUnsigned(12_345)
            b.beginEvent(.epollWait, ticks: t + 5)
            for v: UInt64 in [1, 2, 232] { b.putUnsigned(v) }
            b.putSigned(3); b.putUnsigned(64); b.putSigned(-1); b.putSigned(2); b.putUnsigned(9); b.putList([7, UInt64(i)])
            if i == 20 {
                let late = b.intern("late string", ticks: t + 6)  // defined midway, after events that use others
                b.beginEvent(.mark, ticks: t + 6); b.putStringID(late); b.putAsyncID(id)
            }
            b.beginEvent(.after, ticks: t + 7); b.putAsyncID(id)
            b.beginEvent(.phaseStart, ticks: t + 8); b.putUnsigned(UInt64(i % 7)); b.putUnsigned(UInt64(i % 2))
            b.beginEvent(.destroy, ticks: t + 9); b.putAsyncID(id)
        }
        return b.seal(sequence: 0, endNs: 1_000 + t / 3, endTicks: t + 10, droppedCumulative: 0)
    }

    struct Seen: Equatable {
        var kind: UInt8, ticks: UInt64, ns: UInt64, args: [Int64], text: String, list: [UInt64]
    }

    static func oneByOne(_ h: ChunkHeader, _ payload: UnsafeRawBufferPointer) -> ([Seen], ChunkDecodeStep, UInt32) {
        var d = ChunkDecoder(header: h, payload: payload)
        var out: [Seen] = []
        var e = DecodedEvent(kind: .stringDef)
        while true {
            let step = d.decodeNext(into: &e)
            guard case .event = step else { return (out, step, d.decoded) }
            if e.kind == .stringDef { continue }
            out.append(
                Seen(
                    kind: e.kind.rawValue, ticks: e.ticks, ns: e.timestampNs, args: (0..<9).map { e.arg($0) },
                    text: e.text, list: e.list))
        }
    }

    static func batched(_ h: ChunkHeader, _ payload: UnsafeRawBufferPointer, capacity: Int) -> ([Seen], ChunkBatch.End, UInt32) {
        var d = ChunkDecoder(header: h, payload: payload)
        var out: [Seen] = []
        let buffer = UnsafeMutablePointer<RawEvent>.allocate(capacity: capacity)
        defer { buffer.deallocate() }
        var lists = EventListBuffer()
        defer { lists.deallocate() }
        var floor: UInt64 = 0
        while true {
            lists.removeAll()
            let b = d.decodeBatch(into: buffer, capacity: capacity, lists: &lists, floorNs: &floor)
            for e in UnsafeBufferPointer(start: buffer, count: b.count) {
                out.append(
                    Seen(
                        kind: e.kind.rawValue, ticks: e.ticks, ns: e.timestampNs, args: (0..<9).map { e.arg($0) },
                        text: e.textID >= 0 ? d.strings[Int(e.textID)] : "",
                        list: Array(lists.values(start: e.listStart, count: e.listCount))))
            }
            if case .full = b.end { continue }
            return (out, b.end, d.decoded)
        }
    }

    static func same(_ a: ChunkDecodeStep, _ b: ChunkBatch.End) -> Bool {
        switch (a, b) {
        case (.end, .end): true
        case (.failure(let x), .failure(let y)): x == y
        default: false
        }
    }

    @Test func batchesEqualEventByEventAtEveryCapacity() throws {
        let bytes = Self.chunk()
        try bytes.withUnsafeBytes { raw in
            let h = try #require(ChunkHeader.load(from: raw.baseAddress!))
            let payload = UnsafeRawBufferPointer(rebasing: raw[TraceFileFormat.chunkHeaderSize...])
            let (want, step, decoded) = Self.oneByOne(h, payload)
            #expect(want.count == 2 + 40 * 9 + 1 && decoded == h.eventCount)  // the ids and clock are not trivial
            #expect(want.contains { $0.text == "late string" } && want.contains { $0.list.count == 3 })
            for capacity in [1, 2, 3, 7, 64, 512] {
                let (got, end, n) = Self.batched(h, payload, capacity: capacity)
                #expect(got == want, "capacity \(capacity)")
                #expect(Self.same(step, end) && n == decoded)
            }
        }
    }

    /// Cut the payload at every length, and damage kind bytes: both paths keep the same events and report the same error.
    @Test func damageStopsBothPathsAtTheSameEvent() throws {
        let bytes = Self.chunk()
        let h = try #require(bytes.withUnsafeBytes { ChunkHeader.load(from: $0.baseAddress!) })
        let payload = Array(bytes[TraceFileFormat.chunkHeaderSize...])
        var failures = 0
        for cut in stride(from: 0, through: payload.count, by: 3) {
            payload[0..<cut].withUnsafeBytes { p in
                let (want, step, decoded) = Self.oneByOne(h, p)
                let (got, end, n) = Self.batched(h, p, capacity: 5)
                #expect(got == want && Self.same(step, end) && n == decoded, "cut at \(cut)")
                if case .failure = step { failures += 1 }
            }
        }
        for at in stride(from: 1, to: payload.count, by: 29) {
            for value: UInt8 in [0x00, 0x7F, 0xEE, 0xFF] {
                var damaged = payload
                damaged[at] = value
                damaged.withUnsafeBytes { p in
                    let (want, step, decoded) = Self.oneByOne(h, p)
                    let (got, end, n) = Self.batched(h, p, capacity: 4)
                    #expect(got == want && Self.same(step, end) && n == decoded, "byte \(at) = \(value)")
                }
            }
        }
        #expect(failures > payload.count / 6)  // most cuts land inside an event
    }
}
