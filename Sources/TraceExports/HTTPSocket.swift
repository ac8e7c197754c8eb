// The reading side's network syscalls, in one place (as swift-nio's System.swift): a blocking TCP client
// socket with timeouts, for `export --otlp-endpoint`. Errors carry errno's text.
#if canImport(Glibc)
import Glibc
#endif

struct SocketError: Error {
    let message: String
    /// Worth retrying: the peer was not there, went away, or did not answer in time.
    let transient: Bool
}

final class HTTPSocket {
    private var fd: Int32

    /// Connects to `host:port` (a name, an IPv4 address or an IPv6 one without brackets), trying each address;
    /// waits at most `timeoutMs` per address. Reads and writes then time out after `ioTimeoutMs`.
    init(host: String, port: UInt16, timeoutMs: Int32, ioTimeoutMs: Int) throws(SocketError) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw SocketError(message: "cannot resolve \(host) (\(String(cString: gai_strerror(rc))))", transient: rc == EAI_AGAIN)
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let a = node {
            node = a.pointee.ai_next
            let s = socket(a.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            if s < 0 { lastError = String(cString: strerror(errno)); continue }
            var r = connect(s, a.pointee.ai_addr, a.pointee.ai_addrlen)
            if r != 0 && errno == EINPROGRESS {
                var p = pollfd(fd: s, events: Int16(POLLOUT), revents: 0)
                r = poll(&p, 1, timeoutMs)
                if r == 1 {
                    var err: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len)
                    r = err == 0 ? 0 : -1
                    errno = err
                } else {
                    if r == 0 { errno = ETIMEDOUT }
                    r = -1
                }
            }
            if r == 0 {
                // Back to blocking, with timeouts on every read and write.
                _ = fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK)
                var tv = timeval(tv_sec: ioTimeoutMs / 1000, tv_usec: (ioTimeoutMs % 1000) * 1000)
                setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                var one: Int32 = 1
                setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                fd = s
                return
            }
            lastError = String(cString: strerror(errno))
            Glibc.close(s)
        }
        throw SocketError(message: "cannot connect to \(host):\(port) (\(lastError))", transient: true)
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Sends all of `bytes` (no SIGPIPE if the peer has gone).
    func sendAll(_ bytes: UnsafeRawBufferPointer) throws(SocketError) {
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = send(fd, p, left, Int32(MSG_NOSIGNAL))
            if n < 0 {
                if errno == EINTR { continue }
                throw SocketError(message: "sending failed (\(String(cString: strerror(errno))))", transient: true)
            }
            p += n
            left -= n
        }
    }

    func sendAll(_ bytes: [UInt8]) throws(SocketError) {
        let failure: SocketError? = bytes.withUnsafeBytes { b in
            do throws(SocketError) { try sendAll(b); return nil } catch { return error }
        }
        if let failure { throw failure }
    }

    /// Reads into `buffer[offset..<offset+max]`; 0 at the end of the stream.
    func receive(into buffer: inout [UInt8], at offset: Int, max: Int) throws(SocketError) -> Int {
        let result: Result<Int, SocketError> = buffer.withUnsafeMutableBytes { b in
            let n = Swift.min(max, b.count - offset)
            do throws(SocketError) { return .success(try receive(into: UnsafeMutableRawBufferPointer(rebasing: b[offset..<(offset + n)]))) } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Reads what is available (at least a byte, blocking up to the timeout); 0 at the end of the stream.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(SocketError) -> Int {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            let timedOut = errno == EAGAIN || errno == EWOULDBLOCK
            throw SocketError(
                message: timedOut ? "no response in time" : "receiving failed (\(String(cString: strerror(errno))))",
                transient: true)
        }
    }

    static func sleep(milliseconds ms: Int) {
        var ts = timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000)
        var left = timespec()
        while nanosleep(&ts, &left) != 0 && errno == EINTR { ts = left }
    }

    static func monotonicMs() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }
}
