// Chunks on their way from the traced threads to the writer, and the pool of chunk buffers.
// Bounded: when every buffer is in flight, `submit` says no and the caller drops and counts.
import TraceFormat
#if canImport(Glibc)
import Glibc
import AsyncHooks
#endif

struct PendingChunk: @unchecked Sendable {
    var memory: UnsafeMutablePointer<UInt8>
    /// Header bytes included.
    var length: Int
    var header: ChunkHeader
}

final class ChunkQueue: @unchecked Sendable {
    struct State: @unchecked Sendable {
        var pending: [PendingChunk] = []
        var free: [UnsafeMutablePointer<UInt8>] = []
        var allocated = 0
    }

    let state = LockedValue(State())
    let bufferBytes: Int
    let maxBuffers: Int
    /// Posted on every submission; the writer waits on it.
    let ready: UnsafeMutablePointer<sem_t>

    init(bufferBytes: Int, maxBuffers: Int) {
        self.bufferBytes = bufferBytes
        self.maxBuffers = maxBuffers
        ready = .allocate(capacity: 1)
        sem_init(ready, 0, 0)
    }

    /// A buffer for a new stream, or nil when all are in use.
    func acquire() -> UnsafeMutablePointer<UInt8>? {
        state.withLock { s in SendableBuffer(takeBuffer(&s)) }.bytes
    }

    private func takeBuffer(_ s: inout State) -> UnsafeMutablePointer<UInt8>? {
        if let f = s.free.popLast() { return f }
        guard s.allocated < maxBuffers else { return nil }
        s.allocated += 1
        return .allocate(capacity: bufferBytes)
    }

    /// Queues `chunk` for writing and returns a fresh buffer; nil (nothing queued) when none is free.
    func submit(_ chunk: PendingChunk) -> UnsafeMutablePointer<UInt8>? {
        let fresh = state.withLock { s in
            guard let b = takeBuffer(&s) else { return SendableBuffer(nil) }
            s.pending.append(chunk)
            return SendableBuffer(b)
        }.bytes
        if fresh != nil { sem_post(ready) }
        return fresh
    }

    /// Queues a chunk whose buffer the caller gives up (thread exit, stop).
    func submitFinal(_ chunk: PendingChunk) {
        state.withLock { $0.pending.append(chunk) }
        sem_post(ready)
    }

    func takeAll() -> [PendingChunk] {
        state.withLock { s in
            var out: [PendingChunk] = []
            swap(&out, &s.pending)
            return out
        }
    }

    /// For a signal handler: hands each queued chunk to `body` under the lock, only if the lock is
    /// free (the interrupted thread may hold it), and allocates and frees nothing (the crash may
    /// have happened inside malloc). False when the lock was taken: the queued chunks were not handed over.
    func drainIfAvailable(_ body: (PendingChunk) -> Void) -> Bool {
        let drained: Bool? = state.withLockIfAvailable { s in
            for c in s.pending { body(c) }
            s.pending.removeAll(keepingCapacity: true)
            return true
        }
        return drained != nil
    }

    func recycle(_ memory: UnsafeMutablePointer<UInt8>) {
        let b = SendableBuffer(memory)
        state.withLock { $0.free.append(b.bytes!) }
    }
}

/// A chunk buffer crossing the queue's lock; only one side uses it at a time.
struct SendableBuffer: @unchecked Sendable {
    let bytes: UnsafeMutablePointer<UInt8>?
    init(_ bytes: UnsafeMutablePointer<UInt8>?) { self.bytes = bytes }
}
