// Names code addresses of a trace's samples: the mappings recorded with the trace say which file
// (and build id) held an address in which process; the file's symbol tables name the function;
// Node's perf map names JIT code; /proc/kallsyms names kernel frames. Everything is cached, so a
// trace costs one lookup per distinct address.
#if canImport(Glibc)
import Glibc
#endif

/// Names code addresses of a trace's samples: the recorded mappings say which file held an address in
/// which process, its symbols name the function, Node's perf map names JIT code, /proc/kallsyms the kernel's.
/// Every lookup is cached.
public final class Symbolizer: CodeMappings {
    /// A mapping recorded with the trace (a `mapping` event).
    public struct Mapping: Sendable {
        /// The region's addresses, and where in the file it starts.
        public var start: UInt64, end: UInt64, fileOffset: UInt64
        /// The mapped file (empty: anonymous memory).
        public var path: String
        /// The file's build id, as recorded (empty: none).
        public var buildID: [UInt8]
        /// When it was recorded (CLOCK_MONOTONIC ns): it holds its addresses from then on.
        public var timeNs: UInt64
        /// A mapping from its parts.
        public init(start: UInt64, end: UInt64, fileOffset: UInt64, path: String, buildID: [UInt8], timeNs: UInt64) {
            self.start = start
            self.end = end
            self.fileOffset = fileOffset
            self.path = path
            self.buildID = buildID
            self.timeNs = timeNs
        }
    }

    /// Where perf maps are looked for ("perf-PID.map") for processes the trace holds no copy of; nil: not at all.
    /// A trace of format 13 or later carries the maps it needs (`perfMap` events): set nil for those, as a map
    /// in /tmp may be another process's that got the same pid since.
    public var perfMapDirectory: String? = "/tmp"
    /// Perf-map text copied into the trace, per pid (`addPerfMapText`); at most `maxCopiedPerfMapBytes` in all.
    private var copiedPerfMaps: [UInt32: [UInt8]] = [:]
    private var copiedPerfMapBytes = 0
    /// Copied perf-map text is kept up to this many bytes (a crafted trace may hold any amount); the rest is
    /// left out and counted in `perfMapBytesNotKept`.
    public static let maxCopiedPerfMapBytes = 256 << 20
    /// Copied perf-map text left out beyond `maxCopiedPerfMapBytes`.
    public private(set) var perfMapBytesNotKept = 0
    /// Read /proc/kallsyms for kernel frames (meaningful on the machine and boot that recorded).
    public var useKallsyms = true
    /// Code sites (site(pid:address:timeNs:)) cached at most; the cache is emptied when full.
    public var siteCacheLimit = 4 << 20
    /// Where debug files are looked up by build id (".build-id/ab/cdef....debug").
    public var debugDirectory = "/usr/lib/debug"

    /// Interned frames; stacks refer to them by index.
    public private(set) var frames: [CodeFrame] = []
    private var frameIDs: [CodeFrame: Int] = [:]

    private var mappings: [UInt32: [Mapping]] = [:]  // per pid, sorted by start once sealed
    private var sorted: Set<UInt32> = []
    private var images: [String: ELFImage?] = [:]  // path (+ build id) -> parsed file
    private var perfMaps: [UInt32: PerfMap?] = [:]
    private var forkedFrom: [UInt32: UInt32] = [:]  // child pid -> parent pid
    private var kernelSymbols: [(address: UInt64, name: String)]?
    private var demangled: [String: String] = [:]
    private var addressCache: [AddressKey: Int] = [:]

    private struct AddressKey: Hashable { var pid: UInt32; var address: UInt64; var mapping: Int }

    /// A symbolizer with no mappings.
    public init() {}

    /// Records a mapping of `pid`.
    public func addMapping(pid: UInt32, _ m: Mapping) {
        mappings[pid, default: []].append(m)
        sorted.remove(pid)
    }

    /// Adds whole lines of `pid`'s perf map as copied into the trace (a `perfMap` event): they name its JIT code
    /// instead of any map in `perfMapDirectory`.
    public func addPerfMapText(pid: UInt32, _ text: some Collection<UInt8>) {
        guard text.count <= Self.maxCopiedPerfMapBytes - copiedPerfMapBytes else {
            let (sum, overflow) = perfMapBytesNotKept.addingReportingOverflow(text.count)
            perfMapBytesNotKept = overflow ? .max : sum
            return
        }
        copiedPerfMapBytes += text.count
        copiedPerfMaps[pid, default: []].append(contentsOf: text)
        perfMaps[pid] = nil  // parsed again at the next look-up
    }

    /// Records that `child` was forked from `parent` (a `processFork` event). JIT code the child inherited
    /// is named only in the parent's perf map: CPython 3.12+ starts a new map in a forked child, and the
    /// trampolines of the functions called before the fork (a pre-fork server's spawn path) are in the parent's.
    public func addFork(parent: UInt32, child: UInt32) {
        guard parent != child else { return }
        forkedFrom[child] = parent
    }

    /// Frame ids for a stack of `pid` (addresses innermost first), innermost first. `returnAddresses`:
    /// every address but the first is a return address (looked up one byte earlier, inside the call).
    public func frames(pid: UInt32, addresses: [UInt64], timeNs: UInt64, kernel: Bool = false) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(addresses.count)
        for (i, a) in addresses.enumerated() {
            out.append(frame(pid: pid, address: a, timeNs: timeNs, isReturnAddress: i > 0, kernel: kernel))
        }
        return out
    }

    /// The frame id naming `address` of `pid` at `timeNs` (a return address is looked up one byte earlier,
    /// inside its call; kernel addresses by kallsyms).
    public func frame(pid: UInt32, address: UInt64, timeNs: UInt64, isReturnAddress: Bool, kernel: Bool = false) -> Int {
        let lookup = isReturnAddress && address > 0 ? address - 1 : address
        if kernel || address >= 0xffff_8000_0000_0000 {
            let key = AddressKey(pid: 0, address: lookup, mapping: -2)
            if let id = addressCache[key] { return id }
            let id = intern(kernelFrame(lookup))
            addressCache[key] = id
            return id
        }
        let m = mappingIndex(pid: pid, address: lookup, timeNs: timeNs)
        let key = AddressKey(pid: pid, address: lookup, mapping: m)
        if let id = addressCache[key] { return id }
        let id = intern(userFrame(pid: pid, address: lookup, mapping: m >= 0 ? mappings[pid]![m] : nil))
        addressCache[key] = id
        return id
    }

    private func intern(_ f: CodeFrame) -> Int {
        if let id = frameIDs[f] { return id }
        let id = frames.count
        frames.append(f)
        frameIDs[f] = id
        return id
    }

    /// The mapping of `pid` holding `address`: the latest recorded at or before `timeNs`, else the
    /// earliest after (mappings are read lazily, so a sample may precede its mapping's record). -1: none.
    private func mappingIndex(pid: UInt32, address: UInt64, timeNs: UInt64) -> Int {
        guard mappings[pid] != nil else { return -1 }
        if !sorted.contains(pid) {
            mappings[pid]!.sort { $0.start != $1.start ? $0.start < $1.start : $0.timeNs < $1.timeNs }
            sorted.insert(pid)
        }
        let list = mappings[pid]!
        var lo = 0, hi = list.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if list[mid].start <= address { lo = mid + 1 } else { hi = mid }
        }
        var best = -1, bestAfter = -1
        var i = lo - 1
        var scanned = 0
        while i >= 0 && scanned < 256 {
            let m = list[i]
            if address < m.end {
                if m.timeNs <= timeNs {
                    if best < 0 || m.timeNs > list[best].timeNs { best = i }
                } else if bestAfter < 0 || m.timeNs < list[bestAfter].timeNs {
                    bestAfter = i
                }
            }
            i -= 1
            scanned += 1
        }
        return best >= 0 ? best : bestAfter
    }

    private var sites: [AddressKey: CodeSite] = [:]
    private var calls: [AddressKey: CallKind] = [:]
    private var moduleIDs: [String: Int] = [:]
    private var moduleNames: [String] = []

    public func moduleName(_ id: Int) -> String { id >= 0 && id < moduleNames.count ? moduleNames[id] : "[unknown]" }

    private func moduleID(_ name: String) -> Int {
        if let id = moduleIDs[name] { return id }
        moduleIDs[name] = moduleNames.count
        moduleNames.append(name)
        return moduleNames.count - 1
    }

    public func site(pid: UInt32, address: UInt64, timeNs: UInt64) -> CodeSite {
        let m = mappingIndex(pid: pid, address: address, timeNs: timeNs)
        let key = AddressKey(pid: pid, address: address, mapping: m)
        if let hit = sites[key] { return hit }
        var site = CodeSite()
        if m >= 0 {
            let mapping = mappings[pid]![m]
            site.inMapping = true
            site.module = moduleID(mapping.path.isEmpty ? "[anon]" : mapping.path)
            if !mapping.path.isEmpty, !mapping.path.hasPrefix("["), let image = image(path: mapping.path, buildID: mapping.buildID),
                let link = image.address(ofFileOffset: address &- mapping.start &+ mapping.fileOffset)
            {
                site.fileBacked = true
                site.rule = callFrameInfo(path: mapping.path, buildID: mapping.buildID)?.rule(at: link)
                if let (_, into) = image.symbol(at: link) { site.functionStart = address &- into }
            }
        }
        if sites.count > siteCacheLimit { sites.removeAll() }
        sites[key] = site
        return site
    }

    public func callBefore(pid: UInt32, returnAddress: UInt64, timeNs: UInt64) -> CallKind {
        let m = mappingIndex(pid: pid, address: returnAddress &- 1, timeNs: timeNs)
        guard m >= 0 else { return .none }
        let key = AddressKey(pid: pid, address: returnAddress, mapping: m)
        if let hit = calls[key] { return hit }
        var kind = CallKind.none
        if site(pid: pid, address: returnAddress &- 1, timeNs: timeNs).fileBacked,
            let code = bytes(pid: pid, before: returnAddress, count: 7, timeNs: timeNs)
        {
            kind = StackUnwinder.callKind(code)
        }
        if calls.count > siteCacheLimit { calls.removeAll() }
        calls[key] = kind
        return kind
    }

    /// The file, buildID and link-time address of an address of `pid` (path "": not file-backed).
    public func linkAddress(pid: UInt32, address: UInt64, timeNs: UInt64)
        -> (path: String, buildID: [UInt8], linkAddress: UInt64, inMapping: Bool)
    {
        let m = mappingIndex(pid: pid, address: address, timeNs: timeNs)
        guard m >= 0 else { return ("", [], address, false) }
        let mapping = mappings[pid]![m]
        guard !mapping.path.isEmpty, !mapping.path.hasPrefix("["),
            let image = image(path: mapping.path, buildID: mapping.buildID),
            let link = image.address(ofFileOffset: address &- mapping.start &+ mapping.fileOffset)
        else { return ("", [], address, true) }
        return (mapping.path, mapping.buildID, link, true)
    }

    /// The .eh_frame of a recorded file (parsed once; nil: none, or the file on disk is not the one
    /// recorded: its build id differs).
    public func callFrameInfo(path: String, buildID: [UInt8]) -> CallFrameInfo? {
        if let cached = callFrameInfos[path] { return cached }
        var cfi: CallFrameInfo?
        if let fileID = ELFImage.buildID(ofFileAt: path), buildID.isEmpty || fileID.isEmpty || fileID == buildID {
            cfi = CallFrameInfo(path: path)
        }
        callFrameInfos[path] = .some(cfi)
        return cfi
    }

    private var callFrameInfos: [String: CallFrameInfo?] = [:]
    private var mappedFiles: [String: MappedFile?] = [:]

    /// The `count` bytes of code before `address` (a return address: the call instruction), read
    /// from the recorded file; nil when the file is not there.
    public func bytes(pid: UInt32, before address: UInt64, count: Int, timeNs: UInt64) -> [UInt8]? {
        let m = mappingIndex(pid: pid, address: address &- 1, timeNs: timeNs)
        guard m >= 0, count > 0, count <= 64 else { return nil }
        let mapping = mappings[pid]![m]
        guard !mapping.path.isEmpty, !mapping.path.hasPrefix("["), address &- mapping.start >= UInt64(count) else { return nil }
        let file: MappedFile?
        if let cached = mappedFiles[mapping.path] {
            file = cached
        } else {
            file = MappedFile(path: mapping.path)
            mappedFiles[mapping.path] = .some(file)
        }
        let offset = address &- mapping.start &+ mapping.fileOffset
        return file?.bytes(at: offset &- UInt64(count), count: count)
    }

    /// This machine's vDSO, read once: it names a recorded `[vdso]` region whose build id is its own.
    private lazy var ownVDSO: ELFImage? = ELFImage.ownVDSO()

    private func userFrame(pid: UInt32, address: UInt64, mapping: Mapping?) -> CodeFrame {
        if let m = mapping, m.path == "[vdso]", !m.buildID.isEmpty, let vdso = ownVDSO, vdso.buildID == m.buildID,
            let linkAddress = vdso.address(ofFileOffset: address &- m.start &+ m.fileOffset),
            let (name, into) = vdso.symbol(at: linkAddress)
        {
            return CodeFrame(function: name, module: m.path, offset: linkAddress - into)
        }
        if mapping == nil || mapping!.path.isEmpty || mapping!.path.hasPrefix("[") {
            // Anonymous memory or no mapping: JIT code, named by the process's perf map if any.
            if let e = perfMapEntry(pid: pid, address: address) {
                let (function, file, line) = PerfMap.split(e.name)
                // Named frames carry no offset, so all samples in one function are one frame.
                return CodeFrame(function: function, file: file, line: line, module: "[jit]", offset: 0)
            }
            if let m = mapping { return CodeFrame(function: nil, module: m.path.isEmpty ? "[anon]" : m.path, offset: address &- m.start) }
            return CodeFrame(function: nil, module: "[unknown]", offset: address)
        }
        let m = mapping!
        // Wrapping: the mapping holds the address, but a crafted trace may give any file offset.
        let fileOffset = address &- m.start &+ m.fileOffset
        guard let image = image(path: m.path, buildID: m.buildID) else {
            return CodeFrame(function: nil, module: m.path, offset: fileOffset)
        }
        guard let linkAddress = image.address(ofFileOffset: fileOffset) else {
            return CodeFrame(function: nil, module: m.path, offset: fileOffset)
        }
        guard let (raw, into) = image.symbol(at: linkAddress) else {
            return CodeFrame(function: nil, module: m.path, offset: linkAddress)
        }
        // The function's start: one frame per function, whatever the instruction.
        return CodeFrame(function: demangle(raw), module: m.path, offset: linkAddress - into)
    }

    private func demangle(_ raw: String) -> String {
        if let d = demangled[raw] { return d }
        let d = Demangle.name(raw)
        demangled[raw] = d
        return d
    }

    /// The file's symbols, from a debug file with the same build id where the file itself has no
    /// .symtab or is not the file recorded (its build id differs). nil: nothing trustworthy.
    private func image(path: String, buildID: [UInt8]) -> ELFImage? {
        let key = path + "\0" + buildID.map { String($0, radix: 16) }.joined()
        if let cached = images[key] { return cached }
        var result: ELFImage?
        let file = ELFImage(path: path)
        let matches = file.map { buildID.isEmpty || $0.buildID.isEmpty || $0.buildID == buildID } ?? false
        if let file, matches, file.hasSymtab {
            result = file
        } else if buildID.count >= 2, let debug = ELFImage(path: debugPath(buildID)), !debug.symbols.isEmpty {
            // A separate debug file has the symbols but its segments can be NOBITS: use the
            // file's own segments to place offsets when the file is there.
            result = debug.segments.isEmpty && file != nil ? file : debug
            if matches, let file, debug.hasSymtab { result = ELFImage.merged(symbolsOf: debug, segmentsOf: file) }
        } else if let file, matches {
            result = file
        }
        images[key] = .some(result)
        return result
    }

    private func debugPath(_ id: [UInt8]) -> String {
        let hex = id.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }
        return "\(debugDirectory)/.build-id/\(hex[0])/\(hex[1...].joined()).debug"
    }

    /// The perf-map entry naming `address` of `pid`: its own map's, else its parent's at its fork, and so on
    /// up to 16 forks back (a crafted trace's fork cycle ends there). The own map comes first: after the
    /// fork, parent and child make new code at the same addresses, each naming it in its own map.
    private func perfMapEntry(pid: UInt32, address: UInt64) -> PerfMap.Entry? {
        var process = pid
        for _ in 0..<16 {
            if let e = perfMap(process)?.entry(at: address) { return e }
            guard let parent = forkedFrom[process] else { return nil }
            process = parent
        }
        return nil
    }

    private func perfMap(_ pid: UInt32) -> PerfMap? {
        if let cached = perfMaps[pid] { return cached }
        var map: PerfMap?
        if let copied = copiedPerfMaps[pid] {
            map = PerfMap(text: copied)
        } else if let dir = perfMapDirectory, let text = readFile("\(dir)/perf-\(pid).map", limit: PerfMap.maxBytes) {
            map = PerfMap(text: text)
        }
        perfMaps[pid] = .some(map)
        return map
    }

    private func kernelFrame(_ address: UInt64) -> CodeFrame {
        if kernelSymbols == nil {
            var list: [(UInt64, String)] = []
            if useKallsyms, let text = readFile("/proc/kallsyms", limit: 64 << 20) {
                for line in text.split(separator: UInt8(ascii: "\n")) {
                    let parts = line.split(separator: UInt8(ascii: " "), maxSplits: 3)
                    guard parts.count >= 3, let a = PerfMap.hex(parts[0]), a != 0 else { continue }
                    let t = parts[1].first ?? 0
                    guard t == UInt8(ascii: "t") || t == UInt8(ascii: "T") || t == UInt8(ascii: "w") || t == UInt8(ascii: "W")
                    else { continue }
                    list.append((a, String(decoding: parts[2], as: UTF8.self)))
                }
            }
            list.sort { $0.0 < $1.0 }
            kernelSymbols = list
        }
        let list = kernelSymbols!
        var lo = 0, hi = list.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if list[mid].address <= address { lo = mid + 1 } else { hi = mid }
        }
        if lo > 0, address - list[lo - 1].address < 1 << 20 {
            return CodeFrame(function: list[lo - 1].name, module: "[kernel]", offset: list[lo - 1].address, isKernel: true)
        }
        return CodeFrame(function: nil, module: "[kernel]", offset: address, isKernel: true)
    }
}

/// A regular file's first `limit` bytes (nil: not a regular file or unreadable). Never blocks on a FIFO.
func readFile(_ path: String, limit: Int) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var st = stat()
    // /proc files report size 0 and are not regular in the sense of st_size; allow them by path.
    guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 1 << 16)
    while out.count < limit {
        let n = read(fd, &buf, min(buf.count, limit - out.count))
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    return out
}
