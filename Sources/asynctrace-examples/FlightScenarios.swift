// A steady load with stalls, for the flight recorder (`record --flight-recorder --dump-on-block`).
import AsyncHooks
import AsyncTraceRecorder
import AsyncTraceRuntime
#if canImport(Glibc)
import Glibc
#endif

/// `flight-stalls [seconds] [every-ms] [stall-ms] [dump]`: for `seconds` (default 6), a timer every ms
/// that starts 20 immediates, each writing a byte to /dev/null (a syscall); every `every-ms`
/// (default 2000) a callback marked "stall N" blocks the loop for `stall-ms` (default 250) in
/// nanosleep. With `dump`, the program asks the flight recorder for a dump after each stall
/// (TraceRecorder.dump()).
func flightStallsScenario(_ args: [String]) throws {
    let seconds = args.count > 0 ? Int(args[0]) ?? 6 : 6
    let everyMs = args.count > 1 ? Int(args[1]) ?? 2000 : 2000
    let stallMs = args.count > 2 ? Int(args[2]) ?? 250 : 250
    let askForDumps = args.count > 3 && args[3] == "dump"
    let devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)
    var byte: UInt8 = 0
    var callbacks = 0
    let load = setInterval(1) {
        for _ in 0..<20 {
            _ = setImmediate {
                callbacks += 1
                _ = write(devNull, &byte, 1)
            }
        }
    }
    var stalls = 0
    let stall = setInterval(everyMs) {
        stalls += 1
        AsyncHooks.mark("stall \(stalls)")
        log("stall \(stalls): blocking the loop for \(stallMs) ms")
        usleep(UInt32(stallMs) * 1000)
        if askForDumps { _ = setTimeout(50) { TraceRecorder.dump() } }
    }
    _ = setTimeout(seconds * 1000) {
        load.clear()
        stall.clear()
        close(devNull)
        log("\(stalls) stalls, \(callbacks) callbacks")
    }
}
