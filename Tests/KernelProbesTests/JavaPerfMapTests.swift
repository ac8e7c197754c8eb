// `record` asks a JVM for the perf map that names its Java methods (JAVA_TOOL_OPTIONS: -XX:+DumpPerfMapAtExit,
// -XX:+PreserveFramePointer): without it a Java server's samples and waits were "[anon]+0x925f ← [anon]+0x9373".
import Foundation
import Testing

@Suite(.serialized) struct JavaPerfMapTests {
    /// The options reach the program (any program: a script may start the JVM), after the user's own, and an
    /// option the user turned off stays off.
    @Test func theJVMOptionsReachTheProgramAndKeepTheUsersOwn() throws {
        try requireKernel("theJVMOptionsReachTheProgramAndKeepTheUsersOwn")
        let out = temporaryPath("java-tool-options.txt"), trace = temporaryPath("java-tool-options.atrace")
        defer { for p in [out, trace] { try? FileManager.default.removeItem(atPath: p) } }
        let script = "printf '%s' \"$JAVA_TOOL_OPTIONS\" > \(out)"
        var r = try runCapturing(try asynctrace(), ["record", "-o", trace, "--", "/bin/sh", "-c", script])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(
            try String(contentsOfFile: out, encoding: .utf8)
                == "-XX:+IgnoreUnrecognizedVMOptions -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit -XX:+PreserveFramePointer")
        setenv("JAVA_TOOL_OPTIONS", "-Xmx64m -XX:-PreserveFramePointer", 1)
        defer { unsetenv("JAVA_TOOL_OPTIONS") }
        r = try runCapturing(try asynctrace(), ["record", "-o", trace, "--", "/bin/sh", "-c", script])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(
            try String(contentsOfFile: out, encoding: .utf8)
                == "-Xmx64m -XX:-PreserveFramePointer -XX:+IgnoreUnrecognizedVMOptions -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit")
        r = try runCapturing(try asynctrace(), ["record", "--no-perf-map", "-o", trace, "--", "/bin/sh", "-c", script])
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "-Xmx64m -XX:-PreserveFramePointer")
    }

    /// A real JVM (when this machine has a JDK: CI installs none): the method burning the CPU is named.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/javac"), "no JDK (javac) on this machine"))
    func aJavaMethodIsNamedInTheReport() throws {
        try requireKernel("aJavaMethodIsNamedInTheReport")
        let dir = temporaryPath("java-perf-map")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
        public class Burn {
            static double burnForTheTest(long ns) { double x = 0; long end = System.nanoTime() + ns; while (System.nanoTime() < end) x += Math.sin(x); return x; }
            public static void main(String[] a) { double s = 0; for (int i = 0; i < 6; i++) s += burnForTheTest(100_000_000L); System.out.println(s); }
        }
        """.write(toFile: dir + "/Burn.java", atomically: true, encoding: .utf8)
        let javac = try runCapturing("/usr/bin/javac", ["-d", dir, dir + "/Burn.java"], timeout: 120)
        try #require(javac.status == 0, "javac: \(javac.stderr)")
        let trace = dir + "/burn.atrace"
        let r = try runCapturing(try asynctrace(), ["record", "-o", trace, "--", "/usr/bin/java", "-cp", dir, "Burn"], timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        let json = try runCapturing(try asynctrace(), ["report", "--json", trace])
        let root = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let threads = try #require(root["threads"] as? [[String: Any]])
        let frames = threads.flatMap { t in ((t["stacks"] as? [[String: Any]]) ?? []).flatMap { ($0["frames"] as? [[String: Any]]) ?? [] } }
        #expect(frames.contains { ($0["function"] as? String ?? "").contains("Burn.burnForTheTest") }, "\(frames.prefix(40))")
        // The program's own method is its hot function, not the JVM's interpreter or the JDK's code.
        let hot = threads.compactMap { ($0["hot_function"] as? [String: Any])?["function"] as? String }
        #expect(hot.contains { $0.contains("Burn.burnForTheTest") }, "\(hot)")
    }
}
