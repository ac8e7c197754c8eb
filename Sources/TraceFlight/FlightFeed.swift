// A live feed of a flight recorder (`asynctrace top --pid` attached to `record --flight-recorder`):
// the window written as a dump writes it (openings, then the kept chunks, nothing marked final), then
// every chunk the ring takes, renumbered so each stream's sequence goes on from the window's. The
// viewer reads it as a trace file that keeps growing. Sending never blocks the recorder: what the
// viewer has not read yet is queued up to a bound, past which the feed is ended (and says so).
import AsyncHooks
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// Where a stream's numbering starts in a feed (or a dump): chunks are renumbered from
/// `firstSequence` (nil: the first chunk that comes), after an opening chunk when `prefixed`.
public struct FlightFeedStart: Sendable, Equatable {
    public var firstSequence: UInt64?
    public var droppedBase: UInt64?
    public var prefixed: Bool
}

public final class FlightFeed: @unchecked Sendable {
    public enum Status: Equatable, Sendable { case open, closedByViewer, fellBehind(queuedBytes: Int) }

    /// The viewer's socket (non-blocking).
    public let fd: Int32
    public let summary: FlightDumpSummary
    private let ring: FlightRing
    private let token: Int
    struct State {
        var starts: [FlightStreamKey: FlightFeedStart]
        var queue: [UInt8] = []
        var sent = 0
        var limit = 0
        var overflowed = false
        var ready = false
        var early: [FlightChunk] = []
    }
    private let state: LockedValue<State>
    /// What may wait for the viewer beyond the window sent first.
    public static let maxQueuedBytes = 64 << 20

    /// Starts a feed on `fd` (a connected stream socket; made non-blocking): the window of `ring` now
    /// as a trace (file header, openings, chunks), then what the ring takes from this moment on.
    /// `kernelState` as for a dump (called here, on the caller's thread).
    public init(
        fd: Int32, ring: FlightRing, rootPid: UInt32, program: String, nowNs: UInt64, realtimeNowNs: UInt64,
        kernelState: ((UInt64) -> [UInt8]?)?
    ) throws(FlightDumpError) {
        self.fd = fd
        self.ring = ring
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let state = LockedValue(State(starts: [:]))
        self.state = state
        // Chunks that arrive while the window is being written wait in `early`, renumbered once the
        // starts are known; after that they go to the queue as they come.
        let (snapshot, token) = ring.snapshotAndObserve(nowNs: nowNs) { c in
            state.withLock { s in
                if s.ready { Self.enqueue(c, into: &s) } else { s.early.append(c) }
            }
        }
        self.token = token
        var out = DumpOutput(fd: -1)
        let written: (summary: FlightDumpSummary, starts: [FlightStreamKey: FlightFeedStart])
        do {
            written = try FlightDump.write(
                snapshot, keepNs: ring.limits.keepNs, to: &out, rootPid: rootPid, program: program,
                nowNs: nowNs, realtimeNowNs: realtimeNowNs, kernelState: kernelState, live: true)
        } catch {
            ring.stopObserving(token)
            throw error
        }
        var summary = written.summary
        summary.bytes = UInt64(out.buffer.count)
        self.summary = summary
        let window = out.buffer
        state.withLock { s in
            s.starts = written.starts
            s.queue = window
            s.limit = window.count + Self.maxQueuedBytes
            for c in s.early { Self.enqueue(c, into: &s) }
            s.early = []
            s.ready = true
        }
    }

    deinit { ring.stopObserving(token) }

    static func enqueue(_ c: FlightChunk, into s: inout State) {
        guard !s.overflowed else { return }
        guard s.queue.count - s.sent + c.byteCount <= s.limit else {
            s.overflowed = true
            return
        }
        var start = s.starts[c.key] ?? FlightFeedStart(firstSequence: nil, droppedBase: nil, prefixed: false)
        if start.firstSequence == nil {
            start.firstSequence = c.header.sequence
            start.droppedBase = c.header.droppedCumulative
            s.starts[c.key] = start
        }
        var h = c.header
        guard h.sequence >= start.firstSequence! else { return }  // already in the window sent
        h.sequence = h.sequence - start.firstSequence! + (start.prefixed ? 1 : 0)
        let base = start.droppedBase ?? 0
        h.droppedCumulative = h.droppedCumulative >= base ? h.droppedCumulative - base : 0
        if s.sent > 0 && s.sent >= s.queue.count / 2 {
            s.queue.removeFirst(s.sent)
            s.sent = 0
        }
        DumpOutput.append(chunk: c, header: h, to: &s.queue)
    }

    /// Whether bytes wait to be sent.
    public var hasQueued: Bool { state.withLock { $0.sent < $0.queue.count } }

    /// Sends what the viewer can take now (from the recorder's loop); the feed's status after.
    public func flush() -> Status {
        state.withLock { s in
            if s.overflowed { return .fellBehind(queuedBytes: s.queue.count - s.sent) }
            while s.sent < s.queue.count {
                let n = s.queue.withUnsafeBytes { b in
                    send(fd, b.baseAddress! + s.sent, min(b.count - s.sent, 4 << 20), Int32(MSG_NOSIGNAL))
                }
                if n > 0 {
                    s.sent += n
                    continue
                }
                if n < 0 && errno == EINTR { continue }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return .open }
                return .closedByViewer
            }
            s.queue.removeAll(keepingCapacity: s.queue.capacity <= 8 << 20)
            s.sent = 0
            // Nothing to send: a closed viewer shows as readable at end of file.
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 0) == 1 {
                var byte: UInt8 = 0
                let r = recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
                if r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR) { return .closedByViewer }
            }
            return .open
        }
    }
}
