// speedscope's file format: one "evented" profile per thread (open/close frame events), frames shared;
// and with CPU samples in the trace, one "sampled" profile per sampled thread (each sample's named,
// unwound stack, weighted by the sampling period), so speedscope's sandwich and left-heavy views show code.
// A profile's events must be contiguous in the file while the trace interleaves threads, so each
// thread's events are spooled to a temporary file and the profiles are assembled at the end.
#if canImport(Glibc)
import Glibc
import TraceText
#endif
import TraceReader
import TraceSymbols

/// Writes the timeline in speedscope's file format: an "evented" profile per thread and, with CPU
/// samples, a "sampled" profile per sampled thread. Call `finish` after the pass.
public final class SpeedscopeExporter: TimelineSink {
    /// The `$schema` the file names.
    public static let schemaURL = "https://www.speedscope.app/file-format-schema.json"

    let out: OutputFile
    let baseNs: UInt64
    let spoolDirectory: String
    private var spoolPaths: [String] = []

    struct ThreadState {
        /// Kept alive by `spools`; unmanaged, so a per-event access retains nothing. nil: a thread past
        /// `maxSpooledThreads`, left out of the file.
        let spool: Unmanaged<OutputFile>?
        var firstEvent = true
        var startAt: UInt64 = .max
        var endAt: UInt64 = 0
    }

    private var spools: [OutputFile] = []
    // Per-event state in raw memory: no dynamic exclusivity or copy-on-write checks.
    @exclusivity(unchecked) private var threads: UnsafeMutablePointer<ThreadState> = .allocate(capacity: 8)
    @exclusivity(unchecked) private var threadCount = 0
    private var threadCapacity = 8
    /// Open frames per thread.
    @exclusivity(unchecked) private var stacks = PerThreadStacks<Int>()
    /// The first spool file that could not be created; `finish` throws it.
    public private(set) var failure: ExportError?
    /// Each spooled thread holds a file open: past this many threads (a crafted trace can name 65,536), the
    /// rest are left out of the file and counted, instead of running out of file descriptors.
    public static let maxSpooledThreads = 512
    /// Threads left out, and their slices.
    public private(set) var threadsLeftOut = 0
    /// Slices of the threads left out.
    public private(set) var slicesLeftOut: UInt64 = 0

    // CPU samples: stacks interned (code frame ids, outermost first), per thread its samples' stack ids and times.
    private var sampleData: TraceSamples?
    private var codeFrameIndex: [Int: Int] = [:]  // symbolizer frame id -> index among the code frames
    private var codeFrames: [CodeFrame] = []
    private var stackIDs: [[Int]: UInt32] = [:]
    private var stackList: [[Int]] = []
    private var sampled: [Int: (stacks: [UInt32], first: UInt64, last: UInt64)] = [:]
    /// CPU samples in the sampled profiles.
    public private(set) var samplesWritten = 0

    public func code(_ event: EventView, thread t: Int, strings: TraceEventIterator, timeline: Timeline) {
        if sampleData == nil {
            let d = TraceSamples()
            d.keepsSamples = false
            sampleData = d
        }
        guard let data = sampleData, let s = data.add(event, strings: strings), t >= 0 else { return }
        var stack: [Int] = []
        for f in data.frames(of: s).reversed() {
            if let i = codeFrameIndex[f] { stack.append(i); continue }
            let i = codeFrames.count
            codeFrameIndex[f] = i
            codeFrames.append(data.frame(f))
            stack.append(i)
        }
        let id: UInt32
        if let known = stackIDs[stack] {
            id = known
        } else {
            id = UInt32(stackList.count)
            stackIDs[stack] = id
            stackList.append(stack)
        }
        let at = rel(s.timeNs)
        sampled[t, default: ([], at, at)].stacks.append(id)
        sampled[t]!.last = max(sampled[t]!.last, at)
        samplesWritten += 1
    }

    /// An exporter writing to `output`, times relative to `baseNs` (CLOCK_MONOTONIC ns); each thread's events
    /// are spooled to a temporary file in `spoolDirectory` until `finish` assembles the profiles.
    public init(output: OutputFile, baseNs: UInt64, spoolDirectory: String) {
        self.out = output
        self.baseNs = baseNs
        self.spoolDirectory = spoolDirectory
    }

    deinit {
        for p in spoolPaths { unlink(p) }
        threads.deinitialize(count: threadCount)
        threads.deallocate()
        stacks.deallocate()
    }

    @inline(__always)
    private func rel(_ ns: UInt64) -> UInt64 { ns > baseNs ? ns - baseNs : 0 }

    public func threadAdded(_ thread: TimelineThread, process: TimelineProcess, timeline: Timeline) {
        let path = "\(spoolDirectory)/.asynctrace-speedscope-\(getpid())-\(threadCount).tmp"
        var spool: OutputFile? = nil
        if threadCount < Self.maxSpooledThreads {
            do {
                spool = try OutputFile(path: path, bufferSize: 64 << 10)
            } catch {
                if failure == nil { failure = error }
            }
        } else {
            threadsLeftOut += 1
        }
        spoolPaths.append(path)
        if let spool { spools.append(spool) }
        if threadCount == threadCapacity { threads = doubled(threads, count: threadCount, capacity: &threadCapacity) }
        (threads + threadCount).initialize(to: ThreadState(spool: spool.map { .passUnretained($0) }))
        threadCount += 1
        stacks.addThread()
    }

    @inline(__always)
    private func event(_ t: Int, open: Bool, frame: Int, at ns: UInt64) {
        let at = rel(ns)
        let th = threads + t
        guard let spoolRef = th.pointee.spool else {
            if open { slicesLeftOut &+= 1 }
            return
        }
        let first = th.pointee.firstEvent
        th.pointee.firstEvent = false
        spoolRef._withUnsafeGuaranteedRef { spool in
            var w = spool.reserve(64)
            if !first { w.put(UInt8(ascii: ",")) }
            w.put(open ? "{\"type\":\"O\",\"frame\":" : "{\"type\":\"C\",\"frame\":")
            w.put(uint: UInt64(frame))
            w.put(",\"at\":")
            w.put(uint: at)
            w.put(UInt8(ascii: "}"))
            spool.commit(w)
        }
        if at < th.pointee.startAt { th.pointee.startAt = at }
        if at > th.pointee.endAt { th.pointee.endAt = at }
    }

    public func consume(_ op: TimelineOp, timeline: Timeline) {
        switch op.kind {
        case .begin:
            stacks.push(op.thread, op.name)
            event(op.thread, open: true, frame: op.name, at: op.timestampNs)
        case .end:
            guard let frame = stacks.pop(op.thread) else { return }
            event(op.thread, open: false, frame: frame, at: op.timestampNs)
        case .instant, .counter:
            break  // speedscope has no instants or counters
        }
    }

    /// Writes the file: shared frames (the timeline's names), then one profile per thread with events.
    public func finish(timeline: Timeline) throws(ExportError) {
        if let failure { throw failure }
        out.write("{\"$schema\":\"\(Self.schemaURL)\",\"exporter\":\"asynctrace\",\"name\":")
        out.write(JSONWriter.quote(timeline.reader.header.program.isEmpty ? timeline.reader.path : timeline.reader.header.program))
        out.write(",\"shared\":{\"frames\":[")
        for i in 0..<timeline.names.count {
            if i > 0 { out.write(byte: UInt8(ascii: ",")) }
            out.write("{\"name\":")
            out.write(JSONWriter.quote(timeline.names[i]))
            out.write("}")
        }
        // The samples' code frames follow the timeline's names.
        for (i, f) in codeFrames.enumerated() {
            if i > 0 || timeline.names.count > 0 { out.write(byte: UInt8(ascii: ",")) }
            out.write("{\"name\":")
            out.write(JSONWriter.quote(f.name))
            out.write(",\"file\":")
            out.write(JSONWriter.quote(f.file ?? f.module))
            if let line = f.line, line > 0 {
                out.write(",\"line\":")
                out.write(uint: UInt64(line))
            }
            out.write("}")
        }
        out.write("]},\"profiles\":[")
        var firstProfile = true
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        for t in 0..<threadCount {
            guard let spool = threads[t].spool?.takeUnretainedValue() else { continue }  // left out (counted)
            try spool.close()
            guard !threads[t].firstEvent else { continue }  // a thread without slices has no profile
            if firstProfile { firstProfile = false } else { out.write(byte: UInt8(ascii: ",")) }
            let th = timeline.threads[t]
            out.write("\n{\"type\":\"evented\",\"name\":")
            out.write(JSONWriter.quote("\(th.label) pid \(th.pid)"))
            out.write(",\"unit\":\"nanoseconds\",\"startValue\":")
            out.write(uint: threads[t].startAt)
            out.write(",\"endValue\":")
            out.write(uint: threads[t].endAt)
            out.write(",\"events\":[")
            let fd = open(spoolPaths[t], O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw ExportError("\(spoolPaths[t]): cannot reopen the spool file") }
            defer { close(fd) }
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw ExportError("\(spoolPaths[t]): read failed") }
                if n == 0 { break }
                buffer.withUnsafeBytes { out.write($0.baseAddress!, count: n) }
            }
            out.write("]}")
            unlink(spoolPaths[t])
        }
        // Without a recorded period (an older trace) a sample counts 1 ms, the default rate's.
        let period = (sampleData?.periodNs ?? 0) > 0 ? sampleData!.periodNs : 1_000_000
        for t in sampled.keys.sorted() where t < timeline.threads.count {
            let s = sampled[t]!
            if firstProfile { firstProfile = false } else { out.write(byte: UInt8(ascii: ",")) }
            let th = timeline.threads[t]
            out.write("\n{\"type\":\"sampled\",\"name\":")
            out.write(JSONWriter.quote("\(th.label) pid \(th.pid): CPU samples"))
            out.write(",\"unit\":\"nanoseconds\",\"startValue\":")
            out.write(uint: s.first)
            out.write(",\"endValue\":")
            out.write(uint: s.last &+ period)
            out.write(",\"samples\":[")
            let base = timeline.names.count
            for (i, id) in s.stacks.enumerated() {
                if i > 0 { out.write(byte: UInt8(ascii: ",")) }
                out.write(byte: UInt8(ascii: "["))
                for (j, f) in stackList[Int(id)].enumerated() {
                    if j > 0 { out.write(byte: UInt8(ascii: ",")) }
                    out.write(uint: UInt64(base + f))
                }
                out.write(byte: UInt8(ascii: "]"))
            }
            out.write("],\"weights\":[")
            for i in 0..<s.stacks.count {
                if i > 0 { out.write(byte: UInt8(ascii: ",")) }
                out.write(uint: period)
            }
            out.write("]}")
        }
        out.write("],\"activeProfileIndex\":0}\n")
    }
}
