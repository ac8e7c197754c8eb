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

// MARK: sockets (networking)
// Sockets, socket addresses, and child processes, for Net/*.swift. Non-blocking calls report
// EAGAIN as `nil` (not an error): it is the normal "try again when epoll says so".

extension Sys {
    /// A non-blocking, close-on-exec socket.
    static func socket(_ domain: Int32, _ type: Int32, _ proto: Int32 = 0) throws(SystemError) -> Int32 {
        try check("socket") { Glibc.socket(domain, type | Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), proto) }
    }

    /// A connected Unix socket pair, close-on-exec; the first end (the parent's) non-blocking, the
    /// second blocking (a child's stdio expects that).
    static func socketPair() throws(SystemError) -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        _ = try check("socketpair") {
            Glibc.socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0, &fds)
        }
        let flags = fcntl(fds[0], F_GETFL)
        _ = fcntl(fds[0], F_SETFL, flags | O_NONBLOCK)
        return (fds[0], fds[1])
    }

    /// "SIGTERM" for 15.
    static func signalName(_ signal: Int32) -> String {
        if let p = sigabbrev_np(signal) { return "SIG" + String(cString: p) }
        return "SIG\(signal)"
    }

    static func setSocketOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) throws(SystemError) {
        var v = value
        _ = try check("setsockopt") { setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) }
    }

    static func socketOption(_ fd: Int32, _ level: Int32, _ name: Int32) throws(SystemError) -> Int32 {
        var v: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        _ = try check("getsockopt") { getsockopt(fd, level, name, &v, &len) }
        return v
    }

    static func bind(_ fd: Int32, _ addr: SocketAddress) throws(SystemError) {
        var (storage, len) = addr.storage()
        _ = try check("bind") { Glibc.bind(fd, net_sockaddr(&storage), len) }
    }

    static func listen(_ fd: Int32, backlog: Int32) throws(SystemError) {
        _ = try check("listen") { Glibc.listen(fd, backlog) }
    }

    /// Accepts one connection (non-blocking, close-on-exec), or nil when none is waiting.
    static func accept(_ fd: Int32) throws(SystemError) -> Int32? {
        while true {
            let r = accept4(fd, nil, nil, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue))
            if r >= 0 { return r }
            let e = Glibc.errno
            if e == EINTR || e == ECONNABORTED { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw SystemError(errno: e, function: "accept4")
        }
    }

    /// Starts a connect; true when it completed at once, false when in progress (wait for writable).
    static func connect(_ fd: Int32, _ addr: SocketAddress) throws(SystemError) -> Bool {
        var (storage, len) = addr.storage()
        let r = Glibc.connect(fd, net_sockaddr(&storage), len)
        if r == 0 { return true }
        let e = Glibc.errno
        if e == EINPROGRESS || e == EINTR || e == EAGAIN { return false }
        throw SystemError(errno: e, function: "connect")
    }

    static func localAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        guard getsockname(fd, net_sockaddr(&storage), &len) == 0 else { return nil }
        return SocketAddress(storage: &storage, length: len)
    }

    static func remoteAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        guard getpeername(fd, net_sockaddr(&storage), &len) == 0 else { return nil }
        return SocketAddress(storage: &storage, length: len)
    }

    /// read(2): bytes read (0 = end of stream), or nil when nothing is available now.
    @inline(__always)
    static func readNonBlocking(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) throws(SystemError) -> Int? {
        while true {
            let r = Glibc.read(fd, buffer, count)
            if r >= 0 { return r }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw SystemError(errno: e, function: "read")
        }
    }

    /// send(2) with MSG_NOSIGNAL (a closed peer is EPIPE, never SIGPIPE): bytes written, or nil when the buffer is full.
    @inline(__always)
    static func sendNonBlocking(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) throws(SystemError) -> Int? {
        while true {
            let r = Glibc.send(fd, buffer, count, Int32(MSG_NOSIGNAL))
            if r >= 0 { return r }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw SystemError(errno: e, function: "write")
        }
    }

    /// sendmsg(2) of several buffers with MSG_NOSIGNAL; nil when the buffer is full.
    static func sendVector(_ fd: Int32, _ iov: UnsafeMutablePointer<iovec>, _ count: Int) throws(SystemError) -> Int? {
        var msg = msghdr()
        msg.msg_iov = iov
        msg.msg_iovlen = count
        while true {
            let r = Glibc.sendmsg(fd, &msg, Int32(MSG_NOSIGNAL))
            if r >= 0 { return r }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw SystemError(errno: e, function: "writev")
        }
    }

    /// write(2) for fds that are not sockets (pipes); nil when full.
    static func writeNonBlocking(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) throws(SystemError) -> Int? {
        while true {
            let r = Glibc.write(fd, buffer, count)
            if r >= 0 { return r }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw SystemError(errno: e, function: "write")
        }
    }

    static func shutdownWrite(_ fd: Int32) throws(SystemError) {
        _ = try check("shutdown") { Glibc.shutdown(fd, Int32(SHUT_WR)) }
    }

    /// sendto(2) of one datagram; nil when the buffer is full.
    static func sendTo(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, _ addr: SocketAddress?) throws(SystemError) -> Int? {
        while true {
            let r: Int
            if let addr {
                var (storage, len) = addr.storage()
                r = Glibc.sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), net_sockaddr(&storage), len)
            } else {
                r = Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
            }
            if r >= 0 { return r }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw SystemError(errno: e, function: "send")
        }
    }

    /// recvfrom(2) of one datagram with its sender; nil when none is waiting.
    static func receiveFrom(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> (Int, SocketAddress?)? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        while true {
            let r = Glibc.recvfrom(fd, buffer.baseAddress, buffer.count, 0, net_sockaddr(&storage), &len)
            if r >= 0 { return (r, SocketAddress(storage: &storage, length: len)) }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw SystemError(errno: e, function: "recvmsg")
        }
    }

    /// Dissolves a UDP socket's default peer (connect with AF_UNSPEC).
    static func disconnect(_ fd: Int32) throws(SystemError) {
        var storage = sockaddr_storage()
        storage.ss_family = sa_family_t(AF_UNSPEC)
        let r = Glibc.connect(fd, net_sockaddr(&storage), socklen_t(MemoryLayout<sockaddr>.size))
        // Linux may report EAFNOSUPPORT for AF_UNSPEC while still dissolving the association.
        if r != 0 && Glibc.errno != EAFNOSUPPORT { throw SystemError(errno: Glibc.errno, function: "disconnect") }
    }

    static func unlink(_ path: String) { _ = Glibc.unlink(path) }

    static func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    // MARK: processes

    /// posix_spawn with the child's stdio dup'd from `stdio` (index = child fd; -1 = /dev/null),
    /// and the working directory changed to `cwd`.
    static func spawn(path: String, argv: [String], env: [String], cwd: String?, stdio: [Int32]) throws(SystemError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (childFD, fd) in stdio.enumerated() {
            if fd >= 0 {
                posix_spawn_file_actions_adddup2(&actions, fd, Int32(childFD))
            } else {
                posix_spawn_file_actions_addopen(&actions, Int32(childFD), "/dev/null", childFD == 0 ? O_RDONLY : O_WRONLY, 0)
            }
        }
        if let cwd { posix_spawn_file_actions_addchdir_np(&actions, cwd) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // The child starts with default signal dispositions and an empty mask (the loop may block signals).
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let r = cArgs.withUnsafeBufferPointer { a in
            cEnv.withUnsafeBufferPointer { e in
                posix_spawnp(&pid, path, &actions, &attr, UnsafeMutablePointer(mutating: a.baseAddress!),
                             UnsafeMutablePointer(mutating: e.baseAddress!))
            }
        }
        if r != 0 { throw SystemError(errno: r, function: "spawn") }
        return pid
    }

    static func pidfdOpen(_ pid: pid_t) throws(SystemError) -> Int32 {
        try check("pidfd_open") { net_pidfd_open(pid) }
    }

    /// Reaps `pid` if it has exited: (exit code, signal) or nil while it runs.
    static func reap(_ pid: pid_t) throws(SystemError) -> (code: Int32?, signal: Int32?)? {
        var status: Int32 = 0
        let r = try check("waitpid") { waitpid(pid, &status, WNOHANG) }
        if r == 0 { return nil }
        if net_wifexited(status) != 0 { return (net_wexitstatus(status), nil) }
        if net_wifsignaled(status) != 0 { return (nil, net_wtermsig(status)) }
        return nil
    }

    static func kill(_ pid: pid_t, _ signal: Int32) throws(SystemError) {
        _ = try check("kill") { Glibc.kill(pid, signal) }
    }

    static func environment() -> [String] {
        var out: [String] = []
        var p = environ
        while let e = p.pointee {
            out.append(String(cString: e))
            p += 1
        }
        return out
    }
}
