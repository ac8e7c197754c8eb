// Group `net`: TCP echo ping-pong (64-byte messages; 1 and 50 connections) and HTTP requests/s,
// the runtime's servers against Node v20's (`Benchmarks/node/net-echo-server.js`, `http-server.js`),
// each server in its own process, driven by the same load generator (one thread, raw epoll, here).
// Our server runs bare and recording (ASYNCTRACE_OUTPUT set). Each figure: median of 5 runs of 2 s.
import AsyncTraceHTTP
import AsyncTraceRecorder
import AsyncTraceRuntime
import CRuntimeSystem
#if canImport(Glibc)
import Glibc
#endif

enum NetBench {
    static let serveVariable = "ASYNCTRACE_BENCH_SERVE"
    static let seconds = 2.0
    static let runs = 5

    struct Workload {
        let name: String
        let server: String  // "tcp-echo" or "http"
        let connections: Int
        let request: [UInt8]
    }

    static func run() {
        if let kind = getenv(serveVariable).map({ String(cString: $0) }) {
            TraceRecorder.startFromEnvironment()  // the recording variant sets ASYNCTRACE_OUTPUT
            serve(kind)  // never returns
        }
        let echo = [UInt8](repeating: UInt8(ascii: "e"), count: 64)
        let get = Array("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        let workloads = [
            Workload(name: "tcp_echo_1conn", server: "tcp-echo", connections: 1, request: echo),
            Workload(name: "tcp_echo_50conn", server: "tcp-echo", connections: 50, request: echo),
            Workload(name: "http_50conn", server: "http", connections: 50, request: get),
        ]
        let trace = "/tmp/asynctrace-bench-net-\(getpid()).atrace"
        defer { unlink(trace) }
        // ASYNCTRACE_BENCH_NET=<workload> runs one workload only.
        let only = getenv("ASYNCTRACE_BENCH_NET").map { String(cString: $0) }
        for w in workloads where only == nil || only == w.name {
            var node: [Double] = [], bare: [Double] = [], recording: [Double] = []
            var traceBytes: [Double] = []
            // Interleaved, so drift in the machine's state hits all three alike.
            for _ in 0..<runs {
                if let r = measureServer(nodeCommand(w.server), w) { node.append(r) }
                if let r = measureServer(selfCommand(w.server, record: nil), w) { bare.append(r) }
                unlink(trace)
                if let r = measureServer(selfCommand(w.server, record: trace), w) { recording.append(r) }
                var st = stat()
                if stat(trace, &st) == 0 { traceBytes.append(Double(st.st_size)) }
            }
            let n = median(node), b = median(bare), r = median(recording)
            let extra = [("median_of", "\(runs)"), ("connections", "\(w.connections)"), ("seconds", fmt(seconds))]
            if !node.isEmpty { report("net.\(w.name).node", nsPerOp: 1e9 / n, extra: extra) }
            report("net.\(w.name).swift_bare", nsPerOp: 1e9 / b, extra: extra + [("vs_node", node.isEmpty ? "null" : fmt3(b / n))])
            report(
                "net.\(w.name).swift_recording", nsPerOp: 1e9 / r,
                extra: extra + [("recording_slowdown", fmt3(b / r)), ("trace_bytes_per_op", fmt(median(traceBytes) / (r * (seconds + 0.3))))])
        }
    }

    static func fmt3(_ x: Double) -> String { x.isFinite ? String((x * 1000).rounded() / 1000) : "null" }

    static func nodeCommand(_ server: String) -> (argv: [String], env: [String]) {
        let script = server == "http" ? "Benchmarks/node/http-server.js" : "Benchmarks/node/net-echo-server.js"
        return (["node", script], currentEnvironment(removing: ["ASYNCTRACE_OUTPUT", "ASYNCTRACE_APPEND"]))
    }

    static func selfCommand(_ server: String, record: String?) -> (argv: [String], env: [String]) {
        var env = currentEnvironment(removing: ["ASYNCTRACE_OUTPUT", "ASYNCTRACE_APPEND", serveVariable])
        env.append("\(serveVariable)=\(server)")
        if let record { env.append("ASYNCTRACE_OUTPUT=\(record)") }
        return (["/proc/self/exe", "net"], env)
    }

    static func currentEnvironment(removing: Set<String>) -> [String] {
        var out: [String] = []
        var p = environ
        while let e = p.pointee {
            let s = String(cString: e)
            if !removing.contains(String(s.prefix { $0 != "=" })) { out.append(s) }
            p += 1
        }
        return out
    }

    // MARK: the server side (child process)

    /// Serves on 127.0.0.1 (port printed on stdout) until stdin closes, then exits (the recorder flushes at exit).
    static func serve(_ kind: String) -> Never {
        EventLoop.main {
            let port: () -> Int
            switch kind {
            case "http":
                let server = HTTPServer { req, res in
                    req.onEnd {
                        res.setHeader("Content-Type", "text/plain")
                        res.end("hello world\n")
                    }
                }
                server.listen(port: 0, host: "127.0.0.1") { say("\(server.address()!.port)") }
                port = { server.address()?.port ?? 0 }
            default:
                let server = Server { socket in
                    socket.onData { socket.write($0) }
                    socket.onError { _ in }
                }
                server.listen(port: 0, host: "127.0.0.1") { say("\(server.address()!.port)") }
                port = { server.address()?.port ?? 0 }
            }
            _ = port
            let stdinWatcher = try FDWatcher(fd: 0) { _ in
                var b = [UInt8](repeating: 0, count: 64)
                let n = b.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n <= 0 { exit(0) }
            }
            try stdinWatcher.start(.readable)
        }
        exit(0)
    }

    static func say(_ s: String) {
        var b = Array((s + "\n").utf8)
        _ = b.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
    }

    // MARK: the load generator (this process)

    /// Starts the server, runs the load, stops the server; ops per second, or nil if the server failed.
    static func measureServer(_ cmd: (argv: [String], env: [String]), _ w: Workload) -> Double? {
        measureServerAndCPU(cmd, w)?.opsPerSecond
    }

    /// CPU time (user + system, ns) of `pid` and its descendants, from /proc (clock ticks).
    static func treeCPUNs(_ pid: pid_t) -> Double {
        var total = 0.0
        var queue = [pid]
        let tick = 1e9 / Double(sysconf(Int32(_SC_CLK_TCK)))
        while let p = queue.popLast() {
            if let stat = readSmallFile("/proc/\(p)/stat"), let close = stat.lastIndex(of: ")") {
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                // After ")": state(0) ppid(1) ... utime(11) stime(12)
                if fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]) { total += (u + s) * tick }
            }
            for task in NodeBench.names(in: "/proc/\(p)/task") {
                if let children = readSmallFile("/proc/\(p)/task/\(task)/children") {
                    queue += children.split(separator: " ").compactMap { pid_t($0.trimmingPrefix(" ")) }
                }
            }
        }
        return total
    }

    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = read(fd, &buf, buf.count)
        return n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : nil
    }

    /// Requests per second, and the CPU time the server's process tree (a recorder and its program
    /// included) spent per request while they were counted: robust where throughput is not, on a
    /// machine other work keeps busy.
    static func measureServerAndCPU(_ cmd: (argv: [String], env: [String]), _ w: Workload, seconds: Double = seconds) -> (
        opsPerSecond: Double, cpuNsPerOp: Double
    )? {
        var toChild: [Int32] = [-1, -1], fromChild: [Int32] = [-1, -1]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else { return nil }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        posix_spawn_file_actions_addclose(&actions, toChild[1])
        posix_spawn_file_actions_addclose(&actions, fromChild[0])
        let argv = cmd.argv.map { strdup($0) } + [nil]
        let envp = cmd.env.map { strdup($0) } + [nil]
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0]!, &actions, nil, argv, envp)
        posix_spawn_file_actions_destroy(&actions)
        argv.forEach { free($0) }
        envp.forEach { free($0) }
        close(toChild[0])
        close(fromChild[1])
        defer {
            close(toChild[1])  // the server exits on stdin EOF
            var status: Int32 = 0
            if pid > 0 { waitpid(pid, &status, 0) }
        }
        guard rc == 0 else {
            say("{\"benchmark\": \"net.skipped\", \"reason\": \"cannot start \(cmd.argv[0]): errno \(rc)\"}")
            close(fromChild[0])
            return nil
        }
        // The port, one line.
        var line: [UInt8] = []
        var c: UInt8 = 0
        while read(fromChild[0], &c, 1) == 1 && c != 10 { line.append(c) }
        close(fromChild[0])
        guard let port = Int(String(decoding: line, as: UTF8.self)) else { return nil }
        var cpuStart = 0.0
        let startNs = monotonicNs()
        var countStartNs = startNs
        guard
            let ops = load(
                port: port, w, seconds: seconds,
                onCountingStart: {
                    cpuStart = treeCPUNs(pid); countStartNs = monotonicNs()
                })
        else { return nil }
        let cpu = treeCPUNs(pid) - cpuStart
        let requests = ops * Double(monotonicNs() - countStartNs) / 1e9
        return (ops, requests > 0 ? cpu / requests : 0)
    }

    final class Connection {
        let fd: Int32
        var pending: [UInt8] = []
        init(fd: Int32) { self.fd = fd }
    }

    /// Request/response loops on `w.connections` connections: 0.3 s warm-up, then `seconds` counted.
    static func load(port: Int, _ w: Workload, seconds: Double = seconds, onCountingStart: (() -> Void)? = nil) -> Double? {
        let ep = epoll_create1(Int32(EPOLL_CLOEXEC))
        defer { close(ep) }
        var conns: [Connection] = []
        defer { conns.forEach { close($0.fd) } }
        for i in 0..<w.connections {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port)).bigEndian
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let ok = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard ok == 0 else { close(fd); return nil }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(4))
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var ev = epoll_event()
            ev.events = EPOLLIN.rawValue
            ev.data.u64 = UInt64(i)
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)
            conns.append(Connection(fd: fd))
        }
        let isHTTP = w.server == "http"
        let request = w.request
        func send(_ c: Connection) {
            _ = request.withUnsafeBytes { Glibc.send(c.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        conns.forEach(send)
        let warmupEnd = monotonicNs() + 300_000_000
        var countStart = warmupEnd
        var end = warmupEnd + UInt64(seconds * 1e9)
        var completed = 0
        var counting = false
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: 256)
        defer { events.deallocate() }
        let buf = UnsafeMutableRawPointer.allocate(byteCount: 65536, alignment: 16)
        defer { buf.deallocate() }
        while true {
            let now = monotonicNs()
            if now >= end { break }
            if !counting && now >= warmupEnd {
                counting = true
                onCountingStart?()
                completed = 0
                countStart = monotonicNs()
                end = countStart + UInt64(seconds * 1e9)
            }
            let n = epoll_wait(ep, events, 256, 100)
            if n < 0 { if errno == EINTR { continue }; return nil }
            for i in 0..<Int(n) {
                let c = conns[Int(events[i].data.u64)]
                let r = recv(c.fd, buf, 65536, 0)
                if r <= 0 {
                    if r < 0 && errno == EAGAIN { continue }
                    return nil  // the server closed on us
                }
                c.pending += UnsafeRawBufferPointer(start: buf, count: r)
                var done = 0
                if isHTTP {
                    while let used = completeHTTPResponse(c.pending) {
                        c.pending.removeFirst(used)
                        done += 1
                    }
                } else {
                    while c.pending.count >= request.count {
                        c.pending.removeFirst(request.count)
                        done += 1
                    }
                }
                for _ in 0..<done {
                    completed += 1
                    send(c)
                }
            }
        }
        // The counted time, not `seconds`: `onCountingStart` may have taken a moment.
        return Double(completed) / (Double(monotonicNs() - countStart) / 1e9)
    }

    /// The size of the first complete response in `b` (head with Content-Length, plus its body), or nil.
    static func completeHTTPResponse(_ b: [UInt8]) -> Int? {
        guard b.count >= 4 else { return nil }
        var headEnd = -1
        for i in 0..<(b.count - 3) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 {
            headEnd = i
            break
        }
        guard headEnd >= 0 else { return nil }
        let head = String(decoding: b[..<headEnd], as: UTF8.self).lowercased()
        guard let r = head.firstRange(of: "content-length:") else { return nil }
        let digits = head[r.upperBound...].drop { $0 == " " }.prefix { $0.isNumber }
        guard let len = Int(digits) else { return nil }
        let total = headEnd + 4 + len
        return b.count >= total ? total : nil
    }
}
