// A JIT's perf map (/tmp/perf-PID.map: Node, CPython 3.12+, a JVM) names its code by pid alone and outlives the
// process: a report made later, or on another machine, cannot tell whose map it reads. The recorder copies each
// traced process's map into the trace when it stops (and into each flight dump), so the trace names its JIT
// frames on its own. The recorder may run as root (sudo) while /tmp is anyone's: a map is copied only if it is a
// regular file under that name alone (no link), owned by the process's user, and written since it started.
import Glibc

/// Who a traced process is, for telling its perf map from one another process with the same pid left behind.
package struct PerfMapOwner: Sendable, Equatable {
    /// The process's user (its effective uid, as /proc/PID's owner says).
    package var uid: UInt32
    /// When it started (seconds since the epoch): a map last written before that is not its.
    package var startedAtSeconds: Double
}

/// A traced process's perf map, read for copying into the trace.
package enum PerfMapCopy {
    /// A map is read up to this many bytes (whole lines); the rest is left out and counted.
    package static let maxBytes = 64 << 20

    /// The owner of live process `pid` from /proc (nil: /proc says nothing of it).
    package static func owner(ofLiveProcess pid: UInt32) -> PerfMapOwner? {
        var st = stat()
        guard stat("/proc/\(pid)", &st) == 0, let started = ProcessSnapshot.startRealtimeSeconds(pid: Int32(bitPattern: pid)) else {
            return nil
        }
        return PerfMapOwner(uid: st.st_uid, startedAtSeconds: started)
    }

    /// The whole lines of `directory`/perf-`pid`.map if process `pid` (`owner`) wrote it, and whether some were
    /// left out (beyond `limit`). nil: there is none, or it is not the process's (a link, a file with other names,
    /// another user's, or last written more than a second before the process started: /proc's start time is
    /// to about a second).
    package static func read(
        pid: UInt32, owner: PerfMapOwner, directory: String = "/tmp", limit: Int = maxBytes
    ) -> (text: [UInt8], cut: Bool)? {
        // O_NONBLOCK: a FIFO planted under the name must not hang the recorder (it is refused below).
        let fd = open("\(directory)/perf-\(pid).map", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_nlink == 1, st.st_uid == owner.uid,
            Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9 >= owner.startedAtSeconds - 1
        else { return nil }
        var text: [UInt8] = []
        text.reserveCapacity(min(Int(clamping: st.st_size), limit))
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        var cut = false
        while true {
            let n = Glibc.read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if text.count + n > limit {
                text.append(contentsOf: buf[0..<(limit - text.count)])
                cut = true
                break
            }
            text.append(contentsOf: buf[0..<n])
        }
        // Whole lines only: the process may be writing its next one.
        if let end = text.lastIndex(of: UInt8(ascii: "\n")) {
            text.removeSubrange((end + 1)...)
        } else {
            text.removeAll()
        }
        return (text, cut)
    }
}
