// Stacks of a thread whose code lives in a shared library, as a Python worker thread's does (its
// frames are all in libpython and libc): glibc maps a thread's stack just below the libraries, so
// return addresses into them lie within StackCopy.stackReach above the stack pointer. Counted as
// pointers into the stack, they made the copy look as if the kernel's frame-pointer walk had every
// caller (the walk had two entries: %rbp held a data pointer, not a frame), and the thread's blocking
// read ended at `__libc_read ← read_chunk`, its samples at `spin`. Real programs, the real kernel.
import Foundation
import Testing
import TraceReader
import TraceSymbols

@testable import KernelProbes

/// The call chain, compiled -O2 -fomit-frame-pointer into a shared library: the worker thread (started
/// here too, so no frame of the executable is on its stack) blocks in read() in read_chunk, then burns
/// CPU in spin. Both keep the request in %rbp, as -O2 code keeps live values in any callee-saved
/// register: the kernel's walk from there reads a "frame" out of the request (next = 0, id = 0x1234).
private let chainSource = """
    #include <pthread.h>
    #include <unistd.h>
    struct request { struct request *next; long id; int fd; char *buf; long n; long spins; long distance; };
    __attribute__((noinline)) long spin(struct request *r) {
        register struct request *held __asm__("rbp") = r;
        __asm__ volatile("" : "+r"(held));
        unsigned long x = (unsigned long)held->id;
        for (long i = 0; i < held->spins; i++) {
            x = x * 6364136223846793005UL + 1442695040888963407UL;
            __asm__ volatile("" : "+r"(x), "+r"(held));
        }
        return (long)(x & 1);
    }
    __attribute__((noinline)) long read_chunk(struct request *r) {
        register struct request *held __asm__("rbp") = r;
        __asm__ volatile("" : "+r"(held));
        long got = read(held->fd, held->buf, held->n);
        __asm__ volatile("" : "+r"(held));
        return got + held->id;
    }
    __attribute__((noinline)) long load_file(struct request *r) { long n = read_chunk(r); n += spin(r); __asm__ volatile(""); return n + 1; }
    __attribute__((noinline)) long handle_request(struct request *r) { long n = load_file(r); __asm__ volatile(""); return n * 2; }
    static void *worker_main(void *a) {
        struct request *r = a;
        char here;
        r->distance = (long)((unsigned long)&read_chunk - (unsigned long)&here);
        handle_request(r);
        __asm__ volatile("");
        return 0;
    }
    int start_worker(pthread_t *t, struct request *r) { return pthread_create(t, 0, worker_main, r); }
    """

/// Starts the worker, lets its read block 200 ms, feeds it, joins it; prints how far above the thread's
/// stack the library's code lies.
private let mainSource = """
    #include <pthread.h>
    #include <stdio.h>
    #include <time.h>
    #include <unistd.h>
    struct request { struct request *next; long id; int fd; char *buf; long n; long spins; long distance; };
    int start_worker(pthread_t *t, struct request *r);
    int main(void) {
        int p[2];
        static char buf[64];
        if (pipe(p)) return 1;
        struct request r = {0, 0x1234, p[0], buf, 8, 300000000, 0};
        pthread_t t;
        if (start_worker(&t, &r)) return 1;
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, 0);
        if (write(p[1], "abcdefgh", 8) != 8) return 1;
        pthread_join(t, 0);
        printf("distance %ld\\n", r.distance);
        return 0;
    }
    """

@Suite(.serialized) struct ThreadUnwindTests {
    @Test(arguments: [false, true])
    func aThreadBelowItsLibrariesUnwindsToItsStart(unwindLater: Bool) throws {
        try requireKernel("aThreadBelowItsLibrariesUnwindsToItsStart")
        guard let asynctrace = builtExecutable("asynctrace") else { throw TestFailure("asynctrace was not built") }
        let library = try compileC(chainSource, name: "libthreadchain.so", flags: ["-O2", "-fomit-frame-pointer", "-shared", "-fPIC"])
        let exe = try compileC(mainSource, name: "thread-chain", flags: ["-O2", "-fomit-frame-pointer"], libraries: [library, "-lpthread"])
        // What the test reproduces: the library's code within reach of the thread's stack pointer.
        let run = try runTool(exe, [])
        let distance = try #require(
            run.output.split(separator: "\n").first { $0.hasPrefix("distance ") }.flatMap { Int64($0.dropFirst(9)) }, "\(run.output)")
        try #require(distance > 0 && UInt64(distance) < StackCopy.stackReach, "the library is \(distance) bytes above the thread's stack")

        let name = "thread-chain\(unwindLater ? "-later" : "")"
        let trace = try recordTrace(
            [exe], options: ["--stack-threshold", "20ms"] + (unwindLater ? ["--unwind-later"] : []), name: name)
        // The worker's 200 ms read: its callers down to the thread's start.
        let json = try runTool(asynctrace, ["report", "--json", trace])
        let root = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any], "\(json.output.prefix(300))")
        let threads = try #require(root["threads"] as? [[String: Any]])
        let waits = threads.flatMap { ($0["wait_stacks"] as? [[String: Any]]) ?? [] }
        let read = try #require(waits.first { $0["wait"] as? String == "read" }, "no read wait: \(waits.map(names))")
        #expect(
            inOrder(["read_chunk", "load_file", "handle_request", "worker_main", "start_thread"], in: names(read)), "\(names(read))")
        // Its CPU samples in spin: the same callers, unwound while recording or (--unwind-later) when read.
        let data = TraceSamples(reader: try TraceReader(path: trace))
        let mine = data.samples.filter { s in data.frames(of: s).first.map { data.frame($0).name == "spin" } ?? false }
        #expect(mine.count >= 50, "\(data.samples.count) samples, \(mine.count) in spin")
        let whole = mine.filter { s in
            inOrder(["spin", "load_file", "handle_request", "worker_main", "start_thread"], in: data.frames(of: s).map { data.frame($0).name })
        }
        let top = CodeProfile(data, samples: mine).stacks.first.map { $0.frames.map { data.frame($0).name } } ?? []
        #expect(whole.count * 10 >= mine.count * 9, "the whole chain in \(whole.count) of \(mine.count) samples; top: \(top)")
    }

    /// The case it was found on: a CPython 3.12+ worker thread (libpython, libc and the perf trampolines:
    /// no frame of the executable) blocks in os.read on a pipe, then burns CPU. Its wait and its samples
    /// name the Python functions and go down to the thread's start.
    @Test func aPythonWorkerThreadsWaitAndSamplesReachTheThreadsStart() throws {
        try requireKernel("aPythonWorkerThreadsWaitAndSamplesReachTheThreadsStart")
        guard let asynctrace = builtExecutable("asynctrace") else { throw TestFailure("asynctrace was not built") }
        guard let python = HotFunctionTests.python312() else {
            try Test.cancel("no CPython 3.12 or newer here (perf trampolines came with 3.12)")
        }
        let script = temporaryPath("thread-python-\(UUID().uuidString.prefix(8)).py")
        try """
        import os, threading, time
        def wait_for_input(fd):
            return os.read(fd, 8)
        def crunch_numbers(ms):
            end = time.process_time() + ms / 1000
            x = 0
            while time.process_time() < end:
                for i in range(64):
                    x += i * i
            return x
        def worker(fd):
            wait_for_input(fd)
            crunch_numbers(300)
        r, w = os.pipe()
        t = threading.Thread(target=worker, args=(r,))
        t.start()
        time.sleep(0.2)
        os.write(w, b"abcdefgh")
        t.join()
        """.write(toFile: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: script) }
        let trace = try recordTrace([python, script], options: ["--stack-threshold", "20ms"], name: "thread-python")
        let json = try runTool(asynctrace, ["report", "--json", trace])
        let root = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any], "\(json.output.prefix(300))")
        let threads = try #require(root["threads"] as? [[String: Any]])
        let waits = threads.flatMap { ($0["wait_stacks"] as? [[String: Any]]) ?? [] }
        let read = try #require(waits.first { names($0).contains("wait_for_input") }, "no wait in wait_for_input: \(waits.map(names))")
        #expect(read["wait"] as? String == "read", "\(read["wait"] ?? "-")")
        #expect(inOrder(["_Py_read", "wait_for_input", "worker", "start_thread"], in: names(read)), "\(names(read))")
        let data = TraceSamples(reader: try TraceReader(path: trace))
        let mine = data.samples.filter { s in data.frames(of: s).contains { data.frame($0).name == "crunch_numbers" } }
        #expect(mine.count >= 50, "\(data.samples.count) samples, \(mine.count) in crunch_numbers")
        let whole = mine.filter { s in
            inOrder(["crunch_numbers", "worker", "start_thread"], in: data.frames(of: s).map { data.frame($0).name })
        }
        let top = CodeProfile(data, samples: mine).stacks.first.map { $0.frames.map { data.frame($0).name } } ?? []
        #expect(whole.count * 10 >= mine.count * 9, "the whole chain in \(whole.count) of \(mine.count) samples; top: \(top)")
    }
}
