// The CFI interpreter and the stack-copy decoding without a kernel: rules of a hand-built .eh_frame,
// glibc's real one, PLT expressions, and crafted sections and copies that must give nothing, never trap.
import Testing
@testable import TraceSymbols

private func uleb(_ v: UInt64) -> [UInt8] {
    var v = v, out: [UInt8] = []
    repeat {
        var b = UInt8(v & 0x7f)
        v >>= 7
        if v != 0 { b |= 0x80 }
        out.append(b)
    } while v != 0
    return out
}

private func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

/// A CIE (zR, pcrel sdata4, CFA = rsp+8, RA at CFA-8) and one FDE for [0x1000, 0x1040) at link
/// address 0x400: push %rbx at +1 (CFA = rsp+16), sub $0x20 at +5 (CFA = rsp+48), restore at +0x30.
private func handBuiltEHFrame() -> [UInt8] {
    var cieBody: [UInt8] = le32(0) + [1] + Array("zR".utf8) + [0] + uleb(1) + [0x78] /* sleb -8 */ + uleb(16) + uleb(1) + [0x1b]
    cieBody += [0x0c, 7, 8, 0x90, 1]  // def_cfa rsp+8; offset r16 at cfa-8
    while (cieBody.count + 4) % 8 != 0 { cieBody.append(0) }
    var section = le32(UInt32(cieBody.count)) + cieBody
    let fdeStart = section.count
    var fde: [UInt8] = le32(UInt32(fdeStart + 4))  // CIE pointer: back to offset 0
    let pcFieldAddress = 0x400 + UInt32(fdeStart + 8)
    fde += le32(UInt32(0x1000) &- pcFieldAddress) + le32(0x40) + uleb(0)
    fde += [0x41, 0x0e, 16, 0x83, 2]  // advance 1; def_cfa_offset 16; rbx at cfa-16
    fde += [0x44, 0x0e, 48]  // advance 4; def_cfa_offset 48
    fde += [0x0a]  // remember_state
    fde += [0x02, 0x2b, 0x0e, 8]  // advance_loc1 0x2b (to 0x30); def_cfa_offset 8
    fde += [0x0b]  // restore_state (CFA back to rsp+48)
    while (fde.count + 4) % 8 != 0 { fde.append(0) }
    section += le32(UInt32(fde.count)) + fde
    return section + le32(0)
}

@Suite struct UnwindingTests {
    @Test func rulesOfAHandBuiltFDE() throws {
        let cfi = CallFrameInfo(section: handBuiltEHFrame(), address: 0x400)
        #expect(cfi.fdeCount == 1)
        #expect(cfi.rule(at: 0x1000)?.cfa == .register(7, 8))
        #expect(cfi.rule(at: 0x1000)?.returnAddress == .atCFA(-8))
        #expect(cfi.rule(at: 0x1001)?.cfa == .register(7, 16))
        #expect(cfi.rule(at: 0x1005)?.cfa == .register(7, 48))
        #expect(cfi.rule(at: 0x1030)?.cfa == .register(7, 48), "restore_state after the advance")
        #expect(cfi.rule(at: 0x1040) == nil)
        #expect(cfi.rule(at: 0xfff) == nil)
    }

    @Test func glibcHasCFIForItsFunctions() throws {
        let libc = "/lib/x86_64-linux-gnu/libc.so.6"
        let cfi = try #require(CallFrameInfo(path: libc))
        #expect(cfi.fdeCount > 1000)
        let image = try #require(ELFImage(path: libc))
        var found = 0
        for s in image.symbols.prefix(2000) where s.size > 16 {
            guard let r = cfi.rule(at: s.address) else { continue }
            found += 1
            // At a function's first instruction the CFA is rsp + 8 and the return address below it.
            #expect(r.cfa == .register(7, 8), "\(image.name(of: s))")
            #expect(r.returnAddress == .atCFA(-8))
        }
        #expect(found > 500)
    }

    @Test func pltExpressionGivesTheCFA() {
        // DW_OP_breg7 8; DW_OP_breg16 0; DW_OP_lit15; DW_OP_and; DW_OP_lit11; DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus
        let e: [UInt8] = [0x77, 8, 0x80, 0, 0x3f, 0x1a, 0x3b, 0x2a, 0x33, 0x24, 0x22]
        #expect(StackUnwinder.evaluate(e, ip: 0x1003, sp: 0x7000, bp: nil) == 0x7008)
        #expect(StackUnwinder.evaluate(e, ip: 0x100c, sp: 0x7000, bp: nil) == 0x7010)
        #expect(StackUnwinder.evaluate([0x1a], ip: 0, sp: 0, bp: nil) == nil)
        #expect(StackUnwinder.evaluate([0x76, 0], ip: 0, sp: 0, bp: nil) == nil, "breg6 without a known rbp")
    }

    @Test func craftedSectionsGiveNoRulesAndNeverTrap() {
        var rng = SystemRandomNumberGenerator()
        let good = handBuiltEHFrame()
        for i in 0..<3000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                bytes = (0..<Int.random(in: 0..<200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes = good
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            let cfi = CallFrameInfo(section: bytes, address: UInt64.random(in: 0...UInt64.max, using: &rng))
            for pc in [0x1000, 0x1001, 0x1020, UInt64.random(in: 0...UInt64.max, using: &rng)] as [UInt64] {
                _ = cfi.rule(at: pc)
            }
        }
        // Lengths that point past the end, a 64-bit length, an endless run of zero-length entries.
        _ = CallFrameInfo(section: le32(0xffff_fff0) + [1, 2, 3, 4], address: 0).rule(at: 0)
        _ = CallFrameInfo(section: le32(0xffff_ffff) + [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], address: 0).rule(at: 0)
        #expect(CallFrameInfo(section: [UInt8](repeating: 0, count: 4096), address: 0).fdeCount == 0)
    }

    @Test func malformedStackCopiesAreRefused() {
        #expect(StackSnapshot.decode(ip: 1, sp: 0x1000, bp: 0, bytes: 64, list: [0, 2, 1]) == nil, "odd count")
        #expect(StackSnapshot.decode(ip: 1, sp: 0x1000, bp: 0, bytes: 64, list: [8, 2]) == nil, "index past the copy")
        #expect(StackSnapshot.decode(ip: 1, sp: 0x1000, bp: 0, bytes: 64, list: [UInt64.max, 2, UInt64.max, 2]) == nil)
        #expect(StackSnapshot.decode(ip: 1, sp: 0x1000, bp: 0, bytes: UInt64.max, list: []) == nil, "too large")
        let s = StackSnapshot.decode(ip: 1, sp: 0x1000, bp: 0, bytes: 64, list: [1, 0x40 << 1 | 1, 2, 0x5000 << 1])
        #expect(s?.words == [0, 0x1040, 0, 0, 0x5000, 0, 0, 0])
        #expect(s?.read(0x1008) == 0x1040)
        #expect(s?.read(0x1040) == nil, "beyond the copy")
        #expect(s?.read(0x1004) == nil, "misaligned")
    }
}
