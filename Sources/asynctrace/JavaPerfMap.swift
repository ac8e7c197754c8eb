// HotSpot names its JIT-compiled and interpreted Java methods for native profilers only in a perf map
// (/tmp/perf-PID.map) it writes at exit with -XX:+DumpPerfMapAtExit (a diagnostic option of JDK 17 and
// later), and its compiled code keeps a frame-pointer chain to unwind only with -XX:+PreserveFramePointer.
// `record` adds both through JAVA_TOOL_OPTIONS when CPU samples are on, so a JVM a script starts (mvnw,
// gradle, a service's launcher) gets them too, with -XX:+IgnoreUnrecognizedVMOptions so that an older JVM
// without them still starts. A JVM then prints "Picked up JAVA_TOOL_OPTIONS: ..." on stderr; one killed
// (SIGKILL) writes no map, and its Java frames stay unnamed. Other programs ignore the variable.
enum JavaPerfMap {
    static let variable = "JAVA_TOOL_OPTIONS"
    static let flags = [
        "-XX:+IgnoreUnrecognizedVMOptions", "-XX:+UnlockDiagnosticVMOptions", "-XX:+DumpPerfMapAtExit",
        "-XX:+PreserveFramePointer",
    ]

    /// `environment` with the flags appended to JAVA_TOOL_OPTIONS when `enabled`: those it lacks, and none
    /// the user turned off ("-XX:-PreserveFramePointer" stays the user's choice).
    static func adjust(_ environment: [String], enabled: Bool) -> [String] {
        guard enabled else { return environment }
        var env = environment
        let key = variable + "="
        let index = env.firstIndex { $0.hasPrefix(key) }
        let current = index.map { String(env[$0].dropFirst(key.count)) } ?? ""
        let words = Set(current.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init))
        let missing = flags.filter { flag in
            !words.contains(flag) && !words.contains("-XX:-" + flag.dropFirst(5))
        }
        guard !missing.isEmpty else { return env }
        let value = key + (current.isEmpty ? "" : current + " ") + missing.joined(separator: " ")
        if let index { env[index] = value } else { env.append(value) }
        return env
    }
}
