// Async ids and resource types: the two names every hook event carries.
import Synchronization

/// Identifies one async resource for the life of the process, across threads.
/// `root` (1) is the top level, as Node's `executionAsyncId()` at start-up; `none` (0) means no resource.
public struct AsyncID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The id's number.
    public var rawValue: UInt64
    /// The id with this number.
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// The id with this number.
    @inlinable public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    // Computed, not stored: a stored static is a lazy global behind a once-check at every use.
    /// 0: no resource.
    @inlinable public static var none: AsyncID { AsyncID(0) }
    /// 1: the top level (code that runs outside every callback).
    @inlinable public static var root: AsyncID { AsyncID(1) }

    @inlinable public static func < (a: AsyncID, b: AsyncID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }

    /// A fresh id, unique in this process. Threads take ids in blocks, so this is one
    /// thread-local increment most of the time and never a contended atomic.
    @inlinable
    public static func next() -> AsyncID { ExecutionState.current.allocateID() }
}

/// Ids come in blocks of this size from the process's counter (`asynchooks_take_ids`; 0 and 1 are reserved).
@usableFromInline
let asyncIDBlockSize: UInt64 = 1024

/// An interned resource type name ("Timeout", "TCPWRAP", ...): a small integer that compares
/// and hashes cheaply and that writers can turn back into its name.
public struct ResourceType: Hashable, Sendable, CustomStringConvertible {
    /// The interned id (stable within the process; the trace stores the name).
    public let id: UInt32
    /// The type with interned id `id` (from `ResourceTypeRegistry`).
    @inlinable public init(id: UInt32) { self.id = id }

    /// Interns `name` (the same name always gives the same type).
    public init(_ name: String) { self.id = ResourceTypeRegistry.intern(name) }

    /// The type's name ("type#N" for an id this process never interned).
    public var name: String { ResourceTypeRegistry.name(of: id) }
    public var description: String { name }

    // Node's names, where the concept matches.
    /// "Timeout": a timer (`setTimeout`, `setInterval`).
    public static let timeout = ResourceType("Timeout")
    /// "Immediate": a `setImmediate` callback (check phase).
    public static let immediate = ResourceType("Immediate")
    /// "TickObject": a `nextTick` callback.
    public static let tickObject = ResourceType("TickObject")
    /// "PROMISE": a promise.
    public static let promise = ResourceType("PROMISE")
    /// "FSREQCALLBACK": a file-system request.
    public static let fsReqCallback = ResourceType("FSREQCALLBACK")
    /// "GETADDRINFOREQWRAP": a name lookup.
    public static let getAddrInfoReqWrap = ResourceType("GETADDRINFOREQWRAP")
    /// "SIGNALWRAP": a signal watcher.
    public static let signalWrap = ResourceType("SIGNALWRAP")
    /// "TCPSERVERWRAP": a listening TCP socket.
    public static let tcpServerWrap = ResourceType("TCPSERVERWRAP")
    /// "TCPWRAP": a TCP connection.
    public static let tcpWrap = ResourceType("TCPWRAP")
    /// "TCPCONNECTWRAP": an outgoing TCP connect.
    public static let tcpConnectWrap = ResourceType("TCPCONNECTWRAP")
    /// "WRITEWRAP": one write request.
    public static let writeWrap = ResourceType("WRITEWRAP")
    /// "SHUTDOWNWRAP": a socket shutdown.
    public static let shutdownWrap = ResourceType("SHUTDOWNWRAP")
    /// "UDPWRAP": a UDP socket.
    public static let udpWrap = ResourceType("UDPWRAP")
    /// "UDPSENDWRAP": one UDP send.
    public static let udpSendWrap = ResourceType("UDPSENDWRAP")
    /// "PIPESERVERWRAP": a listening Unix socket.
    public static let pipeServerWrap = ResourceType("PIPESERVERWRAP")
    /// "PIPEWRAP": a pipe or Unix socket connection.
    public static let pipeWrap = ResourceType("PIPEWRAP")
    /// "PIPECONNECTWRAP": an outgoing Unix socket connect.
    public static let pipeConnectWrap = ResourceType("PIPECONNECTWRAP")
    /// "TLSWRAP": a TLS connection.
    public static let tlsWrap = ResourceType("TLSWRAP")
    /// "PROCESSWRAP": a child process.
    public static let processWrap = ResourceType("PROCESSWRAP")
    /// "HTTPINCOMINGMESSAGE": a request a server received.
    public static let httpIncomingMessage = ResourceType("HTTPINCOMINGMESSAGE")
    /// "HTTPCLIENTREQUEST": a request a client sent.
    public static let httpClientRequest = ResourceType("HTTPCLIENTREQUEST")
    /// "WORKWRAP": work run on a worker thread.
    public static let workerWrap = ResourceType("WORKWRAP")
}

/// An interned `key=value` pair describing a resource (recorded as one string, so interning it once
/// makes recording it a small integer).
public struct ResourceAttribute: Hashable, Sendable, CustomStringConvertible {
    /// The interned "key=value" string's id.
    public let id: UInt32
    /// Interns "key=value" (the same pair always gives the same id).
    public init(key: String, value: String) { id = ResourceTypeRegistry.intern(key + "=" + value) }
    init(id: UInt32) { self.id = id }
    /// "key=value".
    public var description: String { ResourceTypeRegistry.name(of: id) }
}

/// Name <-> id table for resource types. Interning takes a lock; lookups by id copy an
/// immutable snapshot, so writers may call `name(of:)` from any thread. One table serves every copy of
/// AsyncHooks in the process (the first copy to intern a name keeps it; see ProcessCopies.swift).
public enum ResourceTypeRegistry {
    struct Table {
        var ids: [String: UInt32] = [:]
        var names: [String] = []
    }
    static let table = LockedValue(Table())

    @_spi(Recorder) public static func intern(_ name: String) -> UInt32 {
        guard let foreign = foreignInterner() else { return internLocally(name) }
        var name = name
        return name.withUTF8 { foreign.pointee.intern($0.baseAddress, $0.count) }
    }

    /// The name interned as `id`, or "type#N" for an id never interned.
    public static func name(of id: UInt32) -> String {
        guard let foreign = foreignInterner() else { return nameLocally(of: id) }
        var buffer = [UInt8](repeating: 0, count: 256)
        var n = buffer.withUnsafeMutableBufferPointer { foreign.pointee.name(id, $0.baseAddress, $0.count) }
        if n > buffer.count {
            buffer = [UInt8](repeating: 0, count: n)
            n = buffer.withUnsafeMutableBufferPointer { foreign.pointee.name(id, $0.baseAddress, $0.count) }
        }
        return String(decoding: buffer[0..<min(n, buffer.count)], as: UTF8.self)
    }

    /// Names interned so far in the process.
    public static var count: Int {
        guard let foreign = foreignInterner() else { return countLocally }
        return foreign.pointee.count()
    }

    static func internLocally(_ name: String) -> UInt32 {
        table.withLock { t in
            if let id = t.ids[name] { return id }
            let id = UInt32(t.names.count)
            t.names.append(name)
            t.ids[name] = id
            return id
        }
    }

    static func nameLocally(of id: UInt32) -> String {
        table.withLock { t in id < t.names.count ? t.names[Int(id)] : "type#\(id)" }
    }

    static var countLocally: Int { table.withLock { $0.names.count } }
}
