// The text's code lines show a stack's innermost 6 frames. A Go program's stall listed "9.7% on CPU in
// Syscall6 ← syscall.Syscall ← syscall.write ← … (4 samples)" and twice more the same line with 1 sample:
// stacks that differed only below the frames shown. A C loop burns its stall's CPU through two callers of
// one 7-deep chain: the stall has two stacks that read the same, and the text one line for both.
import Foundation
import Testing

@Suite(.serialized) struct CodeLinesTests {
    @Test func stacksThatDifferOnlyBelowTheFramesShownAreOneLine() throws {
        try requireKernel("stacksThatDifferOnlyBelowTheFramesShownAreOneLine")
        let binary = try compileC(
            #"""
            #define _GNU_SOURCE
            #include <pthread.h>
            #include <stdint.h>
            #include <sys/epoll.h>
            #include <sys/eventfd.h>
            #include <time.h>
            static uint64_t cpu_now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec * 1000000000ull + t.tv_nsec; }
            __attribute__((noinline)) void spin(void) { volatile uint64_t x = 0; for (int i = 0; i < 2000000; i++) x++; }
            __attribute__((noinline)) void c6(void) { spin(); }
            __attribute__((noinline)) void c5(void) { c6(); }
            __attribute__((noinline)) void c4(void) { c5(); }
            __attribute__((noinline)) void c3(void) { c4(); }
            __attribute__((noinline)) void c2(void) { c3(); }
            __attribute__((noinline)) void c1(void) { c2(); }
            __attribute__((noinline)) void by_first_caller(void) { c1(); }
            __attribute__((noinline)) void by_second_caller(void) { c1(); }
            int main(void) {
                pthread_setname_np(pthread_self(), "code-loop");
                int ep = epoll_create1(0), ev = eventfd(0, 0);
                struct epoll_event e = { .events = EPOLLIN, .data.fd = ev }, out[1];
                epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e);
                epoll_wait(ep, out, 1, 10);
                uint64_t start = cpu_now();
                for (int i = 0; cpu_now() - start < 200000000; i++) { if (i & 1) by_second_caller(); else by_first_caller(); }
                epoll_wait(ep, out, 1, 10);
                return 0;
            }
            """#, name: "code-lines", flags: ["-O1", "-fno-omit-frame-pointer", "-pthread"])
        let trace = try recordTrace([binary], name: "code-lines")
        defer { for p in [binary, trace] { try? FileManager.default.removeItem(atPath: p) } }
        let json = try runCapturing(try asynctrace(), ["report", "--json", "--threshold", "50ms", trace])
        try #require(json.status == 0, "report failed: \(json.stderr)")
        let j = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let stall = try #require(
            (j["stalls"] as? [[String: Any]])?.first { $0["thread"] as? String == "code-loop" }, "\(json.stdout)")
        let cpu = ((stall["stacks"] as? [[String: Any]]) ?? []).filter { $0["kind"] as? String != "wait" }
        // The case: two of its stacks agree on their innermost 6 frames (spin ← c6 … c2) and differ below.
        let shown = cpu.map { Array(names($0).prefix(6)) }
        try #require(
            shown.count >= 2 && shown[0] == shown[1] && shown[0].first == "spin"
                && Set(cpu.prefix(2).map { names($0).dropFirst(6).joined(separator: " ") }).count == 2, "\(cpu)")
        let text = try runCapturing(try asynctrace(), ["report", "--threshold", "50ms", trace])
        let stallText = text.stdout.components(separatedBy: "LOOP STALLS").dropFirst().first?.components(separatedBy: "THREADS").first ?? ""
        let codeLines = stallText.split(separator: "\n").filter { $0.contains("on CPU in spin ← c6") }
        #expect(codeLines.count == 1, "\(text.stdout)")
        let samples = cpu.prefix(2).reduce(0) { $0 + ($1["samples"] as? Int ?? 0) }
        #expect(codeLines.first?.hasSuffix("(\(samples) samples)") == true, "\(codeLines) \(cpu)")
    }
}
