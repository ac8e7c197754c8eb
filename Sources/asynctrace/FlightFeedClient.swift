// `asynctrace top --pid` attached to a flight recorder: the recorder's live feed (the window as a
// trace, then every chunk as it comes; TraceFlight's FlightFeed) is appended to a file in memory
// that top's follower reads like a recording in progress. What the follower is done with is freed,
// so a long session holds about one window, not everything it was sent.
import CRecorderSupport
#if canImport(Glibc)
import Glibc
#endif

final class FlightFeedClient {
    let socket: Int32
    let file: Int32
    private(set) var ended = false
    private(set) var received: UInt64 = 0
    private var discarded: UInt64 = 0
    private var buffer = [UInt8](repeating: 0, count: 1 << 20)
    static let maxBehindBytes: UInt64 = 1 << 30

    /// The path the follower opens (the memory file, through /proc).
    var path: String { "/proc/self/fd/\(file)" }
    /// For poll(): the socket while the feed goes on.
    var pollFD: Int32 { ended || received - discarded >= Self.maxBehindBytes ? -1 : socket }

    struct Failure: Error { let message: String }

    /// Takes the connected socket (closed when this ends).
    init(socket: Int32) throws(Failure) {
        self.socket = socket
        file = trace_memory_file("asynctrace-top-feed")
        guard file >= 0 else {
            close(socket)
            throw Failure(message: "cannot create a file in memory for the feed: \(String(cString: strerror(errno)))")
        }
        _ = fcntl(socket, F_SETFL, fcntl(socket, F_GETFL) | O_NONBLOCK)
    }

    deinit {
        close(socket)
        close(file)
    }

    /// Appends what arrived to the file; false if nothing did. A recorder that refused us answers
    /// with a line of text instead of a trace: that is thrown.
    @discardableResult
    func drain() throws(Failure) -> Bool {
        var got = false
        // Analysis behind by this much: stop taking more (the recorder queues, then cuts the feed off
        // rather than wait; memory here stays bounded either way).
        while !ended && received - discarded < Self.maxBehindBytes {
            let n = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress!, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
            if n <= 0 {
                ended = true
                break
            }
            if received == 0 && buffer.starts(with: Array("refused:".utf8)) {
                let text = String(decoding: buffer[0..<n].filter { $0 >= 32 && $0 != 127 }, as: UTF8.self)
                throw Failure(message: "the flight recorder " + text)
            }
            var off = 0
            while off < n {
                let w = buffer.withUnsafeBytes { pwrite(file, $0.baseAddress! + off, n - off, off_t(received) + off_t(off)) }
                if w < 0 && errno == EINTR { continue }
                guard w > 0 else { throw Failure(message: "cannot keep the feed in memory: \(String(cString: strerror(errno)))") }
                off += w
            }
            received += UInt64(n)
            got = true
        }
        return got
    }

    /// Frees what the follower will not read again.
    func discard(below offset: UInt64) {
        guard offset > discarded + (4 << 20) || (offset > discarded && received - discarded >= Self.maxBehindBytes) else { return }
        if trace_discard_prefix(file, offset) == 0 { discarded = offset }
    }
}
