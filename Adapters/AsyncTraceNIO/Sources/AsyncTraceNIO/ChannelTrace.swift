// One channel as a resource: its async id, its fd, and the scopes its events and socket reads run in.
import AsyncHooks
import CAsyncTraceNIO
import NIOConcurrencyHelpers
import NIOCore

/// A channel's resource. Lives as long as its scope handler; its scopes are entered and left on the
/// channel's event-loop thread only.
final class ChannelTrace: @unchecked Sendable {
    let resource: AsyncResourceContext
    var asyncID: AsyncID { resource.asyncID }

    init(channel: any Channel, trigger: AsyncID?) {
        resource = AsyncResourceContext(type: ChannelTypes.type(of: channel), triggerAsyncID: trigger)
        if let fd = ChannelDescriptor.of(channel) { resource.setFD(fd) }
    }

    /// Runs `body` inside the channel's scope: a before/after of the channel, unless this thread is in it
    /// already (its read scope, or an event nested in another of its events).
    @inline(__always)
    func inScope(_ body: () -> Void) {
        if executionAsyncID() == resource.asyncID {
            body()
            return
        }
        LoopPoll.endIfWaiting()
        AsyncHooks.enterCallback(resource.asyncID, triggerAsyncID: resource.triggerAsyncID, frame: resource.frame)
        body()
        AsyncHooks.leaveCallback(resource.asyncID)
    }

    // MARK: the read scope
    // NIO reads a socket before any handler runs (the read, then channelRead with the bytes), so a handler
    // alone cannot enclose the read(2). The channel's receive allocator is asked for the next buffer size
    // right before every read: there the channel's scope opens, and it stays open across the channelRead
    // events until the read batch ends (channelReadComplete, which NIO fires after every batch and at EOF),
    // or, failing that, the channel goes inactive, the next channel's read begins, or the loop's tick ends.

    private var unretained: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    func openReadScope() {
        let open = atn_open_read_scope()
        if open == unretained { return }
        if let open { Unmanaged<ChannelTrace>.fromOpaque(open).takeUnretainedValue().closeReadScope(force: true) }
        LoopPoll.endIfWaiting()
        AsyncHooks.enterCallback(resource.asyncID, triggerAsyncID: resource.triggerAsyncID, frame: resource.frame)
        atn_set_open_read_scope(unretained)
    }

    /// Leaves the read scope if it is open and innermost (a scope entered inside it must end first: then
    /// a later close point ends it). `force`: forget it even when it is not innermost (a later `after` of an
    /// enclosing callback unwinds it).
    func closeReadScope(force: Bool = false) {
        guard atn_open_read_scope() == unretained else { return }
        if executionAsyncID() == resource.asyncID {
            AsyncHooks.leaveCallback(resource.asyncID)
        } else if !force {
            return
        }
        atn_set_open_read_scope(nil)
    }

    /// Ends whatever read scope is open on this thread (the loop's tick ended).
    static func closeAnyReadScope() {
        if let open = atn_open_read_scope() {
            Unmanaged<ChannelTrace>.fromOpaque(open).takeUnretainedValue().closeReadScope(force: true)
        }
    }

    /// Puts a receive allocator that opens the read scope around the channel's own (which keeps deciding
    /// buffer sizes). Channels without one (a server socket: accept(2), no buffers) are left alone.
    func wrapReceiveAllocator(of channel: any Channel) {
        guard let options = channel.syncOptions,
            let current = try? options.getOption(ChannelOptions.recvAllocator)
        else { return }
        if current is ReadScopeAllocator { return }
        try? options.setOption(ChannelOptions.recvAllocator, value: ReadScopeAllocator(inner: current, trace: self))
    }

    func destroy() {
        closeReadScope(force: true)
        resource.emitDestroy()
    }
}

/// The channel's receive allocator, wrapped: `nextBufferSize()` runs right before each socket read.
struct ReadScopeAllocator: RecvByteBufferAllocator {
    var inner: any RecvByteBufferAllocator
    let trace: ChannelTrace

    func buffer(allocator: ByteBufferAllocator) -> ByteBuffer { inner.buffer(allocator: allocator) }

    func nextBufferSize() -> Int? {
        trace.openReadScope()
        return inner.nextBufferSize()
    }

    mutating func record(actualReadBytes: Int) -> Bool { inner.record(actualReadBytes: actualReadBytes) }
}

/// Resource types by channel class, interned once per class.
enum ChannelTypes {
    private static let cache = NIOLockedValueBox<[ObjectIdentifier: ResourceType]>([:])

    static func type(of channel: any Channel) -> ResourceType {
        let cls = ObjectIdentifier(Swift.type(of: channel))
        if let t = cache.withLockedValue({ $0[cls] }) { return t }
        let name = String(describing: Swift.type(of: channel))
        let t = ResourceType(name.hasPrefix("NIO") ? name : "NIO" + name)
        cache.withLockedValue { $0[cls] = t }
        return t
    }
}

/// The fd behind a NIOPosix channel. NIO keeps it private (`BaseSocketChannel.socket`, `BaseSocket.descriptor`);
/// reflection reads it once per channel. nil for channels without one (embedded, HTTP/2 streams) or if a
/// NIO version renames the fields (the adapter's tests fail then).
enum ChannelDescriptor {
    static func of(_ channel: any Channel) -> Int32? {
        guard let socket = field("socket", in: channel) else { return nil }
        guard let fd = field("descriptor", in: socket) as? Int32, fd >= 0 else { return nil }
        return fd
    }

    private static func field(_ label: String, in value: Any) -> Any? {
        var mirror: Mirror? = Mirror(reflecting: value)
        while let m = mirror {
            for child in m.children where child.label == label { return child.value }
            mirror = m.superclassMirror
        }
        return nil
    }
}

/// Server channels become resources when their first child is instrumented (the child's trigger), and are
/// destroyed when they close.
enum ParentChannels {
    private static let traces = NIOLockedValueBox<[ObjectIdentifier: AsyncID]>([:])

    static func trigger(for channel: any Channel) -> AsyncID? {
        guard let parent = channel.parent else { return nil }
        let key = ObjectIdentifier(parent)
        var created: AsyncResourceContext?
        let id = traces.withLockedValue { table -> AsyncID in
            if let id = table[key] { return id }
            let context = AsyncResourceContext(type: ChannelTypes.type(of: parent))
            if let fd = ChannelDescriptor.of(parent) { context.setFD(fd) }
            table[key] = context.asyncID
            created = context
            return context.asyncID
        }
        if let context = created {
            // Outside the lock: a future already completed runs the callback at once.
            parent.closeFuture.whenComplete { _ in
                _ = traces.withLockedValue { $0.removeValue(forKey: key) }
                context.emitDestroy()
            }
        }
        return id
    }
}
