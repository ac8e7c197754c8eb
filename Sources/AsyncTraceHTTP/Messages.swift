// The two message objects: IncomingMessage (a request on the server, a response on the client) read
// as a stream, and OutgoingBody, the head + body writer shared by ServerResponse and ClientRequest.
import AsyncTraceRuntime
#if canImport(Glibc)
import Glibc
import AsyncHooks
#endif

/// Node's `http.IncomingMessage`. Attach `onData`/`onEnd` in the request or response callback: the body
/// streams as it arrives. A response (on the client) ends with 'close' as in Node v20: two nextTicks after
/// 'end', or after `destroy` (with 'aborted' first when the body was incomplete, and 'error' before
/// 'close' when destroyed with an error and someone listens for it). A server's request emits 'close' two
/// nextTicks after 'end' too (Node's autoDestroy), and when its connection closes first ('aborted' and an
/// ECONNRESET 'error' when it was incomplete).
public final class IncomingMessage {
    /// The start line and headers.
    public let head: HTTPHead
    /// The connection it arrived on.
    public let socket: Socket
    /// Requests: the method.
    public var method: String { head.method }
    /// Requests: the request target ("/path?query").
    public var url: String { head.target }
    /// "1.1" or "1.0".
    public var httpVersion: String { head.version }
    /// Responses: the status code.
    public var statusCode: Int { head.statusCode }
    /// Responses: the reason phrase.
    public var statusMessage: String { head.statusMessage }
    /// Header fields in arrival order, names as sent.
    public var headers: [(name: String, value: String)] { head.headers }
    /// The value of the first header named `name` (case-insensitive), or nil.
    public func header(_ name: String) -> String? { head.header(name) }
    /// The whole body was received.
    public internal(set) var complete = false

    /// The message was destroyed before it was complete ('aborted' was emitted).
    public private(set) var aborted = false
    /// `destroy` was called, or a response ended (Node's autoDestroy).
    public private(set) var destroyed = false
    /// 'end' was emitted (Node's readableEnded; `complete` is set when the parser saw the end, before).
    var ended = false
    /// 'data' goes out as it arrives (else it waits in `buffered` for the resume tick).
    var flowing = false
    var resumeScheduled = false
    /// Requests (Node's Readable kSync): no read reached the socket yet, so a body piece is buffered for
    /// the resume tick and the end waits for a tick (emitReadable's) instead of scheduling 'end' at once.
    var readSync = true
    /// Requests: 'end' is scheduled (Node's endReadable), once.
    var endScheduled = false
    /// Responses: the message completed while the resume tick was pending, so that tick schedules the
    /// request's end step and 'end' (Node's endReadable from resume_).
    weak var endsFromResume: ClientRequest?
    var buffered: [[UInt8]] = []
    /// The loop its ticks run on.
    let loop: EventLoop
    /// A response on the client (flows from its first 'data' listener on, closes after 'end'); else a
    /// server's request (its body is emitted as it arrives).
    let isResponse: Bool

    var dataListeners: [([UInt8]) throws -> Void] = []
    var endListeners: [() throws -> Void] = []
    var abortedListeners: [() throws -> Void] = []
    var errorListeners: [(NetError) throws -> Void] = []
    var closeListeners: [() throws -> Void] = []

    init(head: HTTPHead, socket: Socket, loop: EventLoop, isResponse: Bool) {
        self.head = head
        self.socket = socket
        self.loop = loop
        self.isResponse = isResponse
    }

    /// 'data': `f` runs with each piece of the body as it arrives.
    /// The message starts flowing on a nextTick after its first 'data' listener (Node's resume): the body
    /// that arrived with the head is emitted there, later pieces as they arrive.
    @discardableResult public func onData(_ f: @escaping ([UInt8]) throws -> Void) -> IncomingMessage {
        dataListeners.append(f)
        resume()
        return self
    }

    /// Node's `resume()`: the body flows from a nextTick on (to the 'data' listeners, if any), so that
    /// 'end' comes; a request nobody reads is resumed when its response finished (Node's `_dump`).
    public func resume() {
        if !flowing, !resumeScheduled {
            resumeScheduled = true
            loop.nextTick { [self] in try isResponse ? resumeResponse() : resumeRequest() }
        }
    }
    /// 'end': `f` runs once the whole body arrived.
    @discardableResult public func onEnd(_ f: @escaping () throws -> Void) -> IncomingMessage { endListeners.append(f); return self }
    /// The connection closed (or the message was destroyed) before the message was complete.
    @discardableResult public func onAborted(_ f: @escaping () throws -> Void) -> IncomingMessage { abortedListeners.append(f); return self }
    /// Responses: 'error', the error a destroy carried (ECONNRESET "aborted" when the connection closed
    /// before the body was complete); emitted only when someone listens, as in Node, right before 'close'.
    @discardableResult public func onError(_ f: @escaping (NetError) throws -> Void) -> IncomingMessage { errorListeners.append(f); return self }
    /// Responses: 'close', once, after 'end' or after a destroy (see the type's description).
    @discardableResult public func onClose(_ f: @escaping () throws -> Void) -> IncomingMessage { closeListeners.append(f); return self }

    /// Collects the body and calls back once it is complete.
    public func readBody(_ f: @escaping ([UInt8]) throws -> Void) {
        var body: [UInt8] = []
        onData { body += $0 }
        onEnd { try f(body) }
    }

    func emitData(_ b: [UInt8]) throws {
        if !flowing {
            buffered.append(b)
            return
        }
        for f in dataListeners { try f(b) }
    }

    /// Node's resume_: the buffered body goes out, then the message flows.
    func startFlowing() throws {
        guard !flowing else { return }
        flowing = true
        let pieces = buffered
        buffered = []
        for b in pieces { for f in dataListeners { try f(b) } }
    }

    /// A response's resume tick.
    func resumeResponse() throws {
        try startFlowing()
        if let request = endsFromResume {
            endsFromResume = nil
            loop.nextTick { try request.responseEnded() }
        }
    }
    // A server's request, as Node's Readable over the parser (push, onEofChunk, resume_, endReadable).

    /// The parser's body piece (Node's push): emitted at once while flowing, else kept for the resume tick.
    func pushRequestBody(_ b: [UInt8]) throws {
        if flowing && !readSync && buffered.isEmpty {
            for f in dataListeners { try f(b) }
        } else {
            buffered.append(b)
        }
    }

    /// The parser's end of the message (Node's push(null)).
    func pushRequestEnd() throws {
        complete = true
        if !readSync {
            // emitReadable_ runs now: what is buffered flows, then 'end' is scheduled.
            if flowing { try flushRequestBody() }
            scheduleRequestEnd()
        } else if !resumeScheduled && !flowing {
            // Node's emitReadable tick; a pending resume tick schedules 'end' itself (Node's emitReadable
            // tick then does nothing and is not made). Nobody resumed by then: Node would hold 'end' until
            // someone reads; the runtime ends the request there.
            loop.nextTick { [self] in
                if flowing { try flushRequestBody() }
                scheduleRequestEnd()
            }
        }
    }

    /// Node's resume_ tick.
    func resumeRequest() throws {
        resumeScheduled = false
        guard !destroyed else { return }
        flowing = true
        try flushRequestBody()
        if complete { scheduleRequestEnd() } else { readSync = false }
    }

    func flushRequestBody() throws {
        if buffered.isEmpty { return }
        let pieces = buffered
        buffered = []
        for b in pieces { for f in dataListeners { try f(b) } }
    }

    func scheduleRequestEnd() {
        if endScheduled { return }
        endScheduled = true
        loop.nextTick { [self] in try emitEnd() }
    }

    func emitEnd() throws {
        if destroyed && !isResponse { return }
        // Nobody started the flow (no 'data' listener yet): what arrived goes out before 'end' (Node would
        // hold 'end' until someone reads).
        try startFlowing()
        complete = true
        ended = true
        for f in endListeners { try f() }
        dataListeners = []
        endListeners = []
        abortedListeners = []
        // Node's autoDestroy after 'end': _destroy's nextTick, then the one that emits 'close'.
        if !destroyed {
            destroyed = true
            let loop = self.loop
            loop.nextTick { loop.nextTick { [self] in try emitClose(nil) } }
        }
    }

    /// Destroys the message (Node's `destroy(error)`): an incomplete one emits 'aborted' now and destroys
    /// its connection (with `error`); 'error' (when given and listened for) and 'close' follow on nextTicks
    /// as in Node v20 (three when the connection was still open, two when it was not). Destroying twice,
    /// or after a response's 'end', is harmless.
    public func destroy(_ error: NetError? = nil) {
        // A throwing 'aborted' listener: Swift's destroy cannot throw, so it is the next tick's uncaught error.
        do { try destroyNow(error) } catch { self.loop.nextTick { throw error } }
    }

    /// `destroy`, with an 'aborted' listener's error thrown to the caller.
    func destroyNow(_ error: NetError?) throws {
        guard !destroyed else { return }
        destroyed = true
        dataListeners = []
        endListeners = []
        buffered = []
        let abortedNow = !complete || !ended
        if abortedNow {
            aborted = true
            let l = abortedListeners
            abortedListeners = []
            for f in l { try f() }
        }
        let socketOpen = !socket.destroyed
        let loop = self.loop
        if socketOpen && abortedNow {
            socket.destroy(error)
            // Node waits for the socket's end (stream.finished: a nextTick), then _destroy's and the close's.
            loop.nextTick { loop.nextTick { loop.nextTick { [self] in try emitClose(error) } } }
        } else {
            loop.nextTick { loop.nextTick { [self] in try emitClose(error) } }
        }
    }

    func emitClose(_ error: NetError?) throws {
        let errors = errorListeners
        let closes = closeListeners
        errorListeners = []
        closeListeners = []
        if let error { for f in errors { try f(error) } }
        for f in closes { try f() }
    }

    /// Node's `_dump`: the rest of the body is read and dropped.
    func dump() {
        dataListeners = []
        buffered = []
        if isResponse { flowing = true } else { resume() }
    }
    func emitAborted() throws {
        aborted = true
        let l = abortedListeners
        dataListeners = []
        endListeners = []
        abortedListeners = []
        for f in l { try f() }
    }
}

/// Writes one message's head and body on a socket: Content-Length when the whole body is known at
/// `end`, chunked transfer coding when it is written in pieces (unless a Content-Length was set).
public class OutgoingMessage {
    /// The connection it is written on.
    public let socket: Socket
    var headers: [(name: String, value: String)] = []
    /// Whether the head was written (headers can no longer change).
    public private(set) var headersSent = false
    /// Whether `end` was called.
    public private(set) var finished = false
    var chunked = false
    var finishListeners: [() throws -> Void] = []

    init(socket: Socket) { self.socket = socket }

    /// Sets a header, replacing any with the same name (case-insensitive).
    public func setHeader(_ name: String, _ value: String) {
        headers.removeAll { $0.name.equalsIgnoringASCIICase(name) }
        headers.append((name, value))
    }

    /// The value of header `name` (case-insensitive), or nil.
    public func getHeader(_ name: String) -> String? {
        headers.first { $0.name.equalsIgnoringASCIICase(name) }?.value
    }

    /// Removes every header named `name` (case-insensitive).
    public func removeHeader(_ name: String) {
        headers.removeAll { $0.name.equalsIgnoringASCIICase(name) }
    }

    /// The start line ("HTTP/1.1 200 OK" or "GET / HTTP/1.1"); subclasses also add their default headers here.
    func prepareHead() -> String { "" }
    /// Called once the message is fully written.
    func didFinish() {}

    func headBytes(bodyLength: Int?) -> [UInt8] {
        if let bodyLength, getHeader("content-length") == nil, getHeader("transfer-encoding") == nil {
            headers.append(("Content-Length", String(bodyLength)))
        } else if bodyLength == nil, getHeader("content-length") == nil {
            chunked = true
            headers.append(("Transfer-Encoding", "chunked"))
        }
        var s = prepareHead()
        s += "\r\n"
        for (n, v) in headers {
            s += n
            s += ": "
            s += v
            s += "\r\n"
        }
        s += "\r\n"
        return Array(s.utf8)
    }

    /// Writes a piece of the body (the head goes first, chunked unless a Content-Length is set).
    @discardableResult
    public func write(_ data: [UInt8]) -> Bool {
        guard !finished else { return false }
        var out: [UInt8] = []
        if !headersSent {
            headersSent = true
            out = headBytes(bodyLength: nil)
        }
        if data.isEmpty { return out.isEmpty ? true : socket.write(out) }
        if chunked {
            out += Array(String(data.count, radix: 16).utf8) + [13, 10] + data + [13, 10]
        } else {
            out += data
        }
        return socket.write(out)
    }

    /// `write` of the string's UTF-8 bytes.
    @discardableResult
    public func write(_ s: String) -> Bool { write(Array(s.utf8)) }

    /// Ends the message, with an optional last piece of the body.
    public func end(_ data: [UInt8] = []) {
        guard !finished else { return }
        var out: [UInt8]
        if !headersSent {
            headersSent = true
            out = headBytes(bodyLength: data.count)
            out += data
        } else if chunked {
            out = data.isEmpty ? [] : Array(String(data.count, radix: 16).utf8) + [13, 10] + data + [13, 10]
            out += Array("0\r\n\r\n".utf8)
        } else {
            out = data
        }
        finished = true
        if !out.isEmpty { socket.write(out) }
        written()
    }

    /// The whole message was handed to the socket: 'finish', then `didFinish` (a `ServerResponse` defers
    /// both to the write's callback tick, as Node).
    func written() {
        emitFinish()
        didFinish()
    }

    func emitFinish() {
        let l = finishListeners
        finishListeners = []
        for f in l { try? f() }
    }

    /// `end` with the string's UTF-8 bytes.
    public func end(_ s: String) { end(Array(s.utf8)) }

    /// 'finish': the whole message was handed to the socket.
    public func onFinish(_ f: @escaping () throws -> Void) { finishListeners.append(f) }
}

/// Node's status texts for the common codes.
func statusText(_ code: Int) -> String {
    switch code {
    case 100: return "Continue"
    case 200: return "OK"
    case 201: return "Created"
    case 204: return "No Content"
    case 301: return "Moved Permanently"
    case 302: return "Found"
    case 304: return "Not Modified"
    case 400: return "Bad Request"
    case 401: return "Unauthorized"
    case 403: return "Forbidden"
    case 404: return "Not Found"
    case 405: return "Method Not Allowed"
    case 413: return "Payload Too Large"
    case 431: return "Request Header Fields Too Large"
    case 500: return "Internal Server Error"
    case 502: return "Bad Gateway"
    case 503: return "Service Unavailable"
    default: return "Unknown"
    }
}

/// The Date header value, formatted once per second.
enum HTTPDate {
    static let cache = LockedValue<(second: Int, text: String)>((-1, ""))

    static func now() -> String {
        var t = time(nil)
        return cache.withLock { c in
            if c.second == t { return c.text }
            var tm = tm()
            gmtime_r(&t, &tm)
            var buf = [CChar](repeating: 0, count: 64)
            let n = strftime(&buf, buf.count, "%a, %d %b %Y %H:%M:%S GMT", &tm)
            c = (t, String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self))
            return c.text
        }
    }
}
