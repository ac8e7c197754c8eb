// The recorder's end of the Node adapter: a private directory holding the preload script and a FIFO,
// and a thread that reads the preloads' batches from the FIFO and writes them into the trace.
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

public struct NodeSetupError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

public final class NodeEventPipe {
    /// The private directory (mode 0700; owned by `owner` when given).
    public let directory: String
    public let preloadPath: String
    public let fifoPath: String
    private let directoryFD: Int32
    private var fifoFD: Int32
    private var thread: pthread_t?
    private var writer: NodeTraceWriter?
    private var result = NodeRecordingStatistics()

    /// The preload script this binary ships (asynctrace-preload.js, embedded at build time).
    public static var preloadSource: [UInt8] { PackageResources.asynctrace_preload_js }

    /// Creates the directory under `temporaryDirectory`, the preload file and the FIFO (opened for
    /// reading before anything else can touch it). `owner`: the uid/gid the traced program runs as.
    public init(temporaryDirectory: String, owner: (uid: UInt32, gid: UInt32)?) throws(NodeSetupError) {
        var template =
            Array(
                (temporaryDirectory.hasSuffix("/") ? temporaryDirectory : temporaryDirectory + "/")
                    .utf8CString.dropLast()) + Array("asynctrace-node-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else {
            throw NodeSetupError(description: "cannot create a directory in \(temporaryDirectory): \(Self.errorText(errno))")
        }
        directory = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        preloadPath = directory + "/asynctrace-preload.js"
        fifoPath = directory + "/events.fifo"
        directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        fifoFD = -1
        guard directoryFD >= 0 else {
            rmdir(directory)
            throw NodeSetupError(description: "cannot open \(directory): \(Self.errorText(errno))")
        }
        do throws(NodeSetupError) {
            try writePreload()
            guard mkfifoat(directoryFD, "events.fifo", 0o600) == 0 else { throw Self.failure("cannot create \(fifoPath)") }
            // O_RDWR: the read end never sees EOF while no writer is open (the program has not started
            // yet, or between two node processes); the loop ends on the stop message instead.
            fifoFD = openat(directoryFD, "events.fifo", O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW)
            guard fifoFD >= 0 else { throw Self.failure("cannot open \(fifoPath)") }
            _ = fcntl(fifoFD, Int32(1031) /* F_SETPIPE_SZ */, Int32(1 << 20))  // room for ~250 batches while the writer is busy
            if let owner {
                guard fchown(fifoFD, owner.uid, owner.gid) == 0,
                    fchownat(directoryFD, "asynctrace-preload.js", owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) == 0,
                    fchown(directoryFD, owner.uid, owner.gid) == 0
                else { throw Self.failure("cannot give \(directory) to uid \(owner.uid)") }
            }
        } catch {
            removeFiles()
            throw error
        }
    }

    private static func failure(_ what: String) -> NodeSetupError {
        NodeSetupError(description: "\(what): \(errorText(errno))")
    }

    private static func errorText(_ e: Int32) -> String { String(cString: strerror(e)) }

    private func writePreload() throws(NodeSetupError) {
        let fd = openat(directoryFD, "asynctrace-preload.js", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Self.failure("cannot create \(preloadPath)") }
        defer { close(fd) }
        let source = Self.preloadSource
        let ok = source.withUnsafeBytes { b -> Bool in
            var off = 0
            while off < b.count {
                let n = write(fd, b.baseAddress! + off, b.count - off)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                off += n
            }
            return true
        }
        guard ok else { throw Self.failure("cannot write \(preloadPath)") }
    }

    /// The environment additions for the program: the FIFO, the mode, and NODE_OPTIONS with the
    /// preload first (the user's own NODE_OPTIONS kept after it).
    /// `sites`: where the preload captures resources' creation sites (ASYNCTRACE_NODE_SITES): "on" (the first
    /// of each type, then a budget per 100 ms), "all", or "off".
    public func environment(existingNodeOptions: String?, promises: Bool, sites: String = "on") -> [String] {
        let quoted = "\"" + preloadPath.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"") + "\""
        var options = "--require " + quoted
        if let existing = existingNodeOptions, !existing.isEmpty { options += " " + existing }
        return [
            "NODE_OPTIONS=\(options)", "ASYNCTRACE_NODE_FIFO=\(fifoPath)",
            "ASYNCTRACE_NODE_MODE=\(promises ? "promises" : "default")", "ASYNCTRACE_NODE_SITES=\(sites)",
        ]
    }

    /// Starts the thread that writes the batches into `traceFD` (O_APPEND).
    public func start(traceFD: Int32) {
        start(writer: NodeTraceWriter(fd: traceFD))
    }

    /// Starts the thread that hands the batches' sealed chunks to `sink` (a flight recorder's window).
    public func start(sink: @escaping ([UInt8]) -> Void) {
        start(writer: NodeTraceWriter(sink: sink))
    }

    private func start(writer: NodeTraceWriter) {
        self.writer = writer
        let context = Unmanaged.passRetained(self).toOpaque()
        var t = pthread_t()
        let rc = pthread_create(
            &t, nil,
            { raw in
                let pipe = Unmanaged<NodeEventPipe>.fromOpaque(raw!).takeRetainedValue()
                pipe.readLoop()
                return nil
            }, context)
        if rc == 0 { thread = t } else { Unmanaged<NodeEventPipe>.fromOpaque(context).release() }
    }

    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var lastFlush = Self.nowNs()
        var running = true
        while running {
            var pfd = pollfd(fd: fifoFD, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 100)
            var drained = false
            while running {
                let n = buffer.withUnsafeMutableBytes { read(fifoFD, $0.baseAddress!, $0.count) }
                if n <= 0 { break }
                drained = true
                running = buffer.withUnsafeBytes { writer!.consume(UnsafeRawBufferPointer(rebasing: $0[0..<n]), nowNs: 0) }
            }
            // Under load, nap before waiting again: batches then pile up in the pipe (1 MB, ~15 ms of a
            // busy HTTP server's events) and most writes find no reader to wake; waking this thread on
            // every 4 KB write cost the traced program a few us per batch (a cross-CPU wakeup) and
            // this thread a context switch per batch.
            if drained && running {
                var nap = timespec(tv_sec: 0, tv_nsec: 3_000_000)
                nanosleep(&nap, nil)
            }
            let now = Self.nowNs()
            if now - lastFlush >= 200_000_000 {
                writer!.flush()
                lastFlush = now
            }
        }
        writer!.flush(final: true)
        result = writer!.statistics
    }

    /// Stops reading once everything written to the FIFO so far is read, ends every stream with
    /// a final chunk, and returns what was recorded.
    public func finish() -> NodeRecordingStatistics {
        guard let t = thread else { return result }
        var stop = NodeBatchProtocol.stopMagic
        var pfd = pollfd(fd: fifoFD, events: Int16(POLLOUT), revents: 0)
        while withUnsafeBytes(of: &stop, { write(fifoFD, $0.baseAddress!, 8) }) != 8 {
            _ = poll(&pfd, 1, 10)  // the pipe is full: the reader is draining it
        }
        pthread_join(t, nil)
        thread = nil
        return result
    }

    /// Removes the preload and the FIFO (through the directory's descriptor: never a path the
    /// traced program could have redirected) and the directory.
    public func removeFiles() {
        unlinkat(directoryFD, "asynctrace-preload.js", 0)
        unlinkat(directoryFD, "events.fifo", 0)
        unlinkat(AT_FDCWD, directory, AT_REMOVEDIR)
    }

    deinit {
        if fifoFD >= 0 { close(fifoFD) }
        if directoryFD >= 0 { close(directoryFD) }
    }

    private static func nowNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

private extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
