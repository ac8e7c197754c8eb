// What the reader knows about each stream: one thread of one process, or the kernel stream.

/// Identifies a stream in the file: chunks with the same key belong together.
public struct StreamKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var pid: UInt32
    public var tid: UInt32
    public var isKernel: Bool

    public init(pid: UInt32, tid: UInt32, isKernel: Bool) {
        self.pid = pid
        self.tid = tid
        self.isKernel = isKernel
    }

    public static func < (a: StreamKey, b: StreamKey) -> Bool {
        (a.isKernel ? 1 : 0, a.pid, a.tid) < (b.isKernel ? 1 : 0, b.pid, b.tid)
    }

    /// "thread 1234 of pid 1200" or "the kernel stream of pid 1200".
    public var description: String {
        isKernel ? "the kernel stream of pid \(pid)" : "thread \(tid) of pid \(pid)"
    }
}

public struct TraceStream: Sendable {
    /// Position in `TraceReader.streams`; events carry it.
    public let index: Int
    public let key: StreamKey
    public var pid: UInt32 { key.pid }
    public var tid: UInt32 { key.tid }
    public var isKernel: Bool { key.isKernel }
    /// From the stream's `threadInfo` event, if any.
    public internal(set) var threadName: String?
    /// From the stream's `processInfo` event, if any.
    public internal(set) var program: String?
    public internal(set) var parentPid: UInt32?
    /// Readable chunks (checksum passed), in sequence order.
    public internal(set) var chunkCount: Int = 0
    /// Events in readable chunks, by their headers.
    public internal(set) var eventCount: UInt64 = 0
    /// Events the recorder dropped on this stream (the largest cumulative count of its chunks).
    public internal(set) var dropped: UInt64 = 0
    public internal(set) var firstNs: UInt64 = .max
    public internal(set) var lastNs: UInt64 = 0
    /// Whether the stream's last chunk is marked final (thread exit or recorder stop).
    public internal(set) var endedCleanly = false

    init(index: Int, key: StreamKey) {
        self.index = index
        self.key = key
    }

    /// "main (thread 1234 of pid 1200)".
    public var label: String {
        if let n = threadName, !n.isEmpty { return "\(n) (\(key))" }
        return key.description
    }
}

/// Where one readable chunk is, and what its header says.
struct ChunkEntry: Sendable {
    var offset: UInt64  // of the header
    var header: ChunkHeaderSummary
}

/// The header fields the reader needs later, compactly (the full header is re-read with the payload).
struct ChunkHeaderSummary: Sendable {
    var sequence: UInt64
    var startNs: UInt64
    var endNs: UInt64
    var payloadLength: UInt32
    var eventCount: UInt32
    var droppedCumulative: UInt64
}
