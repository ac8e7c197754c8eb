// The lessons, each printing what its Node peer in Benchmarks/node/lessons.js prints.
import AsyncTraceRuntime
#if canImport(Glibc)
import Glibc
#endif

func log(_ s: String) {
    var line = Array((s + "\n").utf8)
    _ = line.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
}

func busy(ms: Int) {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    let end = Int(ts.tv_sec) * 1000 + Int(ts.tv_nsec) / 1_000_000 + ms
    while true {
        clock_gettime(CLOCK_MONOTONIC, &ts)
        if Int(ts.tv_sec) * 1000 + Int(ts.tv_nsec) / 1_000_000 >= end { break }
    }
}

/// What ran when (Benchmarks/node/lessons.js's `markers`): a nextTick, a promise reaction, an immediate,
/// and a 0 ms timer where its order is deterministic (scheduled from an I/O callback).
func markers(_ tag: String, timer: Bool = false) {
    setImmediate { log("\(tag) immediate") }
    nextTick { log("\(tag) nextTick") }
    Promise<Void>.resolve(()).then { log("\(tag) promise") }
    if timer { setTimeout(0) { log("\(tag) timeout") } }
}

/// The lessons. Not top-level code: that is @MainActor, and a task started there would wait for the
/// main actor, which a thread running the loop never serves.
enum Lessons {
    static let all: [String: @Sendable (String) throws -> Void] = [
        "main-first": { dir in
            setTimeout(1) { log("Should run in 1ms") }
            busy(ms: 5)
            log("Will this be printed first?")
        },
        "timers-order": { dir in
            setTimeout(100) { log("A: set first, 100 ms") }
            setTimeout(10) { log("B: set second, 10 ms") }
            busy(ms: 150)
            setTimeout(1) { log("C: set after the block, 1 ms") }
        },
        "file-chain": { dir in
            FS.readFile(dir + "/a.txt") { r in
                let data = try r.get()
                log("read a.txt")
                setTimeout(1) { log("timeout elapsed 1ms") }
                FS.writeFile(dir + "/b.txt", data) { r in
                    try r.get()
                    log("write b.txt")
                    setTimeout(1000) { FS.readFile(dir + "/c.txt") { _ in log("read c after a second") } }
                }
            }
        },
        "immediate-vs-readfile": { dir in
            FS.readFile(dir + "/c.txt") { _ in log("readFile") }
            setImmediate { log("setImmediate") }
        },
        "nexttick-order": { dir in
            setTimeout(0) { log("timeout") }
            Promise<Void>.resolve(()).then { log("promise") }
            nextTick { log("nextTick") }
            log("main")
        },
        "async-await": { dir in
            log("Start Initial phase")
            EventLoop.current.runAsync {
                log("async function starts")
                let data = try await FS.promises.readFile(dir + "/c.txt").value
                log("awaited readFile: \(data.count) bytes")
                await sleep(ms: 1)
                log("awaited a timer")
            }
            nextTick { log("nextTick") }
            log("End Initial phase")
        },
        "nexttick-starvation": { dir in
            var ticks = 0
            setTimeout(0) { log("timeout after \(ticks) ticks") }
            setImmediate { log("immediate after \(ticks) ticks") }
            FS.readFile(dir + "/c.txt") { _ in log("readFile after \(ticks) ticks") }
            func again() {
                ticks += 1
                if ticks < 100_000 { nextTick(again) } else { log("ticks done") }
            }
            nextTick(again)
        },
        // Not a lesson with a Node peer in lessons.js: the uncaught-error policy (Node ends the process).
        "uncaught": { dir in
            struct Boom: Error, CustomStringConvertible { var description: String { "boom" } }
            let t = setTimeout(1) { throw Boom() }
            log("timer \(t.asyncID)")
            setTimeout(50) { log("never: the process ended") }
        },
        // Not a lesson either: 8 blocking 50 ms jobs on the thread pool; prints the wall time in ms, which
        // shows the pool's size (UV_THREADPOOL_SIZE).
        "pool-size": { dir in
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            let start = Int(ts.tv_sec) * 1000 + Int(ts.tv_nsec) / 1_000_000
            var left = 8
            for _ in 0..<8 {
                queueWork({ usleep(50_000) }) { _ in
                    left -= 1
                    if left == 0 {
                        clock_gettime(CLOCK_MONOTONIC, &ts)
                        log("\(Int(ts.tv_sec) * 1000 + Int(ts.tv_nsec) / 1_000_000 - start)")
                    }
                }
            }
        },
        "unref": { dir in
            setTimeout(1000) { log("unref timer fired") }.unref()
            setTimeout(10) { log("ref timer fired") }
            EventLoop.current.onExit { _ in log("loop ended") }
        },
        // 'error' on a nextTick right after the failure, 'close' in the close phase (after immediates).
        "error-refused": { dir in
            let probe = Server()
            probe.listen(port: 0, host: "127.0.0.1") {
                let port = probe.address()!.port
                probe.close { _ in
                    let s = Socket.connect(port: port, host: "127.0.0.1")
                    s.onError { e in
                        log("error \(e.code) \(e.syscall)"); markers("in error", timer: true)
                    }
                    s.onClose { hadError in log("close \(hadError)") }
                }
            }
        },
        "error-destroy": { dir in
            let server = Server { _ in }
            server.listen(port: 0, host: "127.0.0.1") {
                let s = Socket.connect(port: server.address()!.port, host: "127.0.0.1")
                s.onConnect {
                    log("connect")
                    s.destroy(NetError(code: "ERR_TEST", syscall: "destroy", asyncID: s.asyncID, message: "boom"))
                    markers("after destroy", timer: true)
                    server.close()
                }
                s.onError { e in log("error \(e.message)") }
                s.onClose { hadError in log("close \(hadError)") }
            }
        },
        "error-listen-inuse": { dir in
            let a = Server()
            a.listen(port: 0) {
                let b = Server()
                b.onError { e in
                    log("error \(e.code) \(e.syscall)"); a.close { _ in log("a close") }
                }
                b.onClose { log("b close (never: it did not listen)") }
                b.listen(port: a.address()!.port)
                markers("after listen")
            }
        },
        "error-unix-enoent": { dir in
            let s = Socket.connect(path: dir + "/missing.sock")
            s.onError { e in log("error \(e.code) \(e.syscall)") }
            s.onClose { hadError in log("close \(hadError)") }
            markers("after connect")
        },
        "error-udp": { dir in
            let a = UDPSocket(.udp4)
            a.bind(port: 0, host: "127.0.0.1") {
                let b = UDPSocket(.udp4)
                b.onError { e in
                    log("bind error \(e.code) \(e.syscall)"); b.close { log("b close") }
                }
                b.bind(port: a.address()!.port, host: "127.0.0.1")
                markers("after bind")
                // Broadcast without SO_BROADCAST: EACCES from sendto.
                a.send("x", port: 9, host: "255.255.255.255") { e in
                    log("send \(e?.code ?? "null")"); a.close { log("a close") }
                }
            }
        },
        "error-spawn": { dir in
            let c = ChildProcess.spawn("/nonexistent/program")
            c.onError { e in log("error \(e.code) \(e.syscall)") }
            c.onExit { _, _ in log("exit (never)") }
            c.onClose { code, signal in
                log("close \(code.map { "\($0)" } ?? "null") \(signal ?? "null")")
                let d = ChildProcess.spawn("/nonexistent/program", stdio: [.ignore, .ignore, .ignore])
                d.onError { e in log("no stdio: error \(e.code)") }
                d.onClose { code, signal in log("no stdio: close \(code.map { "\($0)" } ?? "null") \(signal ?? "null")") }
                setImmediate { log("no stdio: immediate") }
            }
            markers("after spawn")
        },
        "error-fs-streams": { dir in
            let r = FS.createReadStream(dir + "/missing.txt")
            r.onError = { e in
                log("read error \((e as? SystemError)?.code ?? "\(e)")"); markers("in read error")
            }
            r.onClose = {
                log("read close")
                let d = FS.createReadStream(dir)  // opens; the first read fails (EISDIR), after the fd closed
                d.onData = { _ in log("data (never)") }
                d.onError = { e in log("dir error \((e as? SystemError)?.code ?? "\(e)")") }
                d.onClose = {
                    log("dir close")
                    let w = FS.createWriteStream("/dev/full")
                    w.onError = { e in log("write error \((e as? SystemError)?.code ?? "\(e)")") }
                    w.onClose = { log("write close") }
                    w.write(Array("x".utf8))
                }
            }
            nextTick { log("after create nextTick") }  // (an immediate here would race the open)
        },
        // A then handler returning a promise: the derived promise settles two microtasks later than with
        // a value (NewPromiseResolveThenableJob, then the adopted promise's reaction).
        "promise-adoption": { dir in
            Promise<Int>.resolve(1).then { _ -> Promise<Int> in
                log("A returns a promise")
                return Promise<Int>.resolve(2)
            }.then { v in log("A done \(v)") }
            Promise<Void>.resolve(()).then { log("t1") }.then { log("t2") }.then { log("t3") }.then { log("t4") }.then { log("t5") }
            Promise<Int> { r in r.resolve(with: Promise<Int>.resolve(3)) }.then { v in log("resolved with a promise: \(v)") }
        },
        // process 'beforeExit' (the loop ran out of work; listeners may add more) and 'exit' (once, sync).
        "process-exit": { dir in
            let loop = EventLoop.current
            var rounds = 0
            loop.onBeforeExit { code in
                log("beforeExit \(code)")
                rounds += 1
                if rounds < 3 {
                    let n = rounds
                    setTimeout(1) { log("timer from beforeExit \(n)") }
                    nextTick { log("tick from beforeExit") }
                } else {
                    RuntimeProcess.exitCode = 3
                }
            }
            loop.onExit { code in
                log("exit \(code)")
                nextTick { log("tick from exit (never)") }
                setTimeout(0) { log("timer from exit (never)") }
            }
            setImmediate { log("immediate") }
            log("main")
        },
    ]
}
