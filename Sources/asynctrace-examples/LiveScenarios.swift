// A program that keeps running with a loop that stalls now and then: for `asynctrace top`.
import AsyncTraceRuntime

/// stalls [seconds=3] [everyMs=1000] [stallMs=200]: a 10 ms heartbeat timer, and every `everyMs` a
/// timer callback that blocks the loop for `stallMs` in a synchronous read (a pipe another thread writes).
func stallsScenario(_ args: [String]) throws {
    let seconds = args.count > 0 ? Int(args[0]) ?? 3 : 3
    let every = args.count > 1 ? Int(args[1]) ?? 1_000 : 1_000
    let stall = args.count > 2 ? Int(args[2]) ?? 200 : 200
    guard seconds > 0, seconds <= 86_400, every > 0, stall >= 0, stall <= 60_000 else {
        fail("usage: stalls [seconds] [everyMs] [stallMs]")
    }
    // Started from a callback, so each timer's trigger is a callback (a causal flow in the exports).
    setTimeout(0) {
        var beats = 0, stalls = 0
        let heartbeat = setInterval(10) { beats += 1 }
        let staller = setInterval(every) {
            stalls += 1
            log("stall \(stalls): blocking the loop for \(stall) ms (synchronous read)")
            blockingRead(milliseconds: stall)
        }
        setTimeout(seconds * 1_000) {
            heartbeat.clear()
            staller.clear()
            log("heartbeats: \(beats), stalls: \(stalls)")
        }
    }
}
