// The hook that turns async events into bytes: one method per event kind, each a handful of
// stores into the calling thread's chunk (layouts per TraceFormat's spec table).
//
// Clock reads are most of an event's cost, so only events that bound a duration read the clock
// (before, after, pollStart, pollEnd, marks, spans, phaseStart) and resourceFD (which the reader
// orders against the kernel's events on that fd). Instants inside or right after a callback (init,
// destroy, promiseResolve, phaseLeave) take the thread's last timestamp, and the event right after
// a phaseStart shares its read.
@_spi(Recorder) import AsyncHooks
import TraceFormat

final class RecorderHook: AsyncHookFastPathProvider, @unchecked Sendable {
    func initResource(_ asyncID: AsyncID, type: ResourceType, triggerAsyncID: AsyncID, resource: AnyObject?) {
        Self.recordInit(asyncID.rawValue, type.id, triggerAsyncID.rawValue)
    }

    static func recordInit(_ asyncID: UInt64, _ type: UInt32, _ triggerAsyncID: UInt64) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        s.commit(putInit(s, asyncID, type, triggerAsyncID))
        CreationStacks.afterInit(s, asyncID, type)
    }

    /// init(id) then promiseResolve(id) (a promise settled as it is created): one buffer lookup;
    /// the promiseResolve is three bytes (kind, tick delta 0, id delta 0).
    static func recordInitResolved(_ asyncID: UInt64, _ type: UInt32, _ triggerAsyncID: UInt64) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        // init ≤ 27 bytes + 3: within the room `stringRef` guarantees.
        s.commit(putSameInstantSameID(.promiseResolve, putInit(s, asyncID, type, triggerAsyncID)), events: 2)
        CreationStacks.afterInit(s, asyncID, type)
    }

    /// An init event at the stream's last stamp; returns where the next event goes (not committed).
    @inline(__always)
    static func putInit(_ s: Stream, _ asyncID: UInt64, _ type: UInt32, _ trigger: UInt64) -> UnsafeMutablePointer<UInt8> {
        let ref = s.stringRef(type)
        var p = s.headAtLastStampAfterStringRef(.initResource)
        p = s.putAsyncID(asyncID, p)
        p = putVarint(UInt64(ref), at: p)
        return putVarint(zigzag(Int64(bitPattern: trigger &- asyncID)), at: p)
    }

    /// The hot events as plain functions: AsyncHooks calls these directly while the recorder is the only hook.
    var fastPath: AsyncHookFastPath? {
        AsyncHookFastPath(
            initResource: { id, type, trigger in RecorderHook.recordInit(id, type, trigger) },
            before: { RecorderHook.recordBefore($0) },
            after: { RecorderHook.recordAfter($0) },
            destroy: { RecorderHook.idInstant(.destroy, $0) },
            promiseResolve: { RecorderHook.idInstant(.promiseResolve, $0) },
            loopIteration: { RecorderHook.recordIteration($0) },
            phaseEnter: { RecorderHook.recordPhaseEnter($0) },
            phaseLeave: { RecorderHook.recordPhaseLeave($0) },
            afterAndDestroy: { RecorderHook.recordAfterAndDestroy($0) },
            beforeFollowing: { RecorderHook.recordBefore($0, following: true) },
            afterDestroyBefore: { RecorderHook.recordAfterDestroyBefore($0, $1) },
            initAfterDestroyBefore: { RecorderHook.recordInitAfterDestroyBefore($0, $1, $2, $3) },
            phaseEnterFollowing: { RecorderHook.recordPhaseEnter($0, following: true) },
            initResolved: { id, type, trigger in RecorderHook.recordInitResolved(id, type, trigger) },
            iterationAndPhaseEnter: { _, phase, following in
                RecorderHook.recordPhaseEnter(phase, following: following != 0, startsIteration: true)
            },
            leaveIterationAndPhaseEnter: { _, _, phase, following in
                // The phase start ends the phase being left: its phaseLeave is not written (see below).
                RecorderHook.recordPhaseEnter(phase, following: following != 0, startsIteration: true)
            })
    }

    /// init(entering) inside the callback being left, then after(leaving), destroy(leaving),
    /// before(entering): one buffer lookup, one clock read.
    static func recordInitAfterDestroyBefore(_ entering: UInt64, _ type: UInt32, _ trigger: UInt64, _ leaving: UInt64) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        // All four fit the room one event is guaranteed (which keeps the string definition and its
        // use in one chunk): init ≤ 27 bytes, after ≤ 21, destroy 3, before ≤ 12.
        var p = putInit(s, entering, type, trigger)
        p.pointee = EventKind.after.rawValue
        p = s.putAsyncID(leaving, s.putFreshDelta(at: p + 1))
        p = putSameInstantSameID(.destroy, p)
        p.pointee = EventKind.before.rawValue
        (p + 1).pointee = 0
        p = s.putAsyncID(entering, p + 2)
        s.commit(p, events: 4)
        s.callbackSwitched()
        CreationStacks.afterInit(s, entering, type)
    }

    /// after(id) then destroy(id): one buffer lookup, one clock read; the destroy is three bytes
    /// (kind, tick delta 0, id delta 0).
    static func recordAfterAndDestroy(_ id: UInt64) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        var p = s.putAsyncID(id, s.head(.after))  // fixedEventReserve covers both events
        p = putSameInstantSameID(.destroy, p)
        s.commit(p, events: 2)
        s.callbackEnded()
    }

    /// after(leaving), destroy(leaving), before(entering) with nothing between them: one clock read,
    /// and the before carries the after's time (it is the same instant).
    static func recordAfterDestroyBefore(_ leaving: UInt64, _ entering: UInt64) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        var p = s.putAsyncID(leaving, s.head(.after))  // fixedEventReserve covers all three (≤ 36 bytes)
        p = putSameInstantSameID(.destroy, p)
        p.pointee = EventKind.before.rawValue
        (p + 1).pointee = 0
        p = s.putAsyncID(entering, p + 2)
        s.commit(p, events: 3)
        s.callbackSwitched()
    }

    /// An event of the previous event's resource at the previous event's time: kind, delta 0, id delta 0.
    @inline(__always)
    static func putSameInstantSameID(_ kind: EventKind, _ p: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        p.pointee = kind.rawValue
        (p + 1).pointee = 0
        (p + 2).pointee = 0
        return p + 3
    }

    @inline(__always)
    static func idEvent(_ kind: EventKind, _ id: UInt64) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        let p = s.head(kind)
        s.commit(s.putAsyncID(id, p))
    }

    @inline(__always)
    static func idInstant(_ kind: EventKind, _ id: UInt64) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        let p = s.headAtLastStamp(kind)
        s.commit(s.putAsyncID(id, p))
    }

    @inline(__always)
    static func recordBefore(_ id: UInt64, following: Bool = false) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        let p = following ? s.headAtLastStamp(.before) : s.head(.before)
        s.commit(s.putAsyncID(id, p))
        s.callbackBegan()
    }

    @inline(__always)
    static func recordAfter(_ id: UInt64) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        let p = s.head(.after)
        s.commit(s.putAsyncID(id, p))
        s.callbackEnded()
    }

    func before(_ asyncID: AsyncID) { Self.recordBefore(asyncID.rawValue) }
    func after(_ asyncID: AsyncID) { Self.recordAfter(asyncID.rawValue) }
    func destroy(_ asyncID: AsyncID) { Self.idInstant(.destroy, asyncID.rawValue) }
    func promiseResolve(_ asyncID: AsyncID) { Self.idInstant(.promiseResolve, asyncID.rawValue) }

    /// Reads the clock: the reader gives the fd's current life (opened by the kernel's accept, say) to
    /// the resource, so the event must not be stamped before that life began. With the thread's last
    /// timestamp it was, where a resource gets its fd outside any callback (a NIO channel set up by
    /// the accepting loop): the owner went to the number's previous life, another connection's.
    func resourceFD(_ asyncID: AsyncID, fd: Int32) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        var p = s.head(.resourceFD)
        p = s.putAsyncID(asyncID.rawValue, p)
        s.commit(putVarint(zigzag(Int64(fd)), at: p))
    }

    func mark(_ name: String, executionAsyncID: AsyncID) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        let ref = s.stringRef(RecorderStrings.intern(name))
        var p = s.head(.mark)
        p = putVarint(UInt64(ref), at: p)
        s.commit(s.putAsyncID(executionAsyncID.rawValue, p))
    }

    func spanBegin(_ spanID: UInt64, name: String, executionAsyncID: AsyncID) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        let ref = s.stringRef(RecorderStrings.intern(name))
        var p = s.head(.spanBegin)
        p = putVarint(spanID, at: p)
        p = putVarint(UInt64(ref), at: p)
        s.commit(s.putAsyncID(executionAsyncID.rawValue, p))
    }

    func resourceAttribute(_ asyncID: AsyncID, attribute: ResourceAttribute) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        let ref = s.stringRef(attribute.id)
        var p = s.headAtLastStampAfterStringRef(.resourceAttribute)
        p = s.putAsyncID(asyncID.rawValue, p)
        s.commit(putVarint(UInt64(ref), at: p))
    }

    func spanAttribute(_ spanID: UInt64, key: String, value: String) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        let ref = s.stringRef(RecorderStrings.intern(String((key + "=" + value).prefix(1000))))
        var p = s.headAtLastStampAfterStringRef(.spanAttribute)
        p = putVarint(spanID, at: p)
        s.commit(putVarint(UInt64(ref), at: p))
    }

    func spanEnd(_ spanID: UInt64) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        let p = s.head(.spanEnd)
        s.commit(putVarint(spanID, at: p))
    }
    func loopIteration(_ iteration: UInt64) { Self.recordIteration(iteration) }
    func phaseEnter(_ phase: LoopPhase) { Self.recordPhaseEnter(phase.rawValue) }
    func phaseLeave(_ phase: LoopPhase) { Self.recordPhaseLeave(phase.rawValue) }

    // Loop structure, folded: the hooks' loopIteration + phaseEnter become one `phaseStart(phase,
    // startsIteration: 1)`, a phaseEnter alone `phaseStart(phase, 0)`, and a phaseLeave is written only
    // when something other than a phase start follows it (a phase start ends the open phase).
    // In a busy iteration that is one event where there were three.

    /// Nothing is written: the iteration's first phase start says it began.
    static func recordIteration(_ iteration: UInt64) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        s.pointee.deferredLoop |= deferredIterationBit
    }

    /// The phase's first event (its first callback's before, or pollStart) shares this event's time.
    /// `following`: only loop bookkeeping since the thread's previous event, whose time it takes.
    /// `startsIteration`: a loopIteration came just before, in the same call.
    @inline(__always)
    static func recordPhaseEnter(_ phase: UInt8, following: Bool = false, startsIteration iterationNow: Bool = false) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        let startsIteration: UInt8 = iterationNow || s.pointee.deferredLoop & deferredIterationBit != 0 ? 1 : 0
        s.pointee.deferredLoop = 0  // a pending phaseLeave is implied by this phase start
        var p = following ? s.headAtLastStamp(.phaseStart) : s.head(.phaseStart)
        p.pointee = phase
        (p + 1).pointee = startsIteration
        p += 2
        s.commit(p)
        s.pointee.shareStamp = true
    }

    static func recordPhaseLeave(_ phase: UInt8) {
        // Deferred state only: the thread's stream as it is (the next event that writes does the
        // stream's checks). With no stream of this recording yet, no phase start was written in it,
        // so there is no phase to end; a stream of an ended recording drops the bit with it.
        guard let s = Recorder.existingStream() else { return }
        s.pointee.deferredLoop = (s.pointee.deferredLoop & deferredIterationBit) | ((phase & deferredLeaveMask) &+ 1)
    }

    func pollStart(timeoutMs: Int64) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        let p = s.head(.pollStart)
        s.commit(putVarint(zigzag(timeoutMs), at: p))
    }

    /// Records up to 256 ready fds (the count is always exact).
    func pollEnd(readyFDs: UnsafeBufferPointer<Int32>) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        let listed = min(readyFDs.count, 256)
        var p = s.head(.pollEnd, room: fixedEventReserve + listed * 5)
        p = putVarint(UInt64(readyFDs.count), at: p)
        p = putVarint(UInt64(listed), at: p)
        for i in 0..<listed { p = putVarint(UInt64(UInt32(bitPattern: readyFDs[i])), at: p) }
        s.commit(p)
    }

    func nestingError(expected: AsyncID, actual: AsyncID) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        var p = s.head(.nestingError)
        p = s.putAsyncID(expected.rawValue, p)
        s.commit(putVarint(zigzag(Int64(bitPattern: actual.rawValue &- expected.rawValue)), at: p))
    }

    func uncaughtError(_ asyncID: AsyncID, message: String) {
        guard let s = Recorder.currentStream() else { return }
        defer { s.leaveHook() }
        let ref = s.stringRef(RecorderStrings.intern(String(message.prefix(1000))))
        var p = s.head(.uncaughtError)
        p = s.putAsyncID(asyncID.rawValue, p)
        s.commit(putVarint(UInt64(ref), at: p))
    }
}
