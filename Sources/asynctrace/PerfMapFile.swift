// A JIT's perf map (/tmp/perf-PID.map: Node's --perf-basic-prof, CPython's PYTHONPERFSUPPORT) names the process
// only by its pid, and nobody removes it: a map an earlier process with the same pid left behind (hundreds sit in
// /tmp of a busy machine) is not this process's. `record --pid` asks whether the process writes one.
import Glibc

enum PerfMapFile {
    /// Whether /tmp/perf-`pid`.map was written by process `pid`: it exists and was last written no earlier than a
    /// second before the process started (/proc/PID/stat's start time; /proc/stat's boot time is in whole
    /// seconds). A process /proc says nothing of keeps an existing map.
    static func isWritten(byProcess pid: Int32) -> Bool {
        var st = stat()
        guard stat("/tmp/perf-\(pid).map", &st) == 0 else { return false }
        guard let started = startRealtimeSeconds(pid: pid) else { return true }
        return Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9 >= started - 1
    }

    /// When process `pid` started, in seconds since the epoch (nil: /proc does not say).
    static func startRealtimeSeconds(pid: Int32) -> Double? {
        guard let stat = readSmallFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: UInt8(ascii: ")")) else {
            return nil
        }
        // After "pid (comm)": field 3 (state) onwards; the start time is field 22, in clock ticks since boot.
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 19, let ticks = UInt64(String(decoding: fields[fields.startIndex + 19], as: UTF8.self)) else {
            return nil
        }
        guard let procStat = readSmallFile("/proc/stat"),
            let line = procStat.split(separator: UInt8(ascii: "\n")).first(where: { $0.starts(with: Array("btime ".utf8)) }),
            let boot = UInt64(String(decoding: line.dropFirst(6).filter { $0 >= 0x30 && $0 <= 0x39 }, as: UTF8.self))
        else { return nil }
        let hz = sysconf(Int32(_SC_CLK_TCK))
        guard hz > 0 else { return nil }
        return Double(boot) + Double(ticks) / Double(hz)
    }

    private static func readSmallFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while out.count < 1 << 20 {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }
}
