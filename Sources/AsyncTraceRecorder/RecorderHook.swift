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
        Self.recordInit(asyncID.rawValue, type.id, triggerAsyncID.rawValue)
    }

    static func recordInit(_ asyncID: UInt64, _ type: UInt32, _ triggerAsyncID: UInt64) {
        guard let s = Recorder.currentStream() else { return }
        let ref = s.stringRef(type)
        var p = s.headAtLastStamp(.initResource)
        p = s.putAsyncID(asyncID, p)
        p = putVarint(UInt64(ref), at: p)
        p = putVarint(zigzag(Int64(bitPattern: triggerAsyncID &- asyncID)), at: p)
        s.commit(p)
    }

    /// The hot events as plain functions: AsyncHooks calls these directly while the recorder is the only hook.
    var fastPath: AsyncHookFastPath? {
        AsyncHookFastPath(
            initResource: { id, type, trigger in RecorderHook.recordInit(id, type, trigger) },
            before: { RecorderHook.idEvent(.before, $0) },
            after: { RecorderHook.idEvent(.after, $0) },
            destroy: { RecorderHook.idInstant(.destroy, $0) },
            promiseResolve: { RecorderHook.idInstant(.promiseResolve, $0) },
            loopIteration: { RecorderHook.loopStart(.loopIteration, $0) },
            phaseEnter: { RecorderHook.loopStart(.phaseEnter, UInt64($0)) },
            phaseLeave: { RecorderHook.recordPhaseLeave($0) })
    }

    @inline(__always)
    static func idEvent(_ kind: EventKind, _ id: UInt64) {
        guard let s = Recorder.currentStream() else { return }
        let p = s.head(kind)
        s.commit(s.putAsyncID(id, p))
    }

    @inline(__always)
    static func idInstant(_ kind: EventKind, _ id: UInt64) {
        guard let s = Recorder.currentStream() else { return }
        let p = s.headAtLastStamp(kind)
        s.commit(s.putAsyncID(id, p))
    }

    func before(_ asyncID: AsyncID) { Self.idEvent(.before, asyncID.rawValue) }
    func after(_ asyncID: AsyncID) { Self.idEvent(.after, asyncID.rawValue) }
    func destroy(_ asyncID: AsyncID) { Self.idInstant(.destroy, asyncID.rawValue) }
    func promiseResolve(_ asyncID: AsyncID) { Self.idInstant(.promiseResolve, asyncID.rawValue) }

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
    func loopIteration(_ iteration: UInt64) { Self.loopStart(.loopIteration, iteration) }
    func phaseEnter(_ phase: LoopPhase) { Self.loopStart(.phaseEnter, UInt64(phase.rawValue)) }
    func phaseLeave(_ phase: LoopPhase) { Self.recordPhaseLeave(phase.rawValue) }

    static func recordPhaseLeave(_ phase: UInt8) {
        guard let s = Recorder.currentStream() else { return }
        let p = s.headAtLastStamp(.phaseLeave)
        s.commit(putVarint(UInt64(phase), at: p))
    }

    /// An iteration or a phase begins: what follows at once (the first phase, the phase's first
    /// callback, pollStart) is stamped with this event's time.
    @inline(__always)
    static func loopStart(_ kind: EventKind, _ v: UInt64) {
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
