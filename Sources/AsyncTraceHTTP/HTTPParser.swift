// An incremental HTTP/1.x message parser (requests or responses): head, then the body by
// Content-Length, chunked transfer coding, or until the connection closes (responses only).
// Errors use llhttp's codes, as Node reports them (HPE_INVALID_METHOD, HPE_HEADER_OVERFLOW, ...).

/// The start line and headers of one message.
public struct HTTPHead: Sendable {
    /// Requests: the method ("GET", ...).
    public var method = ""
    /// Requests: the request target ("/path?query").
    public var target = ""
    /// "1.1" or "1.0".
    public var version = "1.1"
    /// Responses: the status code.
    public var statusCode = 0
    /// Responses: the reason phrase.
    public var statusMessage = ""
    /// Header fields in arrival order, names as sent.
    public var headers: [(name: String, value: String)] = []

    /// The first value of `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.equalsIgnoringASCIICase(name) }?.value
    }
}

extension String {
    /// Equal but for the case of ASCII letters (header names and tokens), without the lowercased copies
    /// `lowercased()` would allocate: header lookups run several times per message.
    func equalsIgnoringASCIICase(_ other: String) -> Bool {
        let a = utf8, b = other.utf8
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) where x != y {
            let lx = x >= 65 && x <= 90 ? x | 0x20 : x
            let ly = y >= 65 && y <= 90 ? y | 0x20 : y
            if lx != ly { return false }
        }
        return true
    }
}

struct HTTPParseError: Error {
    let code: String
    let message: String
}

final class HTTPParser {
    enum Kind { case request, response }
    enum Event {
        case head(HTTPHead)
        case body([UInt8])
        case end
    }

    enum BodyState {
        case none
        case fixed(Int)
        case chunkSize
        case chunkData(Int)
        case chunkDataEnd
        case trailers
        case untilClose
    }

    let kind: Kind
    /// Largest head accepted (Node's default --max-http-header-size).
    static let maxHeadSize = 16 * 1024
    var buffer: [UInt8] = []
    var position = 0
    var inBody = false
    var body = BodyState.none
    /// Responses to HEAD requests have no body whatever their headers say (set by the client).
    var expectNoBody = false
    /// Set after a message ended; the owner clears it when it wants the next one parsed (no pipelining ahead).
    var paused = false
    var failed = false

    init(_ kind: Kind) { self.kind = kind }

    /// Appends `bytes` and emits what can be parsed. Throws HTTPParseError on malformed input (and stays failed).
    func feed(_ bytes: [UInt8], _ emit: (Event) throws -> Void) throws {
        if failed { return }
        if buffer.isEmpty && position == 0 { buffer = bytes } else { buffer += bytes }
        try run(emit)
    }

    /// Continues after `paused` was cleared.
    func resume(_ emit: (Event) throws -> Void) throws {
        paused = false
        try run(emit)
    }

    /// The connection closed: ends a read-until-close body; true if a message was cut short.
    func finish(_ emit: (Event) throws -> Void) throws -> Bool {
        if case .untilClose = body, inBody {
            inBody = false
            body = .none
            try emit(.end)
            return false
        }
        return inBody || position < buffer.count
    }

    private func run(_ emit: (Event) throws -> Void) throws {
        do {
            while !paused && !failed {
                if !inBody {
                    guard let head = try parseHead() else { break }
                    try emit(.head(head))
                    if case .none = body {
                        inBody = false
                        paused = true
                        try emit(.end)
                    }
                } else if !(try parseBody(emit)) {
                    break
                }
            }
        } catch let e as HTTPParseError {
            failed = true
            throw e
        }
        // Compact what was consumed.
        if position > 0 {
            if position >= buffer.count { buffer.removeAll(keepingCapacity: true) } else { buffer.removeFirst(position) }
            position = 0
        }
    }

    /// Finds CRLFCRLF from `position`; nil while the head is incomplete.
    private func parseHead() throws -> HTTPHead? {
        // Tolerate empty lines before a request line (RFC 9112 2.2).
        while position + 1 < buffer.count && buffer[position] == 13 && buffer[position + 1] == 10 { position += 2 }
        var end = -1
        var i = position
        let n = buffer.count
        while i + 3 < n {
            if buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 { end = i; break }
            i += 1
        }
        if end < 0 {
            if n - position > HTTPParser.maxHeadSize { throw HTTPParseError(code: "HPE_HEADER_OVERFLOW", message: "Header overflow") }
            return nil
        }
        if end - position > HTTPParser.maxHeadSize { throw HTTPParseError(code: "HPE_HEADER_OVERFLOW", message: "Header overflow") }
        let headBytes = buffer[position..<end]
        position = end + 4
        var lines = headBytes.split(separator: 10, omittingEmptySubsequences: false).map { line -> ArraySlice<UInt8> in
            line.last == 13 ? line.dropLast() : line
        }
        guard !lines.isEmpty else { throw HTTPParseError(code: "HPE_INVALID_METHOD", message: "Empty message") }
        let first = lines.removeFirst()
        var head = HTTPHead()
        if kind == .request {
            try parseRequestLine(first, &head)
        } else {
            try parseStatusLine(first, &head)
        }
        for line in lines {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                throw HTTPParseError(code: "HPE_INVALID_HEADER_TOKEN", message: "Invalid header field")
            }
            let name = line[line.startIndex..<colon]
            guard !name.isEmpty, name.allSatisfy(isTokenChar) else {
                throw HTTPParseError(code: "HPE_INVALID_HEADER_TOKEN", message: "Invalid header token")
            }
            var value = line[(colon + 1)...]
            while let f = value.first, f == 32 || f == 9 { value = value.dropFirst() }
            while let l = value.last, l == 32 || l == 9 { value = value.dropLast() }
            head.headers.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        try chooseBody(head)
        inBody = true
        return head
    }

    private func parseRequestLine(_ line: ArraySlice<UInt8>, _ head: inout HTTPHead) throws {
        let parts = line.split(separator: 32, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy({ $0 >= 65 && $0 <= 90 }) else {
            throw HTTPParseError(code: "HPE_INVALID_METHOD", message: "Invalid method encountered")
        }
        guard !parts[1].isEmpty, parts[1].allSatisfy({ $0 > 32 && $0 < 127 }) else {
            throw HTTPParseError(code: "HPE_INVALID_URL", message: "Invalid URL")
        }
        head.method = String(decoding: parts[0], as: UTF8.self)
        head.target = String(decoding: parts[1], as: UTF8.self)
        head.version = try parseVersion(parts[2])
    }

    private func parseStatusLine(_ line: ArraySlice<UInt8>, _ head: inout HTTPHead) throws {
        let parts = line.split(separator: 32, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2 else { throw HTTPParseError(code: "HPE_INVALID_CONSTANT", message: "Invalid status line") }
        head.version = try parseVersion(parts[0])
        guard parts[1].count == 3, parts[1].allSatisfy({ $0 >= 48 && $0 <= 57 }), let code = Int(String(decoding: parts[1], as: UTF8.self)) else {
            throw HTTPParseError(code: "HPE_INVALID_STATUS", message: "Invalid status code")
        }
        head.statusCode = code
        head.statusMessage = parts.count > 2 ? String(decoding: parts[2], as: UTF8.self) : ""
    }

    private func parseVersion(_ v: ArraySlice<UInt8>) throws -> String {
        let s = String(decoding: v, as: UTF8.self)
        guard s == "HTTP/1.1" || s == "HTTP/1.0" else { throw HTTPParseError(code: "HPE_INVALID_VERSION", message: "Invalid HTTP version") }
        return String(s.dropFirst(5))
    }

    private func chooseBody(_ head: HTTPHead) throws {
        let te = head.header("transfer-encoding")?.lowercased()
        let cl = head.header("content-length")
        if let te, te.split(separator: ",").last?.trimmingSpaces == "chunked" {
            if cl != nil {
                throw HTTPParseError(code: "HPE_UNEXPECTED_CONTENT_LENGTH", message: "Content-Length can't be present with Transfer-Encoding")
            }
            body = .chunkSize
        } else if let cl {
            guard let n = Int(cl), n >= 0 else {
                throw HTTPParseError(code: "HPE_INVALID_CONTENT_LENGTH", message: "Invalid character in Content-Length")
            }
            body = n == 0 ? .none : .fixed(n)
        } else if kind == .request {
            body = .none
        } else {
            body = .untilClose
        }
        if kind == .response && (expectNoBody || head.statusCode == 204 || head.statusCode == 304 || head.statusCode / 100 == 1) {
            body = .none
        }
    }

    /// Parses body bytes; false when more input is needed.
    private func parseBody(_ emit: (Event) throws -> Void) throws -> Bool {
        let available = buffer.count - position
        switch body {
        case .none:
            inBody = false
            paused = true
            try emit(.end)
            return true
        case .fixed(let remaining):
            guard available > 0 else { return false }
            let take = min(remaining, available)
            let chunk = Array(buffer[position..<(position + take)])
            position += take
            body = remaining - take == 0 ? .none : .fixed(remaining - take)
            try emit(.body(chunk))
            return true
        case .untilClose:
            guard available > 0 else { return false }
            let chunk = Array(buffer[position...])
            position = buffer.count
            try emit(.body(chunk))
            return false
        case .chunkSize:
            guard let lineEnd = findCRLF(from: position) else {
                if available > 1024 { throw HTTPParseError(code: "HPE_INVALID_CHUNK_SIZE", message: "Invalid character in chunk size") }
                return false
            }
            var line = buffer[position..<lineEnd]
            if let semi = line.firstIndex(of: UInt8(ascii: ";")) { line = line[..<semi] }
            guard !line.isEmpty, line.count <= 16, let size = Int(String(decoding: line, as: UTF8.self), radix: 16), size >= 0 else {
                throw HTTPParseError(code: "HPE_INVALID_CHUNK_SIZE", message: "Invalid character in chunk size")
            }
            position = lineEnd + 2
            body = size == 0 ? .trailers : .chunkData(size)
            return true
        case .chunkData(let remaining):
            guard available > 0 else { return false }
            let take = min(remaining, available)
            let chunk = Array(buffer[position..<(position + take)])
            position += take
            body = remaining - take == 0 ? .chunkDataEnd : .chunkData(remaining - take)
            try emit(.body(chunk))
            return true
        case .chunkDataEnd:
            guard available >= 2 else { return false }
            guard buffer[position] == 13 && buffer[position + 1] == 10 else {
                throw HTTPParseError(code: "HPE_STRICT", message: "Expected CRLF after chunk")
            }
            position += 2
            body = .chunkSize
            return true
        case .trailers:
            // Trailer fields are read and dropped; an empty line ends the message.
            guard let lineEnd = findCRLF(from: position) else { return false }
            let empty = lineEnd == position
            position = lineEnd + 2
            if empty {
                body = .none
            }
            return true
        }
    }

    private func findCRLF(from start: Int) -> Int? {
        var i = start
        while i + 1 < buffer.count {
            if buffer[i] == 13 && buffer[i + 1] == 10 { return i }
            i += 1
        }
        return nil
    }
}

@inline(__always)
func isTokenChar(_ c: UInt8) -> Bool {
    switch c {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    default:
        return "!#$%&'*+-.^_`|~".utf8.contains(c)
    }
}

extension Substring {
    var trimmingSpaces: String {
        var s = self[...]
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
