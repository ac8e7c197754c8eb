// The hook that turns async events into bytes: one method per event kind, each a handful of
// stores into the calling thread's chunk (layouts per TraceFormat's spec table).
//
// Clock reads are most of an event's cost, so only events that bound a duration read the clock
// (before, after, pollStart, pollEnd, marks, spans, loopIteration, phaseEnter). Instants inside or
// right after a callback (init, destroy, promiseResolve, resourceFD, phaseLeave) take the thread's
// last timestamp, and the event right after a loopIteration or phaseEnter shares its read.
import AsyncHooks
import TraceFormat

final class RecorderHook: AsyncHook, @unchecked Sendable {
    func initResource(_ asyncID: AsyncID, type: ResourceType, triggerAsyncID: AsyncID, resource: AnyObject?) {
        guard let s = Recorder.currentStream() else { return }
        let ref = s.stringRef(type.id)
        var p = s.headAtLastStamp(.initResource)
        p = s.putAsyncID(asyncID.rawValue, p)
        p = putVarint(UInt64(ref), at: p)
        p = putVarint(zigzag(Int64(bitPattern: triggerAsyncID.rawValue &- asyncID.rawValue)), at: p)
        s.commit(p)
    }

    @inline(__always)
    private func idEvent(_ kind: EventKind, _ id: AsyncID) {
        guard let s = Recorder.currentStream() else { return }
        let p = s.head(kind)
        s.commit(s.putAsyncID(id.rawValue, p))
    }

    @inline(__always)
    private func idInstant(_ kind: EventKind, _ id: AsyncID) {
        guard let s = Recorder.currentStream() else { return }
        let p = s.headAtLastStamp(kind)
        s.commit(s.putAsyncID(id.rawValue, p))
    }

    func before(_ asyncID: AsyncID) { idEvent(.before, asyncID) }
    func after(_ asyncID: AsyncID) { idEvent(.after, asyncID) }
    func destroy(_ asyncID: AsyncID) { idInstant(.destroy, asyncID) }
    func promiseResolve(_ asyncID: AsyncID) { idInstant(.promiseResolve, asyncID) }

    func resourceFD(_ asyncID: AsyncID, fd: Int32) {
        guard let s = Recorder.currentStream() else { return }
        var p = s.headAtLastStamp(.resourceFD)
        p = s.putAsyncID(asyncID.rawValue, p)
        s.commit(putVarint(zigzag(Int64(fd)), at: p))
    }

    func mark(_ name: String, executionAsyncID: AsyncID) {
        guard let s = Recorder.currentStream() else { return }
        let ref = s.stringRef(RecorderStrings.intern(name))
        var p = s.head(.mark)
        p = putVarint(UInt64(ref), at: p)
        s.commit(s.putAsyncID(executionAsyncID.rawValue, p))
    }

    func spanBegin(_ spanID: UInt64, name: String, executionAsyncID: AsyncID) {
        guard let s = Recorder.currentStream() else { return }
        let ref = s.stringRef(RecorderStrings.intern(name))
        var p = s.head(.spanBegin)
        p = putVarint(spanID, at: p)
        p = putVarint(UInt64(ref), at: p)
        s.commit(s.putAsyncID(executionAsyncID.rawValue, p))
    }

    func spanEnd(_ spanID: UInt64) { unsignedEvent(.spanEnd, spanID) }
    func loopIteration(_ iteration: UInt64) { loopStart(.loopIteration, iteration) }
    func phaseEnter(_ phase: LoopPhase) { loopStart(.phaseEnter, UInt64(phase.rawValue)) }

    func phaseLeave(_ phase: LoopPhase) {
        guard let s = Recorder.currentStream() else { return }
        let p = s.headAtLastStamp(.phaseLeave)
        s.commit(putVarint(UInt64(phase.rawValue), at: p))
    }

    /// An iteration or a phase begins: what follows at once (the first phase, the phase's first
    /// callback, pollStart) is stamped with this event's time.
    @inline(__always)
    private func loopStart(_ kind: EventKind, _ v: UInt64) {
        guard let s = Recorder.currentStream() else { return }
        let p = s.head(kind)
        s.commit(putVarint(v, at: p))
        s.pointee.shareStamp = true
    }

    @inline(__always)
    private func unsignedEvent(_ kind: EventKind, _ v: UInt64) {
        guard let s = Recorder.currentStream() else { return }
        let p = s.head(kind)
        s.commit(putVarint(v, at: p))
    }

    func pollStart(timeoutMs: Int64) {
        guard let s = Recorder.currentStream() else { return }
        let p = s.head(.pollStart)
        s.commit(putVarint(zigzag(timeoutMs), at: p))
    }

    /// Records up to 256 ready fds (the count is always exact).
    func pollEnd(readyFDs: UnsafeBufferPointer<Int32>) {
        guard let s = Recorder.currentStream() else { return }
        let listed = min(readyFDs.count, 256)
        var p = s.head(.pollEnd, room: fixedEventReserve + listed * 5)
        p = putVarint(UInt64(readyFDs.count), at: p)
        p = putVarint(UInt64(listed), at: p)
        for i in 0..<listed { p = putVarint(UInt64(UInt32(bitPattern: readyFDs[i])), at: p) }
        s.commit(p)
    }

    func nestingError(expected: AsyncID, actual: AsyncID) {
        guard let s = Recorder.currentStream() else { return }
        var p = s.head(.nestingError)
        p = s.putAsyncID(expected.rawValue, p)
        s.commit(putVarint(zigzag(Int64(bitPattern: actual.rawValue &- expected.rawValue)), at: p))
    }

    func uncaughtError(_ asyncID: AsyncID, message: String) {
        guard let s = Recorder.currentStream() else { return }
        let ref = s.stringRef(RecorderStrings.intern(String(message.prefix(1000))))
        var p = s.head(.uncaughtError)
        p = s.putAsyncID(asyncID.rawValue, p)
        s.commit(putVarint(UInt64(ref), at: p))
    }
}
