// Unwinds a CPU sample's copied user stack at read time, as `perf --call-graph dwarf` does: from
// the registers the probe saved (rip, rsp, rbp), each frame's caller is found by the .eh_frame rule
// of the file mapped at its address, or by frame pointers where the code has no CFI (JIT code).
// Where the copy ends before the stack does, the kernel's frame-pointer walk of the same sample
// continues it if it passes through the last frame found.

/// The registers and copied stack of one sample (the `stackCopy` event).
public struct StackSnapshot: Sendable {
    /// The sampled instruction pointer, stack pointer and frame pointer.
    public var ip: UInt64, sp: UInt64, bp: UInt64
    /// The copied words from sp up (words the recorder did not keep are zero).
    public var words: [UInt64]
    /// A snapshot from registers and words.
    public init(ip: UInt64, sp: UInt64, bp: UInt64, words: [UInt64]) {
        self.ip = ip
        self.sp = sp
        self.bp = bp
        self.words = words
    }

    /// Decodes the `stackCopy` list (see EventKinds: gap, value pairs); nil if it is malformed.
    public static func decode(ip: UInt64, sp: UInt64, bp: UInt64, bytes: UInt64, list: some Collection<UInt64>) -> StackSnapshot? {
        guard bytes <= UInt64(maxBytes), list.count % 2 == 0 else { return nil }
        var words = [UInt64](repeating: 0, count: Int(bytes / 8))
        var next: UInt64 = 0
        var it = list.makeIterator()
        while let gap = it.next(), let raw = it.next() {
            let (index, overflow) = next.addingReportingOverflow(gap)
            guard !overflow, index < UInt64(words.count) else { return nil }
            words[Int(index)] = raw & 1 == 1 ? sp &+ (raw >> 1) : raw >> 1
            next = index + 1
        }
        return StackSnapshot(ip: ip, sp: sp, bp: bp, words: words)
    }

    /// Copies larger than this are refused (the probes copy at most 16 KiB).
    public static let maxBytes = 64 << 10

    func read(_ address: UInt64) -> UInt64? {
        guard address >= sp, address & 7 == sp & 7 else { return nil }
        let index = (address - sp) / 8
        guard index < UInt64(words.count) else { return nil }
        return words[Int(index)]
    }
}

/// How the caller of a frame was found.
public enum UnwindMethod: Int, Sendable, CaseIterable {
    /// By the .eh_frame rule of the frame's code.
    case callFrameInfo = 0
    /// By %rbp in the copied stack (code without CFI: JIT code, [vdso]).
    case framePointer = 1
    /// By the kernel's frame-pointer walk (no stack copy, or after the copy ended).
    case kernelFramePointer = 2
    /// By scanning the copied stack for a return address after a call of the function (code
    /// without CFI: swiftc -O leaves Swift functions without .eh_frame entries).
    case stackScan = 3

    /// In a `stackUnwind` list: unwinding ended in this frame before the outermost one.
    public static let endedCode: UInt8 = 4

    /// The method's name as reports print it.
    public var name: String {
        switch self {
        case .callFrameInfo: "CFI"
        case .framePointer: "frame pointers"
        case .kernelFramePointer: "frame pointers (kernel walk)"
        case .stackScan: "stack scan"
        }
    }
}

/// Per module: how many frames had their caller found by each method, and where unwinding ended
/// without reaching the outermost frame.
public struct UnwindTally: Sendable {
    /// Frames whose caller each `UnwindMethod` found, by its raw value.
    public var byMethod = [Int](repeating: 0, count: UnwindMethod.allCases.count)
    /// Unwinding stopped in this module (no rule, the copy ended, an address in no mapping).
    public var stopped = 0
    /// No frames counted.
    public init() {}
}

/// What the unwinder needs to know about one code address of a process.
public struct CodeSite: Sendable {
    /// Some recorded mapping holds the address.
    public var inMapping = false
    /// A file (not anonymous memory or [vdso]) holds it, and it could be read.
    public var fileBacked = false
    /// The module, an id for `CodeMappings.moduleName` (-1: none).
    public var module = -1
    /// The .eh_frame rule at the address (nil: no CFI covers it).
    public var rule: FrameRule?
    /// The start of the function holding it, by the file's symbols (an address of the process).
    public var functionStart: UInt64?
    /// An address nothing is known about.
    public init() {}
}

/// Where a program's code lives, for the unwinder: what a code address is, answered from the
/// recorded mappings and their files (cached per address by the implementation).
public protocol CodeMappings: AnyObject {
    /// What `address` is in process `pid` at `timeNs` (by the mappings recorded up to then).
    func site(pid: UInt32, address: UInt64, timeNs: UInt64) -> CodeSite
    /// The name of module `id` ("[unknown]" for an id it did not give).
    func moduleName(_ id: Int) -> String
    /// The call instruction that ends just before `returnAddress`, read from the recorded file.
    func callBefore(pid: UInt32, returnAddress: UInt64, timeNs: UInt64) -> CallKind
}

/// The call instruction before a return address: none found, a direct call (its rel32), or an indirect call.
public enum CallKind: Equatable, Sendable { case none, direct(Int32), indirect }

/// Unwinds sampled stack copies by CFI, frame pointers and stack scanning, and tallies per module how
/// each frame's caller was found.
public struct StackUnwinder {
    /// Most frames of one unwound stack.
    public static let maxFrames = 127
    /// By module id (CodeMappings.moduleName).
    public private(set) var tally: [Int: UnwindTally] = [:]

    /// An unwinder with an empty tally.
    public init() {}

    /// The sample's user stack (first the sampled instruction, then return addresses), unwound
    /// from `snapshot`; `framePointerStack` is the kernel's walk of the same sample (continues the
    /// unwinding where the copy ends).
    public mutating func unwind(
        pid: UInt32, timeNs: UInt64, snapshot s: StackSnapshot, framePointerStack: [UInt64],
        mappings: CodeMappings
    ) -> [UInt64] {
        let (out, log) = unwindLogged(pid: pid, timeNs: timeNs, snapshot: s, framePointerStack: framePointerStack, mappings: mappings)
        apply(log)
        return out
    }

    /// What one unwinding added to `tally`, so a cached result counts again when it is used again.
    public struct TallyLog: Sendable {
        /// (module, method raw value; -1: unwinding stopped there), with a count.
        var entries: [(module: Int, method: Int, count: Int)] = []

        /// Per frame of the stack it was logged for, innermost first, the UnwindMethod that found its
        /// caller, then `UnwindMethod.endedCode` when unwinding stopped before the outermost frame
        /// (the `stackUnwind` event's list).
        public var methodsPerFrame: [UInt8] {
            var out: [UInt8] = []
            for e in entries {
                if e.method < 0 {
                    out.append(UnwindMethod.endedCode)
                } else {
                    out.append(contentsOf: repeatElement(UInt8(e.method), count: min(e.count, StackUnwinder.maxFrames)))
                }
            }
            return out
        }
    }

    /// Adds a logged unwinding to `tally` (a cached stack counts again when it is used again).
    public mutating func apply(_ log: TallyLog) {
        for e in log.entries {
            if e.method < 0 {
                tally[e.module, default: UnwindTally()].stopped += e.count
            } else {
                tally[e.module, default: UnwindTally()].byMethod[e.method] += e.count
            }
        }
    }

    /// `unwind` without touching `tally`: the addresses and what they would add to it.
    /// `unknownCodeKeepsFramePointers`: an address in no mapping is JIT code mapped after the last
    /// mappings known, which will never be known (the process exited before its maps were read again):
    /// unwound by frame pointers, as anonymous code, instead of ending the stack there.
    public func unwindLogged(
        pid: UInt32, timeNs: UInt64, snapshot s: StackSnapshot, framePointerStack: [UInt64],
        mappings: CodeMappings, unknownCodeKeepsFramePointers: Bool = false
    ) -> ([UInt64], TallyLog) {
        var log = TallyLog()
        var out: [UInt64] = [s.ip]
        var ip = s.ip, sp = s.sp, bp: UInt64? = s.bp
        var stopModule = -1
        var copyEnded = false
        while out.count < Self.maxFrames {
            let lookup = out.count == 1 ? ip : ip &- 1  // a return address is one past its call
            let site = mappings.site(pid: pid, address: lookup, timeNs: timeNs)
            // Code in no mapping: not code, or (`unknownCodeKeepsFramePointers`) JIT code never seen mapped,
            // unwound as the anonymous code it is (frame pointers).
            guard site.inMapping || unknownCodeKeepsFramePointers else { break }
            stopModule = site.module
            var next: (ip: UInt64, sp: UInt64, bp: UInt64?)?
            var method = UnwindMethod.callFrameInfo
            if let rule = site.rule {
                if rule.isSignalFrame { break }
                guard let cfa = Self.cfa(rule.cfa, ip: ip, sp: sp, bp: bp) else { break }
                if case .undefined = rule.returnAddress { stopModule = -1; break }  // the outermost frame
                guard case .atCFA(let raOffset) = rule.returnAddress else { break }
                guard let ra = s.read(cfa &+ UInt64(bitPattern: raOffset)) else { copyEnded = true; break }
                var newBP: UInt64?
                switch rule.rbp {
                case .sameValue: newBP = bp
                case .atCFA(let o): newBP = s.read(cfa &+ UInt64(bitPattern: o))
                case .isCFA(let o): newBP = cfa &+ UInt64(bitPattern: o)
                case .undefined, .unsupported: newBP = nil
                }
                next = (ra, cfa, newBP)
            } else if site.fileBacked,
                let fp = framePointerStep(
                    pid: pid, timeNs: timeNs, snapshot: s, sp: sp, bp: bp, mappings: mappings,
                    unknownCodeIsJIT: unknownCodeKeepsFramePointers)
            {
                // A file without CFI for this code whose frame pointer leads to a call site: code built
                // with frame pointers and no CFI, as Node's embedded V8 builtins (Builtins_CallApiCallback)
                // between C++ callbacks and the JIT frames that called them.
                method = .framePointer
                next = fp
            } else if site.fileBacked {
                // A file without CFI for this code: the first word above sp that returns after a
                // call of this function (checked in the file's code) is the return address.
                method = .stackScan
                guard
                    let (slot, ra) = scan(
                        pid: pid, timeNs: timeNs, snapshot: s, from: sp, function: site.functionStart,
                        mappings: mappings, copyEnded: &copyEnded)
                else { break }
                next = (ra, slot &+ 8, bp)
            } else if let b = bp, b >= sp {
                // No CFI: frame pointers (push %rbp; mov %rsp,%rbp) as JIT code keeps them.
                method = .framePointer
                guard let ra = s.read(b &+ 8), let saved = s.read(b) else { copyEnded = true; break }
                next = (ra, b &+ 16, saved)
            } else {
                // No CFI and %rbp is no frame pointer (below sp, or unknown): code that keeps none, as
                // CPython 3.12+'s perf trampolines (`sub $8,%rsp; call *%rcx`, one copy per Python
                // function in anonymous memory). The first word above sp that returns after a call is
                // the return address.
                method = .stackScan
                guard
                    let (slot, ra) = scan(
                        pid: pid, timeNs: timeNs, snapshot: s, from: sp, function: nil, mappings: mappings,
                        copyEnded: &copyEnded)
                else { break }
                next = (ra, slot &+ 8, bp)
            }
            guard let n = next, n.ip != 0 else { stopModule = -1; break }
            // The stack grows down: a caller's frame is above its callee's.
            guard n.sp > sp else { break }
            log.entries.append((site.module, method.rawValue, 1))
            out.append(n.ip)
            ip = n.ip
            sp = n.sp
            bp = n.bp
        }
        // The copy ended: the kernel's frame-pointer walk goes on if it passed through the last frame found.
        if copyEnded, out.count > 1, let j = framePointerStack.dropFirst().firstIndex(of: out.last!) {
            let rest = framePointerStack[(j + 1)...].prefix(Self.maxFrames - out.count)
            if !rest.isEmpty {
                log.entries.append((stopModule, UnwindMethod.kernelFramePointer.rawValue, rest.count))
                out += rest
                stopModule = -1
            }
        }
        if stopModule >= 0 { log.entries.append((stopModule, -1, 1)) }
        return (out, log)
    }

    /// One frame-pointer step (return address at bp + 8, the caller's bp at bp) when it is plausible: bp
    /// in the stack above sp, the caller's bp further up (or 0), and the return address right after a
    /// call instruction in a file, or in JIT code (a mapping without a file).
    /// `unknownCodeIsJIT`: a return address in no mapping counts as one into JIT code never seen mapped.
    private func framePointerStep(
        pid: UInt32, timeNs: UInt64, snapshot s: StackSnapshot, sp: UInt64, bp: UInt64?, mappings: CodeMappings,
        unknownCodeIsJIT: Bool = false
    ) -> (ip: UInt64, sp: UInt64, bp: UInt64?)? {
        guard let b = bp, b >= sp, let ra = s.read(b &+ 8), let saved = s.read(b), saved == 0 || saved > b else { return nil }
        let caller = mappings.site(pid: pid, address: ra &- 1, timeNs: timeNs)
        guard caller.inMapping || (unknownCodeIsJIT && ra > 4096) else { return nil }
        if caller.fileBacked && mappings.callBefore(pid: pid, returnAddress: ra, timeNs: timeNs) == .none { return nil }
        return (ra, b &+ 16, saved)
    }

    /// Words scanned for a return address at most.
    static let maxScanWords = 512

    /// The first slot at or above `from` holding a return address of a call to `function` (or,
    /// when none does, of any call: a tail call hides the direct caller).
    private func scan(
        pid: UInt32, timeNs: UInt64, snapshot s: StackSnapshot, from: UInt64, function: UInt64?,
        mappings: CodeMappings, copyEnded: inout Bool
    ) -> (slot: UInt64, ra: UInt64)? {
        var loose: (UInt64, UInt64)?
        for k in 0..<UInt64(Self.maxScanWords) {
            let slot = from &+ 8 &* k
            guard let w = s.read(slot) else {
                if loose == nil { copyEnded = true }
                break
            }
            guard w > 4096 else { continue }
            switch mappings.callBefore(pid: pid, returnAddress: w, timeNs: timeNs) {
            case .direct(let rel):
                let target = w &+ UInt64(bitPattern: Int64(rel))
                if function == nil || target == function { return (slot, w) }
                // A call through a PLT stub (no symbol there) may be a call of this function too.
                if mappings.site(pid: pid, address: target, timeNs: timeNs).functionStart == nil { return (slot, w) }
                if loose == nil { loose = (slot, w) }
            case .indirect:
                return (slot, w)
            case .none:
                break
            }
        }
        return loose
    }

    /// Whether the 7 bytes before a return address end with a call instruction.
    public static func callKind(_ b: [UInt8]) -> CallKind {
        guard b.count == 7 else { return .none }
        if b[2] == 0xe8 {
            let rel = UInt32(b[3]) | UInt32(b[4]) << 8 | UInt32(b[5]) << 16 | UInt32(b[6]) << 24
            return .direct(Int32(bitPattern: rel))
        }
        // call *%reg, call *(%reg), call *%r8..15
        if b[5] == 0xff && (b[6] & 0xf8 == 0xd0 || (b[6] & 0xf8 == 0x10 && b[6] & 7 != 4 && b[6] & 7 != 5)) { return .indirect }
        // call *disp8(%reg)
        if b[4] == 0xff && b[5] & 0xf8 == 0x50 && b[5] & 7 != 4 { return .indirect }
        if b[4] == 0x41 && b[5] == 0xff && b[6] & 0xf8 == 0xd0 { return .indirect }
        // call *disp8(%reg) via SIB, call *disp8(%r8..15)
        if b[3] == 0xff && b[4] == 0x54 { return .indirect }
        if b[3] == 0x41 && b[4] == 0xff && b[5] & 0xf8 == 0x50 { return .indirect }
        // call *disp32(%rip), call *disp32(%reg)
        if b[1] == 0xff && (b[2] == 0x15 || (b[2] & 0xf8 == 0x90 && b[2] & 7 != 4)) { return .indirect }
        return .none
    }

    static func cfa(_ rule: FrameRule.CFA, ip: UInt64, sp: UInt64, bp: UInt64?) -> UInt64? {
        switch rule {
        case .register(7, let off): return sp &+ UInt64(bitPattern: off)
        case .register(6, let off): return bp.map { $0 &+ UInt64(bitPattern: off) }
        case .register: return nil
        case .expression(let e): return evaluate(e, ip: ip, sp: sp, bp: bp)
        }
    }

    /// The DWARF expressions of CFA rules in practice (PLT stubs: rsp + 8 + ((rip & 15) >= 11) << 3):
    /// literals, breg of rsp/rbp/rip, and arithmetic. Anything else: nil.
    static func evaluate(_ e: [UInt8], ip: UInt64, sp: UInt64, bp: UInt64?) -> UInt64? {
        var stack: [UInt64] = []
        var p = 0
        func sleb() -> Int64? {
            var v: UInt64 = 0, shift: UInt64 = 0
            while p < e.count {
                let b = e[p]
                p += 1
                if shift < 64 { v |= UInt64(b & 0x7f) << shift }
                shift += 7
                if b & 0x80 == 0 {
                    if shift < 64 && b & 0x40 != 0 { v |= UInt64.max << shift }
                    return Int64(bitPattern: v)
                }
            }
            return nil
        }
        func uleb() -> UInt64? {
            var v: UInt64 = 0, shift: UInt64 = 0
            while p < e.count {
                let b = e[p]
                p += 1
                if shift < 64 { v |= UInt64(b & 0x7f) << shift }
                shift += 7
                if b & 0x80 == 0 { return v }
            }
            return nil
        }
        while p < e.count {
            let op = e[p]
            p += 1
            guard stack.count < 64 else { return nil }
            switch op {
            case 0x30...0x4f: stack.append(UInt64(op - 0x30))  // lit0...lit31
            case 0x70...0x8f:  // breg0...breg31
                guard let off = sleb() else { return nil }
                let reg: UInt64
                switch op - 0x70 {
                case 7: reg = sp
                case 6: guard let b = bp else { return nil }; reg = b
                case 16: reg = ip
                default: return nil
                }
                stack.append(reg &+ UInt64(bitPattern: off))
            case 0x92:  // bregx
                return nil
            case 0x08:  // const1u
                guard p < e.count else { return nil }
                stack.append(UInt64(e[p]))
                p += 1
            case 0x23:  // plus_uconst
                guard let top = stack.popLast(), let v = uleb() else { return nil }
                stack.append(top &+ v)
            case 0x12:  // dup
                guard let top = stack.last else { return nil }
                stack.append(top)
            default:
                guard stack.count >= 2 else { return nil }
                let b = stack.removeLast(), a = stack.removeLast()
                switch op {
                case 0x1a: stack.append(a & b)
                case 0x1c: stack.append(a &- b)
                case 0x21: stack.append(a | b)
                case 0x22: stack.append(a &+ b)
                case 0x24: stack.append(b >= 64 ? 0 : a << b)
                case 0x25: stack.append(b >= 64 ? 0 : a >> b)
                case 0x2a: stack.append(a >= b ? 1 : 0)  // ge
                case 0x2b: stack.append(a > b ? 1 : 0)  // gt
                case 0x2c: stack.append(a <= b ? 1 : 0)  // le
                case 0x2d: stack.append(a < b ? 1 : 0)  // lt
                default: return nil
                }
            }
        }
        return stack.last
    }
}
