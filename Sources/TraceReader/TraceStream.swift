// What the reader knows about each stream: one thread of one process, or the kernel stream.

/// Identifies a stream in the file: chunks with the same key belong together.
public struct StreamKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The process id.
    public var pid: UInt32
    /// The thread id (0 for a kernel stream).
    public var tid: UInt32
    /// Whether this is a kernel stream (probe events) rather than one of the program's threads.
    public var isKernel: Bool

    /// A key from its parts.
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

/// What the reader learned about one stream while indexing: its chunks, counts, time range and names.
public struct TraceStream: Sendable {
    /// Position in `TraceReader.streams`; events carry it.
    public let index: Int
    /// The stream's pid, tid and kind.
    public let key: StreamKey
    /// The process id (`key.pid`).
    public var pid: UInt32 { key.pid }
    /// The thread id (`key.tid`).
    public var tid: UInt32 { key.tid }
    /// Whether this is a kernel stream (`key.isKernel`).
    public var isKernel: Bool { key.isKernel }
    /// From the stream's `threadInfo` event, if any.
    public internal(set) var threadName: String?
    /// From the stream's `processInfo` event, if any.
    public internal(set) var program: String?
    /// The parent process id from the stream's `processInfo` event, if any.
    public internal(set) var parentPid: UInt32?
    /// Readable chunks (checksum passed), in sequence order.
    public internal(set) var chunkCount: Int = 0
    /// Events in readable chunks, by their headers.
    public internal(set) var eventCount: UInt64 = 0
    /// Events the recorder dropped on this stream (the largest cumulative count of its chunks).
    public internal(set) var dropped: UInt64 = 0
    /// Earliest chunk start (CLOCK_MONOTONIC ns); `UInt64.max` while the stream has no readable chunk.
    public internal(set) var firstNs: UInt64 = .max
    /// Latest chunk end (CLOCK_MONOTONIC ns); 0 while the stream has no readable chunk.
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
