// Node names its JIT-compiled JS functions only in a perf map (/tmp/perf-PID.map) it writes when
// started with --perf-basic-prof-only-functions; `record` adds that flag (through NODE_OPTIONS, so
// it also reaches node started by a #! script such as npm) so that sampled JS frames can be named
// with their file:line, and --interpreted-frames-native-stack so that functions still running in
// the interpreter get a frame of their own in that map instead of all showing as V8's
// InterpreterEntryTrampoline. Nothing else about the program's start changes. A node attached with --pid
// keeps the flags it was started with: `record` says so when it writes no map.
import Glibc

enum NodePerfMap {
    static let flags = ["--perf-basic-prof-only-functions", "--interpreted-frames-native-stack"]

    /// `environment` with the flags appended to NODE_OPTIONS when `program` is Node, or `force` (--node: a shell
    /// or script that starts node, which gets the hooks the same way).
    static func adjust(_ environment: [String], program: String, force: Bool = false, enabled: Bool) -> [String] {
        guard enabled, force || NodeLaunch.isNode(program) else { return environment }
        var env = environment
        let key = "NODE_OPTIONS="
        let index = env.firstIndex { $0.hasPrefix(key) }
        let current = index.map { String(env[$0].dropFirst(key.count)) } ?? ""
        let words = current.split(separator: " ").map(String.init)
        let missing = flags.filter { !words.contains($0) && !($0 == flags[0] && words.contains("--perf-basic-prof")) }
        guard !missing.isEmpty else { return env }
        let value = key + (current.isEmpty ? "" : current + " ") + missing.joined(separator: " ")
        if let index { env[index] = value } else { env.append(value) }
        return env
    }

    /// Whether process `pid` runs node (its executable's name) and writes no perf map (/tmp/perf-PID.map):
    /// attached, its JS functions stay unnamed in CPU samples. Only links in /proc are read.
    static func nodeWithoutMap(pid: Int32) -> Bool {
        guard !PerfMapFile.isWritten(byProcess: pid) else { return false }
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/\(pid)/exe", &buf, buf.count)
        guard n > 0 else { return false }
        let path = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return NodeLaunch.isNodeName(path.split(separator: "/").last.map(String.init) ?? path)
    }
}
