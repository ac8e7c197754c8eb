// asynctrace-lessons: the classic Node event-loop lessons on AsyncTraceRuntime, one per name.
// Each prints what its Node peer (Benchmarks/node/lessons.js) prints, line for line.
// Usage: asynctrace-lessons NAME DIR   (DIR: scratch directory with a.txt and c.txt for the file lessons)
// Record one: ASYNCTRACE_OUTPUT=/tmp/l.atrace asynctrace-lessons file-chain DIR
import AsyncTraceRecorder
import AsyncTraceRuntime
#if canImport(Glibc)
import Glibc
#endif

let args = CommandLine.arguments
let name = args.count > 1 ? args[1] : ""
let dir = args.count > 2 ? args[2] : "/tmp"

guard let lesson = Lessons.all[name] else {
    log("usage: asynctrace-lessons NAME DIR\nlessons: \(Lessons.all.keys.sorted().joined(separator: ", "))")
    exit(name == "--help" || name == "-h" ? 0 : 2)
}
TraceRecorder.startFromEnvironment()  // the application decides to record; the runtime only emits
EventLoop.main { try lesson(dir) }  // ends the process when a lesson sets a non-zero exit code
