// For a flight recorder: what the kernel stream has said is alive (thread names, open fds), so a
// dump whose window begins after those events can say it again at the window's start.
import TraceFormat

struct KernelFlightState {
    /// A thread's names, latest last (at most two kept: enough to know the name at a window start
    /// before the latest rename), and when the thread ended.
    struct Thread {
        var names: [(name: String, sinceNs: UInt64)] = []
        var exitNs: UInt64?
    }

    /// One life of an fd: the fdOpen that began it (connect's details folded in) and its end.
    struct FDLife {
        var event: KernelEvent
        var openNs: UInt64
        var closedNs: UInt64?
    }

    var threads: [UInt64: Thread] = [:]
    var fds: [UInt64: [FDLife]] = [:]
    /// Every traced process's latest processTitle, kept while a thread of it is kept.
    var titles: [UInt32: KernelEvent] = [:]
    /// Wakers outside the traced tree by thread, their wakerName (the recorder names each once; at most
    /// `maxWakerNames`, as it bounds them, so kept for the whole recording).
    var wakerNames: [UInt64: KernelEvent] = [:]
    static let maxWakerNames = 65_536
    /// What ended longer ago than this (before any window a dump can have) is forgotten.
    var retentionNs: UInt64
    private var notedSinceSweep = 0

    init(retentionNs: UInt64) { self.retentionNs = retentionNs }

    static func key(_ pid: UInt32, _ low: UInt32) -> UInt64 { UInt64(pid) << 32 | UInt64(low) }

    mutating func note(_ e: KernelEvent) {
        switch e.kind {
        case .wakerName:
            if wakerNames.count < Self.maxWakerNames { wakerNames[Self.key(e.pid, e.tid)] = e }
        case .threadName:
            var t = threads[Self.key(e.pid, e.tid)] ?? Thread()
            t.names.append((e.detail, e.timestampNs))
            if t.names.count > 2 { t.names.removeFirst() }
            t.exitNs = nil
            threads[Self.key(e.pid, e.tid)] = t
            notedSinceSweep += 1
        case .threadExit:
            threads[Self.key(e.pid, e.tid)]?.exitNs = e.timestampNs
        case .processTitle:
            titles[e.pid] = e
            notedSinceSweep += 1
        case .processExit:
            for (k, t) in threads where k >> 32 == UInt64(e.pid) && t.exitNs == nil { threads[k]!.exitNs = e.timestampNs }
            for (k, lives) in fds where k >> 32 == UInt64(e.pid) && lives.last?.closedNs == nil {
                fds[k]![lives.count - 1].closedNs = e.timestampNs
            }
        case .fdOpen where e.fd >= 0:  // (a failed open begins no life)
            let k = Self.key(e.pid, UInt32(bitPattern: e.fd))
            var lives = fds[k] ?? []
            if e.sourceFd == e.fd, let last = lives.last, last.closedNs == nil {
                // connect: the same life, now with its addresses.
                var updated = e
                updated.fdKind = last.event.fdKind
                updated.sourceFd = last.event.sourceFd
                lives[lives.count - 1].event = updated
            } else {
                if let last = lives.last, last.closedNs == nil { lives[lives.count - 1].closedNs = e.timestampNs }
                lives.append(FDLife(event: e, openNs: e.timestampNs))
                if lives.count > 2 { lives.removeFirst() }
            }
            fds[k] = lives
            notedSinceSweep += 1
        case .syscall where e.ret == 0 && e.nr == 3:  // close
            close(pid: e.pid, fd: e.fd, at: e.timestampNs)
        case .syscall where e.ret == 0 && e.nr == 436 && (e.size >> 32) & 4 == 0:  // close_range, not CLOEXEC
            let last = Int64(e.size & 0xFFFF_FFFF)
            for (k, lives) in fds where k >> 32 == UInt64(e.pid) && lives.last?.closedNs == nil {
                let fd = Int64(Int32(bitPattern: UInt32(truncatingIfNeeded: k)))
                if fd >= Int64(e.fd) && fd <= last { fds[k]![lives.count - 1].closedNs = e.timestampNs }
            }
        default:
            break
        }
        if notedSinceSweep > 4096 { sweep(nowNs: e.timestampNs) }
    }

    private mutating func close(pid: UInt32, fd: Int32, at ns: UInt64) {
        let k = Self.key(pid, UInt32(bitPattern: fd))
        guard let lives = fds[k], lives.last?.closedNs == nil, !lives.isEmpty else { return }
        fds[k]![lives.count - 1].closedNs = ns
    }

    /// Forgets threads and fds that ended before any window still possible.
    mutating func sweep(nowNs: UInt64) {
        notedSinceSweep = 0
        let horizon = nowNs > retentionNs ? nowNs - retentionNs : 0
        threads = threads.filter { ($0.value.exitNs ?? .max) >= horizon }
        let pids = Set(threads.keys.map { UInt32($0 >> 32) })
        titles = titles.filter { pids.contains($0.key) }
        fds = fds.compactMapValues { lives in
            let kept = lives.filter { ($0.closedNs ?? .max) >= horizon }
            return kept.isEmpty ? nil : kept
        }
    }

    /// threadName, processTitle and fdOpen (tid 0, as at attach) events for what was alive at `atNs`, and the
    /// wakerName of every waker named before it, stamped `atNs`.
    func events(atNs: UInt64) -> [KernelEvent] {
        var out: [KernelEvent] = []
        for (_, w) in wakerNames.sorted(by: { $0.key < $1.key }) where w.timestampNs < atNs {
            var e = w
            e.timestampNs = atNs
            out.append(e)
        }
        for (k, t) in threads.sorted(by: { $0.key < $1.key }) where (t.exitNs ?? .max) >= atNs {
            guard let name = t.names.last(where: { $0.sinceNs < atNs })?.name ?? t.names.first?.name else { continue }
            var e = KernelEvent(kind: .threadName, pid: UInt32(k >> 32), tid: UInt32(truncatingIfNeeded: k), timestampNs: atNs)
            e.detail = name
            out.append(e)
            if var title = titles[e.pid], title.detailLength > 0, e.pid == e.tid {
                title.timestampNs = atNs
                out.append(title)
            }
        }
        for (_, lives) in fds.sorted(by: { $0.key < $1.key }) {
            guard let life = lives.last(where: { $0.openNs < atNs && ($0.closedNs ?? .max) >= atNs }) else { continue }
            var e = life.event
            e.timestampNs = atNs
            e.tid = 0
            out.append(e)
        }
        return out
    }
}
