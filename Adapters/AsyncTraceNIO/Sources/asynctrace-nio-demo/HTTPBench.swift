// HTTP requests/s of the NIO server (`http`, one event-loop thread) under a loopback load generator (this
// process: one thread, poll(2), 50 keep-alive connections, one request in flight on each), four variants
// taking turns so drift in the machine hits all alike: bare (`--untraced`), hooks only (the bridge installed,
// no recorder), traced (recorder + Concurrency + NIO bridge, ASYNCTRACE_OUTPUT set), and traced under `asynctrace record` (kernel probes on top; the CLI from
// ASYNCTRACE_CLI or ../../.build/debug/asynctrace). Medians of `--runs` runs of `--seconds` each.
import Dispatch
import NIODemoServers
#if canImport(Glibc)
import Glibc
#endif

enum HTTPBench {
    static func run() {
        let seconds = Double(option("--seconds") ?? "2") ?? 2
        let runs = Int(option("--runs") ?? "5") ?? 5
        let connections = Int(option("--connections") ?? "50") ?? 50
        let me = executablePath()
        let cli = getenv("ASYNCTRACE_CLI").map { String(cString: $0) } ?? "../../.build/debug/asynctrace"
        let haveCLI = access(cli, X_OK) == 0
        if !haveCLI { say("{\"benchmark\": \"nio.http.kernel.skipped\", \"reason\": \"no asynctrace CLI at \(cli) (set ASYNCTRACE_CLI)\"}") }
        let traceA = "/tmp/asynctrace-nio-bench-\(getpid())-a.atrace"
        let traceB = "/tmp/asynctrace-nio-bench-\(getpid())-b.atrace"
        defer { unlink(traceA); unlink(traceB) }
        var bare: [Double] = [], hooks: [Double] = [], traced: [Double] = [], kernel: [Double] = []
        let env = environment(removing: ["ASYNCTRACE_OUTPUT", "ASYNCTRACE_APPEND", "LD_PRELOAD"])
        for _ in 0..<runs {
            if let r = measure(argv: [me, "http", "--untraced", "--exit-on-stdin-eof"], env: env, seconds: seconds, connections: connections) {
                bare.append(r)
            }
            // The bridge installed, nothing recording: the floor of the hooks themselves.
            if let r = measure(argv: [me, "http", "--exit-on-stdin-eof"], env: env, seconds: seconds, connections: connections) {
                hooks.append(r)
            }
            unlink(traceA)
            if let r = measure(
                argv: [me, "http", "--exit-on-stdin-eof"], env: env + ["ASYNCTRACE_OUTPUT=" + traceA],
                seconds: seconds, connections: connections)
            {
                traced.append(r)
            }
            if haveCLI {
                unlink(traceB)
                if let r = measure(
                    argv: [cli, "record", "-o", traceB, "--", me, "http", "--exit-on-stdin-eof"], env: env,
                    seconds: seconds, connections: connections)
                {
                    kernel.append(r)
                }
            }
        }
        let b = median(bare), h = median(hooks), t = median(traced), k = median(kernel)
        let common = "\"median_of\": \(runs), \"seconds\": \(seconds), \"connections\": \(connections)"
        say("{\"benchmark\": \"nio.http.bare\", \"requests_per_s\": \(Int(b)), \(common)}")
        say("{\"benchmark\": \"nio.http.hooks_only\", \"requests_per_s\": \(Int(h)), \"slowdown\": \(fmt3(b / h)), \(common)}")
        say("{\"benchmark\": \"nio.http.traced\", \"requests_per_s\": \(Int(t)), \"slowdown\": \(fmt3(b / t)), \(common)}")
        if !kernel.isEmpty {
            say("{\"benchmark\": \"nio.http.traced_kernel\", \"requests_per_s\": \(Int(k)), \"slowdown\": \(fmt3(b / k)), \(common)}")
        }
        say(
            "runs bare \(bare.map { Int($0) }) hooks-only \(hooks.map { Int($0) }) traced \(traced.map { Int($0) }) traced+kernel \(kernel.map { Int($0) })"
        )
    }

    static func median(_ xs: [Double]) -> Double {
        guard !xs.isEmpty else { return .nan }
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    static func fmt3(_ x: Double) -> String { x.isFinite ? String((x * 1000).rounded() / 1000) : "null" }

    static func executablePath() -> String {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink("/proc/self/exe", &buf, 4096)
        return n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    }

    static func environment(removing names: Set<String>) -> [String] {
        var out: [String] = []
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "="), !names.contains(String(s[..<eq])) { out.append(s) }
            p += 1
        }
        return out
    }

    /// Starts the server (its first stdout line is "PORT n"), loads it, stops it (stdin EOF); requests/s.
    static func measure(argv: [String], env: [String], seconds: Double, connections: Int) -> Double? {
        var toChild: [Int32] = [-1, -1], fromChild: [Int32] = [-1, -1]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else { return nil }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        posix_spawn_file_actions_addclose(&actions, toChild[1])
        posix_spawn_file_actions_addclose(&actions, fromChild[0])
        let cargv = argv.map { strdup($0) } + [nil]
        let cenv = env.map { strdup($0) } + [nil]
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, cargv[0]!, &actions, nil, cargv, cenv)
        posix_spawn_file_actions_destroy(&actions)
        cargv.forEach { free($0) }
        cenv.forEach { free($0) }
        close(toChild[0])
        close(fromChild[1])
        defer {
            close(toChild[1])
            var status: Int32 = 0
            if pid > 0 { waitpid(pid, &status, 0) }
        }
        guard rc == 0 else { close(fromChild[0]); return nil }
        var line: [UInt8] = []
        var c: UInt8 = 0
        while read(fromChild[0], &c, 1) == 1 && c != 10 { line.append(c) }
        close(fromChild[0])
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("PORT "), let port = Int(text.dropFirst(5)) else { return nil }
        return load(port: port, seconds: seconds, connections: connections)
    }

    /// Request/response loops on `connections` connections: 0.3 s warm-up, then `seconds` counted.
    static func load(port: Int, seconds: Double, connections: Int) -> Double? {
        let request = Array("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        var polls: [pollfd] = []
        var pending: [[UInt8]] = []
        defer { polls.forEach { close($0.fd) } }
        for _ in 0..<connections {
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
            polls.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
            pending.append([])
        }
        for p in polls { _ = request.withUnsafeBytes { write(p.fd, $0.baseAddress, $0.count) } }
        var buf = [UInt8](repeating: 0, count: 65536)
        let start = now()
        let countFrom = start + 0.3
        let end = countFrom + seconds
        var completed = 0
        while now() < end {
            let n = poll(&polls, nfds_t(polls.count), 100)
            if n < 0 { if errno == EINTR { continue } else { return nil } }
            for i in 0..<polls.count where polls[i].revents != 0 {
                let r = buf.withUnsafeMutableBytes { read(polls[i].fd, $0.baseAddress, $0.count) }
                if r <= 0 { return nil }
                pending[i].append(contentsOf: buf[0..<r])
                while let size = completeResponse(pending[i]) {
                    pending[i].removeFirst(size)
                    if now() >= countFrom { completed += 1 }
                    _ = request.withUnsafeBytes { write(polls[i].fd, $0.baseAddress, $0.count) }
                }
            }
        }
        return Double(completed) / seconds
    }

    /// The size of the complete response at the start of `b` (headers + content-length), or nil.
    static func completeResponse(_ b: [UInt8]) -> Int? {
        var i = 0
        while i + 3 < b.count && !(b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10) { i += 1 }
        guard i + 3 < b.count else { return nil }
        let name = Array("content-length:".utf8)
        var length = 0
        var j = 0
        while j + name.count <= i {
            if zip(b[j..<(j + name.count)], name).allSatisfy({ $0 | 0x20 == $1 | 0x20 }) {
                var k = j + name.count
                while k < i && b[k] == 32 { k += 1 }
                while k < i && b[k] >= 48 && b[k] <= 57 { length = length * 10 + Int(b[k] - 48); k += 1 }
                break
            }
            j += 1
        }
        let total = i + 4 + length
        return b.count >= total ? total : nil
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
