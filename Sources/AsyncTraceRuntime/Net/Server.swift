// A listening socket in the shape of Node's `net.Server`: TCP (TCPSERVERWRAP) or Unix-domain
// (PIPESERVERWRAP). Accepting runs as the server's callback, so each accepted socket's trigger is the server.
#if canImport(Glibc)
import Glibc
#endif
@_spi(Runtime) import AsyncHooks

/// Node's `net.Server`: a listening TCP (TCPSERVERWRAP) or Unix-domain (PIPESERVERWRAP) socket; each
/// accepted socket's trigger is the server.
public final class Server {
    let loop: EventLoop
    /// TCPSERVERWRAP or PIPESERVERWRAP; created by `listen`.
    public private(set) var context: AsyncResourceContext?
    /// TCP or Unix socket (known once `listen` chose).
    public private(set) var kind: Socket.Kind = .tcp
    var fd: Int32 = -1
    var watcher: FDWatcher?
    var unixPath: String?
    /// Whether it is listening.
    public private(set) var listening = false
    var closing = false
    var closeQueued = false
    var handleDestroyQueued = false
    var hasRef = true
    /// Accepted sockets not yet destroyed (Node's `getConnections`).
    public private(set) var connections = 0
    /// Further connections are closed at once when this many are open (nil: no limit).
    public var maxConnections: Int?
    /// Accepted sockets keep their writing side open after the peer ends.
    public var allowHalfOpen: Bool
    /// Accepted sockets start paused.
    public var pauseOnConnect: Bool

    var listeningListeners = Listeners<Void>()
    var connectionListeners = Listeners<Socket>()
    var closeListeners = Listeners<Void>()
    var errorListeners = Listeners<NetError>()

    /// Node's `net.createServer(options, connectionListener)`.
    public init(
        allowHalfOpen: Bool = false, pauseOnConnect: Bool = false, loop: EventLoop = .current,
        _ onConnection: ((Socket) throws -> Void)? = nil
    ) {
        self.loop = loop
        self.allowHalfOpen = allowHalfOpen
        self.pauseOnConnect = pauseOnConnect
        if let onConnection { connectionListeners.add(onConnection) }
    }

    /// Listens on `host:port` (port 0: any free port; see `address()`). 'listening' or 'error'
    /// (EADDRINUSE, EACCES, ...) follows asynchronously.
    @discardableResult
    public func listen(port: Int = 0, host: String = "0.0.0.0", backlog: Int = 511, _ onListening: Callback? = nil) -> Server {
        kind = .tcp
        let ctx = begin(type: .tcpServerWrap, onListening)
        guard (0...65535).contains(port), let addr = SocketAddress.numeric(host: host, port: port) else {
            fail(
                NetError(
                    code: "ERR_SOCKET_BAD_ADDRESS", syscall: "listen", asyncID: ctx.asyncID,
                    message: "cannot listen on \(host):\(port) (numeric hosts and localhost only)"))
            return self
        }
        open(addr, backlog: backlog, ctx: ctx)
        return self
    }

    /// Listens on the Unix-domain socket `path` (removed again on close, as libuv does).
    @discardableResult
    public func listen(path: String, backlog: Int = 511, _ onListening: Callback? = nil) -> Server {
        kind = .pipe
        let ctx = begin(type: .pipeServerWrap, onListening)
        guard path.utf8.count <= SocketAddress.maxUnixPath else {
            fail(
                NetError(
                    code: "ENAMETOOLONG", errno: ENAMETOOLONG, syscall: "listen", asyncID: ctx.asyncID,
                    message: "listen ENAMETOOLONG \(path)"))
            return self
        }
        open(.unix(path: path), backlog: backlog, ctx: ctx)
        if listening { unixPath = path }
        return self
    }

    private func begin(type: ResourceType, _ onListening: Callback?) -> AsyncResourceContext {
        if let onListening { listeningListeners.add { _ in try onListening() } }
        let ctx = AsyncResourceContext(type: type)
        context = ctx
        return ctx
    }

    private func open(_ addr: SocketAddress, backlog: Int, ctx: AsyncResourceContext) {
        do {
            fd = try Sys.socket(addr.domain, Int32(SOCK_STREAM.rawValue))
            if addr.domain != AF_UNIX { try Sys.setSocketOption(fd, SOL_SOCKET, SO_REUSEADDR, 1) }
            try Sys.bind(fd, addr)
            try Sys.listen(fd, backlog: Int32(clamping: backlog))
            let w = try FDWatcher(fd: fd, loop: loop, context: ctx) { _ in try self.acceptAll() }
            if !hasRef { w.unref() }
            try w.start(.readable)
            watcher = w
            listening = true
            loop.nextTick { [self] in try listeningListeners.emit(()) }
        } catch let e as SystemError {
            let syscall = e.function == "bind" ? "listen" : e.function
            fail(NetError(e, syscall: syscall, address: addr, asyncID: ctx.asyncID))
        } catch {
            fail(NetError(code: "EINVAL", syscall: "listen", asyncID: ctx.asyncID, message: "\(error)"))
        }
    }

    /// Listening failed: release the fd; 'error' follows on a nextTick triggered by the server (Node's
    /// setupListenHandle), with no 'close'; the resource is destroyed in the close phase (Node closes
    /// the handle without a callback).
    private func fail(_ error: NetError) {
        if fd >= 0 {
            try? Sys.close(fd)
            fd = -1
        }
        guard let ctx = context else { return }
        closeQueued = true
        loop.nextTick(triggeredBy: ctx.asyncID) { [self] in
            if errorListeners.isEmpty { throw error }
            try errorListeners.emit(error)
        }
        queueHandleDestroy(ctx)
    }

    /// The handle's close without a JS callback: nothing runs under the resource, its destroy follows
    /// in the close phase.
    private func queueHandleDestroy(_ ctx: AsyncResourceContext) {
        handleDestroyQueued = true
        loop.queueClose(nil, destroyAfter: false) { ctx.emitDestroy() }
    }

    func acceptAll() throws {
        var accepted = 0
        while listening && accepted < 64 {
            let client: Int32?
            do { client = try Sys.accept(fd) } catch {
                // EMFILE/ENFILE/ENOBUFS: report and keep listening (the backlog holds the connection).
                let e = NetError(error, syscall: "accept", asyncID: context?.asyncID ?? .none)
                if errorListeners.isEmpty { throw e }
                try errorListeners.emit(e)
                return
            }
            guard let client else { return }
            accepted += 1
            if let max = maxConnections, connections >= max {
                try? Sys.close(client)  // Node's 'drop'
                continue
            }
            let socket: Socket
            do { socket = try Socket(connectedFD: client, kind: kind, server: self, loop: loop) } catch {
                try? Sys.close(client)
                continue
            }
            connections += 1
            socket.allowHalfOpen = allowHalfOpen
            if pauseOnConnect { socket.isPaused = true }
            socket.updateInterest()
            try connectionListeners.emit(socket)
        }
    }

    func connectionClosed() {
        connections -= 1
        if closing && connections == 0 { queueCloseEvent() }
    }

    /// Stops accepting; 'close' follows once every connection has ended. Closing a server that is not
    /// listening reports ERR_SERVER_NOT_RUNNING to `callback`.
    public func close(_ callback: ((NetError?) throws -> Void)? = nil) {
        guard listening, let ctx = context else {
            let e = NetError(
                code: "ERR_SERVER_NOT_RUNNING", syscall: "close", asyncID: context?.asyncID ?? .none,
                message: "Server is not running.")
            if let callback { loop.nextTick { try callback(e) } }
            return
        }
        if let callback { closeListeners.add { _ in try callback(nil) } }
        listening = false
        closing = true
        try? watcher?.close()
        watcher = nil
        try? Sys.close(fd)
        fd = -1
        if let p = unixPath { Sys.unlink(p) }
        ctx.setFD(-1)
        queueHandleDestroy(ctx)
        if connections == 0 { queueCloseEvent() }
    }

    /// 'close' on a nextTick triggered by the server once it is closed and its last connection is
    /// destroyed (Node's `_emitCloseIfDrained`); the resource is destroyed in the close phase after
    /// the handle closed (at once when it already did).
    private func queueCloseEvent() {
        guard let ctx = context, !closeQueued else { return }
        closeQueued = true
        if !handleDestroyQueued { queueHandleDestroy(ctx) }
        loop.nextTick(triggeredBy: ctx.asyncID) { [self] in
            try closeListeners.emit(())
            listeningListeners = Listeners()
            connectionListeners = Listeners()
            closeListeners = Listeners()
            errorListeners = Listeners()
        }
    }

    /// The bound address (Node's `server.address()`), nil when not listening.
    public func address() -> SocketAddress? {
        guard listening else { return nil }
        if let p = unixPath { return .unix(path: p) }
        return Sys.localAddress(fd)
    }

    /// Node's `getConnections(cb)`: the count, delivered asynchronously.
    public func getConnections(_ callback: @escaping (Int) throws -> Void) {
        let n = connections
        loop.nextTick { try callback(n) }
    }

    /// The server no longer keeps the loop alive.
    @discardableResult public func unref() -> Server { hasRef = false; watcher?.unref(); return self }
    /// The server keeps the loop alive again (the default).
    @discardableResult public func ref() -> Server { hasRef = true; watcher?.ref(); return self }

    /// The server's async id (`.none` before `listen`).
    public var asyncID: AsyncID { context?.asyncID ?? .none }

    /// 'listening': the server is bound and listening.
    @discardableResult public func onListening(_ f: @escaping Callback) -> Server { listeningListeners.add { _ in try f() }; return self }
    /// 'connection': `f` runs with each accepted socket.
    @discardableResult public func onConnection(_ f: @escaping (Socket) throws -> Void) -> Server { connectionListeners.add(f); return self }
    /// 'close': the server closed (after its connections ended).
    @discardableResult public func onClose(_ f: @escaping Callback) -> Server { closeListeners.add { _ in try f() }; return self }
    /// 'error': listening failed (EADDRINUSE, ...).
    @discardableResult public func onError(_ f: @escaping (NetError) throws -> Void) -> Server { errorListeners.add(f); return self }
}
