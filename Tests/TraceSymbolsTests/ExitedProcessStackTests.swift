import Foundation
import Testing
import TraceFormat
import TraceReader
@testable import TraceSymbols

/// A process that exited before the recorder processed its samples leaves JIT code it mapped after
/// its last maps read unknown for good: the unwinder follows such code by frame pointers (it keeps
/// them) when told so, and the reader keeps the frames past it when the stack comes back into a file.
@Suite struct ExitedProcessStackTests {
    /// Code known by address range: anonymous (JIT seen mapped) or a file without CFI; the rest unknown.
    final class Regions: CodeMappings {
        let anonymous: ClosedRange<UInt64>, file: ClosedRange<UInt64>
        init(anonymous: ClosedRange<UInt64>, file: ClosedRange<UInt64>) {
            self.anonymous = anonymous
            self.file = file
        }
        func site(pid: UInt32, address: UInt64, timeNs: UInt64) -> CodeSite {
            var s = CodeSite()
            if anonymous.contains(address) {
                s.inMapping = true
                s.module = 0
            } else if file.contains(address) {
                s.inMapping = true
                s.fileBacked = true
                s.module = 1
            }
            return s
        }
        func moduleName(_ id: Int) -> String { id == 0 ? "[anon]" : id == 1 ? "/lib/code.so" : "[unknown]" }
        func callBefore(pid: UInt32, returnAddress: UInt64, timeNs: UInt64) -> CallKind { .none }
    }

    static let sp: UInt64 = 0x7ffd_0000_0000
    static let unknownJIT: UInt64 = 0x3a00_0000_0100, outer: UInt64 = 0x1000_5100

    /// A stack of frame-pointer frames: the sampled code's frame at sp + 16 returns into unknown JIT
    /// code, whose frame at sp + 48 returns into known code, whose frame ends the chain.
    static func snapshot(ip: UInt64) -> StackSnapshot {
        var words = [UInt64](repeating: 0, count: 16)
        words[2] = sp + 48  // the sampled frame's saved %rbp: the JIT frame's
        words[3] = unknownJIT  // its return address
        words[6] = sp + 80  // the JIT frame's saved %rbp
        words[7] = outer  // its return address
        return StackSnapshot(ip: ip, sp: sp, bp: sp + 16, words: words)
    }

    @Test(arguments: [UInt64(0x1000_0100), 0x5000_0100])
    func unknownCodeOfAnExitedProcessIsFollowedByFramePointers(leaf: UInt64) {
        // The leaf in anonymous code, or in a file without CFI (the JIT's caller: a frame-pointer step).
        let regions = Regions(anonymous: 0x1000_0000...0x1001_0000, file: 0x5000_0000...0x5001_0000)
        let s = Self.snapshot(ip: leaf)
        let unwinder = StackUnwinder()
        let (live, _) = unwinder.unwindLogged(pid: 1, timeNs: 0, snapshot: s, framePointerStack: [leaf], mappings: regions)
        let (exited, log) = unwinder.unwindLogged(
            pid: 1, timeNs: 0, snapshot: s, framePointerStack: [leaf], mappings: regions, unknownCodeKeepsFramePointers: true)
        // Alive, the stack ends at code no region holds (the recorder reads the maps again, or leaves it
        // to the reader); exited, that code's frame pointer leads on to its caller.
        #expect(live == [leaf, Self.unknownJIT] || live == [leaf])
        #expect(exited == [leaf, Self.unknownJIT, Self.outer])
        #expect(log.methodsPerFrame == [UInt8(UnwindMethod.framePointer.rawValue), UInt8(UnwindMethod.framePointer.rawValue)])
    }

    /// The reader cuts a stack at an address no mapping holds (a frame-pointer walk gone astray), except
    /// in a stack the recorder unwound that comes back into a file's code after it.
    @Test func aRecordedStackThroughUnknownCodeKeepsItsCallers() throws {
        let path = NSTemporaryDirectory() + "exited-stack-\(getpid()).atrace"
        unlink(path)
        defer { unlink(path) }
        let file: UInt64 = 0x5000_0000, unknown: UInt64 = 0x3a00_0000_0100
        let frames = [file + 0x10, unknown, file + 0x200, file + 0x300]
        var out = FileHeader(pid: 9, monotonicStartNs: 1_000, realtimeStartNs: 0, program: "exited").encode()
        var b = ChunkBuilder(pid: 9, tid: 0, startNs: 1_000, startTicks: 1_000)
        let lib = b.intern("/nonexistent/libcode.so", ticks: 1_000)
        b.beginEvent(.mapping, ticks: 1_000)
        for v in [9, file, file + 0x1000, 0] { b.putUnsigned(v) }
        b.putStringID(lib)
        b.putList([])
        for id: UInt64 in [1, 2] {
            b.beginEvent(.stackDef, ticks: 2_000)
            b.putUnsigned(id)
            b.putList(frames)
        }
        // Stack 1 was unwound by the recorder (CFI, frame pointers through the unknown code, CFI); stack 2 is a walk.
        b.beginEvent(.stackUnwind, ticks: 2_000)
        b.putUnsigned(1)
        b.putList([0, 1, 0])
        for id: UInt64 in [1, 2] {
            b.beginEvent(.sample, ticks: 3_000 + id)
            b.putPid(9)
            b.putTid(9)
            b.putStackID(id)
            b.putUnsigned(0)
        }
        out += b.seal(sequence: 0, endNs: 5_000, endTicks: 5_000, droppedCumulative: 0, flags: [.kernel, .final])
        try Data(out).write(to: URL(fileURLWithPath: path))
        let data = TraceSamples(reader: try TraceReader(path: path))
        try #require(data.samples.count == 2)
        let unwound = data.frames(of: data.samples[0]).map { data.frame($0) }
        let walked = data.frames(of: data.samples[1]).map { data.frame($0) }
        #expect(unwound.map(\.module) == ["/nonexistent/libcode.so", "[unknown]", "/nonexistent/libcode.so", "/nonexistent/libcode.so"])
        #expect(walked.map(\.module) == ["/nonexistent/libcode.so"])
    }
}
