import TraceFormat
import TraceReader

/// One CPU sample.
public struct CPUSample: Sendable {
    /// When it was taken (CLOCK_MONOTONIC ns).
    public var timeNs: UInt64
    /// The sampled process.
    public var pid: UInt32
    /// The sampled thread.
    public var tid: UInt32
    /// Its user stack id (0: none).
    public var userStack: UInt32
    /// Its kernel stack id (0: none).
    public var kernelStack: UInt32
}

/// The CPU samples of a trace with their stacks, named: what every code view is built from.
public final class TraceSamples {
    /// The samples, in time order (kept only with `keepsSamples`).
    public private(set) var samples: [CPUSample] = []
    /// Stack addresses by stackDef id (innermost first).
    public private(set) var stackAddresses: [UInt32: [UInt64]] = [:]
    /// Names the samples' addresses.
    public let symbolizer: Symbolizer
    /// CPU time one sample stands for (the trace's `sampling` event; 0: not recorded).
    public private(set) var periodNs: UInt64 = 0
    /// Whether `add` keeps the samples in `samples` (a streaming consumer that only needs each one
    /// as it comes sets it false).
    public var keepsSamples = true
    /// Samples whose stack id no stackDef defined (a damaged chunk lost it).
    public private(set) var undefinedStacks = 0
    /// Unwinds samples that carry a stack copy; its tally says per module how callers were found.
    public private(set) var unwinder = StackUnwinder()
    /// Samples whose user stack was unwound from a stack copy.
    public private(set) var unwoundSamples = 0
    /// Stack copies that were malformed or had no sample (ignored; the frame-pointer stack is used).
    public private(set) var badStackCopies = 0
    private var pendingCopy: (tid: UInt32, timeNs: UInt64, copy: CopyKey)?
    /// Unwound stacks by their copy (and frame-pointer stack): a thread that runs the same code
    /// again leaves the same copy, unwound once. Bounded: cleared when full.
    private var unwoundCache: [CopyKey: (id: UInt32, log: StackUnwinder.TallyLog)] = [:]
    static let unwoundCacheLimit = 1 << 16
    /// Samples whose copy was unwound before (cache hits).
    public private(set) var unwoundFromCache = 0
    private var unwoundIDs: [[UInt64]: UInt32] = [:]
    private var nextUnwoundID = UInt32.max
    private var kernelWalkSamples: [UInt64: Int] = [:]  // (pid, stack id) -> samples without a copy
    private var resolved: [UInt64: [Int]] = [:]
    private var resolvedKernel: [UInt32: [Int]] = [:]

    /// Samples named by `symbolizer`.
    public init(symbolizer: Symbolizer = Symbolizer()) { self.symbolizer = symbolizer }
    private var versionSeen = false

    /// Reads the samples, stacks and mappings of the trace's kernel streams.
    public convenience init(reader: TraceReader, symbolizer: Symbolizer = Symbolizer()) {
        self.init(symbolizer: symbolizer)
        let kernelStreams = Set(reader.streams.indices.filter { reader.streams[$0].isKernel })
        guard !kernelStreams.isEmpty else { return }
        let it = reader.events(streams: kernelStreams)
        it.forEachView { v in add(v, strings: it) }
    }

    /// Feeds one event (callers that already walk the trace can pass the kernel events through);
    /// returns the sample when it is one.
    @discardableResult
    public func add(_ v: EventView, strings it: TraceEventIterator) -> CPUSample? {
        // A trace of format 13 or later carries copies of the perf maps it needs: /tmp's may be another process's.
        if !versionSeen {
            versionSeen = true
            if it.reader.header.version >= 13 { symbolizer.perfMapDirectory = nil }
        }
        switch v.kind {
        case .cpuSample, .sample, .sampleNewStack, .userSample, .userSampleNewStack:
            // sampleNewStack, userSampleNewStack: its user stack's definition first, then the sample.
            if v.kind == .sampleNewStack { extend(v, id: v.u(2), base: 4) }
            if v.kind == .userSampleNewStack { defineCompact(v, id: v.u(2), base: 3) }
            // userSample and userSampleNewStack have no kernel stack.
            let kernelStack = v.kind == .userSample || v.kind == .userSampleNewStack ? 0 : v.u(3)
            guard v.u(2) <= UInt64(UInt32.max), kernelStack <= UInt64(UInt32.max) else { return nil }
            var s = CPUSample(
                timeNs: v.timestampNs, pid: UInt32(truncatingIfNeeded: v.u(0)), tid: UInt32(truncatingIfNeeded: v.u(1)),
                userStack: UInt32(v.u(2)), kernelStack: UInt32(kernelStack))
            if let copy = pendingCopy {
                pendingCopy = nil
                if copy.tid == s.tid && copy.timeNs == s.timeNs {
                    s.userStack = unwound(s, copy.copy)
                } else {
                    badStackCopies += 1
                }
            } else if s.userStack != 0 {
                if recordUnwindMethods[s.userStack] != nil {
                    recordUnwoundSamples[UInt64(s.pid) << 32 | UInt64(s.userStack), default: 0] += 1
                    unwoundSamples += 1
                    unwoundWhenRecorded += 1
                } else {
                    tallyKernelWalk(s)
                }
            }
            if (s.userStack != 0 && stackAddresses[s.userStack] == nil) || (s.kernelStack != 0 && stackAddresses[s.kernelStack] == nil) {
                undefinedStacks += 1
            }
            if keepsSamples { samples.append(s) }
            return s
        case .sampling:
            periodNs = v.u(0)
        case .stackCopy, .stackCopyDelta:
            if pendingCopy != nil { badStackCopies += 1 }
            pendingCopy = nil
            let tid = UInt32(truncatingIfNeeded: v.u(1))
            let sp = v.u(3), bytes = v.u(5)
            let delta = v.kind == .stackCopyDelta
            var words: [UInt64]?
            if delta {
                // The base: this thread's previous copy, exactly baseNs earlier (else it was lost: not guessed).
                if let base = lastCopy[tid], v.u(6) <= v.timestampNs, base.timeNs == v.timestampNs - v.u(6) {
                    words = Self.applyDelta(v.list, sp: sp, bytes: bytes, base: base)
                }
            } else {
                words = Self.entries(v.list, sp: sp, bytes: bytes)
            }
            guard let words else {
                badStackCopies += 1
                lastCopy[tid] = nil
                return nil
            }
            lastCopy[tid] = (v.timestampNs, sp, words)
            let key = CopyKey(
                pid: UInt32(truncatingIfNeeded: v.u(0)), ip: v.u(2), sp: sp, bp: v.u(4), bytes: bytes,
                framePointerStack: 0, words: words)
            pendingCopy = (tid, v.timestampNs, key)
        case .stackDef:
            guard v.u(0) > 0, v.u(0) <= UInt64(UInt32.max) else { return nil }
            if v.list.count > Self.maxStackFrames { cutStacks += 1 }
            stackAddresses[UInt32(v.u(0))] = Array(v.list.prefix(Self.maxStackFrames))
        case .stackExtend:
            extend(v, id: v.u(0), base: 1)
        case .stackCompact:
            defineCompact(v, id: v.u(0), base: 1)
        case .stackUnwind:
            guard v.u(0) > 0, v.u(0) <= UInt64(UInt32.max) else { return nil }
            recordUnwindMethods[UInt32(v.u(0))] = v.list.prefix(Self.maxStackFrames + 1).map { UInt8(clamping: $0) }
        case .perfMap:
            // Counted before copied: one chunk's string may be named by any number of events.
            if v.textID >= 0 { symbolizer.addPerfMapText(pid: UInt32(truncatingIfNeeded: v.u(0)), it.string(v.textID).utf8) }
        case .processFork:
            symbolizer.addFork(parent: UInt32(truncatingIfNeeded: v.u(0)), child: UInt32(truncatingIfNeeded: v.u(1)))
        case .mapping:
            guard v.u(1) < v.u(2) else { return nil }
            let path = v.textID >= 0 ? it.string(v.textID) : ""
            let buildID = v.list.prefix(64).map { UInt8(truncatingIfNeeded: $0) }
            symbolizer.addMapping(
                pid: UInt32(truncatingIfNeeded: v.u(0)),
                .init(
                    start: v.u(1), end: v.u(2), fileOffset: v.u(3), path: path, buildID: buildID,
                    timeNs: v.timestampNs))
        default:
            break
        }
        return nil
    }

    /// A stack is read up to this many frames, innermost first (a kernel stack and a user stack are each at
    /// most 127 deep): a longer stackDef, or a stackExtend that would make one, is cut here and counted.
    public static let maxStackFrames = 512
    /// Stack definitions cut at `maxStackFrames`.
    public private(set) var cutStacks = 0
    /// Stack definitions on a base (`stackExtend`, `stackCompact`, and those samples carry) not read: the stack
    /// they extend is unknown (a damaged chunk lost it) or has fewer frames than they share, or they are
    /// malformed; their stack is left undefined (its samples count in `undefinedStacks`).
    public private(set) var badStackExtensions = 0

    /// Defines a stack from a `stackExtend`: its own frames on the outermost `shared` frames of a stack
    /// defined before. Stacks are copied when read, so an extension can only name one that exists: no
    /// chain to follow, no cycle.
    /// `v` is a `stackExtend` (id in argument 0, base, shared, own after it) or a `sampleNewStack` (id: its
    /// user stack, argument 2; base, shared, own from argument 4).
    private func extend(_ v: EventView, id rawID: UInt64, base first: Int) {
        guard rawID > 0, rawID <= UInt64(UInt32.max) else {
            badStackExtensions += 1
            return
        }
        let id = UInt32(rawID)
        let baseID = v.u(first) <= UInt64(UInt32.max) ? UInt32(v.u(first)) : 0
        guard baseID != 0, let base = stackAddresses[baseID], v.u(first + 1) <= UInt64(base.count), v.u(first + 2) <= UInt64(v.list.count)
        else {
            stackAddresses[id] = nil
            recordUnwindMethods[id] = nil
            badStackExtensions += 1
            return
        }
        let shared = Int(v.u(first + 1))
        let sharedFrames = base.suffix(shared)
        let own = Int(v.u(first + 2))
        let listedMethods = v.list[own...]
        var frames = StackExtension.decode(v.list[..<own], above: sharedFrames.first ?? 0)
        if frames.count > Self.maxStackFrames { frames.removeSubrange(Self.maxStackFrames...) }
        if own + shared > Self.maxStackFrames { cutStacks += 1 }
        frames += sharedFrames.prefix(Self.maxStackFrames - frames.count)
        stackAddresses[id] = frames
        // Methods: of the own frames, the shared ones keeping base's; longer: the whole stack's; empty
        // with own frames: none.
        let listed = listedMethods.prefix(Self.maxStackFrames + 1).map { UInt8(clamping: $0) }
        let baseMethods = recordUnwindMethods[baseID]
        if listedMethods.count > own {
            recordUnwindMethods[id] = listed
        } else if listedMethods.isEmpty && (own > 0 || baseMethods == nil) {
            recordUnwindMethods[id] = nil
        } else {
            let inherited = (baseMethods ?? []).dropFirst(base.count - shared)
            recordUnwindMethods[id] = listed + inherited.prefix(Self.maxStackFrames + 1 - listed.count)
        }
    }

    /// Defines a stack from a `stackCompact` (id in argument 0, base, shape, frames after it) or a
    /// `userSampleNewStack` (id: its user stack, argument 2; base, shape, frames from argument 3). A definition
    /// that names a base never seen, or cannot be read, leaves its stack undefined and is counted as a
    /// `stackExtend`'s would be.
    private func defineCompact(_ v: EventView, id: UInt64, base first: Int) {
        let decoded = CompactStack.decode(
            id: id, base: v.s(first), shape: v.u(first + 1), frames: v.list, maxFrames: Self.maxStackFrames
        ) { baseID in
            stackAddresses[baseID].map { ($0, recordUnwindMethods[baseID]) }
        }
        switch decoded {
        case .success(let stack):
            stackAddresses[UInt32(id)] = stack.frames
            recordUnwindMethods[UInt32(id)] = stack.methods
            if stack.cut { cutStacks += 1 }
        case .failure(let failure):
            if failure != .badID {
                stackAddresses[UInt32(id)] = nil
                recordUnwindMethods[UInt32(id)] = nil
            }
            badStackExtensions += 1
        }
    }

    /// The id of the sample's user stack unwound from its copy (interned among the unwound stacks).
    private func unwound(_ s: CPUSample, _ copy: CopyKey) -> UInt32 {
        var key = copy
        key.framePointerStack = s.userStack
        if let hit = unwoundCache[key] {
            unwinder.apply(hit.log)
            unwoundSamples += 1
            unwoundFromCache += 1
            return hit.id
        }
        var dense = [UInt64](repeating: 0, count: Int(key.bytes / 8))
        var i = 0
        while i + 1 < key.words.count {
            dense[Int(key.words[i])] = key.words[i + 1]
            i += 2
        }
        let snapshot = StackSnapshot(ip: key.ip, sp: key.sp, bp: key.bp, words: dense)
        let fp = s.userStack != 0 ? stackAddresses[s.userStack] ?? [] : []
        let (addresses, log) = unwinder.unwindLogged(
            pid: s.pid, timeNs: s.timeNs, snapshot: snapshot, framePointerStack: fp,
            mappings: symbolizer)
        unwinder.apply(log)
        unwoundSamples += 1
        let id = intern(unwoundStack: addresses, fallback: s.userStack)
        if unwoundCache.count >= Self.unwoundCacheLimit { unwoundCache.removeAll(keepingCapacity: true) }
        unwoundCache[key] = (id, log)
        return id
    }

    private func intern(unwoundStack addresses: [UInt64], fallback: UInt32) -> UInt32 {
        if let id = unwoundIDs[addresses] { return id }
        while nextUnwoundID > 0 && stackAddresses[nextUnwoundID] != nil { nextUnwoundID -= 1 }
        guard nextUnwoundID > 0 else { return fallback }
        let id = nextUnwoundID
        nextUnwoundID -= 1
        unwoundIDs[addresses] = id
        stackAddresses[id] = addresses
        return id
    }

    /// Per thread, its last stack copy (the base of a stackCopyDelta): time, sp, words as in CopyKey.
    private var lastCopy: [UInt32: (timeNs: UInt64, sp: UInt64, words: [UInt64])] = [:]

    /// A stackCopy's list as (index, value) pairs, flat, by index, zero words left out; nil if malformed.
    static func entries(_ list: UnsafeBufferPointer<UInt64>, sp: UInt64, bytes: UInt64) -> [UInt64]? {
        guard bytes <= UInt64(StackSnapshot.maxBytes), list.count % 2 == 0 else { return nil }
        let count = bytes / 8
        var out: [UInt64] = []
        out.reserveCapacity(list.count)
        var next: UInt64 = 0
        var i = 0
        while i < list.count {
            let (index, overflow) = next.addingReportingOverflow(list[i])
            guard !overflow, index < count else { return nil }
            let raw = list[i + 1]
            let value = raw & 1 == 1 ? sp &+ (raw >> 1) : raw >> 1
            if value != 0 { out.append(index); out.append(value) }
            next = index + 1
            i += 2
        }
        return out
    }

    /// A stackCopyDelta's words: the base's words at the addresses this copy covers, then the listed changes.
    static func applyDelta(
        _ list: UnsafeBufferPointer<UInt64>, sp: UInt64, bytes: UInt64,
        base: (timeNs: UInt64, sp: UInt64, words: [UInt64])
    ) -> [UInt64]? {
        guard bytes <= UInt64(StackSnapshot.maxBytes), list.count % 2 == 0, base.sp & 7 == sp & 7 else { return nil }
        let count = bytes / 8
        // Both sorted by index: the base's words moved to this copy's indices, merged with the changes.
        var out: [UInt64] = []
        out.reserveCapacity(base.words.count + list.count)
        var b = 0
        func baseIndex(_ k: Int) -> UInt64? {
            let address = base.sp &+ base.words[k] &* 8
            guard address >= sp else { return nil }
            return (address - sp) / 8
        }
        func emitBase(below limit: UInt64) {
            while b + 1 < base.words.count {
                guard let index = baseIndex(b) else { b += 2; continue }
                guard index < limit, index < count else { return }
                out.append(index)
                out.append(base.words[b + 1])
                b += 2
            }
        }
        var next: UInt64 = 0
        var i = 0
        while i < list.count {
            let (index, overflow) = next.addingReportingOverflow(list[i])
            guard !overflow, index < count else { return nil }
            emitBase(below: index)
            if b + 1 < base.words.count, baseIndex(b) == index { b += 2 }  // replaced
            let raw = list[i + 1]
            let value = raw & 1 == 1 ? sp &+ (raw >> 1) : raw >> 1
            if value != 0 {
                out.append(index)
                out.append(value)
            }
            next = index + 1
            i += 2
        }
        emitBase(below: count)
        return out
    }

    /// A stack copy (its registers and words as flat (index, value) pairs by index) with the sample's
    /// frame-pointer stack id: full copies and deltas that give the same stack give the same key.
    struct CopyKey: Hashable {
        var pid: UInt32
        var ip: UInt64, sp: UInt64, bp: UInt64, bytes: UInt64
        var framePointerStack: UInt32
        var words: [UInt64]
    }

    /// How the recorder unwound stacks from their copies (`stackUnwind`), by stack id.
    private(set) var recordUnwindMethods: [UInt32: [UInt8]] = [:]
    /// (pid, stack id) -> samples whose stack the recorder unwound.
    private var recordUnwoundSamples: [UInt64: Int] = [:]
    /// Samples (of `unwoundSamples`) whose copy the recorder unwound (the trace holds their stack, not the copy).
    public private(set) var unwoundWhenRecorded = 0

    private func tallyKernelWalk(_ s: CPUSample) {
        kernelWalkSamples[UInt64(s.pid) << 32 | UInt64(s.userStack), default: 0] += 1
    }

    /// Per module: how the callers of its frames were found (the stack copies' unwinding, and the
    /// kernel's frame-pointer walk for samples without a copy), and where unwinding ended.
    public var unwindTally: [String: UnwindTally] {
        var tally: [String: UnwindTally] = [:]
        for (id, t) in unwinder.tally { tally[symbolizer.moduleName(id)] = t }
        for (key, count) in recordUnwoundSamples {
            let pid = UInt32(truncatingIfNeeded: key >> 32), id = UInt32(truncatingIfNeeded: key)
            guard let methods = recordUnwindMethods[id], let addresses = stackAddresses[id] else { continue }
            // Each frame's own module: the frame whose caller a method found, or where unwinding ended.
            for (i, (m, a)) in zip(methods, addresses).enumerated() {
                let site = symbolizer.site(pid: pid, address: i == 0 ? a : a &- 1, timeNs: UInt64.max)
                let module = symbolizer.moduleName(site.module)
                if m == UnwindMethod.endedCode {
                    tally[module, default: UnwindTally()].stopped += count
                } else if Int(m) < UnwindMethod.allCases.count {
                    tally[module, default: UnwindTally()].byMethod[Int(m)] += count
                }
            }
        }
        for (key, count) in kernelWalkSamples {
            let pid = UInt32(truncatingIfNeeded: key >> 32), id = UInt32(truncatingIfNeeded: key)
            // Each frame whose caller the walk found, by its module.
            for (i, a) in (stackAddresses[id] ?? []).dropLast().enumerated() {
                let w = symbolizer.linkAddress(pid: pid, address: i == 0 ? a : a &- 1, timeNs: UInt64.max)
                guard w.inMapping else { break }
                tally[w.path.isEmpty ? "[anon]" : w.path, default: UnwindTally()].byMethod[UnwindMethod.kernelFramePointer.rawValue] += count
            }
        }
        return tally
    }

    /// The sample's frames (ids into `symbolizer.frames`), innermost first: the kernel stack (if
    /// recorded) above the user stack.
    public func frames(of s: CPUSample) -> [Int] {
        frames(pid: s.pid, userStack: s.userStack, kernelStack: s.kernelStack, timeNs: s.timeNs)
    }

    /// The frames of stacks by stackDef id (a sample's, a wait's), innermost first: the kernel stack
    /// (if any) above the user stack.
    public func frames(pid: UInt32, userStack: UInt32, kernelStack: UInt32 = 0, timeNs: UInt64) -> [Int] {
        var out: [Int] = []
        if kernelStack != 0 {
            if let k = resolvedKernel[kernelStack] {
                out = k
            } else {
                let k = symbolizer.frames(pid: 0, addresses: stackAddresses[kernelStack] ?? [], timeNs: timeNs, kernel: true)
                resolvedKernel[kernelStack] = k
                out = k
            }
        }
        if userStack != 0 {
            let key = UInt64(pid) << 32 | UInt64(userStack)
            if let u = resolved[key] {
                out += u
            } else {
                var u = symbolizer.frames(pid: pid, addresses: stackAddresses[userStack] ?? [], timeNs: timeNs)
                // A return address no mapping holds is where a frame-pointer walk went astray (code
                // without frame pointers): what follows it is noise, not callers. Unless the recorder
                // unwound the stack (its stackUnwind) and it comes back into a file's code after: then it
                // went through JIT code never seen mapped (its process exited before its maps were read again).
                if let bad = u.indices.dropFirst().first(where: { symbolizer.frames[u[$0]].module == "[unknown]" }),
                    recordUnwindMethods[userStack] == nil || !u[(bad + 1)...].contains(where: { Self.isFileCode(symbolizer.frames[$0]) })
                {
                    u.removeSubrange(bad...)
                }
                resolved[key] = u
                out += u
            }
        }
        return out
    }

    /// The frame with id `id`.
    public func frame(_ id: Int) -> CodeFrame { symbolizer.frames[id] }

    /// Whether `f` is in a mapped file's code (not JIT, anonymous or unknown code, nor the kernel's pages).
    static func isFileCode(_ f: CodeFrame) -> Bool { !f.module.isEmpty && !f.module.hasPrefix("[") }

    /// The frames of a sample taken inside a callback, innermost first, without the runtime's own
    /// frames that called it: for JS (Node), everything outside the outermost JS frame (V8's entry
    /// trampolines, node::, libuv's loop, main). Native code keeps its whole stack (nothing marks
    /// where a native runtime hands over to the callback).
    public func callbackFrames(of s: CPUSample) -> [Int] {
        callbackFrames(frames(of: s))
    }

    /// `frames` (innermost first) without the runtime's own frames below the outermost JS frame (see above).
    public func callbackFrames(_ f: [Int]) -> [Int] {
        guard let outermostJS = f.lastIndex(where: { symbolizer.frames[$0].module == "[jit]" }) else { return f }
        return Array(f[...outermostJS])
    }
}
