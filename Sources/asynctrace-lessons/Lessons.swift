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
    },
]
}

