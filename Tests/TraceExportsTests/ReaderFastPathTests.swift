// The reader's fast path (whole runs of events decoded into flat buffers, lent by `forEachView`) against
// the plain one (`ChunkDecoder.decodeNext`, one event at a time) on a real recording.
import Foundation
import Testing
import TraceFormat
import TraceReader

@Suite struct ReaderFastPathTests {
    struct Seen: Equatable {
        var kind: UInt8, ns: UInt64, args: [Int64], text: String, list: [UInt64]
    }

    /// Every stream's events, decoded chunk by chunk with `decodeNext` straight from the file's bytes.
    static func referenceStreams(_ path: String) throws -> [StreamKey: [Seen]] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        return try bytes.withUnsafeBytes { raw -> [StreamKey: [Seen]] in
            guard case .success(let (_, headerLength)) = FileHeader.decode(raw) else { throw CocoaError(.fileReadCorruptFile) }
            var chunks: [StreamKey: [(UInt64, ChunkHeader, Int)]] = [:]
            var pos = headerLength
            while pos + TraceFileFormat.chunkHeaderSize <= raw.count, let h = ChunkHeader.load(from: raw.baseAddress! + pos) {
                chunks[StreamKey(pid: h.pid, tid: h.tid, isKernel: h.isKernel), default: []].append((h.sequence, h, pos))
                pos += TraceFileFormat.chunkHeaderSize + Int(h.payloadLength)
            }
            #expect(pos == raw.count)
            var out: [StreamKey: [Seen]] = [:]
            for (key, list) in chunks {
                var seen: [Seen] = []
                var floor: UInt64 = 0
                for (_, h, at) in list.sorted(by: { $0.0 < $1.0 }) {
                    let start = at + TraceFileFormat.chunkHeaderSize
                    var d = ChunkDecoder(header: h, payload: UnsafeRawBufferPointer(rebasing: raw[start..<(start + Int(h.payloadLength))]))
                    var e = DecodedEvent(kind: .stringDef)
                    while case .event = d.decodeNext(into: &e) {
                        if e.kind == .stringDef { continue }
                        floor = max(floor, e.timestampNs)  // the reader keeps each stream's time from going back at chunk seams
                        seen.append(Seen(kind: e.kind.rawValue, ns: floor, args: (0..<9).map { e.arg($0) }, text: e.text, list: e.list))
                    }
                    #expect(d.decoded == h.eventCount)
                }
                out[key] = seen
            }
            return out
        }
    }

    @Test func lentEventsEqualEventByEventDecodingOfARecording() throws {
        let dir = ScratchDirectory("fast-path")
        let trace = dir.file("http.atrace")
        let run = try Examples.record("http", to: trace)
        #expect(run.status == 0, "http exited \(run.status): \(run.stderr.suffix(500))")
        let reader = try TraceReader(path: trace)
        #expect(reader.damage.isEmpty)
        let want = try Self.referenceStreams(trace)
        var got: [StreamKey: [Seen]] = [:]
        var lastNs: UInt64 = 0
        var ordered = true
        let it = reader.events()
        it.forEachView { v in
            if v.timestampNs < lastNs { ordered = false }
            lastNs = v.timestampNs
            let e = v.event
            got[reader.streams[v.stream].key, default: []].append(
                Seen(
                    kind: e.kind.rawValue, ns: e.timestampNs, args: (0..<9).map { e.arg($0) },
                    text: v.textID >= 0 ? it.string(v.textID) : "", list: Array(v.list)))
        }
        #expect(ordered && it.damage.isEmpty)
        #expect(got.keys.count == want.keys.count)
        for (key, events) in want {
            #expect(events.count > 0)
            #expect(got[key] == events, "\(key): \(got[key]?.count ?? 0) of \(events.count) events")
        }
        // Many chunks and every kind of argument were exercised.
        #expect(reader.streams.reduce(0) { $0 + $1.chunkCount } > 3)
        #expect(want.values.joined().contains { !$0.list.isEmpty } && want.values.joined().contains { !$0.text.isEmpty })
    }
}
