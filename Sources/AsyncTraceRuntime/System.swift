// Every syscall the runtime makes goes through this file (as swift-nio's NIOPosix/System.swift):
// EINTR is retried here, and failures become a `SystemError` carrying errno and the call's name.
#if canImport(Glibc)
import Glibc
import CRuntimeSystem
#endif

/// A failed system call: errno and the function that failed, with Node's code name ("ENOENT").
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The errno.
    public let errno: Int32
    /// The function that failed ("open", "connect", ...).
    public let function: String

    /// An error from its errno and function.
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
    static func epollWait(
        _ epfd: Int32, _ events: UnsafeMutablePointer<epoll_event>, _ max: Int32,
        timeoutMs: Int32
    ) throws(SystemError) -> Int {
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
                posix_spawnp(
                    &pid, path, &actions, &attr, UnsafeMutablePointer(mutating: a.baseAddress!),
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

// MARK: files (thread-pool work and the *Sync APIs)

/// File metadata, as Node's fs.Stats.
public struct FileStats: Sendable, Equatable {
    /// Size in bytes.
    public let size: Int64
    /// `st_mode`: type and permission bits.
    public let mode: UInt32
    /// Last modification (CLOCK_REALTIME ns since the Unix epoch).
    public let modifiedNs: Int64
    /// The inode number.
    public let inode: UInt64
    /// Hard links.
    public let links: UInt64
    /// A regular file.
    public var isFile: Bool { mode & 0o170000 == 0o100000 }
    /// A directory.
    public var isDirectory: Bool { mode & 0o170000 == 0o040000 }
    /// A symbolic link (never true from `FS.stat`/`fstat`, which follow links).
    public var isSymbolicLink: Bool { mode & 0o170000 == 0o120000 }  // S_IFMT, S_IFLNK

    init(_ st: stat) {
        size = Int64(st.st_size)
        mode = UInt32(st.st_mode)
        modifiedNs = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        inode = UInt64(st.st_ino)
        links = UInt64(st.st_nlink)
    }
}

extension Sys {
    static func open(_ path: String, _ flags: Int32, _ mode: mode_t) throws(SystemError) -> Int32 {
        try check("open") { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    /// pread at `offset`, or read at the file position when `offset` is nil.
    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: Int64?) throws(SystemError) -> Int {
        if let offset { return try check("read") { Glibc.pread(fd, buffer.baseAddress, buffer.count, off_t(offset)) } }
        return try check("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// pwrite at `offset`, or write at the file position when `offset` is nil. Writes everything.
    static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: Int64?) throws(SystemError) -> Int {
        var done = 0
        while done < buffer.count {
            let p = buffer.baseAddress! + done, n = buffer.count - done
            let w: Int
            if let offset {
                w = try check("write") { Glibc.pwrite(fd, p, n, off_t(offset + Int64(done))) }
            } else {
                w = try check("write") { Glibc.write(fd, p, n) }
            }
            if w == 0 { break }
            done += w
        }
        return done
    }

    static func fileStats(_ fd: Int32) throws(SystemError) -> FileStats {
        var st = stat()
        _ = try check("fstat") { Glibc.fstat(fd, &st) }
        return FileStats(st)
    }

    static func fileStats(path: String) throws(SystemError) -> FileStats {
        var st = stat()
        _ = try check("stat") { rt_stat_path(path, &st) }
        return FileStats(st)
    }

    /// Entry names of a directory, without "." and "..", in the order the kernel returns them.
    static func readDirectory(_ path: String) throws(SystemError) -> [String] {
        guard let dir = opendir(path) else { throw SystemError(errno: Glibc.errno, function: "opendir") }
        defer { closedir(dir) }
        var names: [String] = []
        while true {
            Glibc.errno = 0
            guard let e = readdir(dir) else {
                if Glibc.errno != 0 { throw SystemError(errno: Glibc.errno, function: "readdir") }
                break
            }
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func removeFile(_ path: String) throws(SystemError) {
        _ = try check("unlink") { Glibc.unlink(path) }
    }

    static func makeDirectory(_ path: String, mode: mode_t) throws(SystemError) {
        _ = try check("mkdir") { Glibc.mkdir(path, mode) }
    }

    static func removeDirectory(_ path: String) throws(SystemError) {
        _ = try check("rmdir") { Glibc.rmdir(path) }
    }

    static func rename(_ from: String, _ to: String) throws(SystemError) {
        _ = try check("rename") { Glibc.rename(from, to) }
    }
}

// MARK: DNS (getaddrinfo, on the thread pool)

/// A failed lookup, with Node's codes (ENOTFOUND, EAI_AGAIN, ...).
public struct DNSError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Node's code ("ENOTFOUND", "EAI_AGAIN", ...).
    public let code: String
    /// The name looked up.
    public let hostname: String
    /// getaddrinfo's message (gai_strerror).
    public let message: String
    public var description: String { "getaddrinfo \(code) \(hostname): \(message)" }
}

extension Sys {
    /// getaddrinfo for `host`; family 0 (any), 4 or 6. Returns (address, family) pairs, deduplicated, in order.
    static func getAddresses(_ host: String, family: Int) throws(DNSError) -> [(address: String, family: Int)] {
        var hints = addrinfo()
        hints.ai_family = family == 4 ? AF_INET : family == 6 ? AF_INET6 : AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        var rc: Int32
        repeat { rc = getaddrinfo(host, nil, &hints, &res) } while rc == EAI_SYSTEM && Glibc.errno == EINTR
        guard rc == 0 else {
            let code: String
            switch rc {
            case EAI_NONAME, -5 /* EAI_NODATA (GNU) */: code = "ENOTFOUND"
            case EAI_AGAIN: code = "EAI_AGAIN"
            case EAI_FAIL: code = "EAI_FAIL"
            case EAI_FAMILY: code = "EAI_FAMILY"
            case EAI_MEMORY: code = "EAI_MEMORY"
            default: code = "EAI_\(-rc)"
            }
            throw DNSError(code: code, hostname: host, message: String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(res) }
        var out: [(String, Int)] = []
        var p = res
        while let ai = p {
            var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            if ai.pointee.ai_family == AF_INET {
                ai.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var a = sin.pointee.sin_addr
                    _ = inet_ntop(AF_INET, &a, &buf, socklen_t(buf.count))
                }
                let s = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                if !out.contains(where: { $0.0 == s }) { out.append((s, 4)) }
            } else if ai.pointee.ai_family == AF_INET6 {
                ai.pointee.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
                    var a = sin.pointee.sin6_addr
                    _ = inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count))
                }
                let s = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                if !out.contains(where: { $0.0 == s }) { out.append((s, 6)) }
            }
            p = ai.pointee.ai_next
        }
        return out
    }
}

// MARK: signals (signalfd)

extension Sys {
    static func signalSet(_ signals: [Int32]) -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        return set
    }

    /// Blocks (or unblocks) `signals` in the calling thread, so they queue for a signalfd.
    static func blockSignals(_ signals: [Int32], _ block: Bool) throws(SystemError) {
        var set = signalSet(signals)
        let rc = pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, nil)
        if rc != 0 { throw SystemError(errno: rc, function: "pthread_sigmask") }
    }

    static func signalFD(_ signals: [Int32]) throws(SystemError) -> Int32 {
        var set = signalSet(signals)
        return try check("signalfd") { signalfd(-1, &set, Int32(SFD_NONBLOCK | SFD_CLOEXEC)) }
    }

    /// Reads one pending signal from a signalfd; nil when none is pending.
    static func readSignal(_ fd: Int32) throws(SystemError) -> Int32? {
        var info = signalfd_siginfo()
        let n = Glibc.read(fd, &info, MemoryLayout<signalfd_siginfo>.size)
        if n == MemoryLayout<signalfd_siginfo>.size { return Int32(info.ssi_signo) }
        if n < 0 && (Glibc.errno == EAGAIN || Glibc.errno == EINTR) { return nil }
        if n < 0 { throw SystemError(errno: Glibc.errno, function: "read(signalfd)") }
        return nil
    }

    /// Sends `signal` to one thread of this process.
    static func signalThread(_ thread: pthread_t, _ signal: Int32) throws(SystemError) {
        let rc = pthread_kill(thread, signal)
        if rc != 0 { throw SystemError(errno: rc, function: "pthread_kill") }
    }
}

extension Sys {
    /// Installs (or, with `nil`, removes) the process-wide handler that forwards `signal` to the loop
    /// thread watching it, where the signal is blocked so it queues for that thread's signalfd.
    static func setSignalForwarding(_ signal: Int32, to thread: pthread_t?) throws(SystemError) {
        signalTargets[Int(signal)] = thread ?? 0
        var sa = sigaction()
        sigemptyset(&sa.sa_mask)
        if thread != nil {
            sa.__sigaction_handler.sa_handler = { signo in
                let target = signalTargets[Int(signo)]
                if target != 0 && pthread_equal(target, pthread_self()) == 0 { pthread_kill(target, signo) }
            }
            sa.sa_flags = SA_RESTART
        } else {
            sa.__sigaction_handler.sa_handler = SIG_DFL
        }
        if sigaction(signal, &sa, nil) != 0 { throw SystemError(errno: Glibc.errno, function: "sigaction") }
    }
}

/// Per signal number, the loop thread whose signalfd takes it (0: none). Read by the signal handler.
nonisolated(unsafe) let signalTargets: UnsafeMutablePointer<pthread_t> = {
    let p = UnsafeMutablePointer<pthread_t>.allocate(capacity: 65)
    p.initialize(repeating: 0, count: 65)
    return p
}()
