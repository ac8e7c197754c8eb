// Names for the threads outside the traced tree that wake traced ones.
//
// An offCPU's waker is often not a traced thread: a kernel thread completing I/O (kworker, ksoftirqd),
// another program writing to a pipe, the recorder signalling the program. The probes give only its pid and
// tid, and a report said "woken by tid 17521". The recorder reads the waker's comm from /proc once, at its
// first wakeup seen, while the thread most likely still exists, and writes it as a wakerName event.

struct WakerNames {
    /// Wakers already named, or found gone (each is read once).
    private var seen = Set<UInt64>()
    /// At most this many wakers are named; later ones keep their tid (a crafted or pathological program
    /// with a new waker thread for every wakeup costs one /proc read each up to here, then nothing).
    static let maxWakers = 65_536

    /// Wakers left unnamed because `maxWakers` were named.
    private(set) var beyondBound: UInt64 = 0

    /// Appends a wakerName for each waker of `events[start...]` seen for the first time that is outside the
    /// traced tree (`isTraced` of its pid false) and still has a comm to read.
    mutating func name(_ events: inout [KernelEvent], from start: Int, isTraced: (UInt32) -> Bool) {
        let end = events.count
        var i = start
        while i < end {
            let e = events[i]
            i += 1
            guard e.kind == .offCPU, e.wakerTid != 0 else { continue }
            let key = UInt64(e.wakerPid) << 32 | UInt64(e.wakerTid)
            guard !seen.contains(key) else { continue }
            guard seen.count < Self.maxWakers else {
                beyondBound &+= 1
                continue
            }
            seen.insert(key)
            guard !isTraced(e.wakerPid),
                let comm = ProcessSnapshot.readSmallFile("/proc/\(e.wakerPid)/task/\(e.wakerTid)/comm", limit: 64),
                !comm.isEmpty
            else { continue }
            var n = KernelEvent(kind: .wakerName, pid: e.wakerPid, tid: e.wakerTid, timestampNs: e.timestampNs)
            n.setDetail(comm.last == UInt8(ascii: "\n") ? comm.dropLast() : comm[...])
            events.append(n)
        }
    }
}
