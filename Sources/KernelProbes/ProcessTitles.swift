// Process titles: what a program wrote over its argv (postgres, nginx, setproctitle), read from /proc.
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// The titles of the traced processes, read from /proc/PID/cmdline by the recorder (the probes see only
/// comm, which a title does not change): at attach, and a few times after a fork, since a program sets its
/// title right after it forks. A title is said (a processTitle event) only where the command line differs
/// from the one the process was exec'd with; a process that execs takes its new command line as that.
/// Reading happens on the recorder's drain thread, between polls; the traced processes never wait for it.
struct ProcessTitleWatch {
    struct Tracked {
        /// The command line it was exec'd with, as far as is known (a forked child: its parent's).
        var baseline: [UInt8]
        /// /proc/PID/exe's link text when `baseline` was set: another one means it exec'd since.
        var exe: [UInt8]?
        /// Its parent (0: not known).
        var parent: UInt32
        /// The title said last ([]: none).
        var said: [UInt8] = []
        /// Re-reads still to come, and when the next is due.
        var rereadsLeft = 0
        var nextNs: UInt64 = 0
    }

    /// At most this many processes are watched (a fork bomb does not grow the recorder without bound);
    /// those beyond are not given titles, and counted.
    static let maxTracked = 4096
    /// A forked child is read again this long after its fork, then after each further delay.
    static let rereadDelaysNs: [UInt64] = [2_000_000, 20_000_000, 200_000_000, 1_000_000_000]
    /// What of /proc/PID/cmdline is read (a title is shown in at most 128 bytes anyway).
    static let readLimit = 4096

    private(set) var tracked: [UInt32: Tracked] = [:]
    /// Processes not watched because `maxTracked` were.
    private(set) var notTracked: UInt64 = 0

    /// The processes found at attach, parents first: a process running its parent's program (same exe)
    /// is compared with the parent's command line, any other with its own (it is taken as exec'd so).
    mutating func attach(pid: UInt32, parent: UInt32, nowNs: UInt64) -> KernelEvent? {
        guard let line = Self.commandLine(pid) else { return nil }
        let exe = Self.exe(pid)
        var t = Tracked(baseline: line, exe: exe, parent: parent)
        if let p = tracked[parent], p.exe != nil, p.exe == exe { t.baseline = p.baseline }
        return track(pid, t, line: line, nowNs: nowNs)
    }

    /// A traced process forked: the child is read again a few times from now.
    mutating func forked(parent: UInt32, child: UInt32, nowNs: UInt64) {
        guard tracked[child] == nil else { return }
        guard tracked.count < Self.maxTracked else {
            notTracked &+= 1
            return
        }
        var t: Tracked
        if let p = tracked[parent] {
            t = Tracked(baseline: p.baseline, exe: p.exe, parent: parent)
        } else {
            // Its parent was not watched: the child's command line now stands for its exec'd one.
            guard let line = Self.commandLine(child) else { return }
            t = Tracked(baseline: line, exe: Self.exe(child), parent: parent)
        }
        t.rereadsLeft = Self.rereadDelaysNs.count
        t.nextNs = nowNs &+ Self.rereadDelaysNs[0]
        tracked[child] = t
    }

    mutating func exited(pid: UInt32) { tracked[pid] = nil }

    /// Whether a re-read is due by `nowNs`.
    func anyDue(nowNs: UInt64) -> Bool { tracked.values.contains { $0.rereadsLeft > 0 && $0.nextNs <= nowNs } }

    /// Re-reads the processes due by `nowNs`; a processTitle event for each whose title changed.
    mutating func reread(nowNs: UInt64) -> [KernelEvent] {
        var out: [KernelEvent] = []
        for pid in tracked.keys.sorted() {
            guard var t = tracked[pid], t.rereadsLeft > 0, t.nextNs <= nowNs else { continue }
            t.rereadsLeft -= 1
            let step = Self.rereadDelaysNs.count - t.rereadsLeft
            if t.rereadsLeft > 0 { t.nextNs = nowNs &+ Self.rereadDelaysNs[step] }
            guard let line = Self.commandLine(pid) else {
                tracked[pid] = nil  // gone
                continue
            }
            let exe = Self.exe(pid)
            if exe != t.exe {
                // It exec'd: this is the command line it was started with, not a title.
                t.exe = exe
                t.baseline = line
            }
            tracked[pid] = t
            if let e = track(pid, t, line: line, nowNs: monotonicNowNs()) { out.append(e) }
        }
        return out
    }

    /// Stores `t` and says the title `line` makes, if it changed.
    private mutating func track(_ pid: UInt32, _ t: Tracked, line: [UInt8], nowNs: UInt64) -> KernelEvent? {
        var t = t
        let title = line == t.baseline ? [] : line
        defer { tracked[pid] = t }
        guard title != t.said else { return nil }
        t.said = title
        var e = KernelEvent(kind: .processTitle, pid: pid, tid: 0, timestampNs: nowNs)
        e.parentPid = t.parent
        e.setDetail(title)
        return e
    }

    /// /proc/PID/cmdline as one line: its NULs as spaces, trailing NULs and spaces dropped, at most
    /// `readLimit` bytes read. Nil if it cannot be read (gone; a kernel thread's is empty).
    static func commandLine(_ pid: UInt32) -> [UInt8]? {
        guard var bytes = ProcessSnapshot.readSmallFile("/proc/\(pid)/cmdline", limit: readLimit) else { return nil }
        if bytes.count > readLimit { bytes.removeLast(bytes.count - readLimit) }
        while let last = bytes.last, last == 0 || last == UInt8(ascii: " ") { bytes.removeLast() }
        guard !bytes.isEmpty else { return nil }
        for i in bytes.indices where bytes[i] == 0 { bytes[i] = UInt8(ascii: " ") }
        return bytes
    }

    /// /proc/PID/exe's link text (readlink follows nothing).
    static func exe(_ pid: UInt32) -> [UInt8]? {
        ProcessSnapshot.readLink("/proc/\(pid)/exe").map { Array($0.utf8) }
    }
}
