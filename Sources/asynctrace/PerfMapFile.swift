// A JIT's perf map (/tmp/perf-PID.map: Node's --perf-basic-prof, CPython's PYTHONPERFSUPPORT) names the process
// only by its pid, and nobody removes it: a map an earlier process with the same pid left behind (hundreds sit in
// /tmp of a busy machine) is not this process's. `record --pid` asks whether the process writes one.
import Glibc
import KernelProbes

enum PerfMapFile {
    /// Whether /tmp/perf-`pid`.map was written by process `pid`: it exists and was last written no earlier than a
    /// second before the process started (/proc/PID/stat's start time; /proc/stat's boot time is in whole
    /// seconds). A process /proc says nothing of keeps an existing map.
    static func isWritten(byProcess pid: Int32) -> Bool {
        var st = stat()
        guard stat("/tmp/perf-\(pid).map", &st) == 0 else { return false }
        guard let started = ProcessSnapshot.startRealtimeSeconds(pid: pid) else { return true }
        return Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9 >= started - 1
    }
}
