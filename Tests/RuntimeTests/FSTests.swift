// fs, the thread pool, dns and signals, on real files, the real resolver and real signals.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import Testing
@testable import AsyncTraceRuntime

/// A fresh directory for one test.
func tempDirectory(_ name: String) -> String {
    let path = "/tmp/asynctrace-rt-\(getpid())-\(name)-\(UInt32.random(in: 0...UInt32.max))"
    mkdir(path, 0o755)
    return path
}

func removeTree(_ path: String) {
    if let names = try? Sys.readDirectory(path) {
        for n in names { removeTree(path + "/" + n) }
        rmdir(path)
    } else {
        unlink(path)
    }
}

@Suite("fs, thread pool, dns, signals")
struct FSTests {
    @Test("callback fs: mkdir, writeFile, readFile, stat, readdir, rename, unlink, open/read/write/close")
    func callbacks() {
        let dir = tempDirectory("cb")
        defer { removeTree(dir) }
        let out = runScenario { log in
            FS.mkdir(dir + "/sub") { r in
                try r.get()
                FS.writeFile(dir + "/sub/a.txt", Array("hello fs".utf8)) { r in
                    try r.get()
                    FS.readFile(dir + "/sub/a.txt") { r in
                        log("read \(String(decoding: try r.get(), as: UTF8.self))")
                        FS.stat(dir + "/sub/a.txt") { r in
                            let st = try r.get()
                            log("stat size \(st.size) file \(st.isFile) dir \(st.isDirectory)")
                            FS.rename(dir + "/sub/a.txt", dir + "/sub/b.txt") { r in
                                try r.get()
                                FS.readdir(dir + "/sub") { r in
                                    log("readdir \(try r.get())")
                                    FS.open(dir + "/sub/b.txt", "r+") { r in
                                        let fd = try r.get()
                                        FS.write(fd, Array("J".utf8), position: 0) { r in
                                            _ = try r.get()
                                            FS.read(fd, length: 5, position: 0) { r in
                                                log("pread \(String(decoding: try r.get(), as: UTF8.self))")
                                                FS.close(fd) { r in
                                                    try r.get()
                                                    FS.unlink(dir + "/sub/b.txt") { r in
                                                        try r.get()
                                                        FS.rmdir(dir + "/sub") { r in
                                                            try r.get(); log("done")
                                                        }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        #expect(out == ["read hello fs", "stat size 8 file true dir false", "readdir [\"b.txt\"]", "pread Jello", "done"])
    }

    @Test("errors come back as SystemError with Node's codes; bad arguments as RuntimeError")
    func errors() {
        let dir = tempDirectory("err")
        defer { removeTree(dir) }
        let out = runScenario { log in
            FS.readFile(dir + "/missing") { r in
                if case .failure(let e as SystemError) = r { log("\(e.code) \(e.function)") }
            }
            FS.mkdir(dir) { r in if case .failure(let e as SystemError) = r { log("mkdir \(e.code)") } }
            FS.open(dir + "/x", "q") { r in if case .failure(let e) = r { log("\(e)") } }
            do { _ = try FS.readFileSync(dir + "/missing") } catch let e as SystemError { log("sync \(e.code)") }
        }
        #expect(Set(out) == ["ENOENT open", "mkdir EEXIST", "ERR_INVALID_ARG_VALUE: unknown file open flags 'q'", "sync ENOENT"])
        #expect(out.first == "sync ENOENT")
    }

    @Test("fs.promises with await, and sync variants")
    func promisesAndSync() {
        let dir = tempDirectory("prom")
        defer { removeTree(dir) }
        let out = runScenario { log in
            try FS.writeFileSync(dir + "/s.txt", Array("sync".utf8))
            log("sync read \(String(decoding: try FS.readFileSync(dir + "/s.txt"), as: UTF8.self))")
            EventLoop.current.runAsync {
                try await FS.promises.writeFile(dir + "/p.txt", Array("promised".utf8)).value
                let data = try await FS.promises.readFile(dir + "/p.txt").value
                log("await read \(String(decoding: data, as: UTF8.self))")
                let names = try await FS.promises.readdir(dir).value.sorted()
                log("names \(names)")
                do { _ = try await FS.promises.stat(dir + "/nope").value } catch let e as SystemError { log("await \(e.code)") }
            }
        }
        #expect(out == ["sync read sync", "await read promised", "names [\"p.txt\", \"s.txt\"]", "await ENOENT"])
    }

    @Test("streams: a read stream piped to a write stream with small highWaterMarks copies a file with backpressure")
    func streams() throws {
        let dir = tempDirectory("stream")
        defer { removeTree(dir) }
        let size = 1 << 20
        var content = [UInt8](repeating: 0, count: size)
        for i in 0..<size { content[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 8) }
        try FS.writeFileSync(dir + "/in", content)
        let stats = LockedValue<(chunks: Int, falseWrites: Int, drains: Int)>((0, 0, 0))
        let out = runScenario { log in
            let rs = FS.createReadStream(dir + "/in", highWaterMark: 16 << 10)
            // Chunks (16 KiB) above the writer's highWaterMark (8 KiB): every write must report backpressure.
            let ws = FS.createWriteStream(dir + "/out", highWaterMark: 8 << 10)
            rs.onData = { chunk in
                stats.withLock { $0.chunks += 1 }
                if !ws.write(chunk) {
                    stats.withLock { $0.falseWrites += 1 }
                    rs.pause()
                    ws.onDrain = {
                        stats.withLock { $0.drains += 1 }; rs.resume()
                    }
                }
            }
            rs.onEnd = {
                log("end after \(rs.bytesRead)"); ws.end()
            }
            rs.onClose = { log("read closed") }
            ws.onFinish = { log("finish \(ws.bytesWritten)") }
        }
        #expect(out.first == "end after \(size)")
        #expect(Set(out) == ["end after \(size)", "read closed", "finish \(size)"])
        #expect(try FS.readFileSync(dir + "/out") == content)
        let s = stats.withLock { $0 }
        #expect(s.chunks == size / (16 << 10))
        #expect(s.falseWrites == s.chunks && s.drains == s.falseWrites)
    }

    @Test("a read stream of a missing file reports the error, then close; pipe() copies")
    func streamErrorAndPipe() throws {
        let dir = tempDirectory("pipe")
        defer { removeTree(dir) }
        try FS.writeFileSync(dir + "/a", Array(repeating: 7, count: 100_000))
        let out = runScenario { log in
            let bad = FS.createReadStream(dir + "/missing")
            bad.onError = { e in log("error \((e as? SystemError)?.code ?? "?")") }
            bad.onClose = { log("closed") }
            let ws = FS.createReadStream(dir + "/a", highWaterMark: 1000).pipe(FS.createWriteStream(dir + "/b", highWaterMark: 1000))
            ws.onFinish = { log("piped \(ws.bytesWritten)") }
        }
        #expect(Set(out) == ["error ENOENT", "closed", "piped 100000"])
        #expect(try FS.readFileSync(dir + "/b").count == 100_000)
    }

    @Test("queueWork runs on a pool thread and completes on the loop; fs callbacks are FSREQCALLBACK resources")
    func queueWorkAndTypes() {
        let box = BalanceHookBox()
        let out = runScenario { log in
            let hook = BalanceHook()
            box.set(hook)
            AsyncHooks.enable(hook)
            let loopThread = pthread_self()
            EventLoop.current.queueWork({ () -> Bool in pthread_equal(pthread_self(), loopThread) == 0 }) { r in
                log("on pool: \(try r.get()), completion type \(hook.state.withLock { $0.types[executionAsyncID()] ?? "?" })")
            }
            FS.stat("/") { _ in log("stat in \(hook.state.withLock { $0.types[executionAsyncID()] ?? "?" })") }
        }
        AsyncHooks.disable(box.get()!)
        #expect(Set(out) == ["on pool: true, completion type WORKWRAP", "stat in FSREQCALLBACK"])
        let h = box.get()!
        #expect(h.state.withLock { $0.problems } == [])
        #expect(h.undestroyed == [])
    }

    @Test("dns.lookup resolves localhost and reports ENOTFOUND")
    func dns() {
        let out = runScenario { log in
            DNS.lookup("localhost", family: 4) { r in
                let (a, f) = try r.get(); log("\(a) v\(f)")
            }
            DNS.lookup("nonexistent.invalid") { r in
                if case .failure(let e as DNSError) = r { log(e.code) }
            }
            DNS.lookup("localhost", family: 5) { r in if case .failure = r { log("bad family") } }
        }
        #expect(Set(out) == ["127.0.0.1 v4", "ENOTFOUND", "bad family"])
    }

    @Test("signals arrive as SIGNALWRAP callbacks; closing twice is an error")
    func signals() {
        let out = runScenario { log in
            var n = 0
            var handle: SignalHandle!
            handle = try EventLoop.current.onSignal(SIGUSR2) { s in
                n += 1
                log("got \(s == SIGUSR2 ? "SIGUSR2" : "\(s)") #\(n)")
                if n == 2 {
                    try handle.close()
                    do { try handle.close() } catch { log("\(error)".contains("already closed") ? "double close refused" : "\(error)") }
                }
            }
            raise(SIGUSR2)  // blocked on this thread: queued for the signalfd
            setTimeout(5) { _ = raise(SIGUSR2) }
        }
        #expect(out == ["got SIGUSR2 #1", "got SIGUSR2 #2", "double close refused"])
    }
}
