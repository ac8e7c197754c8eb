// The call frame information (.eh_frame) of one x86-64 ELF file: for a code address, how to find
// the caller's frame (the CFA rule, where the return address and %rbp were saved). Every compiler
// emits it for C++ exceptions and it is never stripped, so it describes code built without frame
// pointers (swiftc -O, Debian's glibc). A compact interpreter of the DWARF CFA programs; every
// offset, length, loop and stack depth taken from the file is bounded: a crafted file gives no
// rule, never a crash or a hang.
#if canImport(Glibc)
import Glibc
#endif

/// How to get from a frame to its caller's, at one code address (x86-64 DWARF register numbers).
public struct FrameRule: Sendable, Equatable {
    /// Where a register's caller value is, by one rule.
    public enum Register: Sendable, Equatable {
        /// Not saved by this frame: the caller's value is unknown (for the return address: the
        /// outermost frame).
        case undefined
        /// Unchanged in the caller.
        case sameValue
        /// Saved at CFA + n.
        case atCFA(Int64)
        /// The caller's value is CFA + n.
        case isCFA(Int64)
        /// A rule this interpreter does not follow (another register, an expression).
        case unsupported
    }
    /// How the canonical frame address (the caller's stack pointer before the call) is computed.
    public enum CFA: Sendable, Equatable {
        /// register (6 %rbp, 7 %rsp) + offset
        case register(UInt16, Int64)
        /// A DWARF expression (PLT stubs), as its bytes.
        case expression([UInt8])
    }
    /// The canonical frame address.
    public var cfa: CFA
    /// Where the return address is.
    public var returnAddress: Register
    /// Where the caller's %rbp is.
    public var rbp: Register
    /// A signal trampoline's frame (augmentation "S"): the caller's registers are in a sigcontext.
    public var isSignalFrame: Bool
}

/// The call frame information (.eh_frame) of one x86-64 ELF file: for a code address, how to find the
/// caller's frame. Every offset, length and loop from the file is bounded: a crafted file gives no rule, never
/// a crash or a hang.
public final class CallFrameInfo {
    /// FDEs by start address (link-time): start, end, offset of the FDE in `section`.
    private var table: [(start: UInt64, end: UInt64, fde: Int)] = []
    private let section: [UInt8]
    private let sectionAddress: UInt64
    private var cies: [Int: CIE?] = [:]
    /// Entries parsed at most (a crafted section cannot make the table unbounded).
    public static let maxEntries = 4_000_000
    /// CFA program steps and remember-state depth, per rule.
    static let maxSteps = 100_000, maxStateDepth = 64

    /// FDEs (address ranges with a CFA program) parsed.
    public var fdeCount: Int { table.count }

    /// The .eh_frame of the file at `path` (nil: no readable section: not ELF64, or a debug file whose
    /// .eh_frame is NOBITS).
    public convenience init?(path: String) {
        guard let (bytes, address) = Self.readSection(path: path, name: ".eh_frame") else { return nil }
        self.init(section: bytes, address: address)
    }

    /// `section`: the bytes of .eh_frame, loaded at link-time address `address`.
    public init(section: [UInt8], address: UInt64) {
        self.section = section
        self.sectionAddress = address
        buildTable()
    }

    // MARK: reading the section

    private struct CIE {
        var codeAlign: UInt64
        var dataAlign: Int64
        var returnRegister: UInt64
        var fdeEncoding: UInt8
        var hasAugmentationData: Bool
        var isSignalFrame: Bool
        var instructions: Range<Int>
    }

    private func buildTable() {
        var offset = 0
        while offset + 8 <= section.count, table.count < Self.maxEntries {
            guard let (entryEnd, idOffset) = entryBounds(at: offset) else { break }
            defer { offset = entryEnd }
            if entryEnd == offset + 4 { continue }  // zero length: a terminator some linkers leave mid-section
            let id = u32(idOffset)
            guard id != 0 else { continue }  // a CIE
            guard let cie = cie(forFDEAt: idOffset, id: id) else { continue }
            var p = idOffset + 4
            guard let start = readPointer(&p, encoding: cie.fdeEncoding, limit: entryEnd),
                let range = readPointer(&p, encoding: cie.fdeEncoding & 0x0f, limit: entryEnd),
                range > 0
            else { continue }
            let (end, overflow) = start.addingReportingOverflow(range)
            table.append((start, overflow ? UInt64.max : end, offset))
        }
        table.sort { $0.start < $1.start }
    }

    /// The end of the entry at `offset` and where its CIE id / pointer is; nil if it does not fit.
    private func entryBounds(at offset: Int) -> (end: Int, idOffset: Int)? {
        guard offset >= 0, offset + 4 <= section.count else { return nil }
        let length = u32(offset)
        var idOffset = offset + 4
        var len = UInt64(length)
        if length == 0xffff_ffff {
            guard offset + 12 <= section.count else { return nil }
            len = u64(offset + 4)
            idOffset = offset + 12
        }
        guard len <= UInt64(section.count - idOffset) else { return nil }
        if len == 0 { return (idOffset, idOffset) }
        guard len >= 4 else { return nil }
        return (idOffset + Int(len), idOffset)
    }

    private func cie(forFDEAt idOffset: Int, id: UInt32) -> CIE? {
        let at = idOffset - Int(id)
        guard at >= 0 else { return nil }
        if let known = cies[at] { return known }
        let parsed = parseCIE(at: at)
        cies[at] = .some(parsed)
        return parsed
    }

    private func parseCIE(at offset: Int) -> CIE? {
        guard let (end, idOffset) = entryBounds(at: offset), end > idOffset + 4, u32(idOffset) == 0 else { return nil }
        var p = idOffset + 4
        let version = section[p]
        p += 1
        guard version == 1 || version == 3 || version == 4 else { return nil }
        var augmentation: [UInt8] = []
        while p < end && section[p] != 0 && augmentation.count < 16 {
            augmentation.append(section[p])
            p += 1
        }
        guard p < end, section[p] == 0 else { return nil }
        p += 1
        if augmentation.starts(with: Array("eh".utf8)) { p += 8 }  // an old GCC's eh_ptr
        if version == 4 { p += 2 }  // address_size, segment_selector_size
        guard p < end, let codeAlign = uleb(&p, end), let dataAlign = sleb(&p, end) else { return nil }
        let returnRegister: UInt64
        if version == 1 {
            guard p < end else { return nil }
            returnRegister = UInt64(section[p])
            p += 1
        } else {
            guard let r = uleb(&p, end) else { return nil }
            returnRegister = r
        }
        var cie = CIE(
            codeAlign: codeAlign, dataAlign: dataAlign, returnRegister: returnRegister, fdeEncoding: 0,
            hasAugmentationData: augmentation.first == UInt8(ascii: "z"), isSignalFrame: false, instructions: 0..<0)
        if cie.hasAugmentationData {
            guard let length = uleb(&p, end), length <= UInt64(end - p) else { return nil }
            let dataEnd = p + Int(length)
            var q = p
            for c in augmentation.dropFirst() {
                switch c {
                case UInt8(ascii: "R"):
                    guard q < dataEnd else { return nil }
                    cie.fdeEncoding = section[q]
                    q += 1
                case UInt8(ascii: "P"):
                    guard q < dataEnd else { return nil }
                    let enc = section[q]
                    q += 1
                    guard readPointer(&q, encoding: enc, limit: dataEnd) != nil else { return nil }
                case UInt8(ascii: "L"):
                    q += 1
                case UInt8(ascii: "S"):
                    cie.isSignalFrame = true
                default:
                    break  // "B" and the like: nothing this reader needs; the length skips their data
                }
            }
            p = dataEnd
        }
        guard p <= end else { return nil }
        cie.instructions = p..<end
        return cie
    }

    // MARK: rules

    /// The rule at link-time address `pc`; nil where no FDE covers it (or its program is not understood).
    public func rule(at pc: UInt64) -> FrameRule? {
        var lo = 0, hi = table.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if table[mid].start <= pc { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        let entry = table[lo - 1]
        guard pc < entry.end else { return nil }
        return evaluate(fdeAt: entry.fde, start: entry.start, pc: pc)
    }

    private struct State {
        var cfa: FrameRule.CFA = .register(7, 8)
        var ra: FrameRule.Register = .undefined
        var rbp: FrameRule.Register = .sameValue
    }

    private func evaluate(fdeAt offset: Int, start: UInt64, pc: UInt64) -> FrameRule? {
        guard let (end, idOffset) = entryBounds(at: offset), let cie = cie(forFDEAt: idOffset, id: u32(idOffset)) else { return nil }
        var p = idOffset + 4
        guard readPointer(&p, encoding: cie.fdeEncoding, limit: end) != nil,
            readPointer(&p, encoding: cie.fdeEncoding & 0x0f, limit: end) != nil
        else { return nil }
        if cie.hasAugmentationData {
            guard let length = uleb(&p, end), length <= UInt64(end - p) else { return nil }
            p += Int(length)
        }
        var state = State()
        var initial = State()
        var steps = 0
        // The CIE's initial instructions, then the FDE's up to pc.
        guard
            run(
                cie.instructions, cie: cie, state: &state, initial: state, location: start, pc: UInt64.max,
                steps: &steps)
        else { return nil }
        initial = state
        guard run(p..<end, cie: cie, state: &state, initial: initial, location: start, pc: pc, steps: &steps) else { return nil }
        return FrameRule(cfa: state.cfa, returnAddress: state.ra, rbp: state.rbp, isSignalFrame: cie.isSignalFrame)
    }

    /// Runs a CFA program until the location passes `pc`. False: malformed or beyond the bounds.
    private func run(
        _ range: Range<Int>, cie: CIE, state: inout State, initial: State, location: UInt64, pc: UInt64,
        steps: inout Int
    ) -> Bool {
        var p = range.lowerBound
        let end = range.upperBound
        var loc = location
        var stack: [State] = []
        func set(_ reg: UInt64, _ rule: FrameRule.Register) {
            if reg == cie.returnRegister { state.ra = rule } else if reg == 6 { state.rbp = rule }
        }
        func restore(_ reg: UInt64) {
            if reg == cie.returnRegister { state.ra = initial.ra } else if reg == 6 { state.rbp = initial.rbp }
        }
        func advance(_ delta: UInt64) -> Bool {  // false: past pc, stop
            let (scaled, o1) = delta.multipliedReportingOverflow(by: cie.codeAlign)
            let (next, o2) = loc.addingReportingOverflow(scaled)
            if o1 || o2 || next > pc { return false }
            loc = next
            return true
        }
        while p < end {
            steps += 1
            guard steps <= Self.maxSteps else { return false }
            let op = section[p]
            p += 1
            switch op >> 6 {
            case 1:
                if !advance(UInt64(op & 0x3f)) { return true }
                continue
            case 2:
                guard let off = uleb(&p, end) else { return false }
                set(UInt64(op & 0x3f), .atCFA(Self.scaled(off, cie.dataAlign)))
                continue
            case 3:
                restore(UInt64(op & 0x3f))
                continue
            default:
                break
            }
            switch op {
            case 0x00: break  // nop
            case 0x01:  // set_loc
                guard let a = readPointer(&p, encoding: cie.fdeEncoding, limit: end) else { return false }
                if a > pc { return true }
                loc = a
            case 0x02, 0x03, 0x04:
                let n = op == 0x02 ? 1 : op == 0x03 ? 2 : 4
                guard end - p >= n else { return false }
                let delta = n == 1 ? UInt64(section[p]) : n == 2 ? UInt64(u16(p)) : UInt64(u32(p))
                p += n
                if !advance(delta) { return true }
            case 0x05:  // offset_extended
                guard let r = uleb(&p, end), let off = uleb(&p, end) else { return false }
                set(r, .atCFA(Self.scaled(off, cie.dataAlign)))
            case 0x06:  // restore_extended
                guard let r = uleb(&p, end) else { return false }
                restore(r)
            case 0x07:  // undefined
                guard let r = uleb(&p, end) else { return false }
                set(r, .undefined)
            case 0x08:  // same_value
                guard let r = uleb(&p, end) else { return false }
                set(r, .sameValue)
            case 0x09:  // register
                guard let r = uleb(&p, end), uleb(&p, end) != nil else { return false }
                set(r, .unsupported)
            case 0x0a:
                guard stack.count < Self.maxStateDepth else { return false }
                stack.append(state)
            case 0x0b:
                guard let saved = stack.popLast() else { return false }
                state = saved
            case 0x0c:  // def_cfa
                guard let r = uleb(&p, end), let off = uleb(&p, end) else { return false }
                state.cfa = .register(UInt16(truncatingIfNeeded: min(r, 0xffff)), Int64(bitPattern: off))
            case 0x0d:  // def_cfa_register
                guard let r = uleb(&p, end) else { return false }
                let off: Int64
                if case .register(_, let o) = state.cfa { off = o } else { off = 0 }
                state.cfa = .register(UInt16(truncatingIfNeeded: min(r, 0xffff)), off)
            case 0x0e:  // def_cfa_offset
                guard let off = uleb(&p, end) else { return false }
                if case .register(let r, _) = state.cfa { state.cfa = .register(r, Int64(bitPattern: off)) }
            case 0x0f:  // def_cfa_expression
                guard let n = uleb(&p, end), n <= UInt64(end - p) else { return false }
                state.cfa = .expression(Array(section[p..<(p + Int(n))]))
                p += Int(n)
            case 0x10, 0x16:  // expression, val_expression
                guard let r = uleb(&p, end), let n = uleb(&p, end), n <= UInt64(end - p) else { return false }
                p += Int(n)
                set(r, .unsupported)
            case 0x11:  // offset_extended_sf
                guard let r = uleb(&p, end), let off = sleb(&p, end) else { return false }
                set(r, .atCFA(off &* cie.dataAlign))
            case 0x12:  // def_cfa_sf
                guard let r = uleb(&p, end), let off = sleb(&p, end) else { return false }
                state.cfa = .register(UInt16(truncatingIfNeeded: min(r, 0xffff)), off &* cie.dataAlign)
            case 0x13:  // def_cfa_offset_sf
                guard let off = sleb(&p, end) else { return false }
                if case .register(let r, _) = state.cfa { state.cfa = .register(r, off &* cie.dataAlign) }
            case 0x14:  // val_offset
                guard let r = uleb(&p, end), let off = uleb(&p, end) else { return false }
                set(r, .isCFA(Self.scaled(off, cie.dataAlign)))
            case 0x15:  // val_offset_sf
                guard let r = uleb(&p, end), let off = sleb(&p, end) else { return false }
                set(r, .isCFA(off &* cie.dataAlign))
            case 0x2e:  // GNU_args_size
                guard uleb(&p, end) != nil else { return false }
            case 0x2f:  // GNU_negative_offset_extended
                guard let r = uleb(&p, end), let off = uleb(&p, end) else { return false }
                set(r, .atCFA(0 &- Self.scaled(off, cie.dataAlign)))
            default:
                return false
            }
        }
        return true
    }

    private static func scaled(_ v: UInt64, _ factor: Int64) -> Int64 { Int64(bitPattern: v) &* factor }

    // MARK: primitive reads (all bounds-checked)

    private func u16(_ o: Int) -> UInt16 { UInt16(section[o]) | UInt16(section[o + 1]) << 8 }
    private func u32(_ o: Int) -> UInt32 {
        guard o >= 0, o + 4 <= section.count else { return 0 }
        return UInt32(section[o]) | UInt32(section[o + 1]) << 8 | UInt32(section[o + 2]) << 16 | UInt32(section[o + 3]) << 24
    }
    private func u64(_ o: Int) -> UInt64 { UInt64(u32(o)) | UInt64(u32(o + 4)) << 32 }

    private func uleb(_ p: inout Int, _ end: Int) -> UInt64? {
        var v: UInt64 = 0, shift: UInt64 = 0
        while p < end {
            let b = section[p]
            p += 1
            if shift < 64 { v |= UInt64(b & 0x7f) << shift }
            shift += 7
            if b & 0x80 == 0 { return v }
            if shift > 70 { return nil }
        }
        return nil
    }

    private func sleb(_ p: inout Int, _ end: Int) -> Int64? {
        var v: UInt64 = 0, shift: UInt64 = 0
        while p < end {
            let b = section[p]
            p += 1
            if shift < 64 { v |= UInt64(b & 0x7f) << shift }
            shift += 7
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 { v |= UInt64.max << shift }
                return Int64(bitPattern: v)
            }
            if shift > 70 { return nil }
        }
        return nil
    }

    /// A pointer in DWARF exception-header encoding; pc-relative ones against the field's own address.
    private func readPointer(_ p: inout Int, encoding: UInt8, limit: Int) -> UInt64? {
        guard encoding != 0xff else { return nil }
        let fieldAddress = sectionAddress &+ UInt64(p)
        var value: UInt64
        func fixed(_ n: Int) -> UInt64? {
            guard limit - p >= n else { return nil }
            var v: UInt64 = 0
            for i in 0..<n { v |= UInt64(section[p + i]) << (8 * UInt64(i)) }
            p += n
            return v
        }
        switch encoding & 0x0f {
        case 0x00, 0x04, 0x0c: guard let v = fixed(8) else { return nil }; value = v
        case 0x01: guard let v = uleb(&p, limit) else { return nil }; value = v
        case 0x09: guard let v = sleb(&p, limit) else { return nil }; value = UInt64(bitPattern: v)
        case 0x02: guard let v = fixed(2) else { return nil }; value = v
        case 0x03: guard let v = fixed(4) else { return nil }; value = v
        case 0x0a: guard let v = fixed(2) else { return nil }; value = UInt64(bitPattern: Int64(Int16(truncatingIfNeeded: v)))
        case 0x0b: guard let v = fixed(4) else { return nil }; value = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: v)))
        default: return nil
        }
        switch encoding & 0x70 {
        case 0x00: break
        case 0x10: value = value &+ fieldAddress
        default: return nil  // textrel, datarel, funcrel: not used in .eh_frame FDEs of x86-64 files
        }
        return encoding & 0x80 != 0 ? nil : value
    }

    // MARK: the section from the file

    /// A section's bytes and link-time address (nil: missing, NOBITS, or the file is not ELF64 LE).
    static func readSection(path: String, name: String, limit: Int = 256 << 20) -> ([UInt8], UInt64)? {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size >= 64, st.st_size <= ELFImage.maxFileSize
        else { return nil }
        let size = Int(st.st_size)
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else { return nil }
        defer { munmap(base, size) }
        let b = UnsafeRawBufferPointer(start: base, count: size)
        guard b[0] == 0x7f, b[1] == 0x45, b[2] == 0x4c, b[3] == 0x46, b[4] == 2, b[5] == 1 else { return nil }
        func u16(_ o: Int) -> UInt64 { UInt64(b.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        func u32(_ o: Int) -> UInt64 { UInt64(b.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        func u64(_ o: Int) -> UInt64 { b.loadUnaligned(fromByteOffset: o, as: UInt64.self) }
        func fits(_ off: UInt64, _ len: UInt64) -> Bool { off <= UInt64(size) && len <= UInt64(size) - off }
        let shoff = u64(40), shentsize = u16(58), shnum = u16(60), shstrndx = u16(62)
        guard shentsize >= 64, shnum > 0, shstrndx < shnum, fits(shoff, shentsize * shnum) else { return nil }
        func header(_ i: UInt64) -> Int { Int(shoff + i * shentsize) }
        let strtab = header(shstrndx)
        let strOff = u64(strtab + 24), strSize = u64(strtab + 32)
        guard fits(strOff, strSize) else { return nil }
        let wanted = Array(name.utf8)
        for i in 0..<shnum {
            let h = header(i)
            let nameOff = u32(h)
            guard nameOff < strSize, strSize - nameOff > UInt64(wanted.count) else { continue }
            let at = Int(strOff + nameOff)
            guard b[at + wanted.count] == 0, wanted.indices.allSatisfy({ b[at + $0] == wanted[$0] }) else { continue }
            let type = u32(h + 4), addr = u64(h + 16), off = u64(h + 24), len = u64(h + 32)
            // SHT_PROGBITS, or SHT_X86_64_UNWIND as lld marks .eh_frame
            guard type == 1 || type == 0x7000_0001, fits(off, len), len <= UInt64(limit) else { return nil }
            return (Array(UnsafeRawBufferPointer(rebasing: b[Int(off)..<Int(off + len)])), addr)
        }
        return nil
    }
}

/// A file kept open for reading code bytes (the unwinder's checks of call instructions); pread, not
/// mmap, so a file truncated meanwhile gives nothing instead of SIGBUS.
final class MappedFile {
    private let fd: Int32
    private var cache: [UInt64: [UInt8]] = [:]

    init?(path: String) {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return nil }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            return nil
        }
        self.fd = fd
    }

    deinit { close(fd) }

    func bytes(at offset: UInt64, count: Int) -> [UInt8]? {
        guard count > 0, count <= 64, offset < 1 << 40 else { return nil }
        let key = offset << 6 | UInt64(count - 1)
        if let hit = cache[key] { return hit.isEmpty ? nil : hit }
        var out = [UInt8](repeating: 0, count: count)
        let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        if cache.count > 1 << 20 { cache.removeAll() }
        cache[key] = n == count ? out : []
        return n == count ? out : nil
    }
}
