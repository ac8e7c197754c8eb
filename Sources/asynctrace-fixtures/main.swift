// Small programs the tests run as child processes: they record with the in-process recorder
// and then end in a chosen way (normally, SIGSEGV, SIGKILL), so tests can check what survives.
import AsyncHooks
import AsyncTraceRecorder
#if canImport(Glibc)
import Glibc
#endif

func emit(_ n: Int) {
    for _ in 0..<n {
        let r = AsyncResourceContext(type: .timeout)
        r.runInScope {}
        r.emitDestroy()
    }
}

func say(_ s: String) {
    var b = Array((s + "\n").utf8)
    _ = b.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
}

let args = CommandLine.arguments
guard args.count >= 3, let n = Int(args[2]) else {
    say("usage: asynctrace-fixtures normal|segv|sigkill|abort RESOURCES   (records to $ASYNCTRACE_OUTPUT)")
    exit(2)
}
if args[1] == "sigkill" {
    // Its wait below counts four events per resource; a creation stack would add events per resource
    // (and definitions), so the count could be reached before every resource's events were written.
    setenv("ASYNCTRACE_CREATION_STACKS", "off", 1)
}
guard TraceRecorder.startFromEnvironment() else {
    say("ASYNCTRACE_OUTPUT is not set")
    exit(2)
}
emit(n)
switch args[1] {
case "normal":
    exit(0)  // atexit flushes
case "segv":
    let p = UnsafeMutablePointer<Int>(bitPattern: 8)!
    p.pointee = 1
case "abort":
    abort()
case "sigkill":
    // Wait until what was emitted so far reached the kernel, report it, then die without warning.
    TraceRecorder.requestFlush()
    AsyncResourceContext(type: .timeout).emitDestroy()  // the flush happens at a thread's next event
    while TraceRecorder.statistics.eventsWritten < UInt64(4 * n) { usleep(1000) }
    say("written \(TraceRecorder.statistics.eventsWritten)")
    emit(1000)  // these stay in the thread's buffer and are lost with SIGKILL
    kill(getpid(), SIGKILL)
default:
    say("unknown mode \(args[1])")
    exit(2)
}
