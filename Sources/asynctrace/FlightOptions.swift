// `record`'s flight-recorder options.
import ArgumentParser
import TraceFlight
import TraceFormat

struct FlightOptions: ParsableArguments {
    @Flag(
        name: .customLong("flight-recorder"),
        help: ArgumentHelp(
            "Keep only the most recent window of the program's and the kernel's events in memory and write it to a "
                + "trace file (a dump) on a trigger: SIGUSR1 to asynctrace, `asynctrace dump --pid PID`, the program "
                + "calling TraceRecorder.dump(), or --dump-on-block. Dumps are named after -o with the UTC time "
                + "(asynctrace-PID-20260101T120000.000Z.atrace) and never overwrite a file."))
    var enabled = false

    @Option(
        name: .customLong("keep"),
        help: ArgumentHelp(
            "How much the flight recorder keeps: a duration, a size, or both (e.g. 30s, 512MiB, 30s,512MiB; default 30s). "
                + "Memory is capped at 1 GiB when only a duration is given.", valueName: "window"))
    var keep: String?

    @Option(
        name: .customLong("keep-on-disk"),
        help: ArgumentHelp(
            "Keep the window in segment files in this directory instead of memory: --keep's size bounds the files "
                + "(at least 4MiB; 1GiB with a duration only), the oldest segment is removed as new ones fill. The "
                + "directory is created if missing (mode 0700) and must be yours alone; the segments are removed when "
                + "the recording ends. If the recorder is killed they stay: `asynctrace dump --segments DIR` makes a "
                + "trace of them.", valueName: "directory"))
    var keepOnDisk: String?

    @Option(
        name: .customLong("dump-on-block"),
        help: ArgumentHelp(
            "Dump automatically when a callback runs longer than this, or a loop thread stays this long between two "
                + "epoll waits (a loop stall, seen by the kernel probes; also with --pid and for Node.js), e.g. 100ms: "
                + "the window up to shortly after it ends.",
            valueName: "duration"))
    var dumpOnBlock: String?

    @Option(
        name: .customLong("min-dump-interval"),
        help: ArgumentHelp(
            "At most one automatic (--dump-on-block) dump per this long (default 10s). A stall that comes sooner "
                + "goes in the next dump allowed if the window still holds it then; one that no dump can hold is said and "
                + "counted in the summary.", valueName: "duration"))
    var minDumpInterval: String?

    var limits: FlightLimits {
        keep.flatMap(FlightLimits.parse) ?? FlightLimits(keepNs: FlightLimits.defaultKeepNs, keepBytes: FlightLimits.defaultCapBytes)
    }
    var dumpOnBlockNs: UInt64? { dumpOnBlock.flatMap(Quantities.duration) }
    var minDumpIntervalNs: UInt64 { minDumpInterval.flatMap(Quantities.duration) ?? 10_000_000_000 }

    func validate() throws {
        if !enabled {
            for (name, value) in [
                ("--keep", keep), ("--keep-on-disk", keepOnDisk), ("--dump-on-block", dumpOnBlock), ("--min-dump-interval", minDumpInterval),
            ] where value != nil {
                throw ValidationError("\(name) needs --flight-recorder")
            }
            return
        }
        if let k = keep, FlightLimits.parse(k) == nil {
            throw ValidationError("cannot read --keep '\(k)': give a duration, a size of at least 1MiB, or both (e.g. 30s, 512MiB, 30s,512MiB)")
        }
        if let dir = keepOnDisk {
            if dir.isEmpty { throw ValidationError("--keep-on-disk needs a directory") }
            if limits.keepBytes < 4 << 20 {
                throw ValidationError("--keep-on-disk needs a window of at least 4MiB (--keep \(keep ?? ""))")
            }
        }
        if let d = dumpOnBlock, (Quantities.duration(d) ?? 0) == 0 {
            throw ValidationError("cannot read --dump-on-block '\(d)': give a duration, e.g. 100ms")
        }
        if let d = minDumpInterval, Quantities.duration(d) == nil {
            throw ValidationError("cannot read --min-dump-interval '\(d)': give a duration, e.g. 10s")
        }
    }

    /// What the program's recorder learns: the socket to send its chunks to, and when to report a
    /// blocking callback.
    func environment(socketFD: Int32) -> [String] {
        var env = ["ASYNCTRACE_FLIGHT_FD=\(socketFD)"]
        if let ns = dumpOnBlockNs { env.append("ASYNCTRACE_DUMP_ON_BLOCK=\(ns)") }
        return env
    }
}
