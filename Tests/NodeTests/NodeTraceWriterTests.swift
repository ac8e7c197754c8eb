// The recorder's end of the preload protocol: well-formed batches become trace events the reader
// reads back; damaged or hostile bytes are skipped and counted, never trusted or trapped on.
import Foundation
import NodeRecording
import Testing
import TraceFormat
import TraceReader

/// Builds batches the way asynctrace-preload.js does.
struct BatchBuilder {
    var slots: [Double] = []
    mutating func string(_ kind: NodeBatchProtocol.Kind, _ index: Double, _ text: String) {
        let units = Array(text.utf16)
        slots += [Double(kind.rawValue), index, Double(units.count)] + units.map(Double.init)
    }
    /// `mark`: header slot 7, the thread's nonce × 2 (+ 1: taken by the parent thread).
    func batch(pid: Double, tid: Double, sequence: Double, dropped: Double = 0, mark: Double = 0) -> [UInt8] {
        let all = [NodeBatchProtocol.magic, pid, tid, sequence, dropped, Double(8 + slots.count), 0, mark] + slots
        return all.withUnsafeBytes { Array($0) }
    }
}

@Suite struct NodeTraceWriterTests {
    func withTraceFile(_ body: (Int32, String) throws -> Void) throws {
        let path = NSTemporaryDirectory() + "asynctrace-nodewriter-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).atrace"
        defer { unlink(path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o600)
        #expect(fd >= 0)
        defer { close(fd) }
        let header = FileHeader(pid: 100, monotonicStartNs: 1_000_000, realtimeStartNs: 0, program: "node test").encode()
        #expect(write(fd, header, header.count) == header.count)
        try body(fd, path)
    }

    @Test func batchesBecomeOneStreamPerThreadWithNodesTypesAndTimes() throws {
        try withTraceFile { fd, path in
            var w = NodeTraceWriter(fd: fd)
            var b = BatchBuilder()
            b.slots += [Double(NodeBatchProtocol.Kind.clock.rawValue), 5_000_000_000, 2.0]  // offset 5 s, now 2 ms
            b.string(.thread, 0, "node")
            b.string(.process, 1, "node app.js")
            b.string(.string, 0, "Timeout")
            b.slots += [1, 7, 1, 0]  // init 7 Timeout <- 1
            b.slots += [6, 7, 12]  // resourceFD 7 -> 12
            b.slots += [2, 3.5, 7]  // before at 3.5 ms
            b.slots += [3, 4.25, 7]  // after at 4.25 ms
            b.string(.site, 7, "leak (/srv/app.js:4:3)\nObject.<anonymous> (/srv/app.js:9:1)")
            b.slots += [4, 7]  // destroy
            var worker = BatchBuilder()
            worker.slots += [8, 6_000_000_000, 1.0]
            worker.string(.thread, 0, "node (worker 1)")
            worker.string(.string, 0, "Immediate")
            // init, before, then after+destroy in one record (kind 14).
            worker.slots += [1, 4_294_967_298, 4_294_967_297, 0, 2, 1.5, 4_294_967_298, 14, 1.75, 4_294_967_298]
            var bytes = b.batch(pid: 100, tid: 100, sequence: 0) + worker.batch(pid: 100, tid: 101, sequence: 0, dropped: 3)
            // Fed in odd pieces: a read of the FIFO may end inside a batch.
            var offset = 0
            for piece in [5, 100, 3, 1000, 10_000] where offset < bytes.count {
                let end = min(bytes.count, offset + piece)
                _ = bytes[offset..<end].withUnsafeBytes { w.consume($0, nowNs: 0) }
                offset = end
            }
            bytes.removeAll()
            w.flush(final: true)
            #expect(w.statistics.threads == 2 && w.statistics.processes == 1)
            #expect(w.statistics.droppedByNode == 3 && w.statistics.malformedRecords == 0 && w.statistics.malformedBytes == 0)

            let reader = try TraceReader(path: path)
            #expect(reader.streams.filter { !$0.isKernel }.count == 2)
            #expect(Set(reader.streams.compactMap(\.threadName)) == ["node", "node (worker 1)"])
            #expect(reader.droppedUser == 3)
            var seen: [(EventKind, UInt64, UInt64, String)] = []
            reader.events().forEach { _, e in seen.append((e.kind, e.u(0), e.timestampNs, e.text)) }
            let before = try #require(seen.first { $0.0 == .before && $0.1 == 7 })
            let after = try #require(seen.first { $0.0 == .after && $0.1 == 7 })
            #expect(before.2 == 5_003_500_000 && after.2 == 5_004_250_000, "performance.now() ms + the thread's offset")
            #expect(seen.contains { $0.0 == .initResource && $0.1 == 7 && $0.3 == "Timeout" })
            #expect(seen.contains { $0.0 == .resourceFD && $0.1 == 7 })
            #expect(
                seen.contains {
                    $0.0 == .resourceAttribute && $0.1 == 7 && $0.3 == "created_at=leak (/srv/app.js:4:3)\nObject.<anonymous> (/srv/app.js:9:1)"
                }, "a site is the resource's created_at attribute")
            #expect(seen.contains { $0.0 == .initResource && $0.1 == 4_294_967_298 && $0.3 == "Immediate" })
            let workerEnd = seen.filter { ($0.0 == .after || $0.0 == .destroy) && $0.1 == 4_294_967_298 }.map { ($0.0, $0.2) }
            #expect(
                workerEnd.map(\.0) == [.after, .destroy] && workerEnd.allSatisfy { $0.1 == 6_001_750_000 },
                "an after+destroy record is an after and a destroy at its time: \(workerEnd)")
        }
    }

    /// The packed records (what the preload sends for every callback) are the plain ones one slot shorter:
    /// the same events, times and ids; a packed slot that is no record (unknown code, -0, a fraction, past
    /// 2^53) is counted as malformed and ends its batch, never trusted.
    @Test func packedRecordsAreThePlainOnesAndHostileOnesAreCounted() throws {
        func packed(_ id: Double, _ code: UInt64) -> Double { -(id * 8 + Double(code)) }
        func decode(_ records: [Double]) throws -> (events: [String], malformed: UInt64) {
            var out: [String] = []
            var malformed: UInt64 = 0
            try withTraceFile { fd, path in
                var w = NodeTraceWriter(fd: fd)
                var b = BatchBuilder()
                b.slots += [Double(NodeBatchProtocol.Kind.clock.rawValue), 5_000_000_000, 2.0]
                b.string(.string, 0, "TickObject")
                b.slots += records
                _ = b.batch(pid: 100, tid: 100, sequence: 0, mark: 2).withUnsafeBytes { w.consume($0, nowNs: 0) }
                w.flush(final: true)
                malformed = w.statistics.malformedRecords
                try TraceReader(path: path).events().forEach { _, e in
                    out.append("\(e.kind) \(e.u(0)) \(e.timestampNs)" + (e.kind == .initResource ? " \(e.text) \(e.u(2))" : ""))
                }
            }
            return (out, malformed)
        }
        // init 4_294_967_303 (a worker's id) <- 7, before at 3.5 ms, after+destroy at 4 ms; init 9 <- 7, before,
        // after, then destroy.
        let plain: [Double] = [
            1, 4_294_967_303, 7, 0, 2, 3.5, 4_294_967_303, 14, 4.0, 4_294_967_303,
            1, 9, 7, 0, 2, 4.5, 9, 3, 4.75, 9, 4, 9,
        ]
        let worker: Double = 4_294_967_303
        var compact: [Double] = [packed(worker, NodeBatchProtocol.packedInit), 7, 0]
        compact += [packed(worker, NodeBatchProtocol.packedBefore), 3.5]
        compact += [packed(worker, NodeBatchProtocol.packedAfterDestroy), 4.0]
        compact += [packed(9, NodeBatchProtocol.packedInit), 7, 0]
        compact += [packed(9, NodeBatchProtocol.packedBefore), 4.5]
        compact += [packed(9, NodeBatchProtocol.packedAfter), 4.75]
        compact += [packed(9, NodeBatchProtocol.packedDestroy)]
        let a = try decode(plain)
        let b = try decode(compact)
        #expect(a.events.count == 8 && a.events == b.events, "plain \(a.events)\npacked \(b.events)")
        #expect(b.malformed == 0)
        let hostiles: [Double] = [-0.0, -(9 * 8 + 6), -(9 * 8 + 0), -72.5, -9.1e15, -Double.infinity, -Double.nan]
        for hostile in hostiles {
            var records: [Double] = [packed(9, NodeBatchProtocol.packedInit), 7, 0, hostile, 1]
            records += [packed(9, NodeBatchProtocol.packedBefore), 5]
            let bad = try decode(records)
            #expect(bad.malformed == 1 && bad.events.count == 1, "\(hostile): \(bad.events)")
        }
        // A packed init cut short by the batch's end.
        let cut = try decode([packed(9, NodeBatchProtocol.packedInit), 7])
        #expect(cut.events.isEmpty && cut.malformed == 1)
    }

    /// The type name's string id is cached per chunk: with tiny chunks (sealed every few events) every
    /// init still carries its type, in every chunk, whichever types came before.
    @Test func everyInitKeepsItsTypeAcrossChunkSeals() throws {
        try withTraceFile { fd, path in
            var w = NodeTraceWriter(fd: fd)
            w.chunkBytes = 48
            // Five batches of 40 resources (a batch is at most 4 KB), the type names defined in the first.
            for batch in 0..<5 {
                var b = BatchBuilder()
                if batch == 0 {
                    b.slots += [8, 0, 1.0]
                    b.string(.string, 0, "TickObject")
                    b.string(.string, 1, "Timeout")
                }
                for id in (batch * 40 + 1)...(batch * 40 + 40) {
                    let ms = 1.0 + Double(id) / 1000
                    b.slots += [1, Double(id), 1, Double(id % 3 == 0 ? 1 : 0), 2, ms, Double(id), 14, ms, Double(id)]
                }
                _ = b.batch(pid: 100, tid: 100, sequence: Double(batch)).withUnsafeBytes { w.consume($0, nowNs: 0) }
            }
            w.flush(final: true)
            #expect(w.statistics.malformedRecords == 0)
            let reader = try TraceReader(path: path)
            var types: [UInt64: String] = [:]
            var destroys = 0
            reader.events().forEach { _, e in
                if e.kind == .initResource { types[e.u(0)] = e.text }
                if e.kind == .destroy { destroys += 1 }
            }
            #expect(types.count == 200 && destroys == 200)
            #expect(
                types.allSatisfy { $0.value == ($0.key % 3 == 0 ? "Timeout" : "TickObject") },
                "\(types.filter { $0.value != ($0.key % 3 == 0 ? "Timeout" : "TickObject") })")
        }
    }

    @Test func hostileBytesAreSkippedAndCountedNeverTrusted() throws {
        try withTraceFile { fd, path in
            var w = NodeTraceWriter(fd: fd)
            var rng = SystemRandomNumberGenerator()
            // Batches with bad values in every field, then random garbage (with and without valid magics).
            let bad: [[Double]] = [
                [1, .nan, 1, 0], [1, 7, 1, 99], [2, 1, 7], [8, .infinity, 1], [7, 0, 1e9], [7, 0, 3, 0x110000, 1, 1],
                [9, 0, 300] + [Double](repeating: 65, count: 300), [42], [-1, 2], [6, 7, -5], [1, 1e300, 1, 0],
            ]
            for (i, slots) in bad.enumerated() {
                var b = BatchBuilder()
                b.slots = slots
                _ = b.batch(pid: 100, tid: 200 + Double(i), sequence: 0).withUnsafeBytes { w.consume($0, nowNs: 0) }
            }
            for _ in 0..<200 {
                var garbage = (0..<Int.random(in: 1...600, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if Bool.random(using: &rng) {
                    withUnsafeBytes(of: NodeBatchProtocol.magic) { garbage.insert(contentsOf: $0, at: 0) }
                }
                _ = garbage.withUnsafeBytes { w.consume($0, nowNs: 0) }
            }
            for header in [
                [NodeBatchProtocol.magic, 0, 1, 0, 0, 8, 0, 0], [NodeBatchProtocol.magic, 1, 1, -1, 0, 8, 0, 0],
                [NodeBatchProtocol.magic, 1, 1, 0, 0, 9999, 0, 0], [NodeBatchProtocol.magic, 1, 1, 0, 0, 7.5, 0, 0],
            ] {
                _ = header.withUnsafeBytes { w.consume($0, nowNs: 0) }
            }
            w.flush(final: true)
            #expect(w.statistics.malformedRecords >= UInt64(bad.count))
            #expect(w.statistics.malformedBytes > 0)
            // Whatever was written reads back as a valid trace.
            let reader = try TraceReader(path: path)
            var n = 0
            reader.events().forEach { _, _ in n += 1 }
            #expect(reader.damage.isEmpty)
        }
    }

    /// A stopped worker's batch taken by its parent may also have been written by the worker (before it was
    /// stopped, or after, when the parent took it while the worker ran): each record is written once.
    /// `packed`: the callback's records as the preload sends them (packed), else plain.
    @Test(arguments: [false, true]) func aBatchSeenTwiceOrItsPrefixFirstIsWrittenOnce(packed: Bool) throws {
        func p(_ id: Double, _ code: UInt64) -> Double { -(id * 8 + Double(code)) }
        try withTraceFile { fd, path in
            var w = NodeTraceWriter(fd: fd)
            var first = BatchBuilder()
            first.slots += [8, 1e9, 1]
            first.string(.thread, 0, "node (worker 1)")
            first.string(.string, 0, "Immediate")
            if packed {
                first.slots += [p(11, NodeBatchProtocol.packedInit), 1, 0, p(11, NodeBatchProtocol.packedBefore), 1.5]
                first.slots += [p(11, NodeBatchProtocol.packedAfter), 1.6]
            } else {
                first.slots += [1, 11, 1, 0, 2, 1.5, 11, 3, 1.6, 11]  // init 11, before 11, after 11
            }
            var second = first
            // The after became an after+destroy in place (the preload does that for a destroy right behind it).
            if packed {
                second.slots[second.slots.count - 2] = p(11, NodeBatchProtocol.packedAfterDestroy)
                second.slots += [p(12, NodeBatchProtocol.packedInit), 1, 0]
            } else {
                second.slots[second.slots.count - 3] = Double(NodeBatchProtocol.Kind.afterDestroy.rawValue)
                second.slots += [1, 12, 1, 0]  // init 12
            }
            func feed(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { w.consume($0, nowNs: 0) } }
            feed(first.batch(pid: 7, tid: 8, sequence: 0, mark: 10 + 1))  // the parent's copy of batch 0 so far
            feed(second.batch(pid: 7, tid: 8, sequence: 0, mark: 10))  // the worker's own batch 0, longer
            feed(second.batch(pid: 7, tid: 8, sequence: 0, mark: 10 + 1))  // taken again after the worker wrote it
            var next = BatchBuilder()
            next.slots += packed ? [p(12, NodeBatchProtocol.packedBefore), 2.0] : [2, 2.0, 12]
            feed(next.batch(pid: 7, tid: 8, sequence: 1, mark: 10))
            feed(first.batch(pid: 7, tid: 8, sequence: 0, mark: 10 + 1))  // an old batch again: skipped whole
            // A later thread with this pid/tid (another nonce) starts its own sequence.
            var later = BatchBuilder()
            later.slots += [8, 1e9, 1]
            later.string(.string, 0, "Timeout")
            later.slots += [1, 13, 1, 0]
            feed(later.batch(pid: 7, tid: 8, sequence: 0, mark: 20))
            w.flush(final: true)
            #expect(w.statistics.takenBatches == 3 && w.statistics.repeatedBatches == 2 && w.statistics.missingBatches == 0)
            #expect(w.statistics.malformedRecords == 0 && w.statistics.malformedBytes == 0)
            var seen: [String] = []
            try TraceReader(path: path).events().forEach { _, e in
                switch e.kind {
                case .initResource: seen.append("init \(e.u(0)) \(e.text)")
                case .before, .after, .destroy: seen.append("\(e.kind) \(e.u(0))")
                default: break
                }
            }
            #expect(seen == ["init 11 Immediate", "before 11", "after 11", "destroy 11", "init 12 Immediate", "before 12", "init 13 Timeout"])
        }
    }

    /// What a parent could not write for a stopped worker (the recorder was behind) is counted as dropped on
    /// the worker's stream, also when that worker sent nothing before: shown like every other drop.
    @Test func aLossReportedByTheParentIsCountedOnTheWorkersStream() throws {
        try withTraceFile { fd, path in
            var w = NodeTraceWriter(fd: fd)
            var worker = BatchBuilder()
            worker.slots += [8, 1e9, 1]
            worker.string(.thread, 0, "node (worker 1)")
            var main = BatchBuilder()
            main.slots += [8, 1e9, 1]
            main.string(.thread, 0, "node")
            let lost = Double(NodeBatchProtocol.Kind.lost.rawValue)
            main.slots += [lost, 8, 25, lost, 9, 4]  // worker tid 8 lost 25 events, tid 9 (never seen) 4
            main.slots += [lost, 0, 1, lost, 8, -1, lost, 8, .nan]  // malformed: skipped, counted
            for bytes in [worker.batch(pid: 7, tid: 8, sequence: 0, dropped: 2, mark: 10), main.batch(pid: 7, tid: 7, sequence: 0, mark: 12)] {
                _ = bytes.withUnsafeBytes { w.consume($0, nowNs: 0) }
            }
            w.flush(final: true)
            #expect(w.statistics.lostAtWorkerStop == 29 && w.statistics.droppedByNode == 2)
            #expect(w.statistics.malformedRecords == 1, "the batch's rest is skipped at its first bad record")
            let reader = try TraceReader(path: path)
            #expect(reader.droppedUser == 31)
            #expect(reader.streams.first { $0.tid == 8 }?.dropped == 27)
            #expect(reader.streams.first { $0.tid == 9 }?.dropped == 4)
            #expect(reader.damage.isEmpty)
        }
    }

    @Test func theStopMessageEndsReadingAfterEverythingBeforeIt() throws {
        try withTraceFile { fd, _ in
            var w = NodeTraceWriter(fd: fd)
            var b = BatchBuilder()
            b.slots += [8, 1e9, 1]
            b.string(.thread, 0, "node")
            var bytes = b.batch(pid: 5, tid: 5, sequence: 0)
            withUnsafeBytes(of: NodeBatchProtocol.stopMagic) { bytes += $0 }
            let more = bytes.withUnsafeBytes { w.consume($0, nowNs: 0) }
            #expect(!more)
            #expect(w.statistics.threads == 1 && w.statistics.events == 1)
        }
    }
}
