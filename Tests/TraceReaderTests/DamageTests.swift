import Testing
import TraceFormat
@testable import TraceReader

/// What a damaged file must yield: the ids of every chunk outside the damage, in order, and an account of the rest.
@Suite struct DamageTests {
    private func read(_ bytes: [UInt8], _ name: String) throws -> (ids: Set<UInt64>, ordered: Bool, damage: [TraceDamage], reader: TraceReader) {
        let path = temporaryTracePath(name)
        writeFile(path, bytes)
        defer { removeFile(path) }
        let r = try TraceReader(path: path)
        var ids = Set<UInt64>()
        var last: [Int: UInt64] = [:]
        var ordered = true
        var lastNs: UInt64 = 0
        let it = r.events()
        while let e = it.next() {
            guard let id = testID(e.event) else { continue }
            if let l = last[e.stream], l >= id { ordered = false }
            if e.timestampNs < lastNs { ordered = false }
            lastNs = e.timestampNs
            last[e.stream] = id
            ids.insert(id)
        }
        // The lending paths read the same events and find the same damage, in the same order.
        var seen: [(Int, UInt64, UInt64)] = []
        let again = r.events()
        while let e = again.next() { seen.append((e.stream, e.timestampNs, testID(e.event) ?? .max)) }
        var lent: [(Int, UInt64, UInt64)] = []
        let viewed = r.events()
        viewed.forEachView { v in
            lent.append((v.stream, v.timestampNs, v.kind == .before ? v.u(0) : v.kind == .syscall ? v.u(4) : .max))
        }
        var borrowed: [(Int, UInt64, UInt64)] = []
        let each = r.events()
        each.forEach { stream, e in borrowed.append((stream, e.timestampNs, testID(e) ?? .max)) }
        #expect(lent.elementsEqual(seen, by: ==) && borrowed.elementsEqual(seen, by: ==))
        #expect(viewed.damage.map(\.message) == it.damage.map(\.message) && each.damage.map(\.message) == it.damage.map(\.message))
        return (ids, ordered, r.damage + it.damage, r)
    }

    private func ids(of chunks: some Sequence<WrittenChunk>) -> Set<UInt64> { Set(chunks.flatMap(\.ids)) }

    @Test func truncationAtEveryChunkBoundary() throws {
        let path = temporaryTracePath("bound")
        let w = writeSmallTrace(path: path)
        defer { removeFile(path) }
        let bytes = w.bytes
        for (i, c) in w.chunks.enumerated() {
            let cut = Array(bytes[0..<c.offset])
            let got = try read(cut, "b\(i)")
            #expect(got.ids == ids(of: w.chunks[0..<i]), "cut before chunk \(i)")
            // Cut at a chunk boundary nothing is damaged, but every stream whose final chunk was cut off is
            // reported unterminated (issue 13: it used to read as "every chunk of the file was read").
            let open = unterminatedStreams(w.chunks[0..<i], finalSequence: 5)
            #expect(got.ordered && got.damage.allSatisfy { $0.kind == .unterminatedStream && $0.eventsLost == nil })
            #expect(Set(got.damage.compactMap(\.stream)) == Set(open.keys), "cut before chunk \(i)")
            for d in got.damage {
                // The loss starts where the stream's last chunk ends (stream s's chunk c ends at 1_009_999 + c*10_000 + s*7).
                let key = try #require(d.stream)
                let s: Int = key.isKernel ? 3 : Int(key.tid) - 200
                let lastChunk: Int = Int(open[key] ?? 0)
                let lastEnd: Int = 1_009_999 + lastChunk * 10_000 + s * 7
                #expect(d.startNs == UInt64(lastEnd))
                #expect(d.message.contains("has no final chunk after chunk \(lastChunk)"))
            }
        }
    }

    @Test func truncationAtRandomOffsets() throws {
        let path = temporaryTracePath("rand")
        let w = writeSmallTrace(path: path)
        defer { removeFile(path) }
        let bytes = w.bytes
        var rng = SystemRandomNumberGenerator()
        for trial in 0..<150 {
            let firstChunk = w.chunks[0].offset
            let n = Int.random(in: (firstChunk + 1)..<bytes.count, using: &rng)
            let got = try read(Array(bytes[0..<n]), "r\(trial)")
            let whole = w.chunks.filter { $0.offset + $0.length <= n }
            #expect(got.ids == ids(of: whole), "cut at \(n)")
            #expect(got.ordered)
            guard let cutChunk = w.chunks.first(where: { $0.offset < n && n < $0.offset + $0.length }) else { continue }
            let damage = got.damage.filter { $0.kind != .unterminatedStream }
            #expect(damage.count == 1, "cut at \(n): \(got.damage)")
            #expect(
                Set(got.damage.filter { $0.kind == .unterminatedStream }.compactMap(\.stream))
                    == Set(unterminatedStreams(whole, finalSequence: 5).keys), "cut at \(n)")
            let d = try #require(damage.first)
            #expect(d.kind == .truncatedTail && d.fileOffset == UInt64(cutChunk.offset) && d.byteCount == UInt64(n - cutChunk.offset))
            if n - cutChunk.offset >= TraceFileFormat.chunkHeaderSize {
                // The header survived: the account names the chunk and its event count.
                #expect(d.sequences == cutChunk.sequence...cutChunk.sequence && d.eventsLost == UInt64(cutChunk.eventCount))
                #expect(d.stream == StreamKey(pid: cutChunk.pid, tid: cutChunk.tid, isKernel: cutChunk.tid == 0))
                #expect(d.message.contains("ends inside chunk \(cutChunk.sequence) of"))
            } else {
                #expect(d.message.contains("incomplete chunk header"))
            }
        }
    }

    @Test func flippedPayloadByteFailsTheChecksumOfThatChunkOnly() throws {
        let path = temporaryTracePath("flip")
        let w = writeSmallTrace(path: path)
        defer { removeFile(path) }
        var bytes = w.bytes
        let victim = w.chunks[6]  // stream 2 (tid 202), sequence 1
        bytes[victim.offset + TraceFileFormat.chunkHeaderSize + 5] ^= 0x40
        let got = try read(bytes, "flip")
        #expect(got.ids == ids(of: w.chunks.enumerated().filter { $0.offset != 6 }.map(\.element)))
        #expect(got.ordered)
        #expect(got.damage.count == 1)
        let d = try #require(got.damage.first)
        #expect(d.kind == .checksumFailed && d.eventsLost == UInt64(victim.eventCount) && d.sequences == victim.sequence...victim.sequence)
        #expect(
            d.message
                == "chunk \(victim.sequence) of thread \(victim.tid) of pid 100 (~\(victim.eventCount) events between +0.000010 s and +0.000020 s) failed its checksum; its events were skipped"
        )
    }

    /// Every single flipped byte after the file header loses exactly the chunk it hits, and nothing traps.
    @Test func everySingleByteFlipLosesOnlyItsChunk() throws {
        let path = temporaryTracePath("flipall")
        let w = writeSmallTrace(path: path, streams: 2, chunksPerStream: 3, perChunk: 8)
        defer { removeFile(path) }
        let bytes = w.bytes
        for pos in w.chunks[0].offset..<bytes.count {
            for mask: UInt8 in [0x01, 0x80] {
                var damaged = bytes
                damaged[pos] ^= mask
                let hit = w.chunks.firstIndex { $0.offset <= pos && pos < $0.offset + $0.length }!
                let got = try read(damaged, "fa")
                #expect(
                    got.ids == ids(of: w.chunks.enumerated().filter { $0.offset != hit }.map(\.element)),
                    "flip at \(pos) (chunk \(hit), byte \(pos - w.chunks[hit].offset))")
                #expect(got.ordered)
                #expect(!got.damage.isEmpty)
            }
        }
    }

    @Test func garbageRegionBetweenChunksIsSkippedExactly() throws {
        let path = temporaryTracePath("garbage")
        let w = writeSmallTrace(path: path)
        defer { removeFile(path) }
        let bytes = w.bytes
        let at = w.chunks[5].offset
        // Random bytes, with a fake chunk magic inside to tempt the resync.
        var junk = (0..<1_000).map { _ in UInt8.random(in: 0...255) }
        junk.replaceSubrange(100..<104, with: [0x41, 0x54, 0x43, 0x4B])
        let damaged = Array(bytes[0..<at]) + junk + Array(bytes[at...])
        let got = try read(damaged, "garbage")
        #expect(got.ids == ids(of: w.chunks))
        #expect(got.damage.count == 1)
        let d = try #require(got.damage.first)
        #expect(d.kind == .garbage && d.fileOffset == UInt64(at) && d.byteCount == 1_000)
    }

    @Test func garbageAtTheEnd() throws {
        let path = temporaryTracePath("garbageend")
        let w = writeSmallTrace(path: path)
        defer { removeFile(path) }
        let got = try read(w.bytes + (0..<300).map { UInt8(truncatingIfNeeded: $0 * 7) }, "ge")
        #expect(got.ids == ids(of: w.chunks))
        #expect(got.damage.count == 1 && got.damage[0].byteCount == 300)
    }

    @Test func missingChunkIsReportedAsAGap() throws {
        let path = temporaryTracePath("gap")
        let w = writeSmallTrace(path: path)
        defer { removeFile(path) }
        let bytes = w.bytes
        let victim = w.chunks[9]  // stream 1, sequence 2
        let cut = Array(bytes[0..<victim.offset]) + Array(bytes[(victim.offset + victim.length)...])
        let got = try read(cut, "gap")
        #expect(got.ids == ids(of: w.chunks.enumerated().filter { $0.offset != 9 }.map(\.element)))
        #expect(got.damage.count == 1)
        let d = try #require(got.damage.first)
        #expect(d.kind == .missingChunks && d.sequences == 2...2)
        #expect(d.stream == StreamKey(pid: 100, tid: victim.tid, isKernel: false))
        #expect(d.message.hasPrefix("chunk 2 of thread \(victim.tid) of pid 100 is missing from the file"))
    }

    @Test func duplicateChunkIsIgnored() throws {
        let path = temporaryTracePath("dup")
        let w = writeSmallTrace(path: path)
        defer { removeFile(path) }
        let bytes = w.bytes
        let c = w.chunks[3]
        let got = try read(bytes + Array(bytes[c.offset..<(c.offset + c.length)]), "dup")
        #expect(got.ids == ids(of: w.chunks) && got.ordered)
        #expect(got.damage.map(\.kind) == [.duplicateChunk])
        #expect(got.reader.eventCount == UInt64(w.chunks.reduce(0) { $0 + $1.eventCount }))
    }

    @Test func validChecksumButUnknownKindKeepsTheEventsBeforeIt() throws {
        let path = temporaryTracePath("unknown")
        defer { removeFile(path) }
        let w = TraceFileWriter(path: path, header: FileHeader(pid: 1, monotonicStartNs: 0, realtimeStartNs: 0, program: "u"))
        var b = ChunkBuilder(pid: 1, tid: 2, startNs: 0, startTicks: 0)
        b.beginEvent(.before, ticks: 1); b.putAsyncID(1)
        b.beginEvent(.before, ticks: 2); b.putAsyncID(2)
        b.beginEvent(EventKind(rawValue: 0xEE), ticks: 3)  // a kind from the future
        b.beginEvent(.before, ticks: 4); b.putAsyncID(3)
        w.append(chunk: b.seal(sequence: 0, endNs: 10, endTicks: 10, droppedCumulative: 0, flags: .final), pid: 1, tid: 2, sequence: 0, eventCount: 4)
        w.close()
        let got = try read(w.bytes, "unk")
        #expect(got.ids == [1, 2])
        #expect(got.damage.count == 1 && got.damage[0].kind == .undecodable && got.damage[0].eventsLost == 2)
        #expect(got.damage[0].message.contains("unknown kind 0xee"))
    }
}

/// `asynctrace record`'s note of events it could not write (disk full) belongs to no stream, and notes add up.
@Suite struct UnwrittenNoteTests {
    @Test func aNoteIsReadAsWhatTheFileLacksNotAsAStream() throws {
        let path = temporaryTracePath("unwritten")
        let w = writeSmallTrace(path: path)
        defer { removeFile(path) }
        var bytes = w.bytes
        let streams = try TraceReader(path: path).streams.count
        bytes += UnwrittenNote(userEvents: 7, kernelEvents: 11, errno: 28).encodeChunk(pid: 100, atNs: 2_000_000)
        writeFile(path, bytes)
        let r = try TraceReader(path: path)
        #expect(r.unwritten == UnwrittenNote(userEvents: 7, kernelEvents: 11, errno: 28))
        #expect(r.streams.count == streams && r.damage.isEmpty && r.droppedUser == 0 && r.droppedKernel == 0)
        // A crafted file's notes saturate rather than trap; the first error stays.
        bytes += UnwrittenNote(userEvents: .max, kernelEvents: 1, errno: 5).encodeChunk(pid: 100, atNs: 2_000_001)
        writeFile(path, bytes)
        let again = try TraceReader(path: path)
        #expect(again.unwritten == UnwrittenNote(userEvents: .max, kernelEvents: 12, errno: 28))
    }

    @Test func aFileWithoutANoteHasNothingUnwritten() throws {
        let path = temporaryTracePath("written")
        _ = writeSmallTrace(path: path)
        defer { removeFile(path) }
        #expect(try TraceReader(path: path).unwritten == nil)
    }
}
