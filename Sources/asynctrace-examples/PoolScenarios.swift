// Scenarios on the runtime's thread pool: fs and dns.
import AsyncTraceRuntime
#if canImport(Glibc)
import Glibc
#endif

func moreScenarios() -> [Scenario] {
    [
        Scenario(name: "fs", summary: "readFile -> writeFile -> setTimeout -> readFile, plus a stat and a readdir (thread pool)", run: fsScenario),
        Scenario(name: "dns", summary: "dns.lookup of localhost and this host's name, then a TCP connect by name", run: dnsScenario),
        Scenario(
            name: "leak", summary: "a heartbeat interval started in startHeartbeat() and never cleared; process exit after 200 ms", run: leakScenario),
        Scenario(
            name: "flight-stalls", summary: "a steady load (20k callbacks/s) with a 250 ms stall every 2 s, for 6 s (flight recorder)",
            run: flightStallsScenario),
    ]
}

/// The classic chain: each step is an FSREQCALLBACK completing in the poll phase.
func fsScenario(_ args: [String]) throws {
    let dir = "/tmp/asynctrace-examples-fs-\(getpid())"
    try FS.mkdirSync(dir)
    let a = dir + "/a.txt", b = dir + "/b.txt"
    try FS.writeFileSync(a, Array("contents of a\n".utf8))
    FS.readFile(a) { r in
        let data = try r.get()
        log("read a.txt (\(data.count) bytes)")
        FS.writeFile(b, data + Array("and b\n".utf8)) { r in
            try r.get()
            log("write b.txt")
            setTimeout(100) {
                FS.readFile(b) { r in
                    log("read b.txt after a timeout: \(try r.get().count) bytes")
                    FS.stat(b) { st in
                        log("stat b.txt: size \(try st.get().size)")
                        FS.readdir(dir) { entries in
                            log("readdir: \(try entries.get().sorted())")
                            try FS.unlinkSync(a)
                            try FS.unlinkSync(b)
                            try FS.rmdirSync(dir)
                        }
                    }
                }
            }
        }
    }
    FS.readFile(dir + "/missing.txt") { r in
        if case .failure(let e) = r { log("missing.txt: \(e)") }
    }
}

/// dns.lookup on the thread pool (GETADDRINFOREQWRAP), then a connect that resolves the name itself.
func dnsScenario(_ args: [String]) throws {
    var name = [CChar](repeating: 0, count: 256)
    gethostname(&name, name.count)
    let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    DNS.lookup("localhost") { r in
        let found = try r.get()
        log("localhost -> \(found.address) (IPv\(found.family))")
    }
    DNS.lookup("nonexistent.invalid") { r in
        if case .failure(let e) = r { log("nonexistent.invalid -> \(e)") }
    }
    let server = Server { s in s.end("hi from the server\n") }
    server.listen(port: 0, host: "0.0.0.0") {
        let port = server.address()!.port
        DNS.lookup(host) { r in
            log("\(host) -> \((try? r.get().address) ?? "?")")
            let c = Socket.connect(port: port, host: host)
            var got: [UInt8] = []
            c.onData { got += $0 }
            c.onConnect { log("connected to \(host):\(port) at \(c.remoteAddress.map { "\($0)" } ?? "?")") }
            c.onError { e in log("connect error: \(e)") }
            c.onClose { _ in
                log("received: \(String(decoding: got, as: UTF8.self).trimmingNewline)")
                server.close()
            }
        }
    }
}

extension String {
    var trimmingNewline: String { hasSuffix("\n") ? String(dropLast()) : self }
}
