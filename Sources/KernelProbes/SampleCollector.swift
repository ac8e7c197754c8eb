import CKernelProbes
#if canImport(Glibc)
import Glibc
#endif

/// Turns the probes' sample and exec records into events: interns each sample's stacks and records the
/// executable mappings of every sampled process (at attach, after execve, and on an address outside them).
public final class SampleCollector {
    /// The stacks, mappings and stack copies the events refer to.
    public let tables = SampleTables()
    /// Samples received.
    public private(set) var samples: UInt64 = 0
    /// Samples that carried a user stack copy.
    public private(set) var stackCopies: UInt64 = 0
    /// Times /proc/PID/maps was read.
    public private(set) var mapsReads: UInt64 = 0
    /// Re-read the maps of a process on an unknown address at most this often: a frame-pointer walk
    /// through code without frame pointers yields addresses that no mapping will ever hold.
    public var rereadIntervalNs: UInt64 = 100_000_000
    /// Unwinds stack copies as they arrive, so the trace holds interned stacks instead (nil: every
    /// copy is written for the reader to unwind).
    public var unwinder: (any StackCopyUnwinding)?
    /// Samples' copies are written for the reader even with an unwinder (record --unwind-later); the
    /// unwinder then serves wait stacks only (their copies have no place in the trace).
    public var samplesUnwoundLater = false
    /// Stack copies unwound here (their samples carry the unwound stack; no copy written).
    public private(set) var copiesUnwound: UInt64 = 0
    /// Stack copies the unwinder could not do now, by reason (a sample's copy is then written for the
    /// reader; a wait stack keeps its frame-pointer walk).
    public private(set) var copiesDeferred: [UnwindDeferral: UInt64] = [:]
    /// Samples processed after their process's maps had gone (it exited before they were processed).
    public private(set) var samplesAfterExit: UInt64 = 0
    /// Stack copies of an exited process whose unwinding ended in code never known (the sample keeps
    /// the kernel's frame-pointer walk where that is longer).
    public private(set) var stacksEndedInUnknownCode: UInt64 = 0
    /// How each unwound stack's frames were found (`stackUnwind` events), by stack id.
    public var unwindMethods: [UInt32: [UInt8]] { tables.unwindMethods }

    private struct MappingKey: Hashable {
        var start: UInt64, end: UInt64, offset: UInt64, inode: UInt64, path: String
    }

    private struct ProcessState {
        /// Known executable regions, sorted by start.
        var regions: [(start: UInt64, end: UInt64)] = []
        var known: Set<MappingKey> = []
        var lastReadNs: UInt64 = 0
        /// When its maps were last read (the monotonic clock; `lastReadNs` is the record's time).
        var readAtNs: UInt64 = 0
        var read = false
        var reads = 0
        /// Its maps read empty (a zombie) or could no longer be read after they had been: the process
        /// exited, perhaps seconds before its samples are processed. Its last known regions are kept
        /// until its exit is processed (`processExited`).
        var mapsGone = false
    }

    private var processes: [UInt32: ProcessState] = [:]
    private var buildIDs: [String: [UInt8]] = [:]  // "device inode" -> build id
    private var pending: [KernelEvent] = []

    /// A collector with empty tables.
    public init() {}

    /// Records the mappings of a process as they are now (at attach).
    public func processTraced(pid: UInt32, nowNs: UInt64) {
        refresh(pid: pid, atNs: nowNs, resetting: false)
    }

    /// A traced process forked: the child starts with the parent's mappings (a short-lived child may be
    /// gone before its own maps can be read), recorded for the child's pid.
    public func processForked(parent: UInt32, child: UInt32, atNs time: UInt64) {
        // A child known with regions had its own maps read (a record of it came first); one known without
        // them could not be read (gone) and still takes the parent's.
        guard processes[parent] != nil, processes[child]?.regions.isEmpty ?? true else { return }
        // What the parent mapped before the fork is the child's too: its maps are read again unless read
        // after the fork. A program forks just after its exec, which may have been processed before the
        // loader had mapped its libraries (the child's libc then was in no region known: its frames
        // '[unknown]'); only a parent reading its maps often (past its 20th read) is held to one read in 10 ms.
        if let p = processes[parent], !p.mapsGone, p.readAtNs < time, p.reads < 20 || monotonicNowNs() &- p.readAtNs >= 10_000_000 {
            refresh(pid: parent, atNs: time, resetting: false)
        }
        guard let p = processes[parent] else { return }
        if p.regions.isEmpty {
            // The parent's maps were never read (it exited before its exec was processed): the child's own
            // are the image it forked from, if it still lives.
            refresh(pid: child, atNs: time, resetting: true)
            if !(processes[child]?.regions.isEmpty ?? true) { return }
        }
        var state = ProcessState()
        state.regions = p.regions
        state.known = p.known
        state.lastReadNs = time
        state.read = true
        processes[child] = state
        unwinder?.forked(parent: parent, child: child, timeNs: time)
        var seen = Set<MappingKey>()
        for m in tables.mappings.reversed() where m.pid == parent {
            let key = MappingKey(start: m.start, end: m.end, offset: m.fileOffset, inode: 0, path: m.path)
            guard seen.insert(key).inserted, Self.contains(p.regions, m.start) else { continue }
            var e = KernelEvent(kind: .mapping, pid: child, tid: 0, timestampNs: time > 0 ? time - 1 : 0)
            e.mappingIndex = UInt32(tables.mappings.count)
            var copy = m
            copy.pid = child
            tables.mappings.append(copy)
            pending.append(e)
        }
    }

    /// Events produced outside `take` (by `processTraced`), moved into `events`.
    public func drain(into events: inout [KernelEvent]) {
        guard !pending.isEmpty else { return }
        events.append(contentsOf: pending)
        pending.removeAll(keepingCapacity: true)
    }

    /// Decodes a sample or exec record into `events` (with the mapping events it makes necessary).
    /// False if the record is of another kind (or too short).
    public func take(record: UnsafeRawPointer, size: Int, into events: inout [KernelEvent]) -> Bool {
        guard size >= 4 else { return false }
        let kind = record.loadUnaligned(as: UInt32.self)
        if kind == KP_RECORD_PROCESS_EXEC {
            guard size >= MemoryLayout<kp_exec_record>.size else { return false }
            let r = record.loadUnaligned(as: kp_exec_record.self)
            refresh(pid: r.tgid, atNs: r.time_ns, resetting: true)
            drain(into: &events)
            return true
        }
        if kind == KP_RECORD_WAIT_STACK { return takeWaitStack(record: record, size: size, into: &events) }
        guard kind == KP_RECORD_CPU_SAMPLE else { return false }
        let header = MemoryLayout<kp_sample_record>.offset(of: \kp_sample_record.frames)!
        guard size >= header else { return false }
        let stackBytes = Int(
            record.loadUnaligned(fromByteOffset: MemoryLayout<kp_sample_record>.offset(of: \kp_sample_record.stack_bytes)!, as: UInt32.self))
        let pid = record.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        let tid = record.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        let userCount = Int(record.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
        let kernelCount = Int(record.loadUnaligned(fromByteOffset: 14, as: UInt16.self))
        let time = record.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
        guard size >= header + 8 * (userCount + kernelCount) + stackBytes else { return false }
        samples += 1
        if processes[pid]?.mapsGone == true { samplesAfterExit += 1 }
        var e = KernelEvent(kind: .cpuSample, pid: pid, tid: tid, timestampNs: time)
        // The ring's records are 8-byte aligned and so is `frames`.
        let frames = (record + header).assumingMemoryBound(to: UInt64.self)
        let user = UnsafeBufferPointer(start: frames, count: userCount)
        e.userStack = tables.stacks.intern(user)
        e.kernelStack = tables.stacks.intern(UnsafeBufferPointer(start: frames + userCount, count: kernelCount))
        if userCount > 0 && hasUnknownAddress(pid: pid, user, atNs: time) {
            refresh(pid: pid, atNs: time, resetting: false)
            drain(into: &events)
        }
        if stackBytes >= 8 {
            stackCopies += 1
            // The copy keeps only words in known executable regions: keep the regions current (a
            // process maps its libraries just after exec; a sample's frame-pointer stack may hold
            // only its innermost frame and so never show an unknown address).
            if let p = processes[pid], time &- p.lastReadNs >= (p.reads < 20 ? rereadIntervalNs / 20 : rereadIntervalNs) {
                refresh(pid: pid, atNs: time, resetting: false)
                drain(into: &events)
            }
            let regs = record.loadUnaligned(
                fromByteOffset: MemoryLayout<kp_sample_record>.offset(of: \kp_sample_record.regs)!,
                as: kp_user_regs.self)
            let stack = UnsafeRawPointer(frames + userCount + kernelCount)
            let copy = keptWords(pid: pid, regs: regs, stack: stack, bytes: stackBytes)
            if Self.framePointersSuffice(copy, user, stackEnd: stackEnd(pid: pid, sp: regs.sp)) {
                copiesNotNeeded += 1
            } else if !samplesUnwoundLater, let stack = unwindNow(pid: pid, timeNs: time, copy: copy, walk: user, into: &events) {
                e.userStack = stack
            } else {
                e.stackCopy = tables.add(copy)
            }
        }
        events.append(e)
        return true
    }

    /// The id of the copy's stack unwound by `unwinder` (nil: none, or it cannot be done now: the
    /// copy is written). An address in no region known may be code mapped since the maps were read:
    /// they are read again (at most every 10 ms per process) and the copy unwound once more; maps
    /// read after the sample are conclusive (the address is not code).
    private func unwindNow(
        pid: UInt32, timeNs: UInt64, copy: StackCopy, walk: UnsafeBufferPointer<UInt64>, into events: inout [KernelEvent]
    ) -> UInt32? {
        guard let unwinder else { return nil }
        let exited = processes[pid]?.mapsGone ?? false
        var result = unwinder.unwind(pid: pid, timeNs: timeNs, copy: copy, framePointerStack: walk, exited: exited)
        if result.deferral == .unknownAddress, let p = processes[pid] {
            if !p.mapsGone && p.lastReadNs < timeNs && monotonicNowNs() &- p.lastReadNs >= 10_000_000 {
                refresh(pid: pid, atNs: timeNs, resetting: false)
                drain(into: &events)
                result = unwinder.unwind(
                    pid: pid, timeNs: timeNs, copy: copy, framePointerStack: walk, exited: processes[pid]?.mapsGone ?? false)
            }
            if result.deferral == .unknownAddress, let p = processes[pid] {
                if p.mapsGone {
                    // The process exited before this sample was processed: code mapped after its last live
                    // maps read stays unknown for good, and unwinding ended there short of what the
                    // kernel's walk went through: its walk is the better stack.
                    stacksEndedInUnknownCode += 1
                    return walk.count > result.stack.frames.count ? tables.stacks.intern(walk) : internUnwound(result.stack)
                }
                if p.lastReadNs >= timeNs { result.deferral = nil }
            }
        }
        if let why = result.deferral {
            copiesDeferred[why, default: 0] += 1
            return nil
        }
        return internUnwound(result.stack)
    }

    private func internUnwound(_ stack: UnwoundStack) -> UInt32 {
        copiesUnwound += 1
        let id = stack.frames.withUnsafeBufferPointer { tables.stacks.intern($0) }
        if id != 0 && tables.unwindMethods[id] == nil { tables.unwindMethods[id] = stack.methods }
        return id
    }

    /// A traced process exited (its samples were all processed before): it and what was known of its
    /// regions can go (its pid may be reused).
    public func processExited(pid: UInt32) {
        processes[pid] = nil
        unwinder?.exited(pid: pid)
    }

    /// Stack copies not written because the frame-pointer walk already had every caller.
    public private(set) var copiesNotNeeded: UInt64 = 0

    /// Whether the kernel's frame-pointer walk of a sample holds every caller its stack copy could
    /// give: it has callers, and every code address in the copy (a return address, or a code pointer
    /// kept in a frame) is one of them. Code without frame pointers leaves its callers' return
    /// addresses on the stack where the walk does not see them (it stops, or skips to an older frame
    /// whose %rbp survived), so its copies are kept; so are copies holding stray code pointers (the
    /// cautious side: bytes, never frames, are lost). Words from `copy.sp` up to `stackEnd` are
    /// pointers into the stack (saved frame pointers), not code.
    static func framePointersSuffice(_ copy: StackCopy, _ walk: UnsafeBufferPointer<UInt64>, stackEnd: UInt64) -> Bool {
        guard walk.count >= 2 else { return false }
        let callers = walk.dropFirst()
        for w in copy.words where !(w.value >= copy.sp && w.value < stackEnd) {
            if !callers.contains(w.value) { return false }
        }
        return true
    }

    /// Where the stack holding `sp` may end: `StackCopy.stackReach` above it, and never past the first
    /// known executable region above it (a stack holds no code). A thread's stack is memory its library
    /// mapped (glibc's pthread stacks), often a few MiB below the shared libraries: counted as pointers
    /// into the stack, the return addresses into them made the copy of a thread blocked in
    /// libpython look as if it held no code the walk had missed, and its stack ended at `_Py_read`.
    private func stackEnd(pid: UInt32, sp: UInt64) -> UInt64 {
        Self.stackEnd(processes[pid]?.regions ?? [], sp: sp)
    }

    static func stackEnd(_ regions: [(start: UInt64, end: UInt64)], sp: UInt64) -> UInt64 {
        let reach = sp.addingReportingOverflow(StackCopy.stackReach)
        var end = reach.overflow ? UInt64.max : reach.partialValue
        // The first region starting above sp.
        var lo = 0, hi = regions.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if regions[mid].start <= sp { lo = mid + 1 } else { hi = mid }
        }
        if lo < regions.count { end = min(end, regions[lo].start) }
        return end
    }

    /// The words of a stack copy an unwinder can use: values in an executable region of the process
    /// (return addresses) and pointers into the stack (saved frame pointers). The rest (data,
    /// spilled values) would only grow the trace.
    /// Of an exited process (maps gone), every user-space address is kept: JIT code mapped after its
    /// last maps read is in no region known, and its return addresses are what the unwinder follows.
    private func keptWords(pid: UInt32, regs: kp_user_regs, stack: UnsafeRawPointer, bytes: Int) -> StackCopy {
        let regions = processes[pid]?.regions ?? []
        let exited = processes[pid]?.mapsGone ?? false
        let end = Self.stackEnd(regions, sp: regs.sp)
        var words: [(index: UInt32, value: UInt64)] = []
        for i in 0..<(bytes / 8) {
            let v = stack.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)
            if (v >= regs.sp && v < end) || Self.contains(regions, v)
                || (exited && v >= 0x1_0000 && v < 0x8000_0000_0000)
            {
                words.append((UInt32(i), v))
            }
        }
        return StackCopy(ip: regs.ip, sp: regs.sp, bp: regs.bp, bytes: UInt32(bytes), words: words)
    }

    /// Wait stacks received.
    public private(set) var waitStacks: UInt64 = 0

    private func takeWaitStack(record: UnsafeRawPointer, size: Int, into events: inout [KernelEvent]) -> Bool {
        let header = MemoryLayout<kp_wait_stack_record>.offset(of: \kp_wait_stack_record.frames)!
        guard size >= header else { return false }
        let r = record.loadUnaligned(as: kp_wait_stack_record.self)
        let count = min(Int(r.user_count), Int(KP_SAMPLE_MAX_FRAMES))
        guard size >= header + 8 * count else { return false }
        waitStacks += 1
        var e = KernelEvent(kind: .waitStack, pid: r.tgid, tid: r.tid, timestampNs: r.time_ns)
        e.enterNs = r.time_ns >= r.duration_ns ? r.time_ns - r.duration_ns : 0
        e.waitCause = r.cause == UInt16(KP_WAIT_OFFCPU) ? 1 : 0
        if e.waitCause == 0 {
            e.nr = UInt32(bitPattern: r.nr)
        } else {
            let state = UInt32(bitPattern: r.nr)  // as kp_offcpu_record's: the syscall above bit 16
            e.offCPUState = UInt8(min(state & 0xFFFF, 3))
            e.offCPUSyscall = UInt16(truncatingIfNeeded: state >> 16)
        }
        e.fd = r.fd
        var frames = Array(UnsafeBufferPointer(start: (record + header).assumingMemoryBound(to: UInt64.self), count: count))
        if count > 0 && frames.withUnsafeBufferPointer({ hasUnknownAddress(pid: r.tgid, $0, atNs: r.time_ns) }) {
            refresh(pid: r.tgid, atNs: r.time_ns, resetting: false)
            drain(into: &events)
        }
        // A syscall's wait with a stack copy: unwound by CFI like a sample's, where the walk misses callers.
        let stackBytes = Int(r.stack_bytes)
        let full = MemoryLayout<kp_wait_stack_record>.size
        if stackBytes >= 8, stackBytes <= Int(KP_STACK_COPY_MAX), size >= full + stackBytes {
            waitStackCopies += 1
            let copy = keptWords(pid: r.tgid, regs: r.regs, stack: record + full, bytes: stackBytes)
            let unwound = frames.withUnsafeBufferPointer { walk -> UInt32? in
                if Self.framePointersSuffice(copy, walk, stackEnd: stackEnd(pid: r.tgid, sp: r.regs.sp)) { return nil }
                return unwindNow(pid: r.tgid, timeNs: r.time_ns, copy: copy, walk: walk, into: &events)
            }
            if let unwound {
                waitStacksUnwound += 1
                e.userStack = unwound
                events.append(e)
                return true
            }
        }
        // The walk starts at the caller's frame: a leaf without a frame pointer (libc's syscall wrappers)
        // hides its caller, whose return address is among the first words on the stack.
        if count > 0, let regions = processes[r.tgid]?.regions {
            let top = withUnsafeBytes(of: r.stack_top) { Array($0.bindMemory(to: UInt64.self)) }
            if let caller = top.first(where: { Self.contains(regions, $0) }), !frames.contains(caller) {
                frames.insert(caller, at: 1)
                leafCallersAdded += 1
            }
        }
        e.userStack = frames.withUnsafeBufferPointer { tables.stacks.intern($0) }
        events.append(e)
        return true
    }

    /// Wait stacks that carried a stack copy, and those whose stack was unwound from it by CFI.
    public private(set) var waitStackCopies: UInt64 = 0
    /// Wait stacks unwound from their copy by CFI.
    public private(set) var waitStacksUnwound: UInt64 = 0

    /// Wait stacks whose innermost frame's caller came from the top of the stack.
    public private(set) var leafCallersAdded: UInt64 = 0

    private func hasUnknownAddress(pid: UInt32, _ frames: UnsafeBufferPointer<UInt64>, atNs time: UInt64) -> Bool {
        guard let p = processes[pid] else { return true }
        guard time &- p.lastReadNs >= rereadIntervalNs else { return false }
        for a in frames where !Self.contains(p.regions, a) { return true }
        return false
    }

    private static func contains(_ regions: [(start: UInt64, end: UInt64)], _ a: UInt64) -> Bool {
        var lo = 0, hi = regions.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if regions[mid].start <= a { lo = mid + 1 } else { hi = mid }
        }
        return lo > 0 && a < regions[lo - 1].end
    }

    /// Reads the process's maps and emits a `mapping` for each executable region not seen before
    /// (all of them after an exec), stamped just before `time` so the reader has them by then.
    private func refresh(pid: UInt32, atNs time: UInt64, resetting: Bool) {
        var state = resetting ? ProcessState() : (processes[pid] ?? ProcessState())
        state.lastReadNs = time
        state.readAtNs = monotonicNowNs()
        state.read = true
        state.reads += 1
        defer { processes[pid] = state }
        mapsReads += 1
        guard let entries = ProcessMaps.executableRegions(pid: pid), !entries.isEmpty else {
            // Gone, or a zombie whose maps read empty: it exited (samples are processed late, seconds
            // in a debug build). What was known of it stays, or its later samples would lose their callers.
            if !state.regions.isEmpty { state.mapsGone = true }
            return
        }
        state.regions = entries.map { ($0.start, $0.end) }.sorted { $0.start < $1.start }
        for entry in entries {
            let key = MappingKey(
                start: entry.start, end: entry.end, offset: entry.fileOffset, inode: entry.inode,
                path: entry.path)
            guard state.known.insert(key).inserted else { continue }
            var buildID: [UInt8] = []
            if entry.inode != 0 {
                let cacheKey = "\(entry.device) \(entry.inode)"
                if let cached = buildIDs[cacheKey] {
                    buildID = cached
                } else {
                    buildID = ProcessMaps.buildID(pid: pid, entry: entry)
                    buildIDs[cacheKey] = buildID
                }
            } else if entry.path == "[vdso]" {
                // No file holds the kernel's vDSO: its build id lets a reader on the same kernel name its
                // functions (clock_gettime, which a program reading the time in a loop spends its time in).
                buildID = ELFNotes.buildID(memoryOf: pid, start: entry.start, end: entry.end)
            }
            var e = KernelEvent(kind: .mapping, pid: pid, tid: 0, timestampNs: time > 0 ? time - 1 : 0)
            e.mappingIndex = UInt32(tables.mappings.count)
            tables.mappings.append(
                RecordedMapping(
                    pid: pid, start: entry.start, end: entry.end,
                    fileOffset: entry.fileOffset, path: entry.path, buildID: buildID))
            pending.append(e)
            unwinder?.mapped(pid: pid, region: entry, buildID: buildID, timeNs: e.timestampNs)
        }
    }
}
