// Reading a process's executable mappings (/proc/PID/maps) and the build ids of their files, so a
// trace can be symbolized after the process is gone.
#if canImport(Glibc)
import Glibc
#endif

/// One line of /proc/PID/maps.
public struct MapsEntry: Sendable, Equatable {
    /// The region's first address.
    public var start: UInt64
    /// The address after the region's last.
    public var end: UInt64
    /// Where in the file the region starts.
    public var fileOffset: UInt64
    /// The file's device, "major:minor" in hex as maps shows it.
    public var device: String
    /// The file's inode (0: anonymous).
    public var inode: UInt64
    /// The file's path; empty for anonymous memory, "[vdso]" and the like for the kernel's.
    public var path: String
}

/// Reading a process's executable mappings (/proc/PID/maps), so a trace can be symbolized after
/// the process is gone.
public enum ProcessMaps {
    /// The executable regions of `pid` (nil: the process is gone or unreadable). At most 1 MiB of
    /// maps text is read (tens of thousands of mappings).
    public static func executableRegions(pid: UInt32) -> [MapsEntry]? {
        guard let text = readSmallFile("/proc/\(pid)/maps", limit: 1 << 20) else { return nil }
        return parse(text)
    }

    /// Parses maps text; keeps lines with the x permission.
    public static func parse(_ text: [UInt8]) -> [MapsEntry] {
        var out: [MapsEntry] = []
        for line in text.split(separator: UInt8(ascii: "\n")) {
            // start-end perms offset dev inode [path]
            var fields: [ArraySlice<UInt8>] = []
            var i = line.startIndex
            while fields.count < 5 && i < line.endIndex {
                while i < line.endIndex && line[i] == UInt8(ascii: " ") { i += 1 }
                let s = i
                while i < line.endIndex && line[i] != UInt8(ascii: " ") { i += 1 }
                if s < i { fields.append(line[s..<i]) }
            }
            guard fields.count == 5, fields[1].count >= 3, fields[1][fields[1].startIndex + 2] == UInt8(ascii: "x") else {
                continue
            }
            while i < line.endIndex && line[i] == UInt8(ascii: " ") { i += 1 }
            let range = fields[0].split(separator: UInt8(ascii: "-"))
            guard range.count == 2, let start = hex(range[0]), let end = hex(range[1]), let off = hex(fields[2]),
                let inode = UInt64(String(decoding: fields[4], as: UTF8.self))
            else { continue }
            out.append(
                MapsEntry(
                    start: start, end: end, fileOffset: off, device: String(decoding: fields[3], as: UTF8.self),
                    inode: inode, path: String(decoding: line[i...], as: UTF8.self)))
        }
        return out
    }

    private static func hex(_ s: some Collection<UInt8>) -> UInt64? {
        guard !s.isEmpty, s.count <= 16 else { return nil }
        var v: UInt64 = 0
        for c in s {
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            v = v << 4 | UInt64(d)
        }
        return v
    }

    /// The build id of the file mapped at `entry` in `pid`, read through /proc/PID/map_files (the
    /// very file mapped, even if it was replaced or deleted since; never a path the traced user could
    /// swap under root). Empty if it has none or cannot be read.
    public static func buildID(pid: UInt32, entry: MapsEntry) -> [UInt8] {
        let name = "/proc/\(pid)/map_files/\(String(entry.start, radix: 16))-\(String(entry.end, radix: 16))"
        let fd = open(name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        return ELFNotes.buildID(fd: fd)
    }

    static func readSmallFile(_ path: String, limit: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }
}

/// The GNU build-id note of an ELF64 little-endian file, from its PT_NOTE segments.
public enum ELFNotes {
    /// The build id of the ELF file open as `fd`; empty when it has none or is not a readable ELF64 file.
    public static func buildID(fd: Int32) -> [UInt8] {
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size >= 64 else { return [] }
        return buildID(fd: fd, base: 0, size: UInt64(st.st_size))
    }

    /// The build id of the ELF image at `start..<end` of process `pid`'s memory, read through /proc/PID/mem:
    /// the kernel's `[vdso]`, which no file holds (the recorder may read it: it traces the process). Empty when
    /// it has none, is not an ELF64 image, or cannot be read.
    public static func buildID(memoryOf pid: UInt32, start: UInt64, end: UInt64) -> [UInt8] {
        // A vDSO is a few pages; a crafted or odd region is not read whole, only what the headers point to.
        guard start < end, start <= UInt64(Int64.max), end - start >= 64 else { return [] }
        let fd = open("/proc/\(pid)/mem", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        return buildID(fd: fd, base: start, size: min(end - start, 1 << 20))
    }

    /// The build id of the ELF image `size` bytes long at offset `base` of `fd`.
    private static func buildID(fd: Int32, base: UInt64, size: UInt64) -> [UInt8] {
        func read(_ count: Int, at offset: UInt64) -> [UInt8]? {
            guard count > 0, offset < size, UInt64(count) <= size - offset, base <= UInt64(Int64.max) - size else { return nil }
            var b = [UInt8](repeating: 0, count: count)
            let n = b.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(base + offset)) }
            return n == count ? b : nil
        }
        guard let h = read(64, at: 0), h[0] == 0x7f, h[1] == 0x45, h[2] == 0x4c, h[3] == 0x46, h[4] == 2, h[5] == 1 else {
            return []
        }
        let phoff = le64(h, 32), phentsize = Int(le16(h, 54)), phnum = Int(le16(h, 56))
        guard phentsize >= 56, phnum > 0, phnum <= 256, let ph = read(phentsize * phnum, at: phoff) else { return [] }
        for i in 0..<phnum {
            let p = i * phentsize
            guard le32(ph, p) == 4 else { continue }  // PT_NOTE
            let off = le64(ph, p + 8), filesz = le64(ph, p + 32)
            guard filesz >= 12, filesz <= 1 << 16, let notes = read(Int(filesz), at: off) else { continue }
            var q = 0
            while q + 12 <= notes.count {
                let namesz = Int(le32(notes, q)), descsz = Int(le32(notes, q + 4)), type = le32(notes, q + 8)
                let nameAt = q + 12
                let descAt = nameAt + ((namesz + 3) & ~3)
                let next = descAt + ((descsz + 3) & ~3)
                guard namesz <= 256, descsz <= 1024, next <= notes.count else { break }
                if type == 3, namesz == 4, notes[nameAt] == 0x47, notes[nameAt + 1] == 0x4e, notes[nameAt + 2] == 0x55,
                    descsz > 0, descsz <= 64
                {
                    return Array(notes[descAt..<(descAt + descsz)])
                }
                q = next
            }
        }
        return []
    }

    static func le16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) | UInt16(b[i + 1]) << 8 }
    static func le32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }
    static func le64(_ b: [UInt8], _ i: Int) -> UInt64 { UInt64(le32(b, i)) | UInt64(le32(b, i + 4)) << 32 }
}
