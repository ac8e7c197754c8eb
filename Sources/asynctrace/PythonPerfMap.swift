// CPython 3.12+ names Python functions for native profilers only through its perf trampolines: with
// PYTHONPERFSUPPORT=1 every Python frame runs through a trampoline of its own, and the interpreter writes
// /tmp/perf-PID.map ("py::handle:/srv/app.py"), which names those frames at read time as Node's map does.
// `record` sets it for the program it launches when CPU samples are on (any python the program starts
// inherits it; other programs and older Pythons ignore it), unless the environment already sets it.
// Python 3.11 and older have no such support: their samples show only the interpreter's C functions.
// A process attached with --pid keeps the environment it was started with: `record` says so when it runs a
// CPython 3.12+ that writes no map.
import Glibc
import KernelProbes

enum PythonPerfMap {
    static let variable = "PYTHONPERFSUPPORT"

    /// `environment` with PYTHONPERFSUPPORT=1 added when `enabled` and not already set.
    static func adjust(_ environment: [String], enabled: Bool) -> [String] {
        guard enabled, !environment.contains(where: { $0.hasPrefix(variable + "=") }) else { return environment }
        return environment + [variable + "=1"]
    }

    /// The CPython version ("3.12") process `pid` runs when it is 3.12 or newer and writes no perf map
    /// (/tmp/perf-PID.map): attached, its Python functions stay unnamed. nil: another program, an older Python,
    /// one that writes its map, or a process /proc says nothing of.
    static func pythonWithoutMap(pid: Int32) -> String? {
        guard !PerfMapFile.isWritten(byProcess: pid), let regions = ProcessMaps.executableRegions(pid: UInt32(pid)) else {
            return nil
        }
        // The interpreter's binary (python3.12) or its library (libpython3.12.so.1.0), wherever installed.
        for region in regions {
            var base = Substring(region.path.split(separator: "/").last ?? "")
            if base.hasPrefix("lib") { base = base.dropFirst(3) }
            guard base.hasPrefix("python3.") else { continue }
            if let minor = Int(base.dropFirst("python3.".count).prefix { $0.isNumber }), minor >= 12 { return "3.\(minor)" }
        }
        return nil
    }
}
