// Creation stacks: where each resource was created, as the return addresses of the code that
// emitted its init (a frame-pointer walk in C, ~20-60 ns), interned per stream (a stack is written
// once as a stackDef; each resource then costs a creationStack event of ~4 bytes), named at read
// time by TraceSymbols from the code regions the recorder writes as mapping events.
//
// Handles (timers, sockets, servers, requests: what leaks and what blocks) get one by default;
// the resources a program makes per await or per tick (promises, ticks, microtasks, immediates,
// Swift jobs and tasks) are sampled, one in `promiseEvery`, or none: a stack costs ~350
// instructions (callgrind, release, setImmediate chain), as much again as the rest of recording
// an Immediate (docs/performance.md, "Creation stacks").
@_spi(Recorder) import AsyncHooks
import CRecorderSupport
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// Which resources get a creation stack (`RecorderOptions.creationStacks`, ASYNCTRACE_CREATION_STACKS).
public struct CreationStackPolicy: Sendable, Equatable {
    /// Handles and requests (every type but the per-await and per-tick ones).
    public var handles: Bool
    /// One in this many promises, ticks, microtasks and Swift jobs/tasks; 0: none.
    public var promiseEvery: Int

    /// A policy; the default: every handle and request, no promises.
    public init(handles: Bool = true, promiseEvery: Int = 0) {
        self.handles = handles
        self.promiseEvery = promiseEvery
    }

    /// No creation stacks.
    public static let off = CreationStackPolicy(handles: false, promiseEvery: 0)
    /// Every resource.
    public static let all = CreationStackPolicy(handles: true, promiseEvery: 1)

    /// ASYNCTRACE_CREATION_STACKS: `off`, `handles` (the default), `all`, or `handles+N` (handles and
    /// one promise in N). Nil when the text is none of these.
    public init?(parsing text: String) {
        switch text {
        case "off", "0", "none": self = .off
        case "handles", "on", "1": self = CreationStackPolicy()
        case "all": self = .all
        default:
            guard text.hasPrefix("handles+"), let n = Int(text.dropFirst(8)), n > 0 else { return nil }
            self = CreationStackPolicy(handles: true, promiseEvery: n)
        }
    }

    /// Types made per await, per tick, per loop turn or per job: sampled, not always recorded.
    static func isFrequent(_ typeName: String) -> Bool {
        switch typeName {
        case "PROMISE", "TickObject", "Microtask", "Immediate", "SwiftJob", "SwiftTask", "SwiftActorJob", "SwiftContinuationJob": true
        default: false
        }
    }
}

/// Per-type decision, cached in each stream (no shared state on the hot path).
let stackPolicyUndecided: UInt8 = 0
let stackPolicyNever: UInt8 = 1
let stackPolicyAlways: UInt8 = 2
let stackPolicySampled: UInt8 = 3

/// Interned stacks per stream before the table starts over (ids keep rising: a stack seen again
/// after that is defined again).
let streamStackTableSize = 4096
/// Frames kept per creation stack.
let creationStackMaxFrames = 32

enum CreationStacks {
    /// Set before the hook is enabled.
    nonisolated(unsafe) static var policy = CreationStackPolicy()

    /// After an init of `type` was committed in `s`: its creation stack, when the policy wants one.
    @inline(__always)
    static func afterInit(_ s: Stream, _ asyncID: UInt64, _ type: UInt32) {
        let t = Int(type)
        let decision = t < s.pointee.stackPolicyCount ? s.pointee.stackPolicy![t] : stackPolicyUndecided
        if decision == stackPolicyNever { return }
        record(s, asyncID, type, decision)
    }

    @inline(never)
    static func record(_ s: Stream, _ asyncID: UInt64, _ type: UInt32, _ known: UInt8) {
        var decision = known
        if decision == stackPolicyUndecided { decision = decide(s, type) }
        if decision == stackPolicySampled {
            if s.pointee.promiseCountdown > 1 {
                s.pointee.promiseCountdown -= 1
                return
            }
            s.pointee.promiseCountdown = UInt32(clamping: policy.promiseEvery)
        } else if decision != stackPolicyAlways {
            return
        }
        if s.pointee.stackTop == 0 { s.pointee.stackTop = max(1, UInt(trace_thread_stack_top())) }
        guard s.pointee.stackTop > 1 else { return }
        // The walk starts in the recorder: read time names those frames away (their depth differs
        // between debug and release builds).
        if s.pointee.stackScratch == nil { s.pointee.stackScratch = .allocate(capacity: creationStackMaxFrames) }
        let frames = s.pointee.stackScratch!
        var hash: UInt64 = 0
        let n = Int(trace_capture_return_addresses(frames, Int32(creationStackMaxFrames), 0, s.pointee.stackTop, &hash))
        guard n > 0 else { return }
        let id = stackID(s, hash: hash, UnsafeBufferPointer(start: frames, count: n))
        guard id != 0 else { return }
        var p = s.headAtLastStamp(.creationStack)
        p = s.putAsyncID(asyncID, p)
        s.commit(putVarint(UInt64(id), at: p))
    }

    static func decide(_ s: Stream, _ type: UInt32) -> UInt8 {
        let t = Int(type)
        if t >= s.pointee.stackPolicyCount {
            let count = max(t + 1, s.pointee.stackPolicyCount * 2, 64)
            let table = UnsafeMutablePointer<UInt8>.allocate(capacity: count)
            table.initialize(repeating: stackPolicyUndecided, count: count)
            if let old = s.pointee.stackPolicy {
                table.update(from: old, count: s.pointee.stackPolicyCount)
                old.deallocate()
            }
            s.pointee.stackPolicy = table
            s.pointee.stackPolicyCount = count
        }
        let decision: UInt8
        if CreationStackPolicy.isFrequent(RecorderStrings.name(of: type)) {
            decision = policy.promiseEvery > 0 ? (policy.promiseEvery == 1 ? stackPolicyAlways : stackPolicySampled) : stackPolicyNever
        } else {
            decision = policy.handles ? stackPolicyAlways : stackPolicyNever
        }
        s.pointee.stackPolicy![t] = decision
        return decision
    }

    /// The stream's id of this stack, defining it (and the code regions it needs) first when new.
    @inline(__always)
    static func stackID(_ s: Stream, hash: UInt64, _ frames: UnsafeBufferPointer<UInt64>) -> UInt32 {
        if let table = s.pointee.stackTable {
            var i = Int(truncatingIfNeeded: hash) & (streamStackTableSize - 1)
            while table[i].hash != 0 {
                if table[i].hash == hash { return table[i].id }
                i = (i + 1) & (streamStackTableSize - 1)
            }
        }
        return defineStack(s, hash: hash, frames)
    }

    @inline(never)
    static func defineStack(_ s: Stream, hash: UInt64, _ captured: UnsafeBufferPointer<UInt64>) -> UInt32 {
        if s.pointee.stackTable == nil || s.pointee.stacksInterned >= streamStackTableSize * 3 / 4 {
            if s.pointee.stackTable == nil { s.pointee.stackTable = .allocate(capacity: streamStackTableSize) }
            s.pointee.stackTable!.initialize(repeating: StackTableEntry(hash: 0, id: 0), count: streamStackTableSize)
            s.pointee.stacksInterned = 0
        }
        // Frames past the first one outside every loaded object are a walk gone astray (code without
        // frame pointers): not written.
        let kept = CodeRegions.shared.writeMissing(s, for: captured)
        guard kept > 0 else { return 0 }
        let id = s.pointee.nextStackID
        s.pointee.nextStackID &+= 1
        let room = 1 + maxVarintBytes * (3 + kept)
        var p = s.headAtLastStamp(.stackDef, room: room + fixedEventReserve)
        p = putVarint(UInt64(id), at: p)
        p = putVarint(UInt64(kept), at: p)
        for i in 0..<kept { p = putVarint(captured[i], at: p) }
        s.commit(p)
        let table = s.pointee.stackTable!
        var i = Int(truncatingIfNeeded: hash) & (streamStackTableSize - 1)
        while table[i].hash != 0 { i = (i + 1) & (streamStackTableSize - 1) }
        table[i] = StackTableEntry(hash: hash, id: id)
        s.pointee.stacksInterned += 1
        return id
    }

    /// A flight recorder's chunks leave its window one by one: there, a stack is defined again in
    /// every chunk that uses it (called when a chunk begins).
    static func forgetStacks(_ s: Stream) {
        guard s.pointee.stacksInterned > 0, let table = s.pointee.stackTable else { return }
        table.update(repeating: StackTableEntry(hash: 0, id: 0), count: streamStackTableSize)
        s.pointee.stacksInterned = 0
    }
}

struct StackTableEntry {
    var hash: UInt64
    var id: UInt32
}

/// The loaded objects' code regions, written as mapping events the first time a stack needs them
/// (and again after a dlopen added some), so the reader names creation stacks without a kernel
/// stream. Only creation stacks seen for the first time in a stream come here.
final class CodeRegions: @unchecked Sendable {
    static let shared = CodeRegions()

    struct Region {
        var start: UInt64, end: UInt64, fileOffset: UInt64
        var path: String
        var buildID: [UInt8]
    }
    /// Known regions, and per recording (flushEpoch's recording bits) the starts of those written.
    private let state = LockedValue<(regions: [Region], writtenIn: UInt64, written: Set<UInt64>, lastScanNs: UInt64)>(([], .max, [], 0))

    /// Writes into `s` the mappings of the regions `frames` need that this recording has not written
    /// yet; returns how many of `frames` lie in known code (the rest are dropped).
    func writeMissing(_ s: Stream, for frames: UnsafeBufferPointer<UInt64>) -> Int {
        let recording = Recorder.flushEpoch.load(ordering: .relaxed) >> Recorder.recordingShift
        let (kept, toWrite) = state.withLock { st -> (Int, [Region]) in
            if st.writtenIn != recording {
                st.writtenIn = recording
                st.written = []
            }
            func inside(_ a: UInt64) -> Bool { st.regions.contains { a >= $0.start && a < $0.end } }
            var kept = frames.prefix { inside($0) }.count
            // Unknown code: loaded since the last scan (dlopen), or a walk gone astray. Scanned again at
            // most 10 times a second (astray walks must not turn every new stack into a scan).
            let now = trace_clock_monotonic_ns()
            if kept < frames.count && (st.regions.isEmpty || now &- st.lastScanNs > 100_000_000) {
                st.lastScanNs = now
                st.regions = Self.scan()
                kept = frames.prefix { inside($0) }.count
            }
            let missing = st.regions.filter { !st.written.contains($0.start) }
            for r in missing { st.written.insert(r.start) }
            return (kept, missing)
        }
        for r in toWrite { writeMapping(s, r) }
        return kept
    }

    private func writeMapping(_ s: Stream, _ r: Region) {
        let path = String(decoding: Array(r.path.utf8.prefix(4000)), as: UTF8.self)
        let pathRoom = 1 + maxVarintBytes * 3 + path.utf8.count
        let eventRoom = 2 + maxVarintBytes * (5 + r.buildID.count)
        // Room for the path's definition and the event together, so stringRef cannot move to a new chunk between them.
        if s.pointee.cursor + pathRoom + eventRoom + fixedEventReserve > s.pointee.end {
            s.rotate(force: pathRoom + eventRoom + fixedEventReserve)
        }
        let ref = s.stringRef(RecorderStrings.intern(path))
        var p = s.headAtLastStampAfterStringRef(.mapping)
        p = putVarint(UInt64(s.pointee.pid), at: p)
        p = putVarint(r.start, at: p)
        p = putVarint(r.end, at: p)
        p = putVarint(r.fileOffset, at: p)
        p = putVarint(UInt64(ref), at: p)
        p = putVarint(UInt64(r.buildID.count), at: p)
        for b in r.buildID { p = putVarint(UInt64(b), at: p) }
        s.commit(p)
    }

    /// Every executable region of every loaded object, the main program named by /proc/self/exe.
    static func scan() -> [Region] {
        final class Box { var regions: [Region] = [] }
        let box = Box()
        withExtendedLifetime(box) {
            trace_code_regions(
                { r, context in
                    guard let r, let context else { return 1 }
                    let box = Unmanaged<Box>.fromOpaque(context).takeUnretainedValue()
                    var id = r.pointee.build_id
                    let buildID = withUnsafeBytes(of: &id) { Array($0.prefix(Int(min(r.pointee.build_id_length, 64)))) }
                    let path = r.pointee.path.map { String(cString: $0) } ?? CodeRegions.executablePath()
                    box.regions.append(
                        CodeRegions.Region(
                            start: r.pointee.start, end: r.pointee.end, fileOffset: r.pointee.file_offset,
                            path: path, buildID: buildID))
                    return 0
                }, Unmanaged.passUnretained(box).toOpaque())
        }
        return box.regions
    }

    static func executablePath() -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return "" }
        return String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
