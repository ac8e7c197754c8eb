// A minimal HTTP/1.1 client (Node's `http.request`): each request is an HTTPCLIENTREQUEST resource
// under which its response, body and errors run; an Agent keeps idle keep-alive connections (unref'd,
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
    var current: ClientRequest?

    init(agent: Agent, key: String, socket: Socket) {
        self.agent = agent
        self.key = key
        self.socket = socket
        socket.setNoDelay(true)
        socket.onData { [self] bytes in current?.receive(bytes) }
        socket.onEnd { [self] in current?.connectionEnded() }
        socket.onError { [self] e in current?.fail(e) }
        socket.onClose { [self] _ in
            current?.fail(NetError(code: "ECONNRESET", errno: ECONNRESET, syscall: "read", asyncID: socket.asyncID, message: "socket hang up"))
            current = nil
            self.agent?.remove(self)
        }
    }
}

/// Node's `http.ClientRequest`: write the body (or nothing), then `end()`; the response arrives as
/// an IncomingMessage. Errors (refused, reset, malformed response) arrive as 'error'.
public final class ClientRequest: OutgoingMessage {
    /// The request method ("GET", ...).
    public let method: String
    /// The request target ("/path?query").
    public let path: String
    /// The server's host.
    public let host: String
    /// The server's port.
    public let port: Int
    /// HTTPCLIENTREQUEST.
    public let context: AsyncResourceContext
    let connection: ClientConnection
    let loop: EventLoop
    let keepAliveRequested: Bool
    /// The response, once its head arrived.
    public private(set) var response: IncomingMessage?
    var done = false
    var responseListeners: [(IncomingMessage) throws -> Void] = []
    var errorListeners: [(NetError) throws -> Void] = []

    init(method: String, host: String, port: Int, path: String, headers: [(String, String)], agent: Agent, loop: EventLoop) {
        self.method = method
        self.path = path
        self.host = host
        self.port = port
        self.loop = loop
        self.keepAliveRequested = agent.keepAlive
        self.context = AsyncResourceContext(type: .httpClientRequest)
        // The connection (and a new socket's TCPWRAP) belongs to the request that opened it.
        let conn = context.runInScope { agent.acquire(host: host, port: port, loop: loop) }
        self.connection = conn
        super.init(socket: conn.socket)
        for (n, v) in headers { setHeader(n, v) }
        conn.current = self
        conn.parser.expectNoBody = method == "HEAD"
        conn.parser.paused = false
    }

    override func prepareHead() -> String {
        if getHeader("host") == nil { headers.insert(("Host", "\(host):\(port)"), at: 0) }
        if getHeader("connection") == nil { headers.append(("Connection", keepAliveRequested ? "keep-alive" : "close")) }
        return "\(method) \(path) HTTP/1.1"
    }

    func receive(_ bytes: [UInt8]) {
        loop.invoke(context) { [self] in
            do { try connection.parser.feed(bytes, handle) } catch let e as HTTPParseError {
                let err = NetError(code: e.code, syscall: "parse", asyncID: context.asyncID, message: "Parse Error: \(e.message)")
                connection.current = nil
                connection.socket.destroy()
                try emitError(err)
            }
        }
        if done { context.emitDestroy() }
    }

    func handle(_ event: HTTPParser.Event) throws {
        switch event {
        case .head(let head):
            let res = IncomingMessage(head: head, socket: connection.socket)
            response = res
            for f in responseListeners { try f(res) }
        case .body(let b):
            try response?.emitData(b)
        case .end:
            done = true
            connection.current = nil
            let serverClose = response?.header("connection")?.lowercased() == "close"
            if serverClose || !keepAliveRequested {
                connection.socket.end()
            } else {
                connection.agent?.release(connection)
            }
            try response?.emitEnd()
        }
    }

    /// The server ended the connection: a read-until-close body is complete, anything else was cut short.
    func connectionEnded() {
        loop.invoke(context) { [self] in
            let cut = try connection.parser.finish(handle)
            if !done && (cut || response == nil) {
                connection.current = nil
                try emitError(NetError(code: "ECONNRESET", errno: ECONNRESET, syscall: "read", asyncID: context.asyncID, message: "socket hang up"))
            }
        }
        if done { context.emitDestroy() }
    }

    func fail(_ e: NetError) {
        guard !done else { return }
        connection.current = nil
        loop.invoke(context) { [self] in
            let err = NetError(code: e.code, errno: e.errno, syscall: e.syscall, address: e.address, asyncID: context.asyncID, message: e.message)
            try emitError(err)
        }
        context.emitDestroy()
    }

    func emitError(_ e: NetError) throws {
        done = true
        if let r = response, !r.complete { try r.emitAborted() }
        if errorListeners.isEmpty { throw e }
        for f in errorListeners { try f(e) }
    }

    /// 'response': `f` runs with the response once its head arrived (in the request's scope).
    @discardableResult public func onResponse(_ f: @escaping (IncomingMessage) throws -> Void) -> ClientRequest {
        responseListeners.append(f); return self
    }
    /// 'error': `f` runs on a refused or reset connection or a malformed response; without a listener
    /// it is thrown as an uncaught error of the request's callback.
    @discardableResult public func onError(_ f: @escaping (NetError) throws -> Void) -> ClientRequest { errorListeners.append(f); return self }

    /// The request's async id (its HTTPCLIENTREQUEST resource).
    public var asyncID: AsyncID { context.asyncID }
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
