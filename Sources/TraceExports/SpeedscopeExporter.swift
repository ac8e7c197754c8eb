// speedscope's file format: one "evented" profile per thread (open/close frame events), frames shared.
// A profile's events must be contiguous in the file while the trace interleaves threads, so each
// thread's events are spooled to a temporary file and the profiles are assembled at the end.
#if canImport(Glibc)
import Glibc
import TraceText
#endif

public final class SpeedscopeExporter: TimelineSink {
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
    public private(set) var failure: ExportError?
    /// Each spooled thread holds a file open: past this many threads (a crafted trace can name 65,536), the
    /// rest are left out of the file and counted, instead of running out of file descriptors.
    public static let maxSpooledThreads = 512
    /// Threads left out, and their slices.
    public private(set) var threadsLeftOut = 0
    public private(set) var slicesLeftOut: UInt64 = 0

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
        out.write("],\"activeProfileIndex\":0}\n")
    }
}
