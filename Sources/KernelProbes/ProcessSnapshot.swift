import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// What a process already had when tracing began, read once from /proc: its threads' names and its
/// open fds, as threadName and fdOpen events.
public enum ProcessSnapshot {
    /// threadName for every thread of `pid` and fdOpen for every open fd, stamped `timestampNs`.
    /// Whatever cannot be read (the process is gone, no permission) is left out.
    public static func events(pid: Int32, timestampNs: UInt64) -> [KernelEvent] {
        guard pid > 0 else { return [] }
        var events: [KernelEvent] = []
        let p = UInt32(pid)
        for tid in numericEntries("/proc/\(pid)/task") {
            guard let comm = readSmallFile("/proc/\(pid)/task/\(tid)/comm") else { continue }
            var e = KernelEvent(kind: .threadName, pid: p, tid: UInt32(tid), timestampNs: timestampNs)
            e.setDetail(comm.last == UInt8(ascii: "\n") ? comm.dropLast() : comm[...])
            events.append(e)
        }
        var sockets: [UInt64: (FDKind, String)]?
        for fd in numericEntries("/proc/\(pid)/fd") {
            guard let target = readLink("/proc/\(pid)/fd/\(fd)") else { continue }
            var e = KernelEvent(kind: .fdOpen, pid: p, tid: 0, timestampNs: timestampNs)
            e.fd = Int32(fd)
            e.sourceFd = -1
            let (kind, detail) = describe(target, fdPath: "/proc/\(pid)/fd/\(fd)") { inode in
                if sockets == nil { sockets = socketTable(pid: pid) }
                return sockets?[inode]
            }
            e.fdKind = kind.rawValue
            e.detail = detail
            events.append(e)
        }
        return events
    }

    /// The processes below `pid` now (children, their children, ...), parents first, from every
    /// /proc/N/stat's ppid; at most `limit`. A process that exits meanwhile is simply not listed.
    public static func descendants(of pid: Int32, limit: Int = 4096) -> [Int32] {
        guard pid > 0 else { return [] }
        var children: [Int32: [Int32]] = [:]
        for n in numericEntries("/proc") where n > 0 && n <= Int(Int32.max) {
            guard let stat = readSmallFile("/proc/\(n)/stat", limit: 1024), let ppid = parentPid(stat: stat) else { continue }
            children[ppid, default: []].append(Int32(n))
        }
        var out: [Int32] = []
        var queue = [pid], seen: Set<Int32> = [pid]
        while !queue.isEmpty && out.count < limit {
            let p = queue.removeFirst()
            for c in children[p] ?? [] where out.count < limit && seen.insert(c).inserted {
                out.append(c)
                queue.append(c)
            }
        }
        return out
    }

    /// The 4th field of /proc/N/stat ("pid (comm) state ppid ..."); comm may hold spaces and parentheses,
    /// so the fields are counted after its last ')'.
    static func parentPid(stat: [UInt8]) -> Int32? {
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count >= 2 else { return nil }
        return Int32(String(decoding: fields[1], as: UTF8.self))
    }

    /// Kind and detail of one fd from its /proc link text ("socket:[123]", "anon_inode:[eventfd]", a path).
    static func describe(_ target: String, fdPath: String, socket: (UInt64) -> (FDKind, String)?) -> (FDKind, String) {
        if let inode = bracketed(target, prefix: "socket:") {
            return socket(inode) ?? (.socket, "")
        }
        if target.hasPrefix("pipe:") { return (.pipe, "") }
        if target.hasPrefix("anon_inode:") {
            let name = target.dropFirst("anon_inode:".count)
            switch name {
            case "[eventfd]": return (.eventfd, "")
            case "[timerfd]": return (.timerfd, "")
            case "[eventpoll]": return (.epoll, "")
            case "[signalfd]": return (.signalfd, "")
            case "inotify": return (.inotify, "")
            case "[pidfd]": return (.pidfd, "")
            case "[io_uring]": return (.ioUring, "")
            default: return (.unknown, String(name))
            }
        }
        guard target.hasPrefix("/") else { return (.unknown, target) }
        var st = stat()
        guard stat(fdPath, &st) == 0 else { return (.file, target) }
        switch st.st_mode & S_IFMT {
        case S_IFDIR: return (.directory, target)
        case S_IFCHR, S_IFBLK: return (.device, target)
        case S_IFIFO: return (.pipe, target)
        default: return (.file, target)
        }
    }

    static func bracketed(_ s: String, prefix: String) -> UInt64? {
        guard s.hasPrefix(prefix + "["), s.hasSuffix("]") else { return nil }
        return UInt64(s.dropFirst(prefix.count + 1).dropLast())
    }

    /// Sockets of the process's network namespace by inode: kind and "local->peer".
    static func socketTable(pid: Int32) -> [UInt64: (FDKind, String)] {
        var table: [UInt64: (FDKind, String)] = [:]
        for (file, kind, v6) in [
            ("tcp", FDKind.tcp, false), ("tcp6", .tcp, true), ("udp", .udp, false),
            ("udp6", .udp, true),
        ] {
            guard let text = readSmallFile("/proc/\(pid)/net/\(file)", limit: 8 << 20) else { continue }
            for line in text.split(separator: UInt8(ascii: "\n")).dropFirst() {
                let f = line.split(separator: UInt8(ascii: " "))
                guard f.count > 9, let inode = UInt64(String(decoding: f[9], as: UTF8.self)), inode != 0 else { continue }
                let local = procAddress(f[1], v6: v6), peer = procAddress(f[2], v6: v6)
                table[inode] = (kind, FdDetail.joined(local, peer))
            }
        }
        if let text = readSmallFile("/proc/\(pid)/net/unix", limit: 8 << 20) {
            for line in text.split(separator: UInt8(ascii: "\n")).dropFirst() {
                let f = line.split(separator: UInt8(ascii: " "), maxSplits: 7)
                guard f.count >= 7, let inode = UInt64(String(decoding: f[6], as: UTF8.self)) else { continue }
                table[inode] = (.unix, f.count > 7 ? String(decoding: f[7], as: UTF8.self) : "")
            }
        }
        if let text = readSmallFile("/proc/\(pid)/net/netlink", limit: 8 << 20) {
            for line in text.split(separator: UInt8(ascii: "\n")).dropFirst() {
                let f = line.split(separator: UInt8(ascii: " "))
                if let last = f.last, let inode = UInt64(String(decoding: last, as: UTF8.self)) { table[inode] = (.netlink, "") }
            }
        }
        return table
    }

    /// "0100007F:1F90" (the kernel prints each 32-bit word of the address in host order) -> "127.0.0.1:8080".
    static func procAddress(_ field: some Collection<UInt8>, v6: Bool) -> String {
        let parts = field.split(separator: UInt8(ascii: ":"))
        guard parts.count == 2, let port = UInt16(String(decoding: parts[1], as: UTF8.self), radix: 16) else { return "" }
        let hex = Array(parts[0])
        guard hex.count == (v6 ? 32 : 8) else { return "" }
        var bytes: [UInt8] = []
        for word in stride(from: 0, to: hex.count, by: 8) {
            guard let w = UInt32(String(decoding: hex[word..<word + 8], as: UTF8.self), radix: 16) else { return "" }
            withUnsafeBytes(of: w) { bytes.append(contentsOf: $0) }  // host order == the kernel's (same machine)
        }
        return FdDetail.inetText(bytes, port: port, v4: !v6)
    }

    static func numericEntries(_ dir: String) -> [Int] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var out: [Int] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if let n = Int(name) { out.append(n) }
        }
        return out.sorted()
    }

    /// When process `pid` started, in seconds since the epoch: /proc/PID/stat's start time (clock ticks since boot)
    /// after /proc/stat's boot time (whole seconds, so to about a second). nil: /proc does not say.
    public static func startRealtimeSeconds(pid: Int32) -> Double? {
        guard let stat = readSmallFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: UInt8(ascii: ")")) else {
            return nil
        }
        // After "pid (comm)" (comm may hold ')'): field 3 (state) onwards; the start time is field 22.
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 19, let ticks = UInt64(String(decoding: fields[fields.startIndex + 19], as: UTF8.self)) else {
            return nil
        }
        guard let procStat = readSmallFile("/proc/stat", limit: 1 << 20),
            let line = procStat.split(separator: UInt8(ascii: "\n")).first(where: { $0.starts(with: Array("btime ".utf8)) }),
            let boot = UInt64(String(decoding: line.dropFirst(6).filter { $0 >= 0x30 && $0 <= 0x39 }, as: UTF8.self))
        else { return nil }
        let hz = sysconf(Int32(_SC_CLK_TCK))
        guard hz > 0 else { return nil }
        return Double(boot) + Double(ticks) / Double(hz)
    }

    static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buf, buf.count)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func readSmallFile(_ path: String, limit: Int = 4096) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }
}
