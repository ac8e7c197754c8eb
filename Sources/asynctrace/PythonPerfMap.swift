// CPython 3.12+ names Python functions for native profilers only through its perf trampolines: with
// PYTHONPERFSUPPORT=1 every Python frame runs through a trampoline of its own, and the interpreter writes
// /tmp/perf-PID.map ("py::handle:/srv/app.py"), which names those frames at read time as Node's map does.
// `record` sets it for the program it launches when CPU samples are on (any python the program starts
// inherits it; other programs and older Pythons ignore it), unless the environment already sets it.
// Python 3.11 and older have no such support: their samples show only the interpreter's C functions.
enum PythonPerfMap {
    static let variable = "PYTHONPERFSUPPORT"

    /// `environment` with PYTHONPERFSUPPORT=1 added when `enabled` and not already set.
    static func adjust(_ environment: [String], enabled: Bool) -> [String] {
        guard enabled, !environment.contains(where: { $0.hasPrefix(variable + "=") }) else { return environment }
        return environment + [variable + "=1"]
    }
}
