// Which callback is running on each thread (per-thread before/after stacks), callback durations
// by resource type, the slowest callbacks, blocking callbacks and the syscalls made inside them.
import TraceFormat


struct CallbackFrame {
    var asyncID: UInt64
    var type: Int32
    var beforeNs: UInt64
    /// Syscalls made while this frame was innermost, by (nr, fd or path): `SyscallTally.add`.
    var syscalls: [SyscallTally] = []
    /// Off the CPU while it ran (nested callbacks' time included, as in its duration).
    var blockedNs: UInt64 = 0
    var runqueueNs: UInt64 = 0
    /// After an off-CPU episode whose switch-in was not seen: neither on nor off the CPU as far as the trace knows.
    var unknownNs: UInt64 = 0
    /// Its blocked stretches by the thread whose wakeup ended them.
    var wakes = ReasonAccum()
}

struct CallbackTracker {
    let options: AnalysisOptions
    /// Per user stream (index into reader.streams): the running callbacks, innermost last.
    var stacks: [[CallbackFrame]]
    var created: [UInt64] = []
    var destroyed: [UInt64] = []
    var durations: [LogHistogram] = []
    var slowest: TopN<CallbackRecord>
    var blockingLongest: TopN<CallbackRecord>
    var blockingCount: UInt64 = 0
    var blockingNs: UInt64 = 0
    /// after() with no matching before() on its thread.
    var unmatchedAfters: UInt64 = 0
    /// before() never closed: abandoned when the thread's loop went back to epoll (lost to damage or a bug).
    var abandonedFrames: UInt64 = 0

    init(streams: Int, options: AnalysisOptions) {
        self.options = options
        stacks = [[CallbackFrame]](repeating: [], count: streams)
        slowest = TopN(limit: options.top)
        blockingLongest = TopN(limit: options.top)
    }

    mutating func grow(streams: Int) {
        while stacks.count < streams { stacks.append([]) }
    }

    mutating func ensureType(_ t: Int32) {
        while durations.count <= Int(t) {
            created.append(0)
            destroyed.append(0)
            durations.append(LogHistogram())
        }
    }

    mutating func before(stream: Int, asyncID: UInt64, type: Int32, ns: UInt64) {
        stacks[stream].append(CallbackFrame(asyncID: asyncID, type: type, beforeNs: ns))
    }

    /// The loop of `stream` is between callbacks (polling or starting an iteration): nothing can be running.
    /// Frames still open lost their after() (damage); dropping them keeps later syscalls unattributed.
    mutating func loopIsIdle(stream: Int) {
        guard !stacks[stream].isEmpty else { return }
        abandonedFrames += UInt64(stacks[stream].count)
        stacks[stream].removeAll(keepingCapacity: true)
    }

    /// The innermost running callback on `stream`, if it began no later than `enterNs`.
    func running(stream: Int, enteredAt enterNs: UInt64) -> CallbackFrame? {
        guard let top = stacks[stream].last, top.beforeNs <= enterNs else { return nil }
        return top
    }

    mutating func noteSyscall(
        stream: Int, pid: UInt32, nr: UInt64, fd: Int64, errno: UInt64 = 0, severalFds: UInt64? = nil, ns: UInt64, bytes: UInt64,
        blockedNs: UInt64, fds: IOTracker
    ) {
        let last = stacks[stream].count - 1
        guard last >= 0 else { return }
        SyscallTally.add(
            &stacks[stream][last].syscalls, nr: nr, fd: fd, errno: errno, severalFds: severalFds, ns: ns, bytes: bytes,
            blockedNs: blockedNs,
            detail: SyscallNames.opensPath(nr) ? nil : fds.detail(pid: pid, fd: fd))
    }

    /// The open the running callback of `stream` just made (tallied by the fd it made) opened `path`.
    mutating func opened(stream: Int, fd: Int64, errno: UInt64 = 0, path: String) {
        let last = stacks[stream].count - 1
        guard last >= 0 else { return }
        SyscallTally.named(&stacks[stream][last].syscalls, fd: fd, errno: errno, path: path)
    }

    /// The running callback's last `nr` on `fd` (connect, bind, listen) gave the socket `address`.
    mutating func described(stream: Int, nr: UInt64, fd: Int64, address: String) {
        let last = stacks[stream].count - 1
        guard last >= 0 else { return }
        SyscallTally.described(&stacks[stream][last].syscalls, nr: nr, fd: fd, address: address)
    }

    /// The thread of `stream` was off the CPU from `outNs`: every running callback that began by then waited.
    mutating func noteOffCPU(
        stream: Int, outNs: UInt64, blockedNs: UInt64, runqueueNs: UInt64, unknownNs: UInt64, waker: UInt64?
    ) {
        var i = stacks[stream].count - 1
        while i >= 0 {
            if stacks[stream][i].beforeNs <= outNs {
                stacks[stream][i].blockedNs = stacks[stream][i].blockedNs.addingSaturated(blockedNs)
                stacks[stream][i].runqueueNs = stacks[stream][i].runqueueNs.addingSaturated(runqueueNs)
                stacks[stream][i].unknownNs = stacks[stream][i].unknownNs.addingSaturated(unknownNs)
                if blockedNs > 0 { stacks[stream][i].wakes.add(blockedNs, waker: waker) }
            }
            i -= 1
        }
    }

    /// Ends the callback `asyncID` on `stream`; returns its frame and duration.
    mutating func after(stream: Int, asyncID: UInt64, ns: UInt64) -> (CallbackFrame, UInt64)? {
        guard let i = stacks[stream].lastIndex(where: { $0.asyncID == asyncID }) else {
            unmatchedAfters += 1
            return nil
        }
        // Frames above a mismatched after() are abandoned (the recorder logged a nestingError).
        let frame = stacks[stream][i]
        stacks[stream].removeSubrange(i...)
        let d = ns >= frame.beforeNs ? ns - frame.beforeNs : 0
        ensureType(frame.type)
        durations[Int(frame.type)].record(d)
        return (frame, d)
    }

    static func syscalls(of frame: CallbackFrame) -> [SyscallInCallback] {
        frame.syscalls.sorted { $0.ns > $1.ns }.map(SyscallInCallback.init)
    }
}

extension CallbackRecord {
    /// Who ended its blocked stretches (the wakers' names are filled in once every thread's name is known).
    mutating func addWakes(_ a: ReasonAccum) {
        blockedWaits = a.count
        wokenBy = a.wakers.sorted { $0.ns > $1.ns }.map {
            WakerTime(thread: ThreadRef(pid: UInt32($0.key >> 32), tid: UInt32(truncatingIfNeeded: $0.key), name: nil), count: $0.count, ns: $0.ns)
        }
        wokenByInterrupt = a.unnamedCount
        wokenByInterruptNs = a.unnamedNs
    }
}
