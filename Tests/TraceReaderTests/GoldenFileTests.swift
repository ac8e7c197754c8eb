// Golden files: one small committed trace per format version the reader accepts (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13), each holding
// every event kind of its version in every argument encoding, over user streams (one on a tick clock), a
// kernel stream, a string table per chunk, a dropped chunk and final chunks; and the decoded text they must
// read as. A change to the reader that reads an old file differently fails here.
//
// The files are bytes, not code: regenerating them (ASYNCTRACE_WRITE_GOLDEN=1 swift test --filter GoldenFileTests)
// is only for a new format version, never to make this test pass.
import Foundation
import Testing
import TraceFormat
@testable import TraceReader

@Suite struct GoldenFileTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden").path

    /// The kinds a writer of `version` could write: phaseStart came with version 2, 0x24...0x2B with version 3,
    /// stackCopy (0x2C) with version 4, creationStack (0x2E) and stackCopyDelta (0x2F) with version 5,
    /// stackUnwind (0x31) with version 6, stackExtend (0x32) with version 7, sample (0x33) with version 8,
    /// sampleNewStack (0x34) with version 9, userSample, userSampleNewStack and stackCompact (0x35...0x37) with version 10,
    /// processTitle (0x38) with version 11, wakerName (0x39) with version 12, perfMap (0x3A) with version 13.
    static func kinds(ofVersion version: UInt16) -> [EventSpec] {
        EventSpecs.all.filter { spec in
            if spec.kind == .stringDef { return false }
            if spec.kind == .stackUnwind { return version >= 6 }
            if spec.kind == .stackExtend { return version >= 7 }
            if spec.kind == .sample { return version >= 8 }
            if spec.kind == .sampleNewStack { return version >= 9 }
            if spec.kind == .userSample || spec.kind == .userSampleNewStack || spec.kind == .stackCompact { return version >= 10 }
            if spec.kind == .processTitle { return version >= 11 }
            if spec.kind == .wakerName { return version >= 12 }
            if spec.kind == .perfMap { return version >= 13 }
            if spec.kind == .phaseStart { return version >= 2 }
            if spec.kind == .stackCopy || spec.kind == .waitStack { return version >= 4 }
            if spec.kind == .creationStack || spec.kind == .stackCopyDelta || spec.kind == .loopPhase { return version >= 5 }
            if spec.kind.rawValue >= 0x24 { return version >= 3 }
            return true
        }
    }

    /// Puts one event of `spec` with arguments derived from `seed` (every encoding exercised).
    static func put(_ spec: EventSpec, seed: UInt64, ticks: UInt64, into b: inout ChunkBuilder) {
        var text: [UInt64] = []
        for (i, a) in spec.args.enumerated() where a.encoding == .string {
            text.append(b.intern("\(spec.name)-\(a.name)-\(seed % 3) ☃", ticks: ticks))
            _ = i
        }
        b.beginEvent(spec.kind, ticks: ticks)
        var strings = text.makeIterator()
        for (i, a) in spec.args.enumerated() {
            let v = seed &* 31 &+ UInt64(i) &* 7 &+ 1
            switch a.encoding {
            case .unsigned: b.putUnsigned(i == 0 ? v % 9 : v)  // phase codes and the like stay small
            case .signed: b.putSigned(-Int64(v % 1_000) + 3)
            case .asyncID: b.putAsyncID(1_000 + v % 50)
            case .relatedID: b.putRelatedID(900 + v % 40)
            case .string: b.putStringID(strings.next()!)
            case .list: b.putList([v % 17, v % 5, 65_537])
            case .bytes: b.putUnsigned(0)
            // Differences of both signs against the chunk's previous ones.
            case .pid: b.putPid(4_000 + v % 500)
            case .tid: b.putTid(70_000 + v % 300)
            case .stackID: b.putStackID(v % 200)
            }
        }
    }

    /// The golden trace of `version`.
    static func build(version: UInt16, kernelKinds: ClosedRange<UInt8> = 0x20...0xFF) -> [UInt8] {
        var out = FileHeader(
            version: version, pid: 4242, monotonicStartNs: 5_000_000_000, realtimeStartNs: 1_700_000_000_000_000_000,
            program: "./golden v\(version) --flag ümlaut"
        ).encode()
        let kinds = kinds(ofVersion: version)
        // Two user streams (the second on a clock of 3 ticks per ns, shifted), two chunks each; sequence 1 of the
        // first stream was dropped (counted), so its chunks are 0 and 2.
        for (s, tid) in [UInt32(4242), 4243].enumerated() {
            let clock: (UInt64) -> UInt64 = s == 0 ? { $0 } : { $0 * 3 + 11 }
            var seed = UInt64(s * 100)
            for (c, sequence) in [UInt64(0), s == 0 ? 2 : 1].enumerated() {
                let start = 5_000_100_000 + UInt64(c) * 1_000_000 + UInt64(s) * 17
                var b = ChunkBuilder(pid: 4242, tid: tid, startNs: start, startTicks: clock(start))
                if c == 0 {
                    let name = b.intern(s == 0 ? "main" : "worker \u{1}", ticks: clock(start))
                    b.beginEvent(.threadInfo, ticks: clock(start)); b.putStringID(name)
                }
                var t = start
                // Version 5: user streams hold stack definitions, code regions and creation stacks too.
                let userKinds: Set<UInt8> =
                    version >= 5 ? [EventKind.stackDef.rawValue, EventKind.mapping.rawValue, EventKind.creationStack.rawValue] : []
                for spec in kinds where (spec.kind.rawValue < 0x20 || userKinds.contains(spec.kind.rawValue)) && spec.kind != .threadInfo {
                    t += 1_000 + seed % 300
                    put(spec, seed: seed, ticks: clock(t), into: &b)
                    seed += 1
                }
                let end = t + 500
                out += b.seal(
                    sequence: sequence, endNs: end, endTicks: clock(end), droppedCumulative: s == 0 && c == 1 ? 12 : 0,
                    flags: c == 1 ? .final : [])
            }
        }
        // The kernel stream: every kernel kind of the version, ticks == ns.
        let start: UInt64 = 5_000_050_000
        var k = ChunkBuilder(pid: 4242, tid: 0, startNs: start, startTicks: start)
        var t = start
        var seed: UInt64 = 500
        for spec in kinds where kernelKinds.contains(spec.kind.rawValue) {
            t += 123_457
            put(spec, seed: seed, ticks: t, into: &k)
            seed += 1
        }
        // Version 8: more samples, so their pid, tid and stack differences go both ways.
        if version >= 8, let sample = EventKind.sample.spec {
            for s in [UInt64(7), 3, 11, 3] {
                t += 1_000_003
                put(sample, seed: seed * s, ticks: t, into: &k)
            }
        }
        // Version 9: samples bringing their new stacks among plain ones (the stack differences shared by both kinds).
        if version >= 9, let sample = EventKind.sample.spec, let newStack = EventKind.sampleNewStack.spec {
            for s in [UInt64(5), 13, 2] {
                t += 999_983
                put(newStack, seed: seed * s, ticks: t, into: &k)
                t += 1_000_003
                put(sample, seed: seed * s + 1, ticks: t, into: &k)
            }
        }
        // Version 10: samples without kernel stacks, some bringing their new stacks, among samples with them.
        if version >= 10, let sample = EventKind.userSample.spec, let newStack = EventKind.userSampleNewStack.spec,
            let withKernel = EventKind.sample.spec
        {
            for s in [UInt64(3), 17, 6] {
                t += 1_000_033
                put(newStack, seed: seed * s, ticks: t, into: &k)
                t += 999_979
                put(sample, seed: seed * s + 1, ticks: t, into: &k)
                t += 1_000_037
                put(withKernel, seed: seed * s + 2, ticks: t, into: &k)
            }
        }
        out += k.seal(sequence: 0, endNs: t + 1, endTicks: t + 1, droppedCumulative: 3, flags: [.kernel, .final])
        return out
    }

    /// What a reader sees in a trace, as text: header, streams, every event with every argument, damage.
    static func dump(_ path: String) throws -> String {
        let r = try TraceReader(path: path)
        let h = r.header
        var s =
            "version \(h.version) pid \(h.pid) monotonic \(h.monotonicStartNs) realtime \(h.realtimeStartNs) program \(h.program.debugDescription)\n"
        s +=
            "events \(r.eventCount) payload \(r.payloadBytes) first \(r.firstNs) last \(r.lastNs) dropped user \(r.droppedUser) kernel \(r.droppedKernel)\n"
        for st in r.streams {
            s +=
                "stream \(st.index) \(st.key) name \(st.threadName.map(\.debugDescription) ?? "-") program \(st.program.map(\.debugDescription) ?? "-") "
                + "chunks \(st.chunkCount) events \(st.eventCount) dropped \(st.dropped) closed \(st.endedCleanly)\n"
        }
        let it = r.events()
        while let e = it.next() {
            let ev = e.event
            let n = ev.kind.spec?.args.count ?? 0
            s += "\(e.stream) \(ev.timestampNs) \(ev.kind)"
            for i in 0..<n { s += " \(ev.arg(i))" }
            if !ev.text.isEmpty { s += " text=\(ev.text.debugDescription)" }
            if !ev.list.isEmpty { s += " list=\(ev.list)" }
            s += "\n"
        }
        for d in r.damage + it.damage { s += "damage \(d.kind.rawValue): \(d.message)\n" }
        return s
    }

    @Test(arguments: [UInt16(1), 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13])
    func goldenTraceReadsAsRecorded(version: UInt16) throws {
        let trace = "\(Self.directory)/v\(version).atrace"
        let expected = "\(Self.directory)/v\(version).expected.txt"
        if ProcessInfo.processInfo.environment["ASYNCTRACE_WRITE_GOLDEN"] == "1" {
            _ = FileManager.default.createFile(atPath: trace, contents: Data(Self.build(version: version)))
            _ = FileManager.default.createFile(atPath: expected, contents: Data(try Self.dump(trace).utf8))
        }
        let want = try #require(FileManager.default.contents(atPath: expected), "missing \(expected)")
        let got = try Self.dump(trace)
        let wantLines = String(decoding: want, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let gotLines = got.split(separator: "\n", omittingEmptySubsequences: false)
        let firstDifference = Array(zip(wantLines, gotLines)).firstIndex { $0.0 != $0.1 }
        #expect(gotLines == wantLines, "v\(version): first difference at line \((firstDifference ?? min(wantLines.count, gotLines.count)) + 1)")
        // The file says its version and reads without damage. (Kinds added to a version later, as 0x28-0x2F were
        // to version 3, are not in its file until it is regenerated: the file is what old writers wrote.)
        let r = try TraceReader(path: trace)
        #expect(r.header.version == version && r.damage.isEmpty)
    }

    /// waitStack (0x2D), added to version 4 after its file was written: a file of its own, written once when
    /// it came, read as recorded ever since.
    @Test func waitStackOfVersion4ReadsAsRecorded() throws {
        let trace = "\(Self.directory)/v4-waitstack.atrace"
        let expected = "\(Self.directory)/v4-waitstack.expected.txt"
        if ProcessInfo.processInfo.environment["ASYNCTRACE_WRITE_GOLDEN"] == "1" && !FileManager.default.fileExists(atPath: trace) {
            _ = FileManager.default.createFile(atPath: trace, contents: Data(Self.build(version: 4, kernelKinds: 0x2D...0x2D)))
            _ = FileManager.default.createFile(atPath: expected, contents: Data(try Self.dump(trace).utf8))
        }
        let want = try #require(FileManager.default.contents(atPath: expected), "missing \(expected)")
        #expect(try Self.dump(trace) == String(decoding: want, as: UTF8.self))
        let dump = try Self.dump(trace)
        #expect(dump.contains(" waitStack "))
    }
}
