// A minimal HTTP/1.1 client (Node's `http.request`): each request is an HTTPCLIENTREQUEST resource
// under which its response and body run ('error' and 'close' run where Node emits them: the socket's
// ticks and close phase, or the request's own ticks); an Agent keeps idle keep-alive connections (unref'd,
// as Node's agent does) for reuse.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import AsyncTraceRuntime

/// Keeps idle connections per host:port (Node's `http.Agent`; keep-alive by default, as in Node 20).
public final class Agent {
    /// Whether connections are kept open for reuse after a response (Node 20's default: true).
    public let keepAlive: Bool
    var free: [String: [ClientConnection]] = [:]

    /// An agent with no connections yet.
    public init(keepAlive: Bool = true) { self.keepAlive = keepAlive }

    /// This thread's default agent.
    public static var current: Agent {
        if let p = pthread_getspecific(agentKey) { return Unmanaged<Agent>.fromOpaque(p).takeUnretainedValue() }
        let a = Agent()
        pthread_setspecific(agentKey, Unmanaged.passRetained(a).toOpaque())
        return a
    }

    func acquire(host: String, port: Int, loop: EventLoop) -> ClientConnection {
        let key = "\(host):\(port)"
        while var list = free[key], let c = list.popLast() {
            free[key] = list
            if c.socket.destroyed || c.socket.readEnded || c.socket.ending { continue }
            c.socket.ref()
            return c
        }
        return ClientConnection(agent: self, key: key, socket: Socket.connect(port: port, host: host, loop: loop))
    }

    func release(_ c: ClientConnection) {
        guard keepAlive, !c.socket.destroyed, !c.socket.readEnded else {
            c.socket.end()
            return
        }
        c.socket.unref()
        free[c.key, default: []].append(c)
    }

    func remove(_ c: ClientConnection) {
        free[c.key]?.removeAll { $0 === c }
    }

    /// Closes every idle connection.
    public func destroy() {
        let all = free.values.flatMap { $0 }
        free = [:]
        for c in all { c.socket.destroy() }
    }
}

let agentKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key) { p in Unmanaged<Agent>.fromOpaque(p!).release() }
    return key
}()

final class ClientConnection {
    weak var agent: Agent?
    let key: String
    let socket: Socket
    let parser = HTTPParser(.response)
    /// The request the socket's events go to (Node's `socket._httpMessage` with its listeners).
    var current: ClientRequest?
    /// Requests this connection carried (more than one: it was reused from the agent's idle list).
    var requests = 0

    init(agent: Agent, key: String, socket: Socket) {
        self.agent = agent
        self.key = key
        self.socket = socket
        socket.setNoDelay(true)
        socket.onData { [self] bytes in current?.receive(bytes) }
        socket.onEnd { [self] in try current?.socketEnded() }
        socket.onError { [self] e in try current?.socketError(e) }
        socket.onClose { [self] _ in
            let request = current
            current = nil
            self.agent?.remove(self)
            try request?.socketClosed()
        }
    }
}

/// Node's `http.ClientRequest`: write the body (or nothing), then `end()`; the response arrives as
/// an IncomingMessage. As in Node v20, a failure (refused, reset, hang-up, malformed response,
/// `destroy(error)`) arrives as 'error' and every request ends with one 'close': on a nextTick after the
/// response ended when its connection stays open for reuse, else in the close phase when the connection
/// closed; a request destroyed before its socket was assigned reports both on the nextTick that assigns it.
public final class ClientRequest: OutgoingMessage {
    /// The request method ("GET", ...).
    public let method: String
    /// The request target ("/path?query").
    public let path: String
    /// The server's host.
    public let host: String
    /// The server's port.
    public let port: Int
    /// HTTPCLIENTREQUEST, made on the nextTick that assigns the request its socket (so triggered by that
    /// TickObject), as Node's; nil before it, and for a request destroyed before it (Node makes none).
    public private(set) var context: AsyncResourceContext?
    let connection: ClientConnection
    let loop: EventLoop
    let keepAliveRequested: Bool
    let reusedConnection: Bool
    /// The response, once its head arrived.
    public private(set) var response: IncomingMessage?
    /// `destroy` was called, the connection closed or the response ended (Node's `req.destroyed`).
    public private(set) var destroyed = false
    /// Node's socket assignment (onSocketNT) ran: a destroy now goes through the socket.
    var socketAssigned = false
    /// An 'error' was emitted (Node's `socket._hadError`): no 'socket hang up' after it.
    var hadError = false
    var closed = false
    /// `end` ran before the socket was assigned: 'finish' is scheduled from the assigning tick.
    var finishPending = false
    var destroyError: NetError?
    var responseListeners: [(IncomingMessage) throws -> Void] = []
    var errorListeners: [(NetError) throws -> Void] = []
    var closeListeners: [() throws -> Void] = []

    init(method: String, host: String, port: Int, path: String, headers: [(String, String)], agent: Agent, loop: EventLoop) {
        self.method = method
        self.path = path
        self.host = host
        self.port = port
        self.loop = loop
        self.keepAliveRequested = agent.keepAlive
        // As in Node, a new socket's TCPWRAP is triggered by the caller (the agent opens it in the request's
        // constructor, before the request's own resource).
        let conn = agent.acquire(host: host, port: port, loop: loop)
        self.connection = conn
        conn.requests += 1
        reusedConnection = conn.requests > 1
        super.init(socket: conn.socket)
        for (n, v) in headers { setHeader(n, v) }
        conn.current = self
        conn.parser.expectNoBody = method == "HEAD"
        conn.parser.paused = false
        // Node gives the request its socket on a nextTick (ClientRequest.onSocket); a request destroyed
        // before then reports its 'error' and 'close' there.
        loop.nextTick { [self] in try assignSocket() }
    }

    override func prepareHead() -> String {
        if getHeader("host") == nil { headers.insert(("Host", "\(host):\(port)"), at: 0) }
        if getHeader("connection") == nil { headers.append(("Connection", keepAliveRequested ? "keep-alive" : "close")) }
        return "\(method) \(path) HTTP/1.1"
    }

    /// Node's onSocketNT.
    func assignSocket() throws {
        socketAssigned = true
        guard destroyed else {
            _ = resource
            // Node flushes the request's output here: 'finish' once the socket took it.
            if finishPending {
                finishPending = false
                finishOnceWritten()
            }
            return
        }
        if connection.current === self { connection.current = nil }
        // An idle connection the request never wrote on goes back to the agent, else it closes (Node:
        // the socket's 'free', which the agent answers so).
        if reusedConnection && !headersSent {
            connection.agent?.release(connection)
        } else {
            connection.socket.destroy()
        }
        try endWithError(destroyError ?? hangUp())
    }

    /// 'error' (unless one was emitted), then 'close'. An 'error' nobody listens to is thrown (the
    /// delivering callback's uncaught error) and, as in Node, no 'close' follows; the resource ends anyway.
    func endWithError(_ error: NetError?) throws {
        if let error, !hadError {
            hadError = true
            do { try emitError(error) } catch {
                closed = true
                context?.emitDestroy()
                throw error
            }
        }
        try emitCloseAndDestroy()
    }

    /// 'close', then the request's resource ends.
    func emitCloseAndDestroy() throws {
        guard !closed else { return }
        closed = true
        destroyed = true
        defer { context?.emitDestroy() }
        let listeners = closeListeners
        closeListeners = []
        for f in listeners { try f() }
    }

    /// Node: 'finish' comes from the socket write's callback, so only once the request has its socket
    /// (the assigning tick) and the socket took the bytes: in the connect callback while it is connecting,
    /// else on a nextTick (afterWriteTick) after the write.
    override func written() {
        if !socketAssigned {
            finishPending = true
        } else {
            finishOnceWritten()
        }
    }

    func finishOnceWritten() {
        let socket = connection.socket
        if socket.connecting {
            socket.onConnect { [self] in
                if !destroyed { finishNow() }
            }
        } else {
            loop.nextTick { [self] in
                if !destroyed { finishNow() }
            }
        }
    }

    func finishNow() {
        emitFinish()
        didFinish()
    }

    func hangUp() -> NetError {
        NetError(code: "ECONNRESET", errno: ECONNRESET, syscall: "read", asyncID: asyncID, message: "socket hang up")
    }

    func receive(_ bytes: [UInt8]) {
        loop.invoke(resource) { [self] in
            do { try connection.parser.feed(bytes, handle) } catch let e as HTTPParseError {
                // Node's socketOnData: the socket is destroyed and the request gets the error at once;
                // 'close' follows when the socket closed.
                let err = NetError(code: e.code, syscall: "parse", asyncID: asyncID, message: "Parse Error: \(e.message)")
                connection.socket.destroy()
                hadError = true
                try emitError(err)
            }
        }
    }

    func handle(_ event: HTTPParser.Event) throws {
        switch event {
        case .head(let head):
            let res = IncomingMessage(head: head, socket: connection.socket, loop: loop, isResponse: true)
            response = res
            for f in responseListeners { try f(res) }
        case .body(let b):
            try response?.emitData(b)
        case .end:
            // Complete now; 'end' on a nextTick, as Node's stream emits it (endReadableNT), where Node's
            // own 'end' listener (responseOnEnd) runs first.
            // While the response's resume tick is pending (its first read has not run), that tick
            // schedules it, as Node's resume_ does.
            response?.complete = true
            if let res = response, res.resumeScheduled && !res.flowing {
                res.endsFromResume = self
            } else {
                loop.nextTick { [self] in try responseEnded() }
            }
        }
    }

    /// Node's responseOnEnd, then the response's 'end'.
    func responseEnded() throws {
        let serverClose = response?.header("connection")?.equalsIgnoringASCIICase("close") == true
        if serverClose || !keepAliveRequested {
            // destroySoon: the socket ends and is destroyed once finished; 'close' comes with the socket's.
            let socket = connection.socket
            socket.end(nil) { socket.destroy() }
        } else if !destroyed {
            // Node's responseKeepAlive: the socket leaves the request now, which closes on a nextTick
            // (emitFreeNT, triggered by the socket) that then hands the socket back to the agent.
            destroyed = true
            if connection.current === self { connection.current = nil }
            loop.nextTick(triggeredBy: connection.socket.asyncID) { [self] in
                defer { connection.agent?.release(connection) }
                try emitCloseAndDestroy()
            }
        }
        try response?.emitEnd()
    }

    /// Node's socketOnEnd: a read-until-close body is complete; without a response the request gets
    /// 'socket hang up'; the socket is destroyed ('close' follows with the socket's).
    func socketEnded() throws {
        loop.invoke(resource) { [self] in _ = try connection.parser.finish(handle) }
        defer { connection.socket.destroy() }
        if response == nil && !hadError {
            hadError = true
            try emitError(hangUp())
        }
    }

    /// Node's socketErrorListener: the socket's 'error' (on its nextTick) is the request's.
    func socketError(_ e: NetError) throws {
        hadError = true
        try emitError(NetError(code: e.code, errno: e.errno, syscall: e.syscall, address: e.address, asyncID: asyncID, message: e.message))
    }

    /// Node's socketCloseListener (close phase): an unfinished response is destroyed ('aborted' now,
    /// its 'error' and 'close' on nextTicks); without a response the request gets 'socket hang up' unless
    /// it had an error; then the request's 'close'.
    func socketClosed() throws {
        destroyed = true
        if let res = response {
            if !res.complete {
                try res.destroyNow(NetError(code: "ECONNRESET", errno: ECONNRESET, syscall: "read", asyncID: asyncID, message: "aborted"))
            }
            try emitCloseAndDestroy()
        } else {
            try endWithError(hadError ? nil : hangUp())
        }
    }

    func emitError(_ e: NetError) throws {
        if errorListeners.isEmpty { throw e }
        for f in errorListeners { try f(e) }
    }

    /// Ends the request now (Node's `req.destroy(error)`): the connection is destroyed, 'error' (with
    /// `error`, or 'socket hang up' when no response had arrived) and 'close' follow as in Node — on the
    /// nextTick that would have assigned the socket when called before it, else with the socket's own
    /// 'error' tick and close phase. A response still arriving is dropped. Destroying twice is harmless.
    public func destroy(_ error: NetError? = nil) {
        guard !destroyed else { return }
        destroyed = true
        response?.dump()
        destroyError = error
        if socketAssigned { connection.socket.destroy(error) }
    }

    /// 'response': `f` runs with the response once its head arrived (in the request's scope).
    @discardableResult public func onResponse(_ f: @escaping (IncomingMessage) throws -> Void) -> ClientRequest {
        responseListeners.append(f); return self
    }
    /// 'error': `f` runs on a refused or reset connection, a hang-up, a malformed response or
    /// `destroy(error)`; without a listener it is thrown as an uncaught error of the callback that delivers it.
    @discardableResult public func onError(_ f: @escaping (NetError) throws -> Void) -> ClientRequest { errorListeners.append(f); return self }
    /// 'close': `f` runs once when the request is over (see the type's description for when).
    @discardableResult public func onClose(_ f: @escaping () throws -> Void) -> ClientRequest { closeListeners.append(f); return self }

    /// The request's async id (its HTTPCLIENTREQUEST resource); `AsyncID.none` before the socket-assigning
    /// tick made it.
    public var asyncID: AsyncID { context?.asyncID ?? .none }

    /// The HTTPCLIENTREQUEST, made now if the assigning tick has not run (a callback can only come after it).
    var resource: AsyncResourceContext {
        if let context { return context }
        let made = AsyncResourceContext(type: .httpClientRequest)
        context = made
        return made
    }
}

/// Node's `http` module functions.
public enum HTTP {
    /// Node's `http.request`: call `end()` (after writing a body, if any) to send it.
    public static func request(
        method: String = "GET", host: String = "127.0.0.1", port: Int, path: String = "/",
        headers: [(String, String)] = [], agent: Agent? = nil, loop: EventLoop = .current,
        _ onResponse: ((IncomingMessage) throws -> Void)? = nil
    ) -> ClientRequest {
        let req = ClientRequest(
            method: method, host: host, port: port, path: path, headers: headers,
            agent: agent ?? .current, loop: loop)
        if let onResponse { req.onResponse(onResponse) }
        return req
    }

    /// Node's `http.get`: a GET sent at once.
    @discardableResult
    public static func get(
        host: String = "127.0.0.1", port: Int, path: String = "/", headers: [(String, String)] = [],
        agent: Agent? = nil, loop: EventLoop = .current,
        _ onResponse: ((IncomingMessage) throws -> Void)? = nil
    ) -> ClientRequest {
        let req = request(method: "GET", host: host, port: port, path: path, headers: headers, agent: agent, loop: loop, onResponse)
        req.end()
        return req
    }

    /// Node's `http.createServer`: a server (not listening yet) calling `onRequest` for each request.
    public static func createServer(loop: EventLoop = .current, _ onRequest: ((IncomingMessage, ServerResponse) throws -> Void)? = nil) -> HTTPServer
    {
        HTTPServer(loop: loop, onRequest)
    }
}
