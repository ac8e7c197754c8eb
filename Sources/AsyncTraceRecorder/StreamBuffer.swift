// One thread's stream: a chunk buffer that events are encoded into with no lock and no
// allocation. State lives behind an unsafe pointer so the hot path pays no exclusivity checks.
import CRecorderSupport
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// Room kept free at the end of a chunk for one fixed-size event (the largest is ~40 bytes).
let fixedEventReserve = 64
/// `deferredLoop`: a loop iteration began and no phase start has been written for it yet.
let deferredIterationBit: UInt8 = 0x80
/// `deferredLoop`: phase + 1 of a phase whose phaseLeave is not written yet.
let deferredLeaveMask: UInt8 = 0x0F

struct StreamState {
    /// Chunk memory: `ChunkHeader` bytes, then payload. `cursor` is only advanced past whole events,
    /// so a signal handler can seal the chunk at any moment.
    var base: UnsafeMutablePointer<UInt8>
    var cursor: UnsafeMutablePointer<UInt8>
    /// Hook calls of this thread in progress on this stream (see `trace_hook_enter`); only this thread writes
    /// it. Beside `cursor`, which every event writes too: at the struct's end it could share a cache line with
    /// the start of another thread's stream.
    var hooksInProgress: UInt32
    var limit: UnsafeMutablePointer<UInt8>
    var end: UnsafeMutablePointer<UInt8>
    var lastTicks: UInt64
    /// Set by a loop-structure event (loopIteration, phaseEnter): the next event that would read
    /// the clock takes that event's timestamp instead (only loop bookkeeping lies between them).
    var shareStamp: Bool
    /// Loop structure not yet written (see RecorderHook): `iterationPending` bit, plus phase + 1 of a
    /// phaseLeave in the low bits. 0 almost always, so events test one byte.
    var deferredLoop: UInt8
    var prevAsyncID: UInt64
    var startTicks: UInt64
    var startNs: UInt64
    var eventCount: UInt32
    var nextStringID: UInt32
    var sequence: UInt64
    var droppedCumulative: UInt64
    var flushEpoch: UInt64
    var pid: UInt32
    var tid: UInt32
    /// Per-chunk string ids of interned names: `stringChunk[i] == sequence + 1` when name `i`
    /// is defined in the current chunk as `stringID[i]`.
    var stringChunk: UnsafeMutablePointer<UInt64>
    var stringID: UnsafeMutablePointer<UInt32>
    var stringCapacity: Int
    var slot: Int
    /// Callbacks open on this thread, and when the outermost began (ticks): for --dump-on-block.
    var callbackDepth: UInt32 = 0
    var outerCallbackTicks: UInt64 = 0
    /// Creation stacks (CreationStacks.swift): per type whether to record one, the thread's stack
    /// top (0: not read yet, 1: unknown), interned stacks, the next stack id, the promise sampler.
    var stackPolicy: UnsafeMutablePointer<UInt8>? = nil
    var stackPolicyCount = 0
    var stackTop: UInt = 0
    var stackTable: UnsafeMutablePointer<StackTableEntry>? = nil
    var stackScratch: UnsafeMutablePointer<UInt64>? = nil
    var stacksInterned = 0
    var nextStackID: UInt32 = 1
    var promiseCountdown: UInt32 = 0
}

typealias Stream = UnsafeMutablePointer<StreamState>

extension UnsafeMutablePointer where Pointee == StreamState {
    /// Ends a hook call that `Recorder.currentStream()` began on this stream.
    @inline(__always)
    func leaveHook() { trace_hook_leave(&pointee.hooksInProgress) }

    /// Starts a fresh chunk in `memory`.
    @inline(__always)
    func beginChunk(_ memory: UnsafeMutablePointer<UInt8>) {
        var ticks: UInt64 = 0
        var ns: UInt64 = 0
        trace_clock_pair(&ticks, &ns)
        pointee.base = memory
        pointee.cursor = memory + TraceFileFormat.chunkHeaderSize
        pointee.end = memory + TraceFileFormat.chunkHeaderSize + Recorder.shared.chunkPayloadBytes
        pointee.limit = pointee.end - fixedEventReserve
        pointee.startTicks = ticks
        pointee.lastTicks = ticks
        pointee.shareStamp = false  // (deferredLoop survives: it is state of the thread, not of the chunk)
        pointee.startNs = ns
        pointee.prevAsyncID = 0
        pointee.eventCount = 0
        pointee.nextStringID = 0
        if Recorder.shared.sendsMessages { CreationStacks.forgetStacks(self) }
    }

    /// Writes the kind byte and the tick delta of a fresh clock read (or of the loop-structure event
    /// just before, see `shareStamp`); returns where the arguments go.
    /// Only rotates for lack of room: string definitions reserve room for the event that follows
    /// them, so a definition and its first use always share a chunk.
    @inline(__always)
    func head(_ kind: EventKind, room: Int = fixedEventReserve) -> UnsafeMutablePointer<UInt8> {
        if pointee.deferredLoop != 0 { flushDeferredLoop() }
        if pointee.cursor + room > pointee.end {
            rotate(force: room)
        }
        var p = pointee.cursor
        p.pointee = kind.rawValue
        p += 1
        if pointee.shareStamp {
            pointee.shareStamp = false
            p.pointee = 0
            return p + 1
        }
        return putFreshDelta(at: p)
    }

    /// A clock read's tick delta at `p` (an event's second field).
    @inline(__always)
    func putFreshDelta(at p: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        let t = trace_clock_ticks()
        let last = pointee.lastTicks
        let delta = t > last ? t &- last : 0
        pointee.lastTicks = last &+ delta
        return putVarint(delta, at: p)
    }

    /// Writes the kind byte and a zero tick delta: the event is stamped with the stream's last
    /// timestamp, without reading the clock (instants inside or right after a callback: init,
    /// destroy, promiseResolve, resourceFD, phaseLeave). See docs/trace-format.md, "Timestamps".
    @inline(__always)
    func headAtLastStamp(_ kind: EventKind, room: Int = fixedEventReserve) -> UnsafeMutablePointer<UInt8> {
        if pointee.deferredLoop != 0 { flushDeferredLoop() }
        if pointee.cursor + room > pointee.end {
            rotate(force: room)
        }
        pointee.shareStamp = false
        let p = pointee.cursor
        p.pointee = kind.rawValue
        (p + 1).pointee = 0
        return p + 2
    }

    /// `headAtLastStamp` right after `stringRef`, which flushed the deferred loop state and made
    /// sure of `fixedEventReserve` bytes of room: no checks left to do.
    @inline(__always)
    func headAtLastStampAfterStringRef(_ kind: EventKind) -> UnsafeMutablePointer<UInt8> {
        pointee.shareStamp = false
        let p = pointee.cursor
        p.pointee = kind.rawValue
        (p + 1).pointee = 0
        return p + 2
    }

    /// Something other than a phase start follows a phase's end: write the phaseLeave now, stamped
    /// with the phase's last event. An iteration that ran no phase is not recorded.
    @inline(never)
    func flushDeferredLoop() {
        let leave = pointee.deferredLoop & deferredLeaveMask
        pointee.deferredLoop = 0
        guard leave != 0 else { return }
        let p = headAtLastStamp(.phaseLeave)
        commit(putVarint(UInt64(leave - 1), at: p))
    }

    // Blocking callbacks (record --flight-recorder --dump-on-block): the outermost callback's
    // length is checked at its end, against a threshold that is UInt64.max when nobody asked.

    @inline(__always)
    func callbackBegan() {
        if pointee.callbackDepth == 0 { pointee.outerCallbackTicks = pointee.lastTicks }
        pointee.callbackDepth &+= 1
    }

    @inline(__always)
    func callbackEnded() {
        guard pointee.callbackDepth > 0 else { return }
        pointee.callbackDepth &-= 1
        if pointee.callbackDepth == 0 && pointee.lastTicks &- pointee.outerCallbackTicks > Recorder.blockThresholdTicks {
            reportBlock()
        }
    }

    /// after(outer) + before(next) at one instant: the outer callback ended, another began.
    @inline(__always)
    func callbackSwitched() {
        if pointee.callbackDepth == 1 {
            if pointee.lastTicks &- pointee.outerCallbackTicks > Recorder.blockThresholdTicks { reportBlock() }
            pointee.outerCallbackTicks = pointee.lastTicks
        } else if pointee.callbackDepth == 0 {
            callbackBegan()
        }
    }

    /// A callback blocked its thread past the threshold: its chunk goes to the writer now (the
    /// thread may go idle right after, holding it) and the flight recorder hears of it.
    @inline(never)
    func reportBlock() {
        let lengthTicks = pointee.lastTicks &- pointee.outerCallbackTicks
        rotate()
        Recorder.shared.reportBlock(lengthTicks: lengthTicks)
    }

    /// Publishes an encoded event: the cursor moves past it in one store.
    @inline(__always)
    func commit(_ p: UnsafeMutablePointer<UInt8>, events: UInt32 = 1) {
        pointee.cursor = p
        pointee.eventCount &+= events
    }

    @inline(__always)
    func putAsyncID(_ id: UInt64, _ p: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        let d = Int64(bitPattern: id &- pointee.prevAsyncID)
        pointee.prevAsyncID = id
        return putVarint(zigzag(d), at: p)
    }

    /// The chunk-local string id of interned name `index`, defining it first when needed.
    @inline(__always)
    func stringRef(_ index: UInt32) -> UInt32 {
        if pointee.deferredLoop != 0 { flushDeferredLoop() }  // first, so the room check below holds for the event
        let i = Int(index)
        // Also requires room for the event that uses it, so the two can't end up in different chunks.
        if i < pointee.stringCapacity && pointee.stringChunk[i] == pointee.sequence &+ 1
            && pointee.cursor + fixedEventReserve <= pointee.end
        {
            return pointee.stringID[i]
        }
        return defineString(index)
    }

    @inline(never)
    func defineString(_ index: UInt32) -> UInt32 {
        if pointee.deferredLoop != 0 { flushDeferredLoop() }  // before the room check that keeps definition and use together
        let text = Array(RecorderStrings.name(of: index).utf8.prefix(4000))
        let room = 1 + maxVarintBytes * 3 + text.count
        // Make sure the definition and the event that uses it land in the same chunk.
        if pointee.cursor + room + fixedEventReserve > pointee.end { rotate(force: room + fixedEventReserve) }
        let i = Int(index)
        if i < pointee.stringCapacity && pointee.stringChunk[i] == pointee.sequence &+ 1 {
            return pointee.stringID[i]  // defined in this chunk already; the rotation above was not needed
        }
        if i >= pointee.stringCapacity { growStrings(to: i + 1) }
        var p = headAtLastStamp(.stringDef, room: room)  // bookkeeping: no clock read
        let id = pointee.nextStringID
        pointee.nextStringID += 1
        pointee.stringChunk[i] = pointee.sequence &+ 1
        pointee.stringID[i] = id
        p = putVarint(UInt64(id), at: p)
        p = putVarint(UInt64(text.count), at: p)
        for b in text {
            p.pointee = b
            p += 1
        }
        commit(p)
        return id
    }

    func growStrings(to n: Int) {
        let cap = max(n, pointee.stringCapacity * 2, 256)
        let chunk = UnsafeMutablePointer<UInt64>.allocate(capacity: cap)
        let ids = UnsafeMutablePointer<UInt32>.allocate(capacity: cap)
        chunk.initialize(repeating: 0, count: cap)
        ids.initialize(repeating: 0, count: cap)
        if pointee.stringCapacity > 0 {
            chunk.update(from: pointee.stringChunk, count: pointee.stringCapacity)
            ids.update(from: pointee.stringID, count: pointee.stringCapacity)
            pointee.stringChunk.deallocate()
            pointee.stringID.deallocate()
        }
        pointee.stringChunk = chunk
        pointee.stringID = ids
        pointee.stringCapacity = cap
    }

    /// Hands the current chunk to the writer and starts another; drops (and counts) the chunk
    /// when the writer is too far behind. Never blocks.
    @inline(never)
    func rotate(force room: Int = 0, final: Bool = false) {
        let r: Recorder = Recorder.shared
        pointee.flushEpoch = Recorder.flushEpoch.load(ordering: .relaxed)
        if pointee.eventCount > 0 {
            var ticks: UInt64 = 0
            var ns: UInt64 = 0
            trace_clock_pair(&ticks, &ns)
            let pending = PendingChunk(
                memory: pointee.base, length: pointee.cursor - pointee.base,
                header: ChunkHeader(
                    flags: final ? [.final] : [], eventCount: pointee.eventCount,
                    pid: pointee.pid, tid: pointee.tid, sequence: pointee.sequence,
                    startNs: pointee.startNs, endNs: max(ns, pointee.startNs),
                    startTicks: pointee.startTicks, endTicks: max(ticks, pointee.lastTicks),
                    droppedCumulative: pointee.droppedCumulative))
            if let fresh = r.queue.submit(pending) {
                pointee.sequence &+= 1
                beginChunk(fresh)
            } else {
                // Writer behind and no buffer free: drop this chunk's events, count them, reuse it.
                pointee.droppedCumulative &+= UInt64(pointee.eventCount)
                r.droppedEvents.add(UInt64(pointee.eventCount), ordering: .relaxed)
                pointee.sequence &+= 1
                beginChunk(pointee.base)
            }
        }
        precondition(
            pointee.base + TraceFileFormat.chunkHeaderSize + room <= pointee.end,
            "asynctrace: event larger than a chunk")
    }
}
