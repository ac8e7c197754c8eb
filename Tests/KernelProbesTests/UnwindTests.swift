// CPU samples of code without frame pointers, unwound from the copied user stack (record
// --stack-copy, on by default): C at -O2 -fomit-frame-pointer, glibc (Debian builds it without
// frame pointers), and a Swift release build (swiftc -O emits no CFI for Swift functions: found by
// the stack scan). Real programs, the real `asynctrace record`, the real kernel.
import Foundation
import Testing
import TraceFormat
import TraceReader
@testable import TraceSymbols


private func record(_ program: [String], options: [String] = [], name: String) throws -> (TraceSamples, String) {
    let trace = try recordTrace(program, options: options, name: name)
    return (TraceSamples(reader: try TraceReader(path: trace)), trace)
}


/// Events of each kind in a trace.
private func kindCounts(_ path: String) throws -> [EventKind: Int] {
    let it = try TraceReader(path: path).events()
    var out: [EventKind: Int] = [:]
    while let e = it.next() { out[e.event.kind, default: 0] += 1 }
    return out
}

/// The names of the most frequent stack among samples whose innermost frame is `leaf`.
private func topStack(_ data: TraceSamples, leaf: String) -> (names: [String], modules: [String], samples: Int, of: Int) {
    let mine = data.samples.filter { s in data.frames(of: s).first.map { data.frame($0).name.hasSuffix(leaf) } ?? false }
    let profile = CodeProfile(data, samples: mine)
    guard let top = profile.stacks.first else { return ([], [], 0, 0) }
    return (top.frames.map { data.frame($0).name }, top.frames.map { data.frame($0).module }, top.samples, mine.count)
}

@Suite(.serialized) struct UnwindTests {
    @Test func cWithoutFramePointersUnwindsByCFIIntoGlibc() throws {
        try requireKernel("cWithoutFramePointersUnwindsByCFIIntoGlibc")
        let exe = try compileC(
            """
            #include <stdio.h>
            #include <time.h>
            static double now(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec / 1e9; }
            volatile unsigned long sink;
            __attribute__((noinline)) unsigned long spin_leaf(unsigned long x) {
                for (int i = 0; i < 200000; i++) x = x * 6364136223846793005ul + 1442695040888963407ul;
                return x;
            }
            __attribute__((noinline)) unsigned long spin_third(unsigned long n) { unsigned long r = spin_leaf(n); sink = r; return r + 1; }
            __attribute__((noinline)) unsigned long spin_second(unsigned long n) { unsigned long r = spin_third(n * 3); sink = r; return r + 2; }
            __attribute__((noinline)) unsigned long spin_first(unsigned long n) { unsigned long r = spin_second(n + 7); sink = r; return r + 3; }
            int main(void) { double t0 = now(); unsigned long n = 1; while (now() - t0 < 0.6) n += spin_first(n); printf("%lu\\n", n); return 0; }
            """, name: "unwind-c", flags: ["-O2", "-fomit-frame-pointer"])
        let (data, trace) = try record([exe], name: "unwind-c")
        let top = topStack(data, leaf: "spin_leaf")
        #expect(top.of >= 50, "\(data.samples.count) samples, \(top.of) in spin_leaf")
        #expect(Array(top.names.prefix(5)) == ["spin_leaf", "spin_third", "spin_second", "spin_first", "main"], "\(top.names)")
        // main's caller is glibc's (__libc_start_call_main, no frame pointers): found by its CFI.
        #expect(top.names.count > 5 && top.modules[5].hasSuffix("libc.so.6"), "\(top.names) \(top.modules)")
        #expect(top.samples * 10 >= top.of * 8, "the whole chain in \(top.samples) of \(top.of)")
        let tally = try #require(data.unwindTally[exe])
        #expect(tally.byMethod[UnwindMethod.callFrameInfo.rawValue] > 0)
        // Unwound while recording: the trace holds the stacks and how they were found, not the copies.
        let kinds = try kindCounts(trace)
        #expect(kinds[.stackCopy, default: 0] + kinds[.stackCopyDelta, default: 0] == 0, "\(kinds)")
        // (Format 10: the methods are inside the stacks' definitions, no stackUnwind.)
        let cfi = UInt8(UnwindMethod.callFrameInfo.rawValue)
        #expect(data.recordUnwindMethods.values.contains { $0.contains(cfi) } && data.unwoundWhenRecorded > 0, "\(kinds)")

        // --unwind-later: the copies are written and the reader unwinds them to the same chain.
        // (No wait stacks: theirs are unwound while recording even then.)
        let (later, laterTrace) = try record([exe], options: ["--unwind-later", "--stack-threshold", "0"], name: "unwind-c-later")
        let laterTop = topStack(later, leaf: "spin_leaf")
        #expect(Array(laterTop.names.prefix(6)) == Array(top.names.prefix(6)), "\(laterTop.names)")
        let laterKinds = try kindCounts(laterTrace)
        #expect(laterKinds[.stackCopy, default: 0] + laterKinds[.stackCopyDelta, default: 0] > 0, "\(laterKinds)")
        #expect(later.recordUnwindMethods.isEmpty && later.unwoundWhenRecorded == 0)
    }

    @Test func glibcFramesUnwindBetweenACallbackAndItsCaller() throws {
        try requireKernel("glibcFramesUnwindBetweenACallbackAndItsCaller")
        // qsort calls the comparison from inside glibc: the stack goes program -> glibc -> program.
        let exe = try compileC(
            """
            #include <stdio.h>
            #include <stdlib.h>
            #include <time.h>
            static double now(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec / 1e9; }
            __attribute__((noinline)) int slow_compare(const void *a, const void *b) {
                volatile double x = 1; for (int i = 0; i < 300; i++) x = x * 1.0000001 + 0.5;
                long d = *(const long *)a - *(const long *)b; return (d > 0) - (d < 0);
            }
            __attribute__((noinline)) long sort_some(long *v, int n) {
                for (int i = 0; i < n; i++) v[i] = (i * 7919L) % n;
                qsort(v, n, sizeof(long), slow_compare);
                __asm__ volatile("");
                return v[n / 2] + 1; /* work after the call: no tail call */
            }
            int main(void) { static long v[4096]; long s = 0; double t0 = now(); while (now() - t0 < 0.6) s += sort_some(v, 4096); printf("%ld\\n", s); return 0; }
            """, name: "unwind-qsort", flags: ["-O2", "-fomit-frame-pointer"])
        let (data, _) = try record([exe], name: "unwind-qsort")
        let mine = data.samples.filter { s in data.frames(of: s).first.map { data.frame($0).name == "slow_compare" } ?? false }
        #expect(mine.count >= 50, "\(data.samples.count) samples, \(mine.count) in slow_compare")
        var through = 0
        for s in mine {
            let f = data.frames(of: s).map { data.frame($0) }
            guard let sort = f.firstIndex(where: { $0.name == "sort_some" }), f.count > sort + 1, f[sort + 1].name == "main" else { continue }
            if f[1..<sort].contains(where: { $0.module.hasSuffix("libc.so.6") }) { through += 1 }
        }
        #expect(through * 10 >= mine.count * 8, "\(through) of \(mine.count) samples unwound through glibc's qsort into sort_some <- main")
        let libc = data.unwindTally.first { $0.key.hasSuffix("libc.so.6") }?.value
        #expect((libc?.byMethod[UnwindMethod.callFrameInfo.rawValue] ?? 0) > 0)
    }

    @Test func swiftReleaseCodeUnwindsByStackScan() throws {
        try requireKernel("swiftReleaseCodeUnwindsByStackScan")
        guard let swiftc = which("swiftc") else { throw TestFailure("swiftc not found") }
        let src = temporaryPath("unwind-swift.swift"), exe = temporaryPath("unwind-swift")
        try """
        import Glibc
        @inline(never) func spinLeaf(_ n: UInt64) -> UInt64 {
            var x = n
            for _ in 0..<200_000 { x = x &* 6364136223846793005 &+ 1442695040888963407 }
            return x
        }
        @inline(never) func spinThird(_ n: UInt64) -> UInt64 { spinLeaf(n) &+ 1 }
        @inline(never) func spinSecond(_ n: UInt64) -> UInt64 { spinThird(n &* 3) &+ 2 }
        @inline(never) func spinFirst(_ n: UInt64) -> UInt64 { spinSecond(n &+ 7) &+ 3 }
        func now() -> Double { var t = timespec(); clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9 }
        let start = now()
        var n: UInt64 = 1
        while now() - start < 0.6 { n = n &+ spinFirst(n) }
        print(n)
        """.write(toFile: src, atomically: true, encoding: .utf8)
        let c = try runTool(swiftc, ["-O", "-module-name", "unwindswift", "-o", exe, src])
        guard c.status == 0 else { throw TestFailure("swiftc failed: \(c.output)") }
        let (data, _) = try record([exe], name: "unwind-swift")
        let top = topStack(data, leaf: "spinLeaf(_:)")
        #expect(top.of >= 50, "\(data.samples.count) samples, \(top.of) in spinLeaf")
        let expected = ["unwindswift.spinLeaf(_:)", "unwindswift.spinThird(_:)", "unwindswift.spinSecond(_:)", "unwindswift.spinFirst(_:)", "main"]
        #expect(Array(top.names.prefix(5)) == expected, "\(top.names)")
        #expect(top.samples * 10 >= top.of * 8, "the whole chain in \(top.samples) of \(top.of)")
        let tally = try #require(data.unwindTally[exe])
        #expect(tally.byMethod[UnwindMethod.stackScan.rawValue] > 0)
    }

    @Test func stackCopyZeroKeepsFramePointerStacks() throws {
        try requireKernel("stackCopyZeroKeepsFramePointerStacks")
        let exe = try compileC(
            """
            #include <stdio.h>
            #include <time.h>
            static double now(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec / 1e9; }
            __attribute__((noinline)) double flat_burn(double x) { for (int i = 0; i < 100000; i++) x = x * 1.0000001 + 0.5; return x; }
            int main(void) { double t0 = now(), x = 1; while (now() - t0 < 0.4) x = flat_burn(x); printf("%f\\n", x); return 0; }
            """, name: "unwind-off", flags: ["-O2", "-fomit-frame-pointer"])
        let (data, trace) = try record([exe], options: ["--stack-copy", "0"], name: "unwind-off")
        #expect(data.samples.count >= 30)
        #expect(data.unwoundSamples == 0)
        let reader = try TraceReader(path: trace)
        var copies = 0
        reader.events().forEachView { if $0.kind == .stackCopy { copies += 1 } }
        #expect(copies == 0)
    }
}
