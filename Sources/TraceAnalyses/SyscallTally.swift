// The syscalls made inside one stall or callback, by (syscall, fd or path): bounded, and nothing dropped.
import TraceFormat

/// A syscall (by number and fd) inside a stall or callback, with what the fd was at the time.
struct SyscallTally: Sendable {
    var nr: UInt64
    var fd: Int64
    var count: UInt64
    var ns: UInt64
    var bytes: UInt64
    var blockedNs: UInt64
    var detail: String?
    /// A failed open's or connect's errno (tallied by the path or address it asked for, once its fdOpen names it);
    /// 0 otherwise.
    var errno: UInt64 = 0
    /// An open made when the rows were full: merged into its path's row once named, else into `others`.
    var awaitingPath = false
    /// A wait on several fds (a poll of more than one, a select): how many it waited on (the most of its calls; 0
    /// for select, whose count is not recorded), and `fd` is the first it returned as ready (−1: none). nil otherwise.
    var severalFds: UInt64? = nil

    /// Distinct (syscall, fd or path) rows kept; a syscall's calls beyond them gather in its `others` row.
    static let maxDistinct = 32
    /// Rows kept in all: room for every distinct syscall a real stall makes after `maxDistinct` fds and paths
    /// (a crafted trace can name any number); beyond it calls gather in one `otherSyscalls` row.
    static let maxRows = 128
    /// `fd` of a syscall's row gathering its calls on fds or paths beyond the distinct rows kept.
    static let others = Int64.min
    /// `nr` of the row gathering calls of syscalls beyond `maxRows`.
    static let otherSyscalls = UInt64.max

    /// Adds one call. Before, calls beyond 32 distinct rows were dropped: a stall's 2,000 failed opens of
    /// import-like paths hid the 20 ms sleep after them, and the stall read "blocked outside traced syscalls".
    /// An open (`SyscallNames.opensPath`) is a row of its own until `named` gives its path; a failed one has
    /// `fd` −1 and its `errno`. Other calls are tallied by fd *life*: `detail` is what the fd is now (a number
    /// closed and reused in one stall, a subprocess's error pipe then a file, is another file: merging them put a
    /// 64 MiB file read under 'pipe').
    static func add(
        _ tallies: inout [SyscallTally], nr: UInt64, fd: Int64, errno: UInt64 = 0, severalFds: UInt64? = nil, ns: UInt64,
        bytes: UInt64, blockedNs: UInt64, detail: String?
    ) {
        let opens = SyscallNames.opensPath(nr)
        if !opens,
            let i = tallies.firstIndex(where: {
                $0.nr == nr && $0.fd == fd && $0.detail == detail && $0.errno == errno && ($0.severalFds == nil) == (severalFds == nil)
            })
        {
            tallies[i].add(count: 1, ns: ns, bytes: bytes, blockedNs: blockedNs)
            if let n = severalFds { tallies[i].severalFds = max(tallies[i].severalFds ?? 0, n) }
            return
        }
        let distinct = tallies.count { $0.fd != others && $0.nr != otherSyscalls }
        if distinct < maxDistinct && tallies.count < maxRows {
            tallies.append(
                SyscallTally(
                    nr: nr, fd: fd, count: 1, ns: ns, bytes: bytes, blockedNs: blockedNs, detail: opens ? nil : detail,
                    errno: errno, severalFds: severalFds))
            return
        }
        // Full: its syscall's row for other fds and paths, or (a syscall not seen in it yet) a row of its own.
        let full = tallies.count >= maxRows
        if opens && !full {
            // Its path may have a row already: it waits for its name (`named`); one open at a time waits.
            foldUnnamedOpens(&tallies)
            var t = SyscallTally(nr: nr, fd: fd, count: 1, ns: ns, bytes: bytes, blockedNs: blockedNs, detail: nil, errno: errno)
            t.awaitingPath = true
            tallies.append(t)
            return
        }
        if !full && !tallies.contains(where: { $0.nr == nr }) {
            tallies.append(
                SyscallTally(
                    nr: nr, fd: fd, count: 1, ns: ns, bytes: bytes, blockedNs: blockedNs, detail: opens ? nil : detail,
                    errno: errno, severalFds: severalFds))
            return
        }
        let key: (nr: UInt64, fd: Int64) = full ? (otherSyscalls, others) : (nr, others)
        if let i = tallies.firstIndex(where: { $0.nr == key.nr && $0.fd == key.fd }) {
            tallies[i].add(count: 1, ns: ns, bytes: bytes, blockedNs: blockedNs)
        } else {
            tallies.append(SyscallTally(nr: key.nr, fd: key.fd, count: 1, ns: ns, bytes: bytes, blockedNs: blockedNs, detail: nil))
        }
    }

    /// Opens made when full whose path was not given (or matched no row): into their syscall's `others` row.
    private static func foldUnnamedOpens(_ tallies: inout [SyscallTally]) {
        while let i = tallies.firstIndex(where: { $0.awaitingPath }) {
            let t = tallies.remove(at: i)
            intoOthers(&tallies, t)
        }
    }

    private static func intoOthers(_ tallies: inout [SyscallTally], _ t: SyscallTally) {
        if let o = tallies.firstIndex(where: { $0.nr == t.nr && $0.fd == others }) {
            tallies[o].add(count: t.count, ns: t.ns, bytes: t.bytes, blockedNs: t.blockedNs)
        } else {
            tallies.append(SyscallTally(nr: t.nr, fd: others, count: t.count, ns: t.ns, bytes: t.bytes, blockedNs: t.blockedNs, detail: nil))
        }
    }

    private mutating func add(count: UInt64, ns: UInt64, bytes: UInt64, blockedNs: UInt64) {
        self.count &+= count
        self.ns = self.ns.addingSaturated(ns)
        self.bytes = self.bytes.addingSaturated(bytes)
        self.blockedNs = self.blockedNs.addingSaturated(blockedNs)
    }

    /// The last open tallied (alone: opens are not merged before their path is known), which made `fd` (or failed
    /// with `errno`, fd −1), opened `path`: named, and merged into an earlier tally of an open of that path with
    /// that result.
    static func named(_ tallies: inout [SyscallTally], fd: Int64, errno: UInt64 = 0, path: String) {
        guard let i = tallies.lastIndex(where: { SyscallNames.opensPath($0.nr) && $0.fd == fd && $0.errno == errno }),
            tallies[i].detail == nil
        else { return }
        tallies[i].detail = path
        let t = tallies[i]
        guard
            let j = tallies.firstIndex(where: { $0.nr == t.nr && $0.fd == fd && $0.errno == errno && $0.detail == path }),
            j < i
        else {
            if t.awaitingPath { intoOthers(&tallies, tallies.remove(at: i)) }
            return
        }
        tallies[j].add(count: t.count, ns: t.ns, bytes: t.bytes, blockedNs: t.blockedNs)
        tallies.remove(at: i)
    }
}

extension SyscallTally {
    /// The call just tallied, `nr` on `fd` (connect, bind, listen), gave the socket `address`, which the kernel
    /// describes only after it: its row, if it is that call's alone, takes the address (merged into a row of the
    /// same call and address). A row of several calls stays as it is: the others were another life's.
    static func described(_ tallies: inout [SyscallTally], nr: UInt64, fd: Int64, address: String) {
        guard let i = tallies.lastIndex(where: { $0.nr == nr && $0.fd == fd }), tallies[i].count == 1,
            tallies[i].detail != address
        else { return }
        if let j = tallies.firstIndex(where: { $0.nr == nr && $0.fd == fd && $0.detail == address && $0.errno == tallies[i].errno }) {
            let t = tallies.remove(at: i)
            tallies[j < i ? j : j - 1].add(count: t.count, ns: t.ns, bytes: t.bytes, blockedNs: t.blockedNs)
        } else {
            tallies[i].detail = address
        }
    }
}

extension SyscallInCallback {
    init(_ t: SyscallTally) {
        let other = t.nr == SyscallTally.otherSyscalls
        self.init(
            name: other ? "other syscalls" : OffCPUReason.name(t.nr), fd: t.fd == SyscallTally.others ? -1 : t.fd,
            count: t.count, ns: t.ns, bytes: t.bytes, blockedNs: t.blockedNs, fdDetail: t.detail,
            errno: t.errno == 0 ? nil : ErrnoNames.name(t.errno), others: t.fd == SyscallTally.others,
            severalFds: t.fd == SyscallTally.others ? nil : t.severalFds)
    }
}
