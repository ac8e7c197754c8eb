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
        // Each new stack comes with a sample: the extensions are written inside their samples (sampleNewStack).
        #expect(kinds[.sampleNewStack, default: 0] == 6 && writer.stacksExtended == 6, "\(kinds)")
        #expect(kinds[.stackExtend, default: 0] == 0 && kinds[.stackDef, default: 0] == 2 && kinds[.sample, default: 0] == 2, "\(kinds)")
        #expect(data.samples.count == Self.stacks.count && data.undefinedStacks == 0 && data.badStackExtensions == 0)
        for (i, s) in data.samples.enumerated() {
            #expect(data.stackAddresses[s.userStack] == Self.stacks[i].frames, "stack \(i)")
            #expect(data.recordUnwindMethods[s.userStack] == Self.stacks[i].methods, "methods of stack \(i)")
        }
    }

    @Test func extensionsAreSmallerThanWholeStacks() throws {
        // 50 leaves on one 30-frame chain: each new stack costs its leaf, not the chain.
        let chain = (0..<30).map { 0x7f12_3456_0000 + UInt64($0) * 0x1_0000 }
        let stacks = (0..<50).map { i in ([0x5555_5555_0000 + UInt64(i) * 16] + chain, [UInt8](repeating: 0, count: 30)) }
        let (path, _) = try writeTrace(stacks.map { ($0.0, Optional($0.1)) }, name: "size")
        defer { unlink(path) }
        let r = try TraceReader(path: path)
        // Whole stackDefs would take > 50 × 30 × 6 bytes of addresses alone.
        #expect(r.payloadBytes < 3_000, "\(r.payloadBytes) bytes")
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
