// The floor under any recorder built on these hooks: a hook that receives the recorder's calls
// (the same fast-path members, so the same emission-site work) and does nothing with them but read
// the TSC where the recorder reads it — one clock read per call that bounds a callback. Whatever a
// recorder writes comes on top of this, so its slowdown shows what is left for writing events.
@_spi(Recorder) import AsyncHooks
import CRecorderSupport

/// Where the clock reads go, so the optimizer keeps them.
nonisolated(unsafe) var clockFloorSink: UInt64 = 0
/// false: the calls only, no clock read (the hooks' share of the floor).
nonisolated(unsafe) var clockFloorReadsClock = true

final class ClockFloorHook: AsyncHookFastPathProvider, @unchecked Sendable {
    @inline(__always) static func tick() { clockFloorSink &+= clockFloorReadsClock ? trace_clock_ticks() : 1 }

    var fastPath: AsyncHookFastPath? {
        AsyncHookFastPath(
            initResource: { _, _, _ in },
            before: { _ in ClockFloorHook.tick() },
            after: { _ in ClockFloorHook.tick() },
            destroy: { _ in },
            promiseResolve: { _ in },
            loopIteration: { _ in },
            phaseEnter: { _ in ClockFloorHook.tick() },
            phaseLeave: { _ in },
            afterAndDestroy: { _ in ClockFloorHook.tick() },
            beforeFollowing: { _ in },
            afterDestroyBefore: { _, _ in ClockFloorHook.tick() },
            initAfterDestroyBefore: { _, _, _, _ in ClockFloorHook.tick() },
            phaseEnterFollowing: { _ in },
            initResolved: { _, _, _ in },
            iterationAndPhaseEnter: { _, _, following in if following == 0 { ClockFloorHook.tick() } },
            leaveIterationAndPhaseEnter: { _, _, _, following in if following == 0 { ClockFloorHook.tick() } })
    }

    // Not in the fast path (the recorder reads the clock in these too).
    func pollStart(timeoutMs: Int64) { Self.tick() }
    func pollEnd(readyFDs: UnsafeBufferPointer<Int32>) { Self.tick() }
}
