import Foundation
import Testing
import TraceFormat
import TraceReader
@testable import KernelProbes
@testable import TraceSymbols

/// Stacks that share their callers are written as `stackExtend` (their own frames on an earlier stack's
/// callers) and read back as the stacks they are; what the reader cannot trust it counts, never traps.
@Suite struct StackExtendTests {
    /// Writes `stacks` (innermost first, with their unwinding methods or nil), one sample each, as a kernel
    /// stream; returns the trace's path.
    func writeTrace(
        _ stacks: [(frames: [UInt64], methods: [UInt8]?)], name: String
    ) throws -> (path: String, writer: KernelTraceWriter) {
        let path = NSTemporaryDirectory() + "stack-extend-\(name)-\(getpid()).atrace"
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        try #require(fd >= 0)
        defer { close(fd) }
        let header = FileHeader(pid: 700, monotonicStartNs: 1_000, realtimeStartNs: 0, program: "extend").encode()
        _ = header.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let tables = SampleTables()
        tables.periodNs = 1_000_000
        var events: [KernelEvent] = []
        for (i, s) in stacks.enumerated() {
            let id = s.frames.withUnsafeBufferPointer { tables.stacks.intern($0) }
            if let m = s.methods { tables.unwindMethods[id] = m }
            var e = KernelEvent(kind: .cpuSample, pid: 700, tid: 701, timestampNs: 2_000 + UInt64(i) * 1_000_000)
            e.userStack = id
            events.append(e)
        }
        var writer = KernelTraceWriter(fd: fd, rootPid: 700)
        writer.sampleTables = tables
        writer.maxEventsPerChunk = 2
        writer.add(events)
        writer.flush(nowNs: .max, droppedCumulative: 0, final: true)
        return (path, writer)
    }

    func read(_ path: String) throws -> (TraceSamples, [EventKind: Int]) {
        let r = try TraceReader(path: path)
        let data = TraceSamples(reader: r)
        var kinds: [EventKind: Int] = [:]
        let it = r.events()
        while let e = it.next() { kinds[e.kind, default: 0] += 1 }
        return (data, kinds)
    }

    // A program's stacks: one main chain, leaves that differ, a deeper call, a caller that differs
    // in the middle, and addresses of several modules (differences of every size, negative ones too).
    static let main: [UInt64] = [0x5555_5555_6000, 0x7f12_3456_7000, 0x7f12_3456_9abc, 0x5555_5555_1234]
    static let stacks: [(frames: [UInt64], methods: [UInt8]?)] = [
        ([0x5555_5555_8000] + main, [0, 0, 3, 0]),
        ([0x5555_5555_8010] + main, [0, 0, 3, 0]),
        ([0x7f00_0000_0010, 0x5555_5555_8010] + main, [1, 0, 0, 3, 0]),
        // Found the shared callers another way (its copy ran out sooner): its whole list is written.
        ([0x7f00_0000_0020, 0x5555_5555_8010] + main, [1, 0, 0, 2, 2]),
        // Not unwound from a copy (the frame-pointer walk sufficed): no methods.
        ([0x5555_5555_7000] + main, nil),
        // A stack that is another's callers, and a caller that differs in the middle.
        (main, [0, 3, 0]),
        ([0x5555_5555_8000, 0x5555_5555_6100] + main.dropFirst(), [0, 0, 3, 0]),
        // Nothing shared with anything before: a stackDef.
        ([0x4000_1000, 0x4000_2000], [0, 4]),
    ]

    @Test func stacksSharingCallersAreWrittenAsExtensionsAndReadBackWhole() throws {
        let (path, writer) = try writeTrace(Self.stacks, name: "roundtrip")
        defer { unlink(path) }
        let (data, kinds) = try read(path)
        // Each new stack comes with a sample without a kernel stack: every definition is written inside its sample
        // (userSampleNewStack), six of them on a base, the first and the last (nothing shared) on none.
        #expect(kinds[.userSampleNewStack, default: 0] == 8 && writer.stacksExtended == 6, "\(kinds)")
        let older: [EventKind] = [.stackDef, .stackExtend, .stackUnwind, .sample, .sampleNewStack, .stackCompact, .userSample]
        #expect(older.allSatisfy { kinds[$0] == nil }, "\(kinds)")
        #expect(data.samples.count == Self.stacks.count && data.undefinedStacks == 0 && data.badStackExtensions == 0)
        for (i, s) in data.samples.enumerated() {
            #expect(data.stackAddresses[s.userStack] == Self.stacks[i].frames, "stack \(i)")
            #expect(data.recordUnwindMethods[s.userStack] == Self.stacks[i].methods, "methods of stack \(i)")
        }
    }

    @Test func aSampleWithAKernelStackDefinesBothStacksBeforeIt() throws {
        let path = NSTemporaryDirectory() + "stack-extend-kernel-\(getpid()).atrace"
        unlink(path)
        defer { unlink(path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        try #require(fd >= 0)
        let header = FileHeader(pid: 700, monotonicStartNs: 1_000, realtimeStartNs: 0, program: "extend").encode()
        _ = header.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let tables = SampleTables()
        tables.periodNs = 1_000_000
        tables.kernelStacks = true
        let user = Self.stacks[2].frames, kernel: [UInt64] = [0xffff_ffff_8100_1234, 0xffff_ffff_8100_0042]
        var e = KernelEvent(kind: .cpuSample, pid: 700, tid: 701, timestampNs: 2_000)
        e.userStack = user.withUnsafeBufferPointer { tables.stacks.intern($0) }
        e.kernelStack = kernel.withUnsafeBufferPointer { tables.stacks.intern($0) }
        tables.unwindMethods[e.userStack] = Self.stacks[2].methods
        var again = e
        again.timestampNs = 3_000
        var writer = KernelTraceWriter(fd: fd, rootPid: 700)
        writer.sampleTables = tables
        writer.add([e, again])
        writer.flush(nowNs: .max, droppedCumulative: 0, final: true)
        close(fd)
        let (data, kinds) = try read(path)
        #expect(kinds[.stackCompact] == 2 && kinds[.sample] == 2 && kinds[.userSampleNewStack] == nil, "\(kinds)")
        #expect(data.samples.count == 2 && data.undefinedStacks == 0 && data.badStackExtensions == 0)
        for s in data.samples {
            #expect(data.stackAddresses[s.userStack] == user && data.stackAddresses[s.kernelStack] == kernel)
            #expect(data.recordUnwindMethods[s.userStack] == Self.stacks[2].methods && data.recordUnwindMethods[s.kernelStack] == nil)
        }
    }

    @Test func extensionsAreSmallerThanWholeStacks() throws {
        // 50 leaves on one 30-frame chain: each new stack costs its leaf, not the chain.
        let chain = (0..<30).map { 0x7f12_3456_0000 + UInt64($0) * 0x1_0000 }
        let stacks = (0..<50).map { i in ([0x5555_5555_0000 + UInt64(i) * 16] + chain, [UInt8](repeating: 0, count: 30)) }
        let (path, _) = try writeTrace(stacks.map { ($0.0, Optional($0.1)) }, name: "size")
        defer { unlink(path) }
        let r = try TraceReader(path: path)
        // Whole stackDefs would take > 50 × 30 × 6 bytes of addresses alone. Each of the 49 later samples is its
        // kind, time, pid, tid, stack id, and a definition of base, shape, list count and a leaf 16 bytes from its
        // base's leaf (a byte each); the first stack's 31 frames (differences of 3 bytes) and 25 chunks'
        // first pid and tid (3 bytes each) come on top.
        #expect(r.payloadBytes < 49 * 12 + 31 * 4 + 25 * 8 + 64, "\(r.payloadBytes) bytes")
        let (data, _) = try read(path)
        #expect(data.samples.map { data.stackAddresses[$0.userStack] ?? [] } == stacks.map(\.0))
    }

    @Test func flightChunksExtendOnlyStacksOfTheirOwnChunk() throws {
        // Any chunk may begin a dump: a chunk read alone must hold every stack its samples use.
        var chunks: [[UInt8]] = []
        let tables = SampleTables()
        var writer = KernelTraceWriter(fd: -1, rootPid: 700)
        writer.sampleTables = tables
        writer.maxEventsPerChunk = 2
        writer.recordForFlight(retentionNs: 1 << 40) { chunks.append($0) }
        for (i, s) in Self.stacks.enumerated() {
            let id = s.frames.withUnsafeBufferPointer { tables.stacks.intern($0) }
            if let m = s.methods { tables.unwindMethods[id] = m }
            var e = KernelEvent(kind: .cpuSample, pid: 700, tid: 701, timestampNs: 2_000 + UInt64(i) * 1_000_000)
            e.userStack = id
            writer.add([e])
        }
        writer.flush(nowNs: .max, droppedCumulative: 0, final: true)
        #expect(chunks.count == Self.stacks.count / 2 && writer.stacksExtended > 0)
        for (n, chunk) in chunks.enumerated() {
            let path = NSTemporaryDirectory() + "stack-extend-flight-\(getpid())-\(n).atrace"
            defer { unlink(path) }
            let header = FileHeader(pid: 700, monotonicStartNs: 1_000, realtimeStartNs: 0, program: "extend").encode()
            _ = FileManager.default.createFile(atPath: path, contents: Data(header + chunk))
            let (data, _) = try read(path)
            #expect(data.samples.count == 2 && data.undefinedStacks == 0 && data.badStackExtensions == 0, "chunk \(n)")
            for s in data.samples {
                let i = Int((s.timeNs - 2_000) / 1_000_000)
                #expect(data.stackAddresses[s.userStack] == Self.stacks[i].frames, "stack \(i) in chunk \(n)")
            }
        }
    }

    /// A kernel stream of hostile stack definitions, then a sample of each id 1...9.
    static func hostile() -> [UInt8] {
        var out = FileHeader(pid: 700, monotonicStartNs: 1_000, realtimeStartNs: 0, program: "hostile").encode()
        var b = ChunkBuilder(pid: 700, tid: 0, startNs: 2_000, startTicks: 2_000)
        func extend(_ id: UInt64, base: UInt64, shared: UInt64, own: UInt64, _ list: [UInt64]) {
            b.beginEvent(.stackExtend, ticks: 2_000)
            b.putUnsigned(id)
            b.putUnsigned(base)
            b.putUnsigned(shared)
            b.putUnsigned(own)
            b.putList(list)
        }
        b.beginEvent(.stackDef, ticks: 2_000)
        b.putUnsigned(1)
        b.putList([0x1000, 0x2000, 0x3000])
        extend(2, base: 9, shared: 1, own: 1, [2])  // base never defined (9 is defined below, later)
        extend(3, base: 1, shared: 4, own: 1, [2])  // shares more frames than the base has
        extend(4, base: 1, shared: 1, own: 3, [2])  // more own frames than the list holds
        extend(5, base: 5, shared: 0, own: 1, [2])  // itself, undefined: no cycle to follow
        extend(6, base: 1, shared: 3, own: 1, [UInt64.max])  // a difference that wraps: any address
        extend(7, base: 0, shared: 0, own: 0, [])  // base 0 is "no stack"
        // Deep: 600 own frames on 3 shared, then stacks that extend it and each other: each is cut at
        // maxStackFrames, so a chain of extensions cannot grow a stack without bound.
        extend(8, base: 1, shared: 3, own: 600, [UInt64](repeating: 2, count: 600))
        extend(9, base: 8, shared: 512, own: 300, [UInt64](repeating: 2, count: 300) + [0, 1, 2])
        extend(9, base: 9, shared: 512, own: 1, [2])  // redefines 9 from its old self
        extend(UInt64(UInt32.max) + 1, base: 1, shared: 1, own: 0, [])  // an id out of range
        for id in UInt64(1)...9 {
            b.beginEvent(.cpuSample, ticks: 3_000 + id)
            b.putUnsigned(700)
            b.putUnsigned(701)
            b.putUnsigned(id)
            b.putUnsigned(0)
        }
        out += b.seal(sequence: 0, endNs: 4_000, endTicks: 4_000, droppedCumulative: 0, flags: [.kernel, .final])
        return out
    }

    @Test func hostileExtensionsAreCountedNotFollowed() throws {
        let path = NSTemporaryDirectory() + "stack-extend-hostile-\(getpid()).atrace"
        defer { unlink(path) }
        _ = FileManager.default.createFile(atPath: path, contents: Data(Self.hostile()))
        let (data, _) = try read(path)
        // 2, 3, 4, 5 and 7 name what they cannot have (their samples: stacks never defined), as does the
        // out-of-range id.
        #expect(data.badStackExtensions == 6, "\(data.badStackExtensions)")
        #expect(data.undefinedStacks == 5, "\(data.undefinedStacks)")
        #expect(data.stackAddresses[6] == [0x8000_0000_0000_1000, 0x1000, 0x2000, 0x3000])
        #expect(data.stackAddresses[8]?.count == TraceSamples.maxStackFrames)
        let nine = try #require(data.stackAddresses[9])
        #expect(nine.count == TraceSamples.maxStackFrames && nine.first == 0x1385)
        #expect(data.cutStacks == 3, "\(data.cutStacks)")
        // Every sample still names frames (or none): nothing traps.
        for s in data.samples { _ = data.frames(of: s) }
    }

    /// Hostile compact definitions (format 10), then a sample of each id 1...10.
    @Test func hostileCompactDefinitionsAreCountedNotFollowed() throws {
        var out = FileHeader(pid: 700, monotonicStartNs: 1_000, realtimeStartNs: 0, program: "hostile").encode()
        var b = ChunkBuilder(pid: 700, tid: 0, startNs: 2_000, startTicks: 2_000)
        func compact(_ id: UInt64, base: Int64, shape: UInt64, _ list: [UInt64]) {
            b.beginEvent(.stackCompact, ticks: 2_000)
            b.putUnsigned(id)
            b.putSigned(base)
            b.putUnsigned(shape)
            b.putList(list)
        }
        b.beginEvent(.stackDef, ticks: 2_000)
        b.putUnsigned(1)
        b.putList([0x1000, 0x2000, 0x3000])
        compact(2, base: -7, shape: 5, [2])  // base 9: never defined (9 is defined below, later)
        compact(3, base: 2, shape: 4 * 8 + 5, [2])  // base 1, but drops more frames than it has
        compact(4, base: 3, shape: 7, [2])  // code 7
        compact(5, base: 0, shape: 1, [zigzag(-0x1000), zigzag(0x5000)])  // no base: two frames of its own
        compact(6, base: 6, shape: 5, [2])  // base 0 is "no stack": bad id
        compact(7, base: 10, shape: 5, [2])  // base -3
        compact(8, base: 7, shape: 6, [3, 1 << 3, 9])  // 3 runs in a list of 3
        compact(9, base: 8, shape: 6, [1, 0 << 3 | 1, 9])  // a run of 0 frames
        compact(10, base: 9, shape: 6, [1, 600 << 3 | 1, 9])  // a run longer than any stack
        compact(UInt64(UInt32.max) + 1, base: Int64(UInt32.max), shape: 5, [2])  // an id out of range
        // Deep: 600 own frames on base 1's 3, then one that extends it and takes the base's frame at the same
        // depth (the selector bit): each cut at maxStackFrames; a difference that wraps names any address.
        compact(8, base: 7, shape: 8 * 0 + 5, [UInt64](repeating: 4, count: 600))
        compact(9, base: 8, shape: 8 * 3 + 5, [UInt64.max << 1, zigzag(-0x1000) << 1 | 1])
        for id in UInt64(1)...10 {
            b.beginEvent(.userSample, ticks: 3_000 + id)
            b.putPid(700)
            b.putTid(701)
            b.putStackID(id)
        }
        out += b.seal(sequence: 0, endNs: 4_000, endTicks: 4_000, droppedCumulative: 0, flags: [.kernel, .final])
        let path = NSTemporaryDirectory() + "stack-compact-hostile-\(getpid()).atrace"
        defer { unlink(path) }
        _ = FileManager.default.createFile(atPath: path, contents: Data(out))
        let (data, _) = try read(path)
        // 2, 3, 4, 6, 7, 10 and the out-of-range id, and the first 8 and 9, cannot be read; 2, 3, 4, 6, 7, 10 stay undefined.
        #expect(data.badStackExtensions == 9, "\(data.badStackExtensions)")
        #expect(data.undefinedStacks == 6, "\(data.undefinedStacks)")
        #expect(data.stackAddresses[5] == [0x4000, 0x5000] && data.recordUnwindMethods[5] == [1, 1])
        #expect(data.stackAddresses[8]?.count == TraceSamples.maxStackFrames && data.stackAddresses[8]?.first == 0x1000 + 1_200)
        // 9 drops all three of 1's frames: its outer frame is 0x3000 - 0x1000 (from 1's frame at its depth), its
        // leaf wraps from it.
        #expect(data.stackAddresses[9] == [0x2000 &+ UInt64(bitPattern: unzigzag(UInt64.max >> 1)), 0x2000])
        #expect(data.cutStacks == 1, "\(data.cutStacks)")
        for s in data.samples { _ = data.frames(of: s) }
    }

    @Test func samplesBringingHostileStacksAreCountedNotFollowed() throws {
        var out = FileHeader(pid: 700, monotonicStartNs: 1_000, realtimeStartNs: 0, program: "hostile").encode()
        var b = ChunkBuilder(pid: 700, tid: 0, startNs: 2_000, startTicks: 2_000)
        b.beginEvent(.stackDef, ticks: 2_000)
        b.putUnsigned(1)
        b.putList([0x1000, 0x2000, 0x3000])
        // (id, base, shared, own, list): a good one, then an unknown base, too many shared frames, an id of 0.
        for (i, a) in [(UInt64(2), UInt64(1), UInt64(2), UInt64(1), [UInt64(2)]), (3, 9, 1, 1, [2]), (4, 1, 4, 1, [2]), (0, 1, 1, 1, [2])]
            .enumerated()
        {
            b.beginEvent(.sampleNewStack, ticks: 3_000 + UInt64(i))
            b.putPid(700)
            b.putTid(701)
            b.putStackID(a.0)
            b.putUnsigned(0)
            b.putUnsigned(a.1)
            b.putUnsigned(a.2)
            b.putUnsigned(a.3)
            b.putList(a.4)
        }
        out += b.seal(sequence: 0, endNs: 4_000, endTicks: 4_000, droppedCumulative: 0, flags: [.kernel, .final])
        let path = NSTemporaryDirectory() + "stack-extend-hostile-samples-\(getpid()).atrace"
        defer { unlink(path) }
        _ = FileManager.default.createFile(atPath: path, contents: Data(out))
        let (data, kinds) = try read(path)
        #expect(kinds[.sampleNewStack, default: 0] == 4)
        // Every sample is kept; the three bad definitions are counted, and two of their samples name a stack never defined.
        #expect(data.samples.map(\.userStack) == [2, 3, 4, 0])
        #expect(data.stackAddresses[2] == [0x2001, 0x2000, 0x3000])
        #expect(data.badStackExtensions == 3 && data.undefinedStacks == 2, "\(data.badStackExtensions) \(data.undefinedStacks)")
    }
}
