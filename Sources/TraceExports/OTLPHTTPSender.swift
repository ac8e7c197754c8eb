// `export --otlp-endpoint`: each batch of spans POSTed to an OTLP/HTTP receiver (an OpenTelemetry Collector's
// otlp receiver, Jaeger, Tempo) as application/x-protobuf, over one keep-alive HTTP/1.1 connection.
// Retries (bounded): connection failures, 429, 502, 503 and 504, with exponential backoff from 100 ms
// (Retry-After honoured up to 30 s), at most `maxAttempts` tries and `maxRetryMs` of waiting per request.

/// A validated `http://host[:port][/path]` (the endpoint is an argument: it may be crafted).
public struct OTLPEndpoint: Sendable, CustomStringConvertible {
    /// The host name or address (IPv6 without brackets).
    public let host: String
    /// The port (default 4318).
    public let port: UInt16
    /// The request path (default "/v1/traces").
    public let path: String

    public var description: String {
        "http://" + (host.contains(":") ? "[\(host)]" : host) + ":\(port)" + path
    }

    /// OTLP/HTTP's default port and traces path: `http://host` alone means `http://host:4318/v1/traces`.
    public static let defaultPort: UInt16 = 4318

    /// Parses `text` as `http://host[:port][/path]`; throws, saying why, for anything else (https, user
    /// names, fragments, bad hosts or ports, control characters, more than 2048 bytes).
    public init(parsing text: String) throws(ExportError) {
        let hint = "give an OTLP/HTTP endpoint such as http://127.0.0.1:4318 (path /v1/traces is added when none is given)"
        guard text.utf8.count <= 2048 else { throw ExportError("--otlp-endpoint is longer than 2048 bytes; \(hint)") }
        guard text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw ExportError(
                "--otlp-endpoint '\(text.unicodeScalars.map { $0.value > 0x20 && $0.value < 0x7F ? String($0) : "?" }.joined())' "
                    + "contains spaces, control or non-ASCII characters; \(hint)")
        }
        if text.lowercased().hasPrefix("https://") {
            throw ExportError(
                "--otlp-endpoint \(text): https is not supported; send to a local OpenTelemetry Collector over http "
                    + "(http://127.0.0.1:4318) and let it forward over TLS")
        }
        guard text.lowercased().hasPrefix("http://") else { throw ExportError("--otlp-endpoint '\(text)' is not an http:// URL; \(hint)") }
        let rest = text.dropFirst(7)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        var path = String(rest[slash...])
        guard !authority.contains("@") else { throw ExportError("--otlp-endpoint \(text): user names and passwords are not supported; \(hint)") }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw ExportError("--otlp-endpoint \(text): unclosed '[' in the host; \(hint)") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { throw ExportError("--otlp-endpoint \(text): unexpected text after the host; \(hint)") }
                portText = after.dropFirst()
            }
            guard !host.isEmpty, host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw ExportError("--otlp-endpoint \(text): '\(host)' is not an IPv6 address; \(hint)")
            }
        } else {
            let parts = authority.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            host = parts[0]
            if parts.count > 1 { portText = parts[1] }
            guard !host.isEmpty, host.utf8.count <= 253,
                host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") })
            else {
                throw ExportError("--otlp-endpoint \(text): '\(host)' is not a host name or address; \(hint)")
            }
        }
        var port = Self.defaultPort
        if let portText {
            guard let p = Int(portText), p >= 1, p <= 65535, portText.allSatisfy(\.isNumber) else {
                throw ExportError("--otlp-endpoint \(text): port '\(portText)' is not a number from 1 to 65535; \(hint)")
            }
            port = UInt16(p)
        }
        if path.isEmpty || path == "/" { path = "/v1/traces" }
        guard !path.contains("#") else { throw ExportError("--otlp-endpoint \(text): a fragment (#) has no meaning here; \(hint)") }
        self.host = String(host)
        self.port = port
        self.path = path
    }
}

/// POSTs each request to an OTLP/HTTP receiver (an OpenTelemetry Collector, Jaeger, Tempo) as
/// application/x-protobuf over one keep-alive connection, retrying connection failures, 429 and 502-504
/// with exponential backoff (Retry-After honoured up to 30 s).
public final class OTLPHTTPSender: OTLPRequestSink {
    /// Where requests go.
    public let endpoint: OTLPEndpoint
    /// Tries per request, the first included.
    public var maxAttempts = 8
    /// Most time spent retrying one request (ms, from its first try).
    public var maxRetryMs = 60_000
    /// How long a connection may take (ms).
    public var connectTimeoutMs: Int32 = 5_000
    /// How long a read or write on the connection may block (ms).
    public var ioTimeoutMs = 30_000
    /// Request bytes the receiver accepted.
    public private(set) var bytesSent: UInt64 = 0
    /// Tries that were retried.
    public private(set) var retries: UInt64 = 0
    /// Spans the receiver reported as rejected (ExportTracePartialSuccess), and its message.
    public private(set) var rejectedSpans: Int64 = 0
    /// The receiver's message about rejected spans, if it sent one.
    public private(set) var rejectionMessage: String?
    private var socket: HTTPSocket?
    private var response = [UInt8](repeating: 0, count: 64 * 1024)

    /// A sender to `endpoint`; it connects on the first request.
    public init(endpoint: OTLPEndpoint) { self.endpoint = endpoint }

    /// Closes the connection (the next request opens a new one).
    public func close() {
        socket?.close()
        socket = nil
    }

    public func send(_ request: UnsafeRawBufferPointer, spans: Int) throws(ExportError) {
        let head =
            "POST \(endpoint.path) HTTP/1.1\r\nHost: \(endpoint.host.contains(":") ? "[\(endpoint.host)]" : endpoint.host):\(endpoint.port)\r\n"
            + "User-Agent: asynctrace\r\nContent-Type: application/x-protobuf\r\nContent-Length: \(request.count)\r\n\r\n"
        let started = HTTPSocket.monotonicMs()
        var backoffMs = 100
        var attempt = 0
        while true {
            attempt += 1
            let outcome: Outcome
            do throws(SocketError) {
                outcome = try exchange(head: head, body: request)
            } catch {
                close()
                if !error.transient { throw ExportError("OTLP endpoint \(endpoint): \(error.message)") }
                outcome = .retry(error.message, retryAfterMs: nil)
            }
            switch outcome {
            case .done:
                bytesSent &+= UInt64(request.count)
                return
            case .fail(let message):
                throw ExportError("OTLP endpoint \(endpoint): \(message)")
            case .retry(let why, let retryAfterMs):
                let wait = min(retryAfterMs ?? backoffMs, 30_000)
                let waited = HTTPSocket.monotonicMs() - started
                guard attempt < maxAttempts, waited + wait <= maxRetryMs else {
                    throw ExportError(
                        "OTLP endpoint \(endpoint): \(why), still after \(attempt) attempts over \(waited / 1000) s; "
                            + "is an OpenTelemetry Collector listening there with the otlp receiver's http protocol "
                            + "(endpoint 0.0.0.0:4318)? Or write a file: --format otlp -o trace.otlp.pb")
                }
                retries &+= 1
                HTTPSocket.sleep(milliseconds: wait)
                backoffMs = min(backoffMs * 2, 5_000)
            }
        }
    }

    enum Outcome {
        case done
        case retry(String, retryAfterMs: Int?)
        case fail(String)
    }

    /// One POST and its response on the kept-alive connection (opened if needed).
    private func exchange(head: String, body: UnsafeRawBufferPointer) throws(SocketError) -> Outcome {
        if socket == nil {
            socket = try HTTPSocket(host: endpoint.host, port: endpoint.port, timeoutMs: connectTimeoutMs, ioTimeoutMs: ioTimeoutMs)
        }
        let s = socket!
        try s.sendAll(Array(head.utf8))
        try s.sendAll(body)
        let r = try readResponse(s)
        if r.close { close() }
        switch r.status {
        case 200..<300:
            notePartialSuccess(r.body)
            return .done
        case 429, 502, 503, 504:
            return .retry("HTTP \(r.status)\(r.bodyText.isEmpty ? "" : ": " + r.bodyText)", retryAfterMs: r.retryAfterMs)
        case 400:
            return .fail("HTTP 400, the receiver could not use the request\(r.bodyText.isEmpty ? "" : ": " + r.bodyText)")
        case 404, 405:
            return .fail(
                "HTTP \(r.status) for \(endpoint.path): no OTLP/HTTP traces receiver there; the Collector's otlp receiver "
                    + "takes POST /v1/traces on port 4318 (protocols: http)")
        case 413:
            return .fail("HTTP 413, the request (\(body.count) bytes) is larger than the receiver accepts; raise its max_request_body_size")
        default:
            return .fail("HTTP \(r.status)\(r.bodyText.isEmpty ? "" : ": " + r.bodyText)")
        }
    }

    struct Response {
        var status: Int
        var close: Bool
        var retryAfterMs: Int?
        var body: [UInt8]
        var bodyText: String {
            String(decoding: body.prefix(300), as: UTF8.self).filter { $0.isASCII && ($0 == " " || !$0.isWhitespace) && !$0.isNewline }
        }
    }

    /// Reads a response (headers ≤ 64 KiB; a body by Content-Length, of which at most 64 KiB is kept; a chunked or
    /// unsized body closes the connection after it).
    private func readResponse(_ s: HTTPSocket) throws(SocketError) -> Response {
        var have = 0
        var headerEnd = -1
        while headerEnd < 0 {
            guard have < response.count else { throw SocketError(message: "response headers larger than 64 KiB", transient: false) }
            let n = try s.receive(into: &response, at: have, max: response.count - have)
            guard n > 0 else { throw SocketError(message: "the connection closed before a response", transient: true) }
            let from = max(0, have - 3)
            have += n
            var i = from
            while i + 3 < have {
                if response[i] == 13 && response[i + 1] == 10 && response[i + 2] == 13 && response[i + 3] == 10 { headerEnd = i; break }
                i += 1
            }
        }
        let headText = String(decoding: response[..<headerEnd], as: UTF8.self)
        let lines = headText.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusParts = lines.first?.split(separator: " ", maxSplits: 2) ?? []
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]), status >= 100, status < 1000 else {
            throw SocketError(message: "not an HTTP response: \(String(lines.first?.prefix(80) ?? ""))", transient: false)
        }
        var length: Int?
        var close = statusParts[0] == "HTTP/1.0"
        var chunked = false
        var retryAfter: Int?
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingSpaces
            switch name {
            case "content-length": length = Int(value).flatMap { $0 >= 0 ? $0 : nil }
            case "connection": if value.lowercased().contains("close") { close = true }
            case "transfer-encoding": if value.lowercased().contains("chunked") { chunked = true }
            case "retry-after": if let secs = Int(value), secs >= 0 { retryAfter = min(secs, 30) * 1000 }
            default: break
            }
        }
        var body = Array(response[(headerEnd + 4)..<have])
        if let length, !chunked {
            var remaining = length - body.count
            var discard = [UInt8](repeating: 0, count: 16 * 1024)
            while remaining > 0 {
                let n = try s.receive(into: &discard, at: 0, max: min(discard.count, remaining))
                guard n > 0 else { throw SocketError(message: "the connection closed inside a response", transient: true) }
                if body.count < 64 * 1024 { body.append(contentsOf: discard[..<n]) }
                remaining -= n
            }
            if body.count > length { body.removeSubrange(length...) }
        } else if status >= 200 && status != 204 && status != 304 {
            // No usable length: what arrived is all we read; the connection cannot be reused.
            close = true
        }
        return Response(status: status, close: close, retryAfterMs: retryAfter, body: body)
    }

    /// ExportTraceServiceResponse { partial_success = 1 { rejected_spans = 1; error_message = 2 } }.
    private func notePartialSuccess(_ body: [UInt8]) {
        var r = ProtoReader(body[...])
        while let (field, wire) = r.tag() {
            if field == 1 && wire == 2, let inner = r.lengthDelimited() {
                var p = ProtoReader(inner)
                while let (f, w) = p.tag() {
                    if f == 1 && w == 0, let v = p.varint() {
                        rejectedSpans &+= Int64(bitPattern: v)
                    } else if f == 2 && w == 2, let s = p.lengthDelimited() {
                        rejectionMessage = String(decoding: s.prefix(300), as: UTF8.self)
                    } else if !p.skip(w) {
                        return
                    }
                }
            } else if !r.skip(wire) {
                return
            }
        }
    }
}

/// Just enough protobuf reading for a receiver's response (bounded, never traps).
struct ProtoReader {
    var bytes: ArraySlice<UInt8>
    init(_ b: ArraySlice<UInt8>) { bytes = b }

    mutating func varint() -> UInt64? {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while let b = bytes.first {
            bytes = bytes.dropFirst()
            if shift < 64 { v |= UInt64(b & 0x7F) << shift }
            if b < 0x80 { return v }
            shift += 7
            if shift > 70 { return nil }
        }
        return nil
    }

    mutating func tag() -> (UInt64, UInt64)? {
        guard !bytes.isEmpty, let t = varint() else { return nil }
        return (t >> 3, t & 7)
    }

    mutating func lengthDelimited() -> ArraySlice<UInt8>? {
        guard let n = varint(), n <= UInt64(bytes.count) else { return nil }
        let out = bytes.prefix(Int(n))
        bytes = bytes.dropFirst(Int(n))
        return out
    }

    mutating func skip(_ wire: UInt64) -> Bool {
        switch wire {
        case 0: return varint() != nil
        case 1: guard bytes.count >= 8 else { return false }; bytes = bytes.dropFirst(8); return true
        case 2: return lengthDelimited() != nil
        case 5: guard bytes.count >= 4 else { return false }; bytes = bytes.dropFirst(4); return true
        default: return false
        }
    }
}

private extension Substring {
    var trimmingSpaces: String { String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed()) }
}
