// A minimal HTTP/1.1 server (Node's `http.Server`): keep-alive, Content-Length and chunked bodies,
// requests in order on a connection (a pipelined request waits until the previous response ended).
// Each connection's parser is an HTTPINCOMINGMESSAGE resource (trigger: the socket); the request
// handler and the request body events run under it, as in Node.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import AsyncTraceRuntime

/// Node's `http.Server`: HTTP/1.1 with keep-alive, Content-Length and chunked bodies, requests of a
/// connection in order. Each connection's parser is an HTTPINCOMINGMESSAGE resource (trigger: the socket)
/// under which the request handler and the body events run.
public final class HTTPServer {
    /// The TCP server underneath.
    public let server: Server
    let loop: EventLoop
    var requestListeners: [(IncomingMessage, ServerResponse) throws -> Void] = []
    /// An idle keep-alive connection is closed after this long (Node's `server.keepAliveTimeout`; 0: never).
    public var keepAliveTimeoutMs = 5000
    var clientErrorListeners: [(NetError, Socket) throws -> Void] = []

    /// Node's `http.createServer(handler)`.
    public init(loop: EventLoop = .current, _ onRequest: ((IncomingMessage, ServerResponse) throws -> Void)? = nil) {
        self.loop = loop
        server = Server(loop: loop)
        if let onRequest { requestListeners.append(onRequest) }
        server.onConnection { [self] socket in _ = ServerConnection(http: self, socket: socket) }
    }

    /// Starts listening on `host`:`port` (0: any free port; see `address()`); `onListening` runs once it listens.
    @discardableResult
    public func listen(port: Int = 0, host: String = "0.0.0.0", _ onListening: Callback? = nil) -> HTTPServer {
        server.listen(port: port, host: host, onListening)
        return self
    }

    /// Stops accepting connections; `callback` runs once the server closed.
    public func close(_ callback: ((NetError?) throws -> Void)? = nil) { server.close(callback) }
    /// The bound address, nil before `listen` took effect.
    public func address() -> SocketAddress? { server.address() }

    /// 'request': `f` runs for each request, with the response to write.
    @discardableResult public func onRequest(_ f: @escaping (IncomingMessage, ServerResponse) throws -> Void) -> HTTPServer {
        requestListeners.append(f); return self
    }
    /// A malformed request (HPE_* code, the parser's async id). Without a listener the server answers
    /// 400 (431 for oversized headers) and closes the connection, as Node does.
    @discardableResult public func onClientError(_ f: @escaping (NetError, Socket) throws -> Void) -> HTTPServer {
        clientErrorListeners.append(f); return self
    }
    /// 'error': the listening socket failed.
    @discardableResult public func onError(_ f: @escaping (NetError) throws -> Void) -> HTTPServer { server.onError(f); return self }
    /// 'close': the server closed.
    @discardableResult public func onClose(_ f: @escaping Callback) -> HTTPServer { server.onClose(f); return self }
}

final class ServerConnection {
    let http: HTTPServer
    let socket: Socket
    let parser = HTTPParser(.request)
    let context: AsyncResourceContext
    /// The request being answered (Node's `state.incoming`): until its response finished, it is destroyed
    /// when the connection closes.
    var request: IncomingMessage?
    var response: ServerResponse?
    /// The parser is inside a message's body (the next message waits for this one and its response).
    var inBody = false
    /// A head parsed but not handled yet: the request handler runs in the callback of the next body piece
    /// or end (Node runs the head's callback without draining the ticks, each body piece and the end as
    /// their own callbacks, so ticks the handler queued run after the first piece was pushed).
    var pendingHead: HTTPHead?
    var parsing = false
    var closed = false

    init(http: HTTPServer, socket: Socket) {
        self.http = http
        self.socket = socket
        context = AsyncResourceContext(type: .httpIncomingMessage, triggerAsyncID: socket.asyncID)
        socket.onData { [self] bytes in receive(bytes) }
        socket.onError { _ in }  // a reset client only ends its connection
        if http.keepAliveTimeoutMs > 0 {
            // Idle means no request in progress; a slow handler is not cut off (no request timeout here).
            socket.setTimeout(http.keepAliveTimeoutMs) { [self] in
                if !inBody && response == nil { socket.destroy() }
            }
        }
        socket.onClose { [self] _ in
            // Node's abortIncoming, then the response's close (onServerResponseClose), both in the
            // socket's close callback: 'aborted' now if incomplete, 'error' (ECONNRESET "aborted") and
            // 'close' two ticks later.
            closed = true
            let req = request, res = response
            request = nil
            response = nil
            if let req {
                try req.destroyNow(NetError(code: "ECONNRESET", errno: ECONNRESET, syscall: "read", asyncID: context.asyncID, message: "aborted"))
            }
            try res?.emitClose()
            context.emitDestroy()
        }
    }

    func receive(_ bytes: [UInt8]) {
        parse { try parser.feed(bytes, handle) }
    }

    /// Runs the parser; each body piece and end is its own callback of the parser's resource, as in Node.
    func parse(_ run: () throws -> Void) {
        parsing = true
        defer { parsing = false }
        do {
            try run()
        } catch let e as HTTPParseError {
            http.loop.invoke(context) { [self] in
                if let head = pendingHead { try handleHead(head) }
                pendingHead = nil
                try clientError(e)
            }
            return
        } catch {
            // (handle throws only parse errors: listener errors are reported by its invoke)
        }
        if let head = pendingHead {
            pendingHead = nil
            http.loop.invoke(context) { [self] in try handleHead(head) }
        }
    }

    func handle(_ event: HTTPParser.Event) {
        if case .head(let head) = event {
            pendingHead = head
            return
        }
        http.loop.invoke(context) { [self] in
            if let head = pendingHead {
                pendingHead = nil
                try handleHead(head)
            }
            switch event {
            case .head: break
            case .body(let b):
                try request?.pushRequestBody(b)
            case .end:
                inBody = false
                try request?.pushRequestEnd()
                // The response already went out: go on with the next request.
                if response == nil && !closed { parser.paused = false }
            }
        }
    }

    func handleHead(_ head: HTTPHead) throws {
        let req = IncomingMessage(head: head, socket: socket, loop: http.loop, isResponse: false)
        let connection = head.header("connection")
        let keepAlive =
            head.version == "1.1"
            ? connection?.equalsIgnoringASCIICase("close") != true : connection?.equalsIgnoringASCIICase("keep-alive") == true
        let res = ServerResponse(connection: self, keepAlive: keepAlive)
        request = req
        response = res
        inBody = true
        for f in http.requestListeners { try f(req, res) }
    }

    func clientError(_ e: HTTPParseError) throws {
        let err = NetError(code: e.code, syscall: "parse", asyncID: context.asyncID, message: "Parse Error: \(e.message)")
        if http.clientErrorListeners.isEmpty {
            let status = e.code == "HPE_HEADER_OVERFLOW" ? 431 : 400
            socket.end(Array("HTTP/1.1 \(status) \(statusText(status))\r\nConnection: close\r\n\r\n".utf8))
            return
        }
        for f in http.clientErrorListeners { try f(err, socket) }
    }

    /// Node's resOnFinish (on the response's write callback tick, before the user's 'finish'): a request
    /// nobody read is dumped, the response's 'close' goes on a tick, then the connection ends or goes on.
    func responseFinished(_ res: ServerResponse, keepAlive: Bool) {
        if let req = request {
            if !req.flowing && !req.ended { req.dump() }
            request = nil
        }
        response = nil
        http.loop.nextTick { try res.emitClose() }
        if !keepAlive || closed {
            socket.end()
            return
        }
        // Parse the next request once this one's body was read too (inside the parser's callback, as
        // when the response finished in the end's ticks, the parser goes on by itself).
        if !inBody && parser.paused {
            if parsing { parser.paused = false } else { parse { try parser.resume(handle) } }
        }
    }
}

/// Node's `http.ServerResponse`.
public final class ServerResponse: OutgoingMessage {
    /// The status code the head will carry (default 200).
    public var statusCode = 200
    /// The reason phrase (nil: the standard one for `statusCode`).
    public var statusMessage: String?
    let keepAlive: Bool
    weak var connection: ServerConnection?
    var closeListeners: [() throws -> Void] = []
    /// 'close' was emitted.
    var closed = false

    init(connection: ServerConnection, keepAlive: Bool) {
        self.connection = connection
        self.keepAlive = keepAlive
        super.init(socket: connection.socket)
    }

    /// Sets the status and headers the head will carry (sent with the first write or `end`).
    public func writeHead(_ status: Int, _ headers: [(String, String)] = []) {
        statusCode = status
        for (n, v) in headers { setHeader(n, v) }
    }

    override func prepareHead() -> String {
        if getHeader("date") == nil { headers.append(("Date", HTTPDate.now())) }
        if getHeader("connection") == nil {
            headers.append(("Connection", keepAlive ? "keep-alive" : "close"))
            if keepAlive { headers.append(("Keep-Alive", "timeout=5")) }
        }
        return "HTTP/1.1 \(statusCode) \(statusMessage ?? statusText(statusCode))"
    }

    /// 'close': once, after 'finish' (a nextTick later) or when the connection closed before.
    @discardableResult public func onClose(_ f: @escaping () throws -> Void) -> ServerResponse { closeListeners.append(f); return self }

    /// Node: 'finish' runs in the socket write's callback, a nextTick after `end`, after the server's
    /// own listener (resOnFinish).
    override func written() {
        guard let loop = connection?.http.loop else { return super.written() }
        loop.nextTick { [self] in
            didFinish()
            emitFinish()
        }
    }

    override func didFinish() {
        let close = getHeader("connection")?.equalsIgnoringASCIICase("close") == true
        connection?.responseFinished(self, keepAlive: keepAlive && !close)
    }

    func emitClose() throws {
        if closed { return }
        closed = true
        let l = closeListeners
        closeListeners = []
        for f in l { try f() }
    }
}
