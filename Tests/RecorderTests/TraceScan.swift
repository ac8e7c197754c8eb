// A strict, whole-file scan of a trace for the recorder's tests: every chunk must check out.
// (The tolerant, streaming reader is TraceReader; this one is deliberately independent of it.)
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

struct ScannedChunk {
    var header: ChunkHeader
    var events: [DecodedEvent]
}

struct ScanError: Error, CustomStringConvertible { let description: String }

func readFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw ScanError(description: "cannot open \(path)") }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    return out
}

func scanTrace(_ path: String) throws -> (FileHeader, [ScannedChunk]) {
    var chunks: [ScannedChunk] = []
    let header = try visitTrace(path) { h, events in chunks.append(ScannedChunk(header: h, events: events)) }
    return (header, chunks)
}

/// Calls `visit` with each chunk's header and events, in file order, keeping none of them.
func visitTrace(_ path: String, _ visit: (ChunkHeader, [DecodedEvent]) throws -> Void) throws -> FileHeader {
    let bytes = try readFile(path)
    return try bytes.withUnsafeBytes { raw in
        guard case .success(let (header, hlen)) = FileHeader.decode(raw) else {
            throw ScanError(description: "bad file header")
        }
        var off = hlen
        while off < raw.count {
            guard raw.count - off >= TraceFileFormat.chunkHeaderSize,
                let h = ChunkHeader.load(from: raw.baseAddress! + off)
            else {
                throw ScanError(description: "bad chunk header at \(off)")
            }
            let pstart = off + TraceFileFormat.chunkHeaderSize
            let pend = pstart + Int(h.payloadLength)
            guard pend <= raw.count else { throw ScanError(description: "truncated chunk at \(off)") }
            let payload = UnsafeRawBufferPointer(rebasing: raw[pstart..<pend])
            guard ChunkHeader.computeCRC(header: raw.baseAddress! + off, payload: payload) == h.crc else {
                throw ScanError(description: "CRC mismatch at \(off)")
            }
            var d = ChunkDecoder(header: h, payload: payload)
            var events: [DecodedEvent] = []
            events.reserveCapacity(Int(h.eventCount))
            while let r = d.next() {
                switch r {
                case .success(let e): events.append(e)
                case .failure(let e): throw ScanError(description: "decode error \(e) in chunk at \(off)")
                }
            }
            guard events.count == Int(h.eventCount) else {
                throw ScanError(description: "chunk at \(off) has \(events.count) events, header says \(h.eventCount)")
            }
            try visit(h, events)
            off = pend
        }
        return header
    }
}

func tempPath(_ name: String) -> String {
    "/tmp/asynctrace-test-\(getpid())-\(name).atrace"
}
