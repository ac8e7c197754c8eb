// `record --node-loop-phases`: the libuv loop's iterations and phases of every node process of the
// recording, from uprobes on node's own binary (no change to the program; works with --pid).
// Each process gets its own uprobes (filtered to it, so other node processes on the machine pay
// nothing): the launched program before it execs, an attached one at once, and every process the
// tree forks as soon as it runs an executable with libuv's symbols.
import KernelProbes
#if canImport(Glibc)
import Glibc
#endif

final class NodeLoopPhases {
    private let session: KernelProbeSession
    /// Processes that may still exec node: when first seen, and the executable last looked at.
    private var candidates: [Int32: (sinceNs: UInt64, exe: String)] = [:]
    private(set) var attached = Set<Int32>()
    private var failures: [String] = []
    /// How long a forked process is watched for an exec of node.
    static let watchNs: UInt64 = 5_000_000_000
    static let maxCandidates = 1024

    init(session: KernelProbeSession) { self.session = session }

    /// The launched program, held before exec: attached now if `program` is node itself (its
    /// first iteration included), else watched until it execs node (a script, `env node`).
    func addHeld(pid: Int32, program: String) {
        if session.attachLoopProbes(pid: pid, binary: program) == nil {
            attached.insert(pid)
        } else {
            watch(pid)
        }
    }

    /// A running process (--pid) or one just forked: attached if it runs node, else watched.
    func watch(_ pid: Int32) {
        guard pid > 0, !attached.contains(pid), candidates.count < Self.maxCandidates else { return }
        candidates[pid] = (monotonicNowNs(), "")
        poll()
    }

    /// Kernel events as they arrive: forks add candidates, exits end them.
    func note(_ events: ArraySlice<KernelEvent>) {
        for e in events {
            if e.kind == .processFork { watch(Int32(bitPattern: e.childPid)) }
            if e.kind == .processExit { candidates[Int32(bitPattern: e.pid)] = nil }
        }
    }

    /// Looks at the candidates whose executable changed (an exec) and attaches to those running node.
    func poll() {
        let now = monotonicNowNs()
        for (pid, c) in candidates {
            let exe = Self.executable(of: pid)
            if exe == nil || now &- c.sinceNs > Self.watchNs {
                candidates[pid] = nil  // gone, or not node after all
                continue
            }
            guard let exe, exe != c.exe else { continue }
            candidates[pid]?.exe = exe
            if let failure = session.attachLoopProbes(pid: pid) {
                if !failure.notLibuv {
                    candidates[pid] = nil
                    if failures.count < 4 { failures.append("process \(pid) (\(exe)): \(failure.why)") }
                }
            } else {
                candidates[pid] = nil
                attached.insert(pid)
            }
        }
    }

    /// One line for record's summary.
    var summary: String {
        var line =
            attached.isEmpty
            ? "node loop phases: no process ran node's libuv with its symbols (no uprobes attached)"
            : "node loop phases: uprobes on libuv in \(attached.count) process\(attached.count == 1 ? "" : "es")"
        if !failures.isEmpty { line += "; could not attach to " + failures.joined(separator: "; ") }
        return line
    }

    static func executable(of pid: Int32) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/\(pid)/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
