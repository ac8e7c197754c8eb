import Testing
@testable import KernelProbes

/// When a sample's stack copy is written: only where the frame-pointer walk may have missed callers.
@Suite struct StackCopyNeedTests {
    let sp: UInt64 = 0x7ffc_0000_1000
    func copy(_ values: [UInt64]) -> StackCopy {
        StackCopy(
            ip: 0x40_1000, sp: sp, bp: sp + 0x40, bytes: 8192,
            words: values.enumerated().map { (UInt32($0.offset * 3), $0.element) })
    }
    func suffice(_ c: StackCopy, _ walk: [UInt64]) -> Bool {
        walk.withUnsafeBufferPointer { SampleCollector.framePointersSuffice(c, $0) }
    }

    @Test func walkWithEveryReturnAddressNeedsNoCopy() {
        // Saved frame pointers (into the stack) and the return addresses the walk found.
        let c = copy([sp + 0x40, 0x40_2005, sp + 0x80, 0x40_3005, sp + 0x200, 0x7f00_0000_1234])
        #expect(suffice(c, [0x40_1000, 0x40_2005, 0x40_3005, 0x7f00_0000_1234]))
    }

    @Test func returnAddressTheWalkSkippedKeepsTheCopy() {
        // 0x40_2005 returns into a caller the walk never saw (a function without a frame pointer).
        let c = copy([0x40_2005, sp + 0x80, 0x40_3005])
        #expect(!suffice(c, [0x40_1000, 0x40_3005]))
    }

    @Test func walkWithoutCallersKeepsTheCopy() {
        #expect(!suffice(copy([]), [0x40_1000]))
        #expect(!suffice(copy([0x40_2005]), []))
    }
}
