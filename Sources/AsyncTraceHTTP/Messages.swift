// The two message objects: IncomingMessage (a request on the server, a response on the client) read
// as a stream, and OutgoingBody, the head + body writer shared by ServerResponse and ClientRequest.
import AsyncTraceRuntime
#if canImport(Glibc)
import Glibc
import AsyncHooks
#endif

/// Node's `http.IncomingMessage`. Attach `onData`/`onEnd` in the request or response callback: the body
/// streams as it arrives.
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

    var dataListeners: [([UInt8]) throws -> Void] = []
    var endListeners: [() throws -> Void] = []
    var abortedListeners: [() throws -> Void] = []

    init(head: HTTPHead, socket: Socket) {
        self.head = head
        self.socket = socket
    }

    /// 'data': `f` runs with each piece of the body as it arrives.
    @discardableResult public func onData(_ f: @escaping ([UInt8]) throws -> Void) -> IncomingMessage { dataListeners.append(f); return self }
    /// 'end': `f` runs once the whole body arrived.
    @discardableResult public func onEnd(_ f: @escaping () throws -> Void) -> IncomingMessage { endListeners.append(f); return self }
    /// The connection closed before the message was complete.
    @discardableResult public func onAborted(_ f: @escaping () throws -> Void) -> IncomingMessage { abortedListeners.append(f); return self }

    /// Collects the body and calls back once it is complete.
    public func readBody(_ f: @escaping ([UInt8]) throws -> Void) {
        var body: [UInt8] = []
        onData { body += $0 }
        onEnd { try f(body) }
    }

    func emitData(_ b: [UInt8]) throws { for f in dataListeners { try f(b) } }
    func emitEnd() throws {
        complete = true
        for f in endListeners { try f() }
        dataListeners = []
        endListeners = []
        abortedListeners = []
    }
    func emitAborted() throws {
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
        let lower = name.lowercased()
        headers.removeAll { $0.name.lowercased() == lower }
        headers.append((name, value))
    }

    /// The value of header `name` (case-insensitive), or nil.
    public func getHeader(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    /// Removes every header named `name` (case-insensitive).
    public func removeHeader(_ name: String) {
        let lower = name.lowercased()
        headers.removeAll { $0.name.lowercased() == lower }
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
        let l = finishListeners
        finishListeners = []
        for f in l { try? f() }
        didFinish()
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
