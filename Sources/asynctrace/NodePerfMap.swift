// Node names its JIT-compiled JS functions only in a perf map (/tmp/perf-PID.map) it writes when
// started with --perf-basic-prof-only-functions; `record` adds that flag (through NODE_OPTIONS, so
// it also reaches node started by a #! script such as npm) so that sampled JS frames can be named
// with their file:line, and --interpreted-frames-native-stack so that functions still running in
// the interpreter get a frame of their own in that map instead of all showing as V8's
// InterpreterEntryTrampoline. Nothing else about the program's start changes.
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
}
