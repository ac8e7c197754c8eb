// Datagram sockets in the shape of Node's `dgram.Socket`: UDPWRAP for the socket (messages run under
// it), UDPSENDWRAP for each send (its callback runs under it).
#if canImport(Glibc)
import Glibc
#endif
@_spi(Runtime) import AsyncHooks

/// The sender of a message (Node's `rinfo`).
public struct RemoteInfo: Sendable, CustomStringConvertible {
    /// The sender's address.
    public let address: String
    /// "IPv4" or "IPv6" ("" when the sender's address is unknown).
    public let family: String
    /// The sender's port.
    public let port: Int
    /// The datagram's size in bytes.
    public let size: Int
    public var description: String { "\(address):\(port) (\(size) bytes)" }
}

/// Node's `dgram.Socket`: a UDP socket (a UDPWRAP resource); each send a UDPSENDWRAP request.
public final class UDPSocket {
    /// IPv4 or IPv6.
    public enum Family: Sendable { case udp4, udp6 }

    struct PendingSend {
        let context: AsyncResourceContext
        let data: [UInt8]
        let address: SocketAddress?
        let callback: ((NetError?) throws -> Void)?
    }

    let loop: EventLoop
    /// IPv4 or IPv6.
    public let family: Family
    /// UDPWRAP, created with the socket (as `dgram.createSocket`).
    public let context: AsyncResourceContext
    var fd: Int32 = -1
    var watcher: FDWatcher?
    /// Whether it was bound (by `bind`, `connect` or a first `send`).
    public private(set) var isBound = false
    /// Whether `close` was called.
    public private(set) var isClosed = false
    /// The connected peer (`connect`), nil when not connected.
    public private(set) var remote: SocketAddress?
    var sendQueue = ContiguousArray<PendingSend>()
    var hasRef = true

    var messageListeners = Listeners<([UInt8], RemoteInfo)>()
    var listeningListeners = Listeners<Void>()
    var connectListeners = Listeners<Void>()
    var closeListeners = Listeners<Void>()
    var errorListeners = Listeners<NetError>()

    /// Node's `dgram.createSocket(type, onMessage)`.
    public init(_ family: Family = .udp4, loop: EventLoop = .current, _ onMessage: (([UInt8], RemoteInfo) throws -> Void)? = nil) {
        self.loop = loop
        self.family = family
        self.context = AsyncResourceContext(type: .udpWrap)
        if let onMessage { messageListeners.add(onMessage) }
        do {
            fd = try Sys.socket(family == .udp4 ? AF_INET : AF_INET6, Int32(SOCK_DGRAM.rawValue))
            let w = try FDWatcher(fd: fd, loop: loop, context: context) { events in try self.handleEvents(events) }
            watcher = w
        } catch let e as SystemError {
            emitErrorSoon(NetError(e, syscall: "socket", asyncID: context.asyncID))
        } catch {
            emitErrorSoon(NetError(code: "EINVAL", syscall: "socket", asyncID: context.asyncID, message: "\(error)"))
        }
    }

    var anyHost: String { family == .udp4 ? "0.0.0.0" : "::" }

    /// Binds to `host:port` (0: any port); 'listening' follows and messages start arriving.
    @discardableResult
    public func bind(port: Int = 0, host: String? = nil, _ onListening: Callback? = nil) -> UDPSocket {
        if let onListening { listeningListeners.add { _ in try onListening() } }
        guard !isClosed, fd >= 0 else { return self }
        guard (0...65535).contains(port), let addr = SocketAddress.numeric(host: host ?? anyHost, port: port) else {
            emitErrorSoon(
                NetError(
                    code: "ERR_SOCKET_BAD_ADDRESS", syscall: "bind", asyncID: context.asyncID,
                    message: "cannot bind \(host ?? anyHost):\(port)"))
            return self
        }
        do {
            try Sys.bind(fd, addr)
        } catch {
            emitErrorSoon(NetError(error, syscall: "bind", address: addr, asyncID: context.asyncID))
            return self
        }
        startReceiving()
        loop.nextTick { [self] in try listeningListeners.emit(()) }
        return self
    }

    func startReceiving() {
        guard !isBound else { return }
        isBound = true
        updateInterest()
    }

    func updateInterest() {
        guard let w = watcher, !isClosed else { return }
        var ev: FDEvents = []
        if isBound { ev.insert(.readable) }
        if !sendQueue.isEmpty { ev.insert(.writable) }
        try? w.start(ev)
    }

    /// Sets the default peer: `send` without an address goes there, and only its datagrams arrive.
    public func connect(port: Int, host: String = "127.0.0.1", _ onConnect: Callback? = nil) {
        if let onConnect { connectListeners.add { _ in try onConnect() } }
        guard !isClosed else { return }
        guard let addr = SocketAddress.numeric(host: host, port: port) else {
            emitErrorSoon(NetError(code: "ENOTFOUND", syscall: "connect", asyncID: context.asyncID, message: "connect ENOTFOUND \(host)"))
            return
        }
        do {
            _ = try Sys.connect(fd, addr)
            remote = addr
            startReceiving()
            loop.nextTick { [self] in try connectListeners.emit(()) }
        } catch {
            emitErrorSoon(NetError(error, syscall: "connect", address: addr, asyncID: context.asyncID))
        }
    }

    /// Forgets the connected peer (no effect when not connected).
    public func disconnect() {
        guard remote != nil, !isClosed else { return }
        try? Sys.disconnect(fd)
        remote = nil
    }

    /// Sends one datagram to `host:port` (or to the connected peer when both are nil).
    public func send(_ data: [UInt8], port: Int? = nil, host: String = "127.0.0.1", _ callback: ((NetError?) throws -> Void)? = nil) {
        let ctx = AsyncResourceContext(type: .udpSendWrap, triggerAsyncID: context.asyncID)
        var addr: SocketAddress?
        if let port {
            addr = SocketAddress.numeric(host: host, port: port)
            if addr == nil {
                complete(ctx, callback, NetError(code: "ENOTFOUND", syscall: "send", asyncID: context.asyncID, message: "send ENOTFOUND \(host)"))
                return
            }
        } else if remote == nil {
            complete(
                ctx, callback,
                NetError(
                    code: "ERR_SOCKET_DGRAM_NOT_CONNECTED", syscall: "send", asyncID: context.asyncID,
                    message: "Not connected: give a port and host"))
            return
        }
        if isClosed {
            complete(
                ctx, callback,
                NetError(
                    code: "ERR_SOCKET_DGRAM_NOT_RUNNING", syscall: "send", asyncID: context.asyncID,
                    message: "Not running"))
            return
        }
        // An unbound socket is bound implicitly by the kernel on first send; receive replies from then on.
        if !sendQueue.isEmpty {
            sendQueue.append(PendingSend(context: ctx, data: data, address: addr, callback: callback))
            return
        }
        switch trySend(data, addr) {
        case .some(nil):
            startReceiving()
            complete(ctx, callback, nil)
        case .some(let e?):
            complete(ctx, callback, e)
        case .none:
            sendQueue.append(PendingSend(context: ctx, data: data, address: addr, callback: callback))
            startReceiving()
            updateInterest()
        }
    }

    /// `send` of the string's UTF-8 bytes.
    public func send(_ string: String, port: Int? = nil, host: String = "127.0.0.1", _ callback: ((NetError?) throws -> Void)? = nil) {
        send(Array(string.utf8), port: port, host: host, callback)
    }

    /// nil: would block; .some(nil): sent; .some(error): failed.
    func trySend(_ data: [UInt8], _ addr: SocketAddress?) -> NetError?? {
        do {
            let n = try data.withUnsafeBytes { try Sys.sendTo(fd, $0, addr) }
            return n == nil ? .none : .some(nil)
        } catch let e as SystemError {
            return .some(NetError(e, syscall: "send", address: addr ?? remote, asyncID: context.asyncID))
        } catch {
            return .some(NetError(code: "EINVAL", syscall: "send", asyncID: context.asyncID, message: "\(error)"))
        }
    }

    /// Completes a send request that finished (or failed) at once: the request is done, its callback
    /// runs on a nextTick queued from a nextTick (Node's send resolves the address with dns.lookup,
    /// which answers a numeric host on a nextTick; doSend then calls `process.nextTick(callback)`).
    /// Without a callback an error is emitted as 'error' (Node's documented behaviour; Node 20
    /// itself drops it).
    func complete(_ ctx: AsyncResourceContext, _ callback: ((NetError?) throws -> Void)?, _ error: NetError?) {
        ctx.emitDestroy()
        if let callback {
            // The second tick is doSend's, in defaultTriggerAsyncIdScope(the socket).
            let socketID = context.asyncID
            loop.nextTick { [loop] in loop.nextTick(triggeredBy: socketID) { try callback(error) } }
        } else if let error {
            emitErrorSoon(error)
        }
    }

    /// Completes a queued send the poll phase sent (or failed): its callback runs under UDPSENDWRAP
    /// there (libuv's uv__udp_run_completed), then the request is destroyed.
    func completeQueued(_ ctx: AsyncResourceContext, _ callback: ((NetError?) throws -> Void)?, _ error: NetError?) {
        if let callback {
            loop.invoke(ctx) { try callback(error) }
        } else if let error {
            emitErrorSoon(error)
        }
        ctx.emitDestroy()
    }

    func handleEvents(_ events: FDEvents) throws {
        if events.contains(.writable) || events.contains(.error) { flushSends() }
        if isClosed || !events.contains(.readable) { return }
        let buffer = threadReadBuffer()
        for _ in 0..<32 {
            if isClosed { return }
            let got: (Int, SocketAddress?)?
            do { got = try Sys.receiveFrom(fd, UnsafeMutableRawBufferPointer(start: buffer, count: readBufferSize)) } catch {
                // ECONNREFUSED: an ICMP error for an earlier send to a connected peer.
                let e = NetError(error, syscall: "recvmsg", address: remote, asyncID: context.asyncID)
                if errorListeners.isEmpty { throw e }
                try errorListeners.emit(e)
                return
            }
            guard let (n, from) = got else { return }
            let data = [UInt8](UnsafeRawBufferPointer(start: buffer, count: n))
            let info = RemoteInfo(address: from?.host ?? "", family: from?.family ?? "", port: from?.port ?? 0, size: n)
            try messageListeners.emit((data, info))
        }
    }

    func flushSends() {
        while let p = sendQueue.first, !isClosed {
            guard let result = trySend(p.data, p.address) else { break }
            sendQueue.removeFirst()
            completeQueued(p.context, p.callback, result)
        }
        updateInterest()
    }

    /// Closes the socket: 'close' follows on a nextTick triggered by the socket (Node's socketCloseNT);
    /// pending sends fail in the close phase (the handle's close), then the resource is destroyed.
    public func close(_ callback: Callback? = nil) {
        if let callback { closeListeners.add { _ in try callback() } }
        guard !isClosed else { return }
        isClosed = true
        try? watcher?.close()
        watcher = nil
        if fd >= 0 { try? Sys.close(fd); fd = -1 }
        let pending = sendQueue
        sendQueue = []
        loop.nextTick(triggeredBy: context.asyncID) { [self] in
            try closeListeners.emit(())
            dropListeners()
        }
        let ctx = context
        loop.queueClose(nil, destroyAfter: false) { [loop] in
            for p in pending {
                if let cb = p.callback {
                    loop.invoke(p.context) {
                        try cb(NetError(code: "ECANCELED", errno: ECANCELED, syscall: "send", asyncID: ctx.asyncID, message: "send ECANCELED"))
                    }
                }
                p.context.emitDestroy()
            }
            ctx.emitDestroy()
        }
    }

    func dropListeners() {
        messageListeners = Listeners()
        listeningListeners = Listeners()
        connectListeners = Listeners()
        closeListeners = Listeners()
        errorListeners = Listeners()
    }

    /// Errors without a send callback arrive as 'error' (thrown as uncaught when nobody listens, as in Node).
    func emitErrorSoon(_ e: NetError) {
        loop.nextTick { [self] in
            if errorListeners.isEmpty { throw e }
            try errorListeners.emit(e)
        }
    }

    /// Allows sending to broadcast addresses (SO_BROADCAST).
    public func setBroadcast(_ on: Bool) throws {
        try Sys.setSocketOption(fd, SOL_SOCKET, SO_BROADCAST, on ? 1 : 0)
    }

    /// The hop limit of sent datagrams (1...255); throws outside that range.
    public func setTTL(_ ttl: Int) throws {
        guard (1...255).contains(ttl) else { throw RuntimeError.invalidArgument("TTL must be 1...255, got \(ttl)") }
        if family == .udp4 {
            try Sys.setSocketOption(fd, Int32(IPPROTO_IP), IP_TTL, Int32(ttl))
        } else {
            try Sys.setSocketOption(fd, Int32(IPPROTO_IPV6), IPV6_UNICAST_HOPS, Int32(ttl))
        }
    }

    /// The bound local address, nil when not bound or closed.
    public func address() -> SocketAddress? { fd >= 0 ? Sys.localAddress(fd) : nil }
    /// The connected peer, nil when not connected.
    public func remoteAddress() -> SocketAddress? { remote }

    /// The socket no longer keeps the loop alive.
    @discardableResult public func unref() -> UDPSocket { hasRef = false; watcher?.unref(); return self }
    /// The socket keeps the loop alive again (the default).
    @discardableResult public func ref() -> UDPSocket { hasRef = true; watcher?.ref(); return self }

    /// The UDPWRAP resource's async id.
    public var asyncID: AsyncID { context.asyncID }

    /// 'message': `f` runs with each datagram and its sender.
    @discardableResult public func onMessage(_ f: @escaping ([UInt8], RemoteInfo) throws -> Void) -> UDPSocket {
        messageListeners.add(f); return self
    }
    /// 'listening': the socket was bound.
    @discardableResult public func onListening(_ f: @escaping Callback) -> UDPSocket { listeningListeners.add { _ in try f() }; return self }
    /// 'connect': `connect` took effect.
    @discardableResult public func onConnect(_ f: @escaping Callback) -> UDPSocket { connectListeners.add { _ in try f() }; return self }
    /// 'close': the socket closed.
    @discardableResult public func onClose(_ f: @escaping Callback) -> UDPSocket { closeListeners.add { _ in try f() }; return self }
    /// 'error': a failure no send callback took.
    @discardableResult public func onError(_ f: @escaping (NetError) throws -> Void) -> UDPSocket { errorListeners.add(f); return self }
}
