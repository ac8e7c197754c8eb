import Foundation
import Testing
@testable import KernelProbes

/// A forked child (no exec) starts with its parent's regions: the collector records them for the child
/// when the fork is processed, so a short-lived child's frames are named after it is gone. Real processes
/// and their real /proc/PID/maps: a parent that loads a library, then forks.
@Suite(.serialized) struct ForkedProcessMapsTests {
    /// After a byte on stdin: loads the library argv[1] and forks; prints the child's pid and the
    /// CLOCK_MONOTONIC time of the fork. "wait": the child exits at once, the parent reaps it, says
    /// "reaped" and stays until stdin closes. "leave": the parent exits, the child stays until stdin closes.
    private static let forker = """
        #include <dlfcn.h>
        #include <stdio.h>
        #include <time.h>
        #include <unistd.h>
        #include <sys/wait.h>
        int main(int argc, char **argv) {
            char c;
            if (argc < 3 || read(0, &c, 1) != 1) return 1;
            void *h = dlopen(argv[1], RTLD_NOW);
            if (!h || !dlsym(h, "lib_nap")) return 2;
            int leave = argv[2][0] == 'l';
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            pid_t child = fork();
            if (child == 0) {
                if (leave) read(0, &c, 1);
                _exit(0);
            }
            printf("%d %lld\\n", (int)child, (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
            fflush(stdout);
            if (leave) return 0;
            waitpid(child, 0, 0);
            printf("reaped\\n");
            fflush(stdout);
            read(0, &c, 1);
            return 0;
        }
        """

    private static let library = """
        #include <time.h>
        __attribute__((noinline)) int lib_nap(long ms) { struct timespec ts = {0, ms * 1000000L}; nanosleep(&ts, 0); return 1; }
        """

    /// The program, spawned with pipes on its stdin and stdout.
    private struct Forker {
        let pid: pid_t
        let input: Int32, output: Int32
        var buffered = ""
        var reaped = false

        init(_ exe: String, _ args: [String]) throws {
            var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
            try #require(pipe(&toChild) == 0 && pipe(&fromChild) == 0)
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
            posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
            posix_spawn_file_actions_addclose(&actions, toChild[1])
            posix_spawn_file_actions_addclose(&actions, fromChild[0])
            let argv: [UnsafeMutablePointer<CChar>?] = ([exe] + args).map { strdup($0) } + [nil]
            defer { for a in argv { free(a) } }
            var pid: pid_t = 0
            let r = posix_spawn(&pid, exe, &actions, nil, argv, environ)
            close(toChild[0])
            close(fromChild[1])
            try #require(r == 0, "posix_spawn: \(r)")
            self.pid = pid
            input = toChild[1]
            output = fromChild[0]
        }

        /// The next line the program printed.
        mutating func line() throws -> String {
            while !buffered.contains("\n") {
                var bytes = [UInt8](repeating: 0, count: 256)
                let n = read(output, &bytes, bytes.count)
                if n <= 0 { throw TestFailure("the program ended early") }
                buffered += String(decoding: bytes[0..<n], as: UTF8.self)
            }
            let i = buffered.firstIndex(of: "\n")!
            defer { buffered = String(buffered[buffered.index(after: i)...]) }
            return String(buffered[..<i])
        }

        func go() { _ = write(input, "x", 1) }

        /// Waits for the program's exit.
        mutating func reap() {
            guard !reaped else { return }
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            reaped = true
        }

        /// Closes its stdin (the program, or its child, ends) and waits for its exit.
        mutating func finish() {
            close(input)
            reap()
            close(output)
        }
    }

    private static func build() throws -> (exe: String, library: String) {
        let lib = try compileC(library, name: "forked-maps-lib.so", flags: ["-O2", "-shared", "-fPIC"])
        let exe = try compileC(forker, name: "forked-maps", flags: ["-O2"], libraries: ["-ldl"])
        return (exe, lib)
    }

    /// Until the dynamic loader has mapped libc into `pid`.
    private static func awaitLibc(_ pid: Int32) {
        for _ in 0..<1_000 where !(ProcessMaps.executableRegions(pid: UInt32(pid)) ?? []).contains(where: { $0.path.contains("libc") }) {
            usleep(1_000)
        }
    }

    private static func childPaths(_ collector: SampleCollector, _ child: UInt32) -> [String] {
        collector.tables.mappings.filter { $0.pid == child }.map(\.path)
    }

    /// The parent's maps were read (at its exec, or a sample) before it loaded a library, and it forked
    /// a few ms later: the child's regions are the parent's at the fork, the library's among them. (They
    /// were the parent's at its last read whenever that was less than 10 ms before the fork was
    /// processed: the child's frames in code loaded since were '[unknown]'.) A few rounds, as the
    /// processing's timing varies.
    @Test func aForkedChildHasWhatItsParentMappedBeforeTheFork() throws {
        let (exe, lib) = try Self.build()
        for _ in 0..<5 {
            var forker = try Forker(exe, [lib, "wait"])
            defer { forker.finish() }
            let parent = forker.pid
            Self.awaitLibc(parent)
            let collector = SampleCollector()
            collector.processTraced(pid: UInt32(parent), nowNs: monotonicNowNs())
            #expect(!Self.childPaths(collector, UInt32(parent)).contains(lib))
            forker.go()
            let fields = try forker.line().split(separator: " ")
            let child = try #require(fields.first.flatMap { UInt32($0) }), forkNs = try #require(fields.last.flatMap { UInt64($0) })
            #expect(try forker.line() == "reaped")  // the child is gone: its own maps cannot be read
            collector.processForked(parent: UInt32(parent), child: child, atNs: forkNs)
            let paths = Self.childPaths(collector, child)
            #expect(paths.contains(lib), "the child's mappings: \(paths)")
            #expect(paths.contains { $0.contains("libc") }, "the child's mappings: \(paths)")
            var events: [KernelEvent] = []
            collector.drain(into: &events)
            #expect(events.contains { $0.kind == .mapping && $0.pid == child && $0.timestampNs < forkNs })
        }
    }

    /// The parent exited before its maps could be read (a launched program whose exec record was
    /// processed after its exit): the child, still alive, has its own maps read at the fork. (It had none:
    /// it took the parent's empty regions, and no read followed for 100 ms.)
    @Test func aChildOfAParentNeverReadHasItsOwnMapsRead() throws {
        let (exe, lib) = try Self.build()
        var forker = try Forker(exe, [lib, "leave"])
        defer { forker.finish() }
        forker.go()
        let fields = try forker.line().split(separator: " ")
        let child = try #require(fields.first.flatMap { UInt32($0) }), forkNs = try #require(fields.last.flatMap { UInt64($0) })
        let parent = forker.pid
        forker.reap()
        let collector = SampleCollector()
        collector.processTraced(pid: UInt32(parent), nowNs: forkNs - 1_000_000)  // gone: nothing read
        #expect(Self.childPaths(collector, UInt32(parent)).isEmpty)
        collector.processForked(parent: UInt32(parent), child: child, atNs: forkNs)
        let paths = Self.childPaths(collector, child)
        #expect(paths.contains(lib), "the child's mappings: \(paths)")
        #expect(paths.contains { $0.contains("libc") }, "the child's mappings: \(paths)")
    }
}
