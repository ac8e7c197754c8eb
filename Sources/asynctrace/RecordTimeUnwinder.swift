// Unwinds CPU samples' stack copies while recording (SampleCollector.unwinder), with the reader's
// unwinder (TraceSymbols), so the trace holds an interned stack per sample instead of the copy.
// Files are opened through /proc/PID/map_files: the very file mapped, however its path has changed
// since; never by a path the traced program (under sudo, the invoking user's) could swap under root.
import KernelProbes
import TraceSymbols
#if canImport(Glibc)
import Glibc
#endif

final class RecordTimeUnwinder: StackCopyUnwinding {
    private let symbolizer = Symbolizer()
    private let unwinder = StackUnwinder()
    /// By "device inode": the path of our descriptor of the file ("/proc/self/fd/N"; nil: it could not be opened).
    private var files: [String: String?] = [:]
    private var descriptors: [Int32] = []
    /// Per process, the regions given to the symbolizer (a forked child starts with its parent's).
    private var regions: [UInt32: [Symbolizer.Mapping]] = [:]
    /// Per process, file regions whose file could not be opened: stacks through them are left to the reader.
    private var unreadable: [UInt32: [(start: UInt64, end: UInt64)]] = [:]
    private var mappings = 0
    /// Files kept open at most (a descriptor each, and one more for the stack scan's reads: well under
    /// the usual limit of 1,024 descriptors), and regions known at most: past either, copies
    /// of new code are written for the reader.
    static let maxFiles = 256
    static let maxMappings = 1 << 18

    init() {
        symbolizer.perfMapDirectory = nil  // names are the reader's business; unwinding needs none
        symbolizer.useKallsyms = false
        symbolizer.siteCacheLimit = 1 << 18
    }

    deinit { for fd in descriptors { close(fd) } }

    func mapped(pid: UInt32, region: MapsEntry, buildID: [UInt8], timeNs: UInt64) {
        var path = region.path  // "" (anonymous) or "[vdso]" and the like: no file, frame pointers
        if region.inode != 0 {
            path = file(pid: pid, region: region) ?? "[unreadable]"
            if path == "[unreadable]" { unreadable[pid, default: []].append((region.start, region.end)) }
        }
        add(
            pid: pid,
            .init(start: region.start, end: region.end, fileOffset: region.fileOffset, path: path, buildID: buildID, timeNs: timeNs))
    }

    private func add(pid: UInt32, _ m: Symbolizer.Mapping) {
        guard mappings < Self.maxMappings else { return }
        mappings += 1
        symbolizer.addMapping(pid: pid, m)
        regions[pid, default: []].append(m)
    }

    /// Our descriptor's path for the file mapped at `region` in `pid`, opened once per file.
    private func file(pid: UInt32, region: MapsEntry) -> String? {
        let key = "\(region.device) \(region.inode)"
        if let known = files[key] { return known }
        guard descriptors.count < Self.maxFiles else { return nil }
        let name = "/proc/\(pid)/map_files/\(String(region.start, radix: 16))-\(String(region.end, radix: 16))"
        let fd = open(name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        var st = stat()
        guard fd >= 0 else {
            files[key] = .some(nil)
            return nil
        }
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            files[key] = .some(nil)
            return nil
        }
        descriptors.append(fd)
        let path = "/proc/self/fd/\(fd)"
        files[key] = path
        return path
    }

    func forked(parent: UInt32, child: UInt32, timeNs: UInt64) {
        for var m in regions[parent] ?? [] {
            m.timeNs = min(m.timeNs, timeNs)
            add(pid: child, m)
        }
        if let u = unreadable[parent] { unreadable[child] = u }
    }

    func exited(pid: UInt32) {
        regions[pid] = nil
        unreadable[pid] = nil
    }

    func unwind(pid: UInt32, timeNs: UInt64, copy: StackCopy, framePointerStack: UnsafeBufferPointer<UInt64>, exited: Bool)
        -> (stack: UnwoundStack, deferral: UnwindDeferral?)
    {
        guard mappings < Self.maxMappings else { return (UnwoundStack(frames: [], methods: []), .full) }
        var words = [UInt64](repeating: 0, count: Int(min(copy.bytes, UInt32(StackSnapshot.maxBytes)) / 8))
        for w in copy.words where Int(w.index) < words.count { words[Int(w.index)] = w.value }
        let snapshot = StackSnapshot(ip: copy.ip, sp: copy.sp, bp: copy.bp, words: words)
        let (frames, log) = unwinder.unwindLogged(
            pid: pid, timeNs: timeNs, snapshot: snapshot, framePointerStack: Array(framePointerStack), mappings: symbolizer,
            unknownCodeKeepsFramePointers: exited)
        let stack = UnwoundStack(frames: frames, methods: log.methodsPerFrame)
        if let bad = unreadable[pid], frames.contains(where: { a in bad.contains { a >= $0.start && a < $0.end } }) {
            return (stack, .unreadableFile)
        }
        if let last = frames.last {
            let site = symbolizer.site(pid: pid, address: frames.count == 1 ? last : last &- 1, timeNs: timeNs)
            if !site.inMapping { return (stack, .unknownAddress) }
        }
        return (stack, nil)
    }
}
