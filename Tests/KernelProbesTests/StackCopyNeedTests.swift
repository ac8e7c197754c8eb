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
    func suffice(_ c: StackCopy, _ walk: [UInt64], regions: [(start: UInt64, end: UInt64)] = []) -> Bool {
        let end = SampleCollector.stackEnd(regions, sp: c.sp)
        return walk.withUnsafeBufferPointer { SampleCollector.framePointersSuffice(c, $0, stackEnd: end) }
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

    @Test func returnAddressIntoALibraryJustAboveAThreadsStackIsCode() {
        // A thread's stack mapped a few MiB below the libraries (glibc's pthread stacks): a return address
        // into them is within StackCopy.stackReach above sp, yet code, not a pointer into the stack.
        let thread: UInt64 = 0x7f00_0080_0000
        let library = (start: thread + (9 << 20), end: thread + (12 << 20))
        let c = StackCopy(
            ip: library.start + 0x100, sp: thread, bp: 0x5600_0000_1000, bytes: 8192,
            words: [(5, library.start + 0x2005), (6, thread + 0x98), (9, library.start + 0x3005)])
        // The walk: the leaf, then a "frame" %rbp's data gave. It misses both return addresses.
        #expect(!suffice(c, [c.ip, 0x1234], regions: [library]))
        // Pointers into the stack still are: below the library, the stack.
        #expect(SampleCollector.stackEnd([library], sp: thread) == library.start)
        #expect(SampleCollector.stackEnd([], sp: thread) == thread + StackCopy.stackReach)
        #expect(SampleCollector.stackEnd([(thread - 4096, thread - 1)], sp: thread) == thread + StackCopy.stackReach)
        #expect(SampleCollector.stackEnd([], sp: UInt64.max - 8) == UInt64.max)
        #expect(suffice(copy([sp + 0x40, 0x40_2005]), [0x40_1000, 0x40_2005], regions: [(0x40_0000, 0x50_0000)]))
    }
}
