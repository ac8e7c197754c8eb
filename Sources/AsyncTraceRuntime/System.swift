// Every syscall the runtime makes goes through this file (as swift-nio's NIOPosix/System.swift):
// EINTR is retried here, and failures become a `SystemError` carrying errno and the call's name.
#if canImport(Glibc)
import Glibc
import CRuntimeSystem
#endif

/// A failed system call: errno and the function that failed, with Node's code name ("ENOENT").
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    public let errno: Int32
    public let function: String

    public init(errno: Int32, function: String) {
        self.errno = errno
        self.function = function
    }

    /// The errno's symbolic name, as Node's `err.code` ("ECONNREFUSED").
    public var code: String {
        if let p = strerrorname_np(errno) { return String(cString: p) }
        return "E\(errno)"
    }

    public var description: String {
        "\(code): \(String(cString: strerror(errno))), \(function)"
    }
}

/// The raw calls, each retried on EINTR and throwing `SystemError` on failure.
enum Sys {
    @inline(__always)
    static func check<T: FixedWidthInteger>(_ function: StaticString, _ call: () -> T) throws(SystemError) -> T {
        while true {
            let r = call()
            if r >= 0 { return r }
            let e = Glibc.errno
            if e == EINTR { continue }
            throw SystemError(errno: e, function: "\(function)")
        }
    }

    // MARK: time

    /// CLOCK_MONOTONIC in ns (the clock of every trace timestamp).
    @inline(__always)
    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    static func sleep(nanoseconds: UInt64) {
        var req = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var rem = timespec()
        while nanosleep(&req, &rem) != 0 && Glibc.errno == EINTR { req = rem }
    }

    // MARK: epoll

    static func epollCreate() throws(SystemError) -> Int32 {
        try check("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
    }

    /// Registers/modifies/removes `fd`; the runtime always puts the fd itself in `data.u64`.
    static func epollControl(_ epfd: Int32, _ op: Int32, _ fd: Int32, events: UInt32) throws(SystemError) {
        var ev = epoll_event()
        ev.events = events
        ev.data.u64 = UInt64(UInt32(bitPattern: fd))
        _ = try check("epoll_ctl") { epoll_ctl(epfd, op, fd, &ev) }
    }

    /// Waits for events; returns the count (0 on timeout or on EINTR, so the loop re-checks its state).
    static func epollWait(_ epfd: Int32, _ events: UnsafeMutablePointer<epoll_event>, _ max: Int32,
                          timeoutMs: Int32) throws(SystemError) -> Int {
        let r = epoll_wait(epfd, events, max, timeoutMs)
        if r >= 0 { return Int(r) }
        let e = Glibc.errno
        if e == EINTR { return 0 }
        throw SystemError(errno: e, function: "epoll_wait")
    }

    // MARK: eventfd (cross-thread wakeup)

    static func eventFD() throws(SystemError) -> Int32 {
        try check("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }
    }

    /// Adds 1 to the eventfd counter; EAGAIN (counter saturated) already means "signalled".
    static func eventFDSignal(_ fd: Int32) {
        var one: UInt64 = 1
        while true {
            let r = Glibc.write(fd, &one, 8)
            if r >= 0 || Glibc.errno != EINTR { return }
        }
    }

    /// Resets the eventfd counter (non-blocking; nothing to read is fine).
    static func eventFDDrain(_ fd: Int32) {
        var value: UInt64 = 0
        while true {
            let r = Glibc.read(fd, &value, 8)
            if r >= 0 || Glibc.errno != EINTR { return }
        }
    }

    // MARK: fds

    static func close(_ fd: Int32) throws(SystemError) {
        // Linux releases the fd even when close reports EINTR, so never retry it.
        if Glibc.close(fd) != 0 {
            let e = Glibc.errno
            if e != EINTR { throw SystemError(errno: e, function: "close") }
        }
    }

    static func pipe() throws(SystemError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        _ = try check("pipe2") { pipe2(&fds, Int32(O_CLOEXEC | O_NONBLOCK)) }
        return (fds[0], fds[1])
    }

    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        try check("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(SystemError) -> Int {
        try check("write") { Glibc.write(fd, buffer.baseAddress, buffer.count) }
    }
}
