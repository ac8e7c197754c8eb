// Scenarios on the loop core: timers and friends.
import AsyncTraceRuntime

func timersScenario(_ args: [String]) throws {
    log("main module start")
    setTimeout(10) { log("timeout 10ms") }
    setTimeout(0) { log("timeout 0ms") }
    setImmediate { log("immediate") }
    nextTick { log("nextTick") }
    queueMicrotask { log("microtask") }
    // Unref'd: it alone would not keep the loop alive. Cleared at the end so the trace has no open timer.
    let unrefd = setTimeout(10_000) { log("never: unref'd") }
    unrefd.unref()
    var n = 0
    var interval: Timeout?
    interval = setInterval(5) {
        n += 1
        log("interval \(n)")
        if n == 3 {
            interval?.clear()
            unrefd.clear()
        }
    }
    log("main module end")
}

/// A leak as programs have them: a heartbeat nobody clears. The process ends by process exit while
/// it is still armed, so it is open at exit, and its creation stack names startHeartbeat.
func leakScenario(_ args: [String]) throws {
    startHeartbeat(everyMs: 20)
    setTimeout(200) { RuntimeProcess.exit(0) }
}

@inline(never)
func startHeartbeat(everyMs: Int) {
    var beats = 0
    _ = setInterval(everyMs) { beats += 1 }
}
