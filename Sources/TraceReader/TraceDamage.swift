/// One region of a trace file that could not be read, and why: every skipped byte range is one entry.
public struct TraceDamage: Sendable, CustomStringConvertible {
    /// What went wrong in a damaged region (the raw value is the name JSON reports use).
    public enum Kind: String, Sendable {
        /// A chunk's checksum did not match; the whole chunk was skipped.
        case checksumFailed = "checksum_failed"
        /// The file ends inside a chunk.
        case truncatedTail = "truncated_tail"
        /// Bytes that are not a chunk (overwritten, or a chunk header too damaged to trust).
        case garbage
        /// A stream's sequence numbers skip chunks that are not in the file.
        case missingChunks = "missing_chunks"
        /// A chunk passed its checksum but an event in it could not be decoded.
        case undecodable
        /// The same chunk appears twice; the copy was ignored.
        case duplicateChunk = "duplicate_chunk"
        /// A chunk passed its checksum but its header contradicts itself (its clock runs backwards); skipped.
        case inconsistentChunk = "inconsistent_chunk"
        /// A stream's last readable chunk is not marked final: its end is missing (events lost: unknown).
        case unterminatedStream = "unterminated_stream"
        /// Chunks of streams beyond the reader's bound on streams (memory); counted, not read.
        case tooManyStreams = "too_many_streams"
    }

    /// What went wrong.
    public var kind: Kind
    /// File range the damage covers (0 bytes for missing chunks and unterminated streams, which sit at the
    /// file's end).
    public var fileOffset: UInt64
    /// Bytes skipped, from `fileOffset`.
    public var byteCount: UInt64
    /// The stream the lost events belong to, when a header tells.
    public var stream: StreamKey?
    /// Sequence numbers of the lost chunks, when known.
    public var sequences: ClosedRange<UInt64>?
    /// Events lost, from the chunk headers (an estimate when the header itself may be damaged); nil if unknown.
    public var eventsLost: UInt64?
    /// Time range of the lost events (CLOCK_MONOTONIC ns), when known.
    public var startNs: UInt64?
    /// End of the lost events' time range (CLOCK_MONOTONIC ns), when known.
    public var endNs: UInt64?
    /// One sentence for people, with times relative to the trace start.
    public var message: String
    /// How many regions (or unterminated streams) this entry stands for: 1, or more for the one entry that
    /// counts what is past the reader's bound on listed damage.
    public var count: UInt64 = 1

    public var description: String { message }
}

// Small formatting helpers shared by the reader's messages (no Foundation on the reading side).
enum Wording {
    /// 4096 -> "4,096".
    static func grouped(_ v: UInt64) -> String {
        let s = String(v)
        var out = ""
        for (i, c) in s.enumerated() {
            if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return out
    }

    /// ns since the trace start -> "+1.234567 s".
    static func relative(_ ns: UInt64, from start: UInt64) -> String {
        let neg = ns < start
        let d = neg ? start - ns : ns - start
        let frac = String(d % 1_000_000_000 / 1_000)
        return (neg ? "-" : "+") + "\(d / 1_000_000_000)." + String(repeating: "0", count: 6 - frac.count) + frac + " s"
    }

    static func sequences(_ r: ClosedRange<UInt64>) -> String {
        r.lowerBound == r.upperBound ? "chunk \(r.lowerBound)" : "chunks \(r.lowerBound)–\(r.upperBound)"
    }
}
