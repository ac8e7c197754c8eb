// Several copies of AsyncHooks in one process (an application's own, through an adapter, and the one in
// the library `asynctrace record` injects) meet in one registry (CAsyncHooksSupport): this file is the
// Swift side of it. A copy offers its own hooks to the others as C functions (`localEvents`), reaches the
// others' hooks through `ForeignHooks`, and shares the thread states and the type-name table of the copy
// that made the first of them.
import CAsyncHooksSupport
import Synchronization

@inline(__always)
func forEachLocalHook(_ body: (any AsyncHook) -> Void) {
    guard let list = localHookList.load(ordering: .acquiring) else { return }
    list._withUnsafeGuaranteedRef { l in
        for i in 0..<l.hooks.count { body(l.hooks[i]) }
    }
}

func utf8String(_ p: UnsafePointer<UInt8>?, _ n: Int) -> String {
    guard let p, n > 0 else { return "" }
    return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
}

/// This copy's own hooks as C functions, for the other copies' `ForeignHooks`. Leaked (made once).
nonisolated(unsafe) let localEvents: UnsafeMutablePointer<asynchooks_events> = {
    let events = asynchooks_events(
        init_resource: { id, type, trigger, resource in
            let object = resource.map { Unmanaged<AnyObject>.fromOpaque($0).takeUnretainedValue() }
            forEachLocalHook { $0.initResource(AsyncID(id), type: ResourceType(id: type), triggerAsyncID: AsyncID(trigger), resource: object) }
        },
        before: { id in forEachLocalHook { $0.before(AsyncID(id)) } },
        after: { id in forEachLocalHook { $0.after(AsyncID(id)) } },
        destroy: { id in forEachLocalHook { $0.destroy(AsyncID(id)) } },
        promise_resolve: { id in forEachLocalHook { $0.promiseResolve(AsyncID(id)) } },
        resource_fd: { id, fd in forEachLocalHook { $0.resourceFD(AsyncID(id), fd: fd) } },
        resource_attribute: { id, attribute in
            forEachLocalHook { $0.resourceAttribute(AsyncID(id), attribute: ResourceAttribute(id: attribute)) }
        },
        mark: { name, length, execution in
            let s = utf8String(name, length)
            forEachLocalHook { $0.mark(s, executionAsyncID: AsyncID(execution)) }
        },
        span_begin: { span, name, length, execution in
            let s = utf8String(name, length)
            forEachLocalHook { $0.spanBegin(span, name: s, executionAsyncID: AsyncID(execution)) }
        },
        span_end: { span in forEachLocalHook { $0.spanEnd(span) } },
        span_attribute: { span, key, keyLength, value, valueLength in
            let k = utf8String(key, keyLength), v = utf8String(value, valueLength)
            forEachLocalHook { $0.spanAttribute(span, key: k, value: v) }
        },
        loop_iteration: { n in forEachLocalHook { $0.loopIteration(n) } },
        phase_enter: { phase in
            guard let p = LoopPhase(rawValue: phase) else { return }
            forEachLocalHook { $0.phaseEnter(p) }
        },
        phase_leave: { phase in
            guard let p = LoopPhase(rawValue: phase) else { return }
            forEachLocalHook { $0.phaseLeave(p) }
        },
        poll_start: { timeout in forEachLocalHook { $0.pollStart(timeoutMs: timeout) } },
        poll_end: { fds, count in
            let buffer = UnsafeBufferPointer(start: fds, count: fds == nil ? 0 : max(0, count))
            forEachLocalHook { $0.pollEnd(readyFDs: buffer) }
        },
        nesting_error: { expected, actual in
            forEachLocalHook { $0.nestingError(expected: AsyncID(expected), actual: AsyncID(actual)) }
        },
        uncaught_error: { id, message, length in
            let s = utf8String(message, length)
            forEachLocalHook { $0.uncaughtError(AsyncID(id), message: s) }
        })
    let p = UnsafeMutablePointer<asynchooks_events>.allocate(capacity: 1)
    p.initialize(to: events)
    return p
}()

/// Another copy's hooks, as one hook of this copy's dispatch list.
final class ForeignHooks: AsyncHook, @unchecked Sendable {
    let events: UnsafePointer<asynchooks_events>
    init(_ events: UnsafePointer<asynchooks_events>) { self.events = events }

    func initResource(_ asyncID: AsyncID, type: ResourceType, triggerAsyncID: AsyncID, resource: AnyObject?) {
        events.pointee.init_resource(
            asyncID.rawValue, type.id, triggerAsyncID.rawValue,
            resource.map { Unmanaged.passUnretained($0).toOpaque() })
    }
    func before(_ asyncID: AsyncID) { events.pointee.before(asyncID.rawValue) }
    func after(_ asyncID: AsyncID) { events.pointee.after(asyncID.rawValue) }
    func destroy(_ asyncID: AsyncID) { events.pointee.destroy(asyncID.rawValue) }
    func promiseResolve(_ asyncID: AsyncID) { events.pointee.promise_resolve(asyncID.rawValue) }
    func resourceFD(_ asyncID: AsyncID, fd: Int32) { events.pointee.resource_fd(asyncID.rawValue, fd) }
    func resourceAttribute(_ asyncID: AsyncID, attribute: ResourceAttribute) {
        events.pointee.resource_attribute(asyncID.rawValue, attribute.id)
    }
    func mark(_ name: String, executionAsyncID: AsyncID) {
        var name = name
        name.withUTF8 { events.pointee.mark($0.baseAddress, $0.count, executionAsyncID.rawValue) }
    }
    func spanBegin(_ spanID: UInt64, name: String, executionAsyncID: AsyncID) {
        var name = name
        name.withUTF8 { events.pointee.span_begin(spanID, $0.baseAddress, $0.count, executionAsyncID.rawValue) }
    }
    func spanEnd(_ spanID: UInt64) { events.pointee.span_end(spanID) }
    func spanAttribute(_ spanID: UInt64, key: String, value: String) {
        var key = key, value = value
        key.withUTF8 { k in value.withUTF8 { v in events.pointee.span_attribute(spanID, k.baseAddress, k.count, v.baseAddress, v.count) } }
    }
    func loopIteration(_ iteration: UInt64) { events.pointee.loop_iteration(iteration) }
    func phaseEnter(_ phase: LoopPhase) { events.pointee.phase_enter(phase.rawValue) }
    func phaseLeave(_ phase: LoopPhase) { events.pointee.phase_leave(phase.rawValue) }
    func pollStart(timeoutMs: Int64) { events.pointee.poll_start(timeoutMs) }
    func pollEnd(readyFDs: UnsafeBufferPointer<Int32>) { events.pointee.poll_end(readyFDs.baseAddress, readyFDs.count) }
    func nestingError(expected: AsyncID, actual: AsyncID) { events.pointee.nesting_error(expected.rawValue, actual.rawValue) }
    func uncaughtError(_ asyncID: AsyncID, message: String) {
        var message = message
        message.withUTF8 { events.pointee.uncaught_error(asyncID.rawValue, $0.baseAddress, $0.count) }
    }
}

/// Makes (or finds) this thread's execution state in this copy: the registry calls it for every copy once
/// this copy made the process's first.
let ownThreadStateMaker: @convention(c) () -> UnsafeMutableRawPointer? = {
    if let raw = asynchooks_state() { return raw }
    return UnsafeMutableRawPointer(ExecutionState.makeOwn().p)
}

/// This copy's type-name table as C functions, for the registry (the first copy to intern a name
/// interns them all). Leaked (made once).
nonisolated(unsafe) let ownInterner: UnsafeMutablePointer<asynchooks_interner> = {
    let p = UnsafeMutablePointer<asynchooks_interner>.allocate(capacity: 1)
    p.initialize(
        to: asynchooks_interner(
            intern: { name, length in ResourceTypeRegistry.internLocally(utf8String(name, length)) },
            name: { id, buffer, capacity in
                let bytes = Array(ResourceTypeRegistry.nameLocally(of: id).utf8)
                if let buffer, capacity > 0 {
                    for i in 0..<min(bytes.count, capacity) { buffer[i] = bytes[i] }
                }
                return bytes.count
            },
            count: { ResourceTypeRegistry.countLocally }))
    return p
}()

/// The process's interner, or nil when it is this copy's own table.
func foreignInterner() -> UnsafePointer<asynchooks_interner>? {
    let interner = asynchooks_shared_interner(ownInterner)
    return interner == UnsafePointer(ownInterner) ? nil : interner
}

extension AsyncHooks {
    /// How many copies of AsyncHooks share this process's hooks (1: this one alone; 2: e.g. an
    /// application's own and the one `asynctrace record` injected).
    @_spi(Recorder) public static var copiesInProcess: Int { asynchooks_copy_count() }
}
