// speedscope's file format: one "evented" profile per thread (open/close frame events), frames shared.
// A profile's events must be contiguous in the file while the trace interleaves threads, so each
// thread's events are spooled to a temporary file and the profiles are assembled at the end.
#if canImport(Glibc)
import Glibc
import TraceReports
#endif

public final class SpeedscopeExporter: TimelineSink {
    public static let schemaURL = "https://www.speedscope.app/file-format-schema.json"

    let out: OutputFile
    let baseNs: UInt64
    let spoolDirectory: String
    private var spools: [OutputFile] = []
    private var spoolPaths: [String] = []
    private var stacks: [[Int]] = []
    private var firstEvent: [Bool] = []
    private var startAt: [UInt64] = []
    private var endAt: [UInt64] = []
    public private(set) var failure: ExportError?

    public init(output: OutputFile, baseNs: UInt64, spoolDirectory: String) {
        self.out = output
        self.baseNs = baseNs
        self.spoolDirectory = spoolDirectory
    }

    deinit { for p in spoolPaths { unlink(p) } }

    @inline(__always)
    private func rel(_ ns: UInt64) -> UInt64 { ns > baseNs ? ns - baseNs : 0 }

    public func threadAdded(_ thread: TimelineThread, process: TimelineProcess, timeline: Timeline) {
        let path = "\(spoolDirectory)/.asynctrace-speedscope-\(getpid())-\(spools.count).tmp"
        do {
            spools.append(try OutputFile(path: path, bufferSize: 64 << 10))
        } catch {
            if failure == nil { failure = error }
            spools.append(try! OutputFile(path: "/dev/null", bufferSize: 16))
        }
        spoolPaths.append(path)
        stacks.append([])
        firstEvent.append(true)
        startAt.append(.max)
        endAt.append(0)
    }

    private func event(_ t: Int, open: Bool, frame: Int, at ns: UInt64) {
        let f = spools[t]
        if firstEvent[t] { firstEvent[t] = false } else { f.write(byte: UInt8(ascii: ",")) }
        f.write(open ? "{\"type\":\"O\",\"frame\":" : "{\"type\":\"C\",\"frame\":")
        f.write(uint: UInt64(frame))
        f.write(",\"at\":")
        let at = rel(ns)
        f.write(uint: at)
        f.write(byte: UInt8(ascii: "}"))
        if at < startAt[t] { startAt[t] = at }
        if at > endAt[t] { endAt[t] = at }
    }

    public func consume(_ op: TimelineOp, timeline: Timeline) {
        switch op.kind {
        case .begin:
            stacks[op.thread].append(op.name)
            event(op.thread, open: true, frame: op.name, at: op.timestampNs)
        case .end:
            guard let frame = stacks[op.thread].popLast() else { return }
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
        for t in spools.indices {
            try spools[t].close()
            guard !firstEvent[t] else { continue }  // a thread without slices has no profile
            if firstProfile { firstProfile = false } else { out.write(byte: UInt8(ascii: ",")) }
            let th = timeline.threads[t]
            out.write("\n{\"type\":\"evented\",\"name\":")
            out.write(JSONWriter.quote("\(th.label) pid \(th.pid)"))
            out.write(",\"unit\":\"nanoseconds\",\"startValue\":")
            out.write(uint: startAt[t])
            out.write(",\"endValue\":")
            out.write(uint: endAt[t])
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
