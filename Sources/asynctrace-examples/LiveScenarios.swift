// A program that keeps running with a loop that stalls now and then: for `asynctrace top`.
import AsyncTraceRuntime

/// stalls [seconds=10] [everyMs=2000] [stallMs=300]: a 10 ms heartbeat timer, and every `everyMs` a
/// timer callback that blocks the loop for `stallMs` in a synchronous read (a pipe another thread writes).
func stallsScenario(_ args: [String]) throws {
    let seconds = args.count > 0 ? Int(args[0]) ?? 10 : 10
    let every = args.count > 1 ? Int(args[1]) ?? 2_000 : 2_000
    let stall = args.count > 2 ? Int(args[2]) ?? 300 : 300
    guard seconds > 0, every > 0, stall >= 0 else { fail("usage: stalls [seconds] [everyMs] [stallMs]") }
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
