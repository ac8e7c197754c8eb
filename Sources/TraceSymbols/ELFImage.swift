// The parts of an ELF64 file that name code: loadable segments (file offset -> address), function
// symbols of .symtab and .dynsym, and the GNU build id. Parsed from a read-only mapping; every
// offset and size is checked, so a damaged or crafted file yields fewer names, never a crash.
#if canImport(Glibc)
import Glibc
#endif

/// The parts of an ELF64 file that name code: loadable segments, function symbols of .symtab and .dynsym,
/// and the GNU build id. Every offset and size is checked: a damaged or crafted file yields fewer names, never a crash.
public final class ELFImage {
    /// A loadable segment: where it is in the file and at which link-time address it is loaded.
    public struct Segment: Sendable { var fileOffset: UInt64, fileSize: UInt64, address: UInt64 }
    /// A function symbol: its link-time address, size in bytes and name (where its bytes start in
    /// `nameBytes`, up to a zero byte).
    public struct Symbol: Sendable { public var address: UInt64, size: UInt64, name: Int32 }

    /// The file's path.
    public let path: String
    /// The loadable segments.
    public private(set) var segments: [Segment] = []
    /// Function symbols sorted by address.
    public private(set) var symbols: [Symbol] = []
    /// The string tables of the symbols, zero-terminated names (decoded only when one is asked
    /// for: a large binary has ~100 k symbols, and a String each cost a debug build ~0.5 s).
    public private(set) var nameBytes: [UInt8] = []
    /// The GNU build id (empty: none).
    public private(set) var buildID: [UInt8] = []
    /// Whether the file had a .symtab (else only exported names of .dynsym).
    public private(set) var hasSymtab = false

    private init(emptyFor path: String) { self.path = path }

    /// Symbols of a separate debug file placed by the segments of the file it belongs to.
    static func merged(symbolsOf debug: ELFImage, segmentsOf file: ELFImage) -> ELFImage {
        let m = ELFImage(emptyFor: file.path)
        m.segments = file.segments
        m.symbols = debug.symbols
        m.nameBytes = debug.nameBytes
        m.buildID = file.buildID
        m.hasSymtab = true
        return m
    }

    /// Files larger than this are not mapped (a crafted trace could name any file).
    public static let maxFileSize: Int = 4 << 30

    /// Opens `path` (regular files only; never blocks on a FIFO or device). nil if unreadable or not ELF64 LE.
    public convenience init?(path: String) {
        self.init(emptyFor: path)
        guard Self.withMappedFile(path, { parse($0, symbols: true) }) == true else { return nil }
    }

    /// The vDSO the kernel maps into this process (nil: none, or not an ELF64 image). Its build id says whether a
    /// recorded `[vdso]` region was the same code: the kernel gives every 64-bit process one image.
    public static func ownVDSO() -> ELFImage? {
        guard let maps = readFile("/proc/self/maps", limit: 1 << 22) else { return nil }
        for line in maps.split(separator: UInt8(ascii: "\n")) where line.reversed().starts(with: "]osdv[".utf8) {
            let range = line.prefix { $0 != UInt8(ascii: " ") }.split(separator: UInt8(ascii: "-"))
            guard range.count == 2, let start = PerfMap.hex(range[0]), let end = PerfMap.hex(range[1]), end > start, end - start >= 64,
                end - start <= 1 << 20
            else { continue }
            let image = ELFImage(emptyFor: "[vdso]")
            let bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: UInt(start)), count: Int(end - start))
            return image.parse(bytes, symbols: true) ? image : nil
        }
        return nil
    }

    /// The GNU build id of the file at `path` (empty: none), read from its program headers only;
    /// nil if unreadable or not ELF64 LE.
    public static func buildID(ofFileAt path: String) -> [UInt8]? {
        let image = ELFImage(emptyFor: path)
        guard withMappedFile(path, { image.parse($0, symbols: false) }) == true else { return nil }
        return image.buildID
    }

    private static func withMappedFile<R>(_ path: String, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size >= 64, st.st_size <= Self.maxFileSize
        else { return nil }
        let size = Int(st.st_size)
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else { return nil }
        defer { munmap(base, size) }
        return body(UnsafeRawBufferPointer(start: base, count: size))
    }

    private func parse(_ b: UnsafeRawBufferPointer, symbols wanted: Bool) -> Bool {
        guard b[0] == 0x7f, b[1] == 0x45, b[2] == 0x4c, b[3] == 0x46, b[4] == 2, b[5] == 1 else { return false }
        func u16(_ o: Int) -> UInt16 { b.loadUnaligned(fromByteOffset: o, as: UInt16.self) }
        func u32(_ o: Int) -> UInt32 { b.loadUnaligned(fromByteOffset: o, as: UInt32.self) }
        func u64(_ o: Int) -> UInt64 { b.loadUnaligned(fromByteOffset: o, as: UInt64.self) }
        func fits(_ off: UInt64, _ len: UInt64) -> Bool { off <= UInt64(b.count) && len <= UInt64(b.count) - off }

        let phoff = u64(32), phentsize = UInt64(u16(54)), phnum = UInt64(u16(56))
        if phentsize >= 56, fits(phoff, phentsize * phnum) {
            for i in 0..<phnum {
                let p = Int(phoff + i * phentsize)
                let type = u32(p)
                if type == 1 {  // PT_LOAD
                    segments.append(Segment(fileOffset: u64(p + 8), fileSize: u64(p + 32), address: u64(p + 16)))
                } else if type == 4, buildID.isEmpty {  // PT_NOTE
                    buildID = Self.buildID(notes: b, offset: u64(p + 8), size: u64(p + 32))
                }
            }
        }
        let shoff = u64(40), shentsize = UInt64(u16(58)), shnum = UInt64(u16(60))
        guard wanted, shentsize >= 64, shnum > 0, shnum < 65_536, fits(shoff, shentsize * shnum) else { return true }
        func section(_ i: UInt64) -> (type: UInt32, flags: UInt64, offset: UInt64, size: UInt64, link: UInt32, entsize: UInt64) {
            let s = Int(shoff + i * shentsize)
            return (u32(s + 4), u64(s + 8), u64(s + 24), u64(s + 32), u32(s + 40), u64(s + 56))
        }
        for pass in [UInt32(2), 11] {  // SHT_SYMTAB first; .dynsym adds what it lacks
            for i in 0..<shnum {
                let sec = section(i)
                guard sec.type == pass, sec.entsize >= 24, fits(sec.offset, sec.size), UInt64(sec.link) < shnum else { continue }
                if pass == 2 { hasSymtab = true }
                let strtab = section(UInt64(sec.link))
                // Name offsets are Int32s into `nameBytes`, which ends with a zero byte.
                guard fits(strtab.offset, strtab.size), strtab.size < UInt64(Int32.max) - UInt64(nameBytes.count) - 1
                else { continue }
                let base = nameBytes.count
                nameBytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[Int(strtab.offset)..<Int(strtab.offset + strtab.size)]))
                nameBytes.append(0)
                let count = sec.size / sec.entsize
                for j in 0..<count {
                    let e = Int(sec.offset + j * sec.entsize)
                    let info = b[e + 4], shndx = u16(e + 6)
                    let type = info & 0xf, binding = info >> 4
                    // STT_FUNC, STT_GNU_IFUNC; defined. And a global label with no type in code: hand-written
                    // assembly's entry points, such as a cgo Go program's crosscall_amd64 at every thread's start.
                    let isFunction =
                        type == 2 || type == 10
                        || (type == 0 && (binding == 1 || binding == 2) && UInt64(shndx) < shnum
                            && section(UInt64(shndx)).flags & 4 != 0)  // SHF_EXECINSTR
                    guard isFunction, shndx != 0 else { continue }
                    let value = u64(e + 8), size = u64(e + 16), nameOff = UInt64(u32(e))
                    guard value != 0, nameOff < strtab.size, b[Int(strtab.offset + nameOff)] != 0 else { continue }
                    symbols.append(Symbol(address: value, size: size, name: Int32(base + Int(nameOff))))
                }
            }
            if pass == 2 && hasSymtab { break }  // .symtab holds .dynsym's functions too
        }
        // By address; of equal addresses keep one with a size (aliases name the same code), the smallest: a
        // symbol for a whole object file's code starts where its first function does (Go's external link
        // names each C object's "runtime/cgo(.text)", which named cgo's threadentry and crosscall_amd64 in
        // every Go thread's stack). qsort with a C comparator: a debug build's Swift sort took ~0.3 s for
        // node's ~80 k symbols, while `record` unwinds stacks as they come.
        symbols.withUnsafeMutableBufferPointer { all in
            guard let base = all.baseAddress, all.count > 1 else { return }
            qsort(base, all.count, MemoryLayout<Symbol>.stride) { a, b in
                let x = a!.load(as: Symbol.self), y = b!.load(as: Symbol.self)
                if x.address != y.address { return x.address < y.address ? -1 : 1 }
                if x.size == y.size { return 0 }
                if x.size == 0 || y.size == 0 { return x.size == 0 ? 1 : -1 }
                return x.size < y.size ? -1 : 1
            }
        }
        var unique: [Symbol] = []
        unique.reserveCapacity(symbols.count)
        for s in symbols {
            if let last = unique.last, last.address == s.address {
                // An object file's symbol yields to a function's even when that one has no size (Go's external
                // link: "runtime/cgo(.text)", 31 bytes, and the hand-written crosscall_amd64 at its address).
                if isObjectFileSymbol(last), !isObjectFileSymbol(s) { unique[unique.count - 1] = s }
                continue
            }
            unique.append(s)
        }
        symbols = unique
        return true
    }

    /// A name Go's linker gives a host object's section, "runtime/cgo(.text)" or "x.o(.text.unlikely)": it
    /// spans all the object's functions, so it names none.
    private func isObjectFileSymbol(_ s: Symbol) -> Bool {
        let open = UInt8(ascii: "("), dot = UInt8(ascii: "."), close = UInt8(ascii: ")")
        var i = Int(s.name)
        guard i >= 0, i < nameBytes.count else { return false }
        var last: UInt8 = 0
        var sawSection = false
        while i < nameBytes.count, nameBytes[i] != 0 {
            if nameBytes[i] == dot && last == open { sawSection = true }
            last = nameBytes[i]
            i += 1
        }
        return sawSection && last == close
    }

    static func buildID(notes b: UnsafeRawBufferPointer, offset: UInt64, size: UInt64) -> [UInt8] {
        guard offset <= UInt64(b.count), size <= UInt64(b.count) - offset, size <= 1 << 16 else { return [] }
        var q = Int(offset)
        let end = Int(offset + size)
        while q + 12 <= end {
            let namesz = Int(b.loadUnaligned(fromByteOffset: q, as: UInt32.self))
            let descsz = Int(b.loadUnaligned(fromByteOffset: q + 4, as: UInt32.self))
            let type = b.loadUnaligned(fromByteOffset: q + 8, as: UInt32.self)
            guard namesz <= 256, descsz <= 1024 else { return [] }
            let nameAt = q + 12, descAt = nameAt + ((namesz + 3) & ~3), next = descAt + ((descsz + 3) & ~3)
            guard next <= end else { return [] }
            if type == 3, namesz == 4, b[nameAt] == 0x47, b[nameAt + 1] == 0x4e, b[nameAt + 2] == 0x55, descsz > 0, descsz <= 64 {
                return Array(UnsafeRawBufferPointer(rebasing: b[descAt..<(descAt + descsz)]))
            }
            q = next
        }
        return []
    }

    /// The link-time address of a file offset, by the PT_LOAD segment holding it.
    public func address(ofFileOffset off: UInt64) -> UInt64? {
        for s in segments where off >= s.fileOffset && off - s.fileOffset < max(s.fileSize, 1) {
            return s.address &+ (off - s.fileOffset)
        }
        return nil
    }

    /// The function holding `address` (link-time): its name and the offset into it.
    public func symbol(at address: UInt64) -> (name: String, offset: UInt64)? {
        var lo = 0, hi = symbols.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if symbols[mid].address <= address { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        let s = symbols[lo - 1]
        let off = address - s.address
        // A sized symbol must contain the address; an unsized one (hand-written assembly) is taken
        // when the next symbol is not too far.
        if s.size > 0 ? off >= s.size : off >= 1 << 16 { return nil }
        return (name(of: s), off)
    }

    /// A symbol's name (its bytes up to the zero byte that ends its string table).
    public func name(of s: Symbol) -> String {
        let start = Int(s.name)
        guard start >= 0, start < nameBytes.count else { return "" }
        return nameBytes.withUnsafeBufferPointer { all in
            var end = start
            while all[end] != 0 { end += 1 }  // the table ends with a zero byte
            return String(decoding: UnsafeBufferPointer(rebasing: all[start..<end]), as: UTF8.self)
        }
    }
}
