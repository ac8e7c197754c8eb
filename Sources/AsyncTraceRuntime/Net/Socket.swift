// A stream socket in the shape of Node's `net.Socket`: TCP or Unix-domain ("pipe"), connected by
// `Socket.connect`, accepted by a `Server`, or wrapping one end of a child process's stdio.
//
// Resources (Node's names):
//   TCPWRAP / PIPEWRAP        the socket; data, end, close (and error) run under it; records the fd
//   TCPCONNECTWRAP / PIPECONNECTWRAP  one connect request; 'connect' runs under it, destroyed after
//   WRITEWRAP                 one write that could not complete at once; its callback and 'drain' run under it
//   SHUTDOWNWRAP              end(): the shutdown(SHUT_WR) request; 'finish' runs under it
// A transport (TLS) adds its own resource (`ioContext`, TLSWRAP) under which all I/O then runs.
#if canImport(Glibc)
import Glibc
#endif
@_spi(Runtime) import AsyncHooks

/// Node's `net.Socket`: a TCP or Unix-socket stream (a TCPWRAP or PIPEWRAP resource) with Node's events,
/// backpressure and half-close.
public final class Socket {
    /// TCP, or a Unix socket (Node's pipe).
    public enum Kind: Sendable { case tcp, pipe }

    struct WriteRequest {
        let context: AsyncResourceContext
        /// The request is done when this many bytes (cumulative) have been flushed.
        let end: Int
        let callback: ((NetError?) throws -> Void)?
    }

    /// TCP, or a Unix socket.
    public let kind: Kind
    let loop: EventLoop
    /// TCPWRAP or PIPEWRAP.
    public let context: AsyncResourceContext
    /// The transport's resource (TLSWRAP), when one is installed.
    public private(set) var transportContext: AsyncResourceContext?
    /// The resource the socket's I/O and data events run under.
    @inline(__always) var ioContext: AsyncResourceContext { transportContext ?? context }
    /// The socket's fd (-1 before it is connected and after it closed).
    public private(set) var fd: Int32 = -1
    var watcher: FDWatcher?
    var server: Server?
    var transport: (any SocketTransport)?
    /// Called (under the transport's resource) when the transport's handshake completes.
    public var onHandshakeDone: (() throws -> Void)?

    // State.
    /// Whether a connect is in progress.
    public private(set) var connecting = false
    var connectContext: AsyncResourceContext?
    var handshaking = false
    var handshakeWantsWrite = false
    /// The peer's address, once connected.
    public private(set) var remoteAddress: SocketAddress?
    /// The peer ended its side (EOF read).
    public private(set) var readEnded = false
    /// `end()` was called.
    public private(set) var ending = false
    /// Our writing side is shut down.
    public private(set) var writeFinished = false
    /// Whether the socket was destroyed (closed).
    public private(set) var destroyed = false
    /// Destroyed with an error (Node's `errored`): a pending 'end' is not emitted.
    var errored = false
    /// Whether reading is paused (`pause()`).
    public internal(set) var isPaused = false
    var hasRef = true
    /// Keep our writing side open after the peer ends (Node's allowHalfOpen); otherwise end() follows 'end'.
    public var allowHalfOpen = false
    /// `write` returns false once this many bytes wait in the queue; 'drain' follows when it empties.
    public var highWaterMark = 16 * 1024
    var needDrain = false
    /// Bytes read so far.
    public private(set) var bytesRead = 0
    /// Bytes written so far (handed to the kernel).
    public private(set) var bytesWritten = 0

    // Write queue: chunks not yet sent (the first one partly sent), and the requests waiting on them.
    var chunks = ContiguousArray<[UInt8]>()
    var headOffset = 0
    /// Bytes queued and not yet sent (Node's `writableLength`).
    public private(set) var writableLength = 0
    var requests = ContiguousArray<WriteRequest>()
    var queuedTotal = 0
    var flushedTotal = 0
    var shutdownContext: AsyncResourceContext?

    /// Idle timeout (setTimeout): I/O only stamps `lastActivity` (the loop's cached time); the timer checks
    /// the stamp when it fires and re-arms for the rest, so busy sockets pay no timer work per read/write.
    var idleTimer: Timeout?
    var idleMs = 0
    var lastActivity: UInt64 = 0
    var idleExpired = false

    // Listeners.
    var connectListeners = Listeners<Void>()
    var dataListeners = Listeners<[UInt8]>()
    var endListeners = Listeners<Void>()
    var closeListeners = Listeners<Bool>()
    var errorListeners = Listeners<NetError>()
    var drainListeners = Listeners<Void>()
    var timeoutListeners = Listeners<Void>()
    var finishListeners = Listeners<Void>()

    static func types(_ kind: Kind) -> (socket: ResourceType, connect: ResourceType) {
        kind == .tcp ? (.tcpWrap, .tcpConnectWrap) : (.pipeWrap, .pipeConnectWrap)
    }

    /// A socket over a connected fd (accepted, or one end of a socketpair). Its trigger is the current
    /// execution id, so an accepted socket's trigger is its server.
    init(connectedFD: Int32, kind: Kind, server: Server?, loop: EventLoop) throws {
        self.kind = kind
        self.loop = loop
        self.context = AsyncResourceContext(type: Socket.types(kind).socket)
        self.server = server
        self.fd = connectedFD
        do {
            try attachWatcher()
        } catch {
            context.emitDestroy()
            throw error
        }
        remoteAddress = Sys.remoteAddress(connectedFD)
    }

    private init(kind: Kind, loop: EventLoop) {
        self.kind = kind
        self.loop = loop
        self.context = AsyncResourceContext(type: Socket.types(kind).socket)
    }

    func attachWatcher() throws {
        let w = try FDWatcher(fd: fd, loop: loop, context: nil) { events in self.handleEvents(events) }
        if !hasRef { w.unref() }
        watcher = w
        context.setFD(fd)
    }

    // MARK: connecting

    /// Connects to `host:port` (Node's `net.connect`); a host name is resolved with `DNS.lookup` first.
    /// Errors (refused, unreachable, ENOTFOUND) arrive as an 'error' event followed by 'close'.
    @discardableResult
    public static func connect(
        port: Int, host: String = "localhost", loop: EventLoop = .current,
        _ onConnect: Callback? = nil
    ) -> Socket {
        let s = Socket(kind: .tcp, loop: loop)
        if let onConnect { s.onConnect(onConnect) }
        guard (0...65535).contains(port) else {
            s.failEarly(
                NetError(
                    code: "ERR_SOCKET_BAD_PORT", syscall: "connect", asyncID: s.context.asyncID,
                    message: "Port should be >= 0 and < 65536. Received \(port)."))
            return s
        }
        if let addr = SocketAddress.numeric(host: host, port: port) {
            s.startConnect(addr)
            return s
        }
        // A name: dns.lookup on the thread pool (a GETADDRINFOREQWRAP), then connect. Writes queue meanwhile.
        s.connecting = true
        DNS.lookup(host) { [s] result in
            if s.destroyed { return }
            s.connecting = false
            switch result {
            case .success(let found):
                let addr: SocketAddress = found.family == 6 ? .ipv6(host: found.address, port: port) : .ipv4(host: found.address, port: port)
                s.startConnect(addr)
            case .failure(let error):
                let code = (error as? DNSError)?.code ?? "ENOTFOUND"
                s.destroy(
                    NetError(
                        code: code, syscall: "getaddrinfo", asyncID: s.context.asyncID,
                        message: "getaddrinfo \(code) \(host)"))
            }
        }
        return s
    }

    /// Connects to the Unix-domain socket at `path` (a PIPEWRAP).
    @discardableResult
    public static func connect(path: String, loop: EventLoop = .current, _ onConnect: Callback? = nil) -> Socket {
        let s = Socket(kind: .pipe, loop: loop)
        if let onConnect { s.onConnect(onConnect) }
        guard path.utf8.count <= SocketAddress.maxUnixPath else {
            s.failEarly(
                NetError(
                    code: "ENAMETOOLONG", errno: ENAMETOOLONG, syscall: "connect", asyncID: s.context.asyncID,
                    message: "connect ENAMETOOLONG \(path)"))
            return s
        }
        s.startConnect(.unix(path: path))
        return s
    }

    /// Reports an error found before any fd existed: error + close in a later phase, as Node does.
    func failEarly(_ e: NetError) {
        destroy(e)
    }

    func startConnect(_ addr: SocketAddress) {
        let cctx = AsyncResourceContext(type: Socket.types(kind).connect, triggerAsyncID: context.asyncID)
        connectContext = cctx
        connecting = true
        remoteAddress = addr
        do {
            fd = try Sys.socket(addr.domain, Int32(SOCK_STREAM.rawValue))
            try attachWatcher()
            _ = try Sys.connect(fd, addr)
            // Completed or in progress: either way the fd turns writable and finishConnect reads SO_ERROR.
            updateInterest()
        } catch let e as SystemError {
            // Refused at once (Unix path missing): report through the connect request, as the async case.
            let err = NetError(e, syscall: "connect", address: addr, asyncID: context.asyncID)
            connecting = false
            connectContext = nil
            loop.retainRequest()
            loop.queuePending(cctx, destroyAfter: true) { [self] in
                loop.releaseRequest()
                destroy(err)
            }
        } catch {
            connecting = false
            connectContext = nil
            cctx.emitDestroy()
            destroy(NetError(code: "EINVAL", syscall: "connect", asyncID: context.asyncID, message: "\(error)"))
        }
    }

    func finishConnect() {
        guard let cctx = connectContext else { return }
        connecting = false
        connectContext = nil
        var failure: NetError?
        do {
            let so = try Sys.socketOption(fd, SOL_SOCKET, SO_ERROR)
            if so != 0 {
                failure = NetError(SystemError(errno: so, function: "connect"), address: remoteAddress, asyncID: context.asyncID)
            }
        } catch {
            failure = NetError(error, syscall: "connect", address: remoteAddress, asyncID: context.asyncID)
        }
        loop.invoke(cctx) { [self] in
            if let failure {
                destroy(failure)
                return
            }
            if transport != nil {
                // The first handshake step runs once the fd reports writable (a client speaks first).
                handshaking = true
                handshakeWantsWrite = true
                updateInterest()
                return
            }
            updateInterest()
            try connectListeners.emit(())
        }
        cctx.emitDestroy()
    }

    // MARK: transports (TLS)

    /// Puts `transport` under this socket's bytes, with `context` (e.g. TLSWRAP) as the resource all
    /// further I/O runs under. On a connected socket the handshake starts now; on a connecting one,
    /// once connected. `onHandshakeDone` runs when it completes; failures destroy the socket.
    public func installTransport(_ transport: any SocketTransport, context tctx: AsyncResourceContext) {
        self.transport = transport
        self.transportContext = tctx
        if fd >= 0 { tctx.setFD(fd) }
        if !connecting && !destroyed {
            handshaking = true
            handshakeWantsWrite = true
            updateInterest()
        }
    }

    func continueHandshake() throws {
        guard let t = transport else { return }
        switch t.handshake(fd: fd) {
        case .bytes:
            handshaking = false
            updateInterest()
            try onHandshakeDone?()
            try connectListeners.emit(())
            // The handshake's last read may have taken the peer's first records with it (read-ahead):
            // epoll does not see them, so they are read now, or the connection waits for input that
            // came already (tls-echo hung under load when the client's first write arrived with its Finished).
            if !destroyed && !isPaused && !readEnded && t.hasBufferedInput { try readAvailable() }
        case .wouldBlock(let wantWrite):
            handshakeWantsWrite = wantWrite
            updateInterest()
        case .endOfStream:
            destroy(
                NetError(
                    code: "ECONNRESET", errno: ECONNRESET, syscall: "handshake", asyncID: ioContext.asyncID,
                    message: "Client network socket disconnected before secure TLS connection was established"))
        case .failed(let e):
            destroy(e)
        }
    }

    // MARK: events from the loop

    func handleEvents(_ events: FDEvents) {
        if destroyed { return }
        if connecting {
            finishConnect()
            return
        }
        if handshaking {
            loop.invoke(ioContext) { try self.continueHandshake() }
            return
        }
        if events.contains(.readable) || events.contains(.hangup) || events.contains(.error) {
            if !isPaused && !readEnded {
                loop.invoke(ioContext) { try self.readAvailable() }
            } else if writableLength == 0 {
                // Hang-up while nothing is read or written: nothing will ever consume it.
                if events.contains(.error) || events.contains(.hangup) { updateInterest() }
            }
        }
        if !destroyed && writableLength > 0 && (events.contains(.writable) || events.contains(.error)) {
            handleWritable()
        }
    }

    /// What epoll should watch for, from the state.
    func updateInterest() {
        guard let w = watcher, !destroyed else { return }
        var ev: FDEvents = []
        if connecting {
            ev = .writable
        } else if handshaking {
            ev = handshakeWantsWrite ? [.readable, .writable] : .readable
        } else {
            if !isPaused && !readEnded { ev.insert(.readable) }
            if writableLength > 0 { ev.insert(.writable) }
        }
        do { try w.start(ev) } catch {
            destroy(NetError(code: "EBADF", errno: EBADF, syscall: "epoll_ctl", asyncID: context.asyncID, message: "\(error)"))
        }
    }

    // MARK: reading

    func readAvailable() throws {
        let buffer = threadReadBuffer()
        var rounds = 0
        while !destroyed && !isPaused && !readEnded {
            var n = 0
            if let t = transport {
                switch t.read(fd: fd, into: buffer, count: readBufferSize) {
                case .bytes(let k): n = k
                case .wouldBlock: return
                case .endOfStream: try handleEndOfStream(); return
                case .failed(let e): destroy(e); return
                }
            } else {
                let r: Int?
                do { r = try Sys.readNonBlocking(fd, buffer, readBufferSize) } catch {
                    destroy(NetError(error, syscall: "read", asyncID: context.asyncID))
                    return
                }
                guard let r else { return }
                if r == 0 { try handleEndOfStream(); return }
                n = r
            }
            bytesRead += n
            touch()
            let data = [UInt8](UnsafeRawBufferPointer(start: buffer, count: n))
            try dataListeners.emit(data)
            rounds += 1
            // A short read drained the socket; a transport may still hold input epoll cannot see.
            if rounds >= 32 { return }
            if let t = transport {
                if !t.hasBufferedInput { return }
            } else if n < readBufferSize {
                return
            }
        }
    }

    /// The peer ended: 'end' on a nextTick, as Node's stream emits it (endReadableNT), then the writing
    /// side ends too unless allowHalfOpen (or the socket is destroyed when it already had).
    func handleEndOfStream() throws {
        readEnded = true
        updateInterest()
        loop.nextTick { [self] in
            // As Node's endReadableNT: no 'end' once destroyed with an error (a plain destroy still has one
            // before its close).
            if errored { return }
            try endListeners.emit(())
            if destroyed { return }
            if writeFinished {
                destroy()
            } else if !allowHalfOpen {
                end()
            }
        }
    }

    /// Stops reading ('data' stops) until `resume`.
    @discardableResult
    public func pause() -> Socket {
        isPaused = true
        updateInterest()
        return self
    }

    /// Reads again after `pause()`.
    @discardableResult
    public func resume() -> Socket {
        isPaused = false
        updateInterest()
        return self
    }

    // MARK: writing

    /// Writes `data`; false when the queue is at or past `highWaterMark` ('drain' follows once it empties).
    /// `callback` runs once the bytes are handed to the kernel (or with the error that stopped them).
    @discardableResult
    public func write(_ data: [UInt8], _ callback: ((NetError?) throws -> Void)? = nil) -> Bool {
        if destroyed || ending {
            let err = NetError(
                code: destroyed ? "ERR_STREAM_DESTROYED" : "ERR_STREAM_WRITE_AFTER_END", syscall: "write",
                asyncID: context.asyncID, message: destroyed ? "Cannot call write after a stream was destroyed" : "write after end")
            if let callback { loop.nextTick { try callback(err) } }
            if !destroyed { destroy(err) }
            return false
        }
        if data.isEmpty {
            if let callback { loop.nextTick { try callback(nil) } }
            return true
        }
        if connecting || handshaking || writableLength > 0 || fd < 0 {
            enqueue(data, from: 0, callback)
            return writableLength < highWaterMark
        }
        let result = sendNow(data)
        switch result {
        case .bytes(let n):
            bytesWritten += n
            touch()
            if n == data.count {
                if let callback { loop.nextTick { try callback(nil) } }
                return true
            }
            enqueue(data, from: n, callback)
        case .wouldBlock:
            enqueue(data, from: 0, callback)
        case .endOfStream, .failed:
            let err: NetError
            if case .failed(let e) = result {
                err = e
            } else {
                err = NetError(code: "EPIPE", errno: EPIPE, syscall: "write", asyncID: context.asyncID, message: "write EPIPE")
            }
            if let callback { loop.nextTick { try callback(err) } }
            destroy(err)
            return false
        }
        return writableLength < highWaterMark
    }

    /// Writes a string as UTF-8.
    @discardableResult
    public func write(_ string: String, _ callback: ((NetError?) throws -> Void)? = nil) -> Bool {
        write(Array(string.utf8), callback)
    }

    @inline(__always)
    func sendNow(_ data: [UInt8]) -> TransportResult {
        data.withUnsafeBytes { raw in
            if let t = transport { return t.write(fd: fd, from: raw.baseAddress!, count: raw.count) }
            do throws(SystemError) {
                guard let n = try Sys.sendNonBlocking(fd, raw.baseAddress!, raw.count) else { return .wouldBlock(wantWrite: true) }
                return .bytes(n)
            } catch {
                return .failed(NetError(error, syscall: "write", asyncID: context.asyncID))
            }
        }
    }

    func enqueue(_ data: [UInt8], from offset: Int, _ callback: ((NetError?) throws -> Void)?) {
        let wasEmpty = writableLength == 0
        if chunks.isEmpty {
            chunks.append(data)
            headOffset = offset
        } else {
            chunks.append(offset == 0 ? data : Array(data[offset...]))
        }
        let n = data.count - offset
        writableLength += n
        queuedTotal += n
        let ctx = AsyncResourceContext(type: .writeWrap, triggerAsyncID: ioContext.asyncID)
        requests.append(WriteRequest(context: ctx, end: queuedTotal, callback: callback))
        if writableLength >= highWaterMark { needDrain = true }
        if wasEmpty { updateInterest() }
    }

    /// The fd is writable: send what is queued (under the oldest write request), then complete requests.
    func handleWritable() {
        guard let head = requests.first else { return }
        loop.invoke(head.context) { self.flush() }
        completeWrites()
    }

    func flush() {
        while writableLength > 0 && !destroyed {
            let result: TransportResult
            if transport == nil {
                result = sendQueuedVector()
            } else {
                let chunk = chunks[0]
                result = chunk.withUnsafeBytes { raw in
                    transport!.write(fd: fd, from: raw.baseAddress! + headOffset, count: raw.count - headOffset)
                }
            }
            switch result {
            case .bytes(let n):
                consume(n)
            case .wouldBlock(let wantWrite):
                if !wantWrite { handshakeWantsWrite = false }
                return
            case .endOfStream:
                destroy(NetError(code: "EPIPE", errno: EPIPE, syscall: "write", asyncID: context.asyncID, message: "write EPIPE"))
                return
            case .failed(let e):
                destroy(e)
                return
            }
        }
    }

    func sendQueuedVector() -> TransportResult {
        let count = min(chunks.count, 64)
        return withUnsafeTemporaryAllocation(of: iovec.self, capacity: count) { iov -> TransportResult in
            // The arrays stay alive in `chunks` for the duration of the call.
            for i in 0..<count {
                chunks[i].withUnsafeBytes { raw in
                    let skip = i == 0 ? headOffset : 0
                    iov[i] = iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress! + skip), iov_len: raw.count - skip)
                }
            }
            do throws(SystemError) {
                guard let n = try Sys.sendVector(fd, iov.baseAddress!, count) else { return .wouldBlock(wantWrite: true) }
                return .bytes(n)
            } catch {
                return .failed(NetError(error, syscall: "write", asyncID: context.asyncID))
            }
        }
    }

    func consume(_ n: Int) {
        var left = n
        writableLength -= n
        flushedTotal += n
        bytesWritten += n
        touch()
        while left > 0, let first = chunks.first {
            let remaining = first.count - headOffset
            if left >= remaining {
                left -= remaining
                chunks.removeFirst()
                headOffset = 0
            } else {
                headOffset += left
                left = 0
            }
        }
    }

    func completeWrites() {
        while let r = requests.first, r.end <= flushedTotal, !destroyed {
            requests.removeFirst()
            let drain = requests.isEmpty && needDrain
            if r.callback != nil || drain {
                loop.invoke(r.context) { [self] in
                    try r.callback?(nil)
                    if drain && !destroyed {
                        needDrain = false
                        try drainListeners.emit(())
                    }
                }
            }
            r.context.emitDestroy()
        }
        if destroyed { return }
        if writableLength == 0 {
            updateInterest()
            if ending { shutdownWriteSide() }
        }
    }

    // MARK: ending

    /// Ends the writing side once queued data is sent (shutdown, SHUTDOWNWRAP); 'finish' follows.
    /// Without allowHalfOpen the socket is destroyed once the peer has ended too.
    public func end(_ data: [UInt8]? = nil, _ callback: Callback? = nil) {
        if let data, !data.isEmpty { write(data) }
        if destroyed || ending { return }
        ending = true
        if let callback { finishListeners.add { _ in try callback() } }
        if !connecting && !handshaking && writableLength == 0 && fd >= 0 { shutdownWriteSide() }
    }

    /// `end` with the string's UTF-8 bytes.
    public func end(_ string: String) { end(Array(string.utf8)) }

    func shutdownWriteSide() {
        guard shutdownContext == nil, !writeFinished, !destroyed else { return }
        let sctx = AsyncResourceContext(type: .shutdownWrap, triggerAsyncID: ioContext.asyncID)
        shutdownContext = sctx
        transport?.shutdown(fd: fd)
        var failure: NetError?
        do { try Sys.shutdownWrite(fd) } catch {
            // ENOTCONN: the peer already reset; the read side reports that.
            if error.errno != ENOTCONN { failure = NetError(error, syscall: "shutdown", asyncID: context.asyncID) }
        }
        loop.retainRequest()
        loop.queuePending(sctx, destroyAfter: true) { [self] in
            loop.releaseRequest()
            shutdownContext = nil
            if destroyed { return }
            if let failure { destroy(failure); return }
            writeFinished = true
            try finishListeners.emit(())
            if readEnded && !destroyed { destroy() }
        }
    }

    /// Closes the socket now: 'error' (when `error` is given) follows on a nextTick, as in Node; queued
    /// writes fail and 'close' follows in the close phase (the handle's close callback), then the
    /// resource is destroyed. Destroying twice is harmless, as in Node.
    public func destroy(_ error: NetError? = nil) {
        if destroyed { return }
        destroyed = true
        if error != nil { errored = true }
        idleTimer?.clear()
        idleTimer = nil
        if let w = watcher {
            try? w.close()
            watcher = nil
        }
        if fd >= 0 {
            try? Sys.close(fd)
            fd = -1
        }
        transport?.close()
        transport = nil
        if let c = connectContext {
            connectContext = nil
            connecting = false
            c.emitDestroy()
        }
        let failed = requests
        requests = []
        chunks = []
        writableLength = 0
        server?.connectionClosed()
        server = nil
        let tctx = transportContext
        if let error {
            // Node's stream destroy: emitErrorNT on a nextTick; with no listener the error is uncaught
            // (Node ends the process before 'close').
            loop.nextTick { [self] in
                if errorListeners.isEmpty { throw error }
                try errorListeners.emit(error)
            }
        }
        loop.queueClose(context, destroyAfter: true) { [self] in
            let writeError =
                error
                ?? NetError(
                    code: "ERR_STREAM_DESTROYED", syscall: "write", asyncID: context.asyncID,
                    message: "Cannot call write after a stream was destroyed")
            for r in failed {
                if let cb = r.callback { loop.invoke(r.context) { try cb(writeError) } }
                r.context.emitDestroy()
            }
            tctx?.emitDestroy()
            try closeListeners.emit(error != nil)
            dropListeners()
        }
    }

    /// Breaks the closure cycles (listeners usually capture the socket).
    func dropListeners() {
        connectListeners = Listeners()
        dataListeners = Listeners()
        endListeners = Listeners()
        closeListeners = Listeners()
        errorListeners = Listeners()
        drainListeners = Listeners()
        timeoutListeners = Listeners()
        finishListeners = Listeners()
        onHandshakeDone = nil
    }

    // MARK: options

    /// Emits 'timeout' after `ms` without activity (0 disables). The socket stays open: the listener decides.
    /// After a 'timeout', the next activity starts a new countdown (as Node).
    @discardableResult
    public func setTimeout(_ ms: Int, _ callback: Callback? = nil) -> Socket {
        if let callback { timeoutListeners.add { _ in try callback() } }
        idleTimer?.clear()
        idleTimer = nil
        idleMs = max(0, ms)
        idleExpired = false
        if idleMs > 0 && !destroyed {
            lastActivity = loop.now
            armIdleTimer(idleMs)
        }
        return self
    }

    @inline(__always)
    func touch() {
        guard idleMs > 0 else { return }
        lastActivity = loop.now
        if idleExpired {
            idleExpired = false
            armIdleTimer(idleMs)
        }
    }

    func armIdleTimer(_ ms: Int) {
        idleTimer = loop.setTimeout(ms) { [self] in
            idleTimer = nil
            guard !destroyed, idleMs > 0 else { return }
            let idle = Int((loop.now &- lastActivity) / 1_000_000)
            if idle + 1 < idleMs {
                armIdleTimer(idleMs - idle)
                return
            }
            idleExpired = true
            try timeoutListeners.emit(())
        }.unref()
    }

    /// Disables (or enables) Nagle's algorithm (TCP_NODELAY); no effect on Unix sockets.
    @discardableResult
    public func setNoDelay(_ noDelay: Bool = true) -> Socket {
        if kind == .tcp && fd >= 0 { try? Sys.setSocketOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, noDelay ? 1 : 0) }
        return self
    }

    /// Turns TCP keep-alive on or off; `initialDelayMs` (whole seconds) before the first probe.
    @discardableResult
    public func setKeepAlive(_ enable: Bool = false, initialDelayMs: Int = 0) -> Socket {
        guard kind == .tcp && fd >= 0 else { return self }
        try? Sys.setSocketOption(fd, SOL_SOCKET, SO_KEEPALIVE, enable ? 1 : 0)
        if enable && initialDelayMs > 0 {
            try? Sys.setSocketOption(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, Int32(max(1, initialDelayMs / 1000)))
        }
        return self
    }

    /// An unref'd socket does not keep the loop alive.
    @discardableResult
    public func unref() -> Socket {
        hasRef = false
        watcher?.unref()
        return self
    }

    /// The socket keeps the loop alive again (the default).
    @discardableResult
    public func ref() -> Socket {
        hasRef = true
        watcher?.ref()
        return self
    }

    /// The local address (Node's `socket.address()`).
    public func address() -> SocketAddress? { fd >= 0 ? Sys.localAddress(fd) : nil }

    /// The socket's async id (TCPWRAP or PIPEWRAP).
    public var asyncID: AsyncID { context.asyncID }

    // MARK: listeners (Node's events)

    /// 'connect': the connection was established.
    @discardableResult public func onConnect(_ f: @escaping Callback) -> Socket { connectListeners.add { _ in try f() }; return self }
    /// 'data': `f` runs with each piece read.
    @discardableResult public func onData(_ f: @escaping ([UInt8]) throws -> Void) -> Socket { dataListeners.add(f); return self }
    /// 'end': the peer ended its side.
    @discardableResult public func onEnd(_ f: @escaping Callback) -> Socket { endListeners.add { _ in try f() }; return self }
    /// 'close', with whether it closed because of an error.
    @discardableResult public func onClose(_ f: @escaping (Bool) throws -> Void) -> Socket { closeListeners.add(f); return self }
    /// 'error': the connection failed (then 'close').
    @discardableResult public func onError(_ f: @escaping (NetError) throws -> Void) -> Socket { errorListeners.add(f); return self }
    /// 'drain': the write queue emptied after `write` returned false.
    @discardableResult public func onDrain(_ f: @escaping Callback) -> Socket { drainListeners.add { _ in try f() }; return self }
    /// 'timeout': the socket was idle for the timeout set with `setTimeout` (it stays open).
    @discardableResult public func onTimeout(_ f: @escaping Callback) -> Socket { timeoutListeners.add { _ in try f() }; return self }
    /// 'finish': our writing side was shut down after `end`.
    @discardableResult public func onFinish(_ f: @escaping Callback) -> Socket { finishListeners.add { _ in try f() }; return self }
}

// MARK: the read buffer

let readBufferSize = 64 * 1024

/// One read buffer per thread (libuv hands each read a buffer; data is copied out before the next read).
let readBufferKey: pthread_key_t = {
    var key = pthread_key_t()
    let rc = pthread_key_create(&key) { p in free(p) }
    precondition(rc == 0, "pthread_key_create failed: \(rc)")
    return key
}()

@inline(__always)
func threadReadBuffer() -> UnsafeMutableRawPointer {
    if let p = pthread_getspecific(readBufferKey) { return p }
    let p = malloc(readBufferSize)!
    pthread_setspecific(readBufferKey, p)
    return p
}
