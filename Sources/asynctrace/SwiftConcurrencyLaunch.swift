// Whether `record` injects the Swift Concurrency adapter (libAsyncTraceConcurrencyPreload.so, built
// next to this executable) into the program it launches, and the environment entry that does it.
// Programs that link libswift_Concurrency.so get it; a program that carries its own recorder (it reads
// ASYNCTRACE_OUTPUT itself, as programs on the asynctrace runtime do) is left alone, and a Swift program
// with the runtime linked in statically cannot be injected into: `record` says so.
#if canImport(Glibc)
import Glibc
#endif

enum SwiftConcurrencyLaunch {
    enum Decision: Equatable {
        /// Add this LD_PRELOAD entry (the current LD_PRELOAD, if any, follows it).
        case inject(preload: String)
        /// Nothing to inject; `note` (if any) tells the user why.
        case skip(note: String?)
    }

    static let libraryName = "libAsyncTraceConcurrencyPreload.so"

    /// `decide`, applied: LD_PRELOAD set in `environment` or a note printed.
    static func apply(to environment: inout [String], program: String, note: (String) -> Void) {
        switch decide(program: program, environment: environment) {
        case .inject(let preload):
            environment = environment.filter { !$0.hasPrefix("LD_PRELOAD=") } + ["LD_PRELOAD=" + preload]
        case .skip(let message?):
            note(message)
        case .skip(nil):
            break
        }
    }

    /// What to do for `program` (an absolute path). `ASYNCTRACE_SWIFT_CONCURRENCY=0` turns injection off.
    static func decide(program: String, environment: [String]) -> Decision {
        if environment.contains("ASYNCTRACE_SWIFT_CONCURRENCY=0") { return .skip(note: nil) }
        guard let image = ELFImage.read(path: program) else { return .skip(note: nil) }  // a script, or not ELF
        let needsConcurrency = image.needed.contains { $0.hasPrefix("libswift_Concurrency.so") }
        if image.contains("ASYNCTRACE_OUTPUT") {
            return .skip(note: nil)  // records itself (AsyncTraceRecorder linked in)
        }
        if !needsConcurrency {
            if image.contains("swift_task_enqueueGlobal_hook") {
                return .skip(
                    note: "the program has Swift's runtime linked in statically, so its tasks cannot be "
                        + "observed from outside; call AsyncTraceConcurrency.install() and start a recorder in it "
                        + "to record them")
            }
            return .skip(note: nil)
        }
        guard let library = libraryPath() else {
            return .skip(
                note: "\(libraryName) was not found next to asynctrace (build it with `swift build`); "
                    + "recording without Swift task events")
        }
        let current = environment.first { $0.hasPrefix("LD_PRELOAD=") }.map { String($0.dropFirst(11)) } ?? ""
        return .inject(preload: current.isEmpty ? library : library + ":" + current)
    }

    /// The injected library next to this executable (ASYNCTRACE_CONCURRENCY_LIBRARY overrides).
    static func libraryPath() -> String? {
        if let p = getenv("ASYNCTRACE_CONCURRENCY_LIBRARY").map({ String(cString: $0) }), !p.isEmpty {
            return access(p, R_OK) == 0 ? p : nil
        }
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = exe.lastIndex(of: "/") else { return nil }
        let candidate = String(exe[..<slash]) + "/" + libraryName
        return access(candidate, R_OK) == 0 ? candidate : nil
    }
}

/// The little of an ELF file `record` needs: its DT_NEEDED libraries, and a byte search.
struct ELFImage {
    var bytes: [UInt8]
    var needed: [String]

    /// nil when the file is not a 64-bit little-endian ELF (or is unreadable or larger than 1 GiB).
    static func read(path: String) -> ELFImage? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size >= 64, st.st_size <= 1 << 30 else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < bytes.count {
            let r = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(done)) }
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else { return nil }
            done += r
        }
        guard bytes[0] == 0x7f, bytes[1] == 0x45, bytes[2] == 0x4c, bytes[3] == 0x46, bytes[4] == 2, bytes[5] == 1 else {
            return nil
        }
        return ELFImage(bytes: bytes, needed: dynamicNeeded(bytes))
    }

    func contains(_ text: String) -> Bool {
        let needle = Array(text.utf8)
        guard let first = needle.first, needle.count <= bytes.count else { return false }
        return bytes.withUnsafeBufferPointer { b in
            var i = 0
            let last = b.count - needle.count
            while i <= last {
                guard let p = memchr(b.baseAddress! + i, Int32(first), last - i + 1) else { return false }
                i = b.baseAddress!.distance(to: p.assumingMemoryBound(to: UInt8.self))
                if memcmp(b.baseAddress! + i, needle, needle.count) == 0 { return true }
                i += 1
            }
            return false
        }
    }

    /// DT_NEEDED names from the PT_DYNAMIC segment (file offsets through the PT_LOAD mapping). Every
    /// offset is checked: a crafted file yields an empty list, never a trap.
    static func dynamicNeeded(_ b: [UInt8]) -> [String] {
        func u16(_ o: Int) -> Int? { o >= 0 && o + 2 <= b.count ? Int(b[o]) | Int(b[o + 1]) << 8 : nil }
        func u64(_ o: Int) -> UInt64? {
            guard o >= 0, o + 8 <= b.count else { return nil }
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(b[o + i]) << (8 * UInt64(i)) }
            return v
        }
        guard let phoff = u64(32), phoff < UInt64(b.count), let phentsize = u16(54), let phnum = u16(56),
            phentsize >= 56
        else { return [] }
        var loads: [(vaddr: UInt64, offset: UInt64, size: UInt64)] = []
        var dynamic: (offset: UInt64, size: UInt64)?
        for i in 0..<phnum {
            let o = Int(phoff) + i * phentsize
            guard let type = u64(o).map({ UInt32(truncatingIfNeeded: $0) }), let off = u64(o + 8), let vaddr = u64(o + 16),
                let filesz = u64(o + 32)
            else { return [] }
            if type == 1 { loads.append((vaddr, off, filesz)) }
            if type == 2 { dynamic = (off, filesz) }
        }
        guard let dynamic, dynamic.offset < UInt64(b.count) else { return [] }
        var strtab: UInt64?
        var neededOffsets: [UInt64] = []
        var o = Int(dynamic.offset)
        let end = Int(min(UInt64(b.count), dynamic.offset &+ min(dynamic.size, 1 << 20)))
        while o + 16 <= end, let tag = u64(o), tag != 0, let val = u64(o + 8) {
            if tag == 5 { strtab = val }
            if tag == 1 { neededOffsets.append(val) }
            o += 16
        }
        guard let strtab,
            let seg = loads.first(where: { strtab >= $0.vaddr && strtab - $0.vaddr < $0.size })
        else { return [] }
        let base = strtab - seg.vaddr + seg.offset
        return neededOffsets.compactMap { rel in
            let (start, overflow) = base.addingReportingOverflow(rel)
            guard !overflow, start < UInt64(b.count) else { return nil }
            let s = Int(start)
            let stop = b[s...].prefix(4096).firstIndex(of: 0) ?? s
            return String(decoding: b[s..<stop], as: UTF8.self)
        }
    }
}
