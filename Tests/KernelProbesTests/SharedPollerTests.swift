// A runtime whose worker threads take turns at one epoll fd (Go's netpoller, Tokio's driver): a worker parks
// on a futex while another waits in epoll, and looks at the poller in passing (epoll with timeout 0). A Go
// net/http server's report had every M thread as a loop, "busy 100%", its longest stalls 1.3 to 1.6 s of
// futex waits in runtime.stopm and runtime.sysmon (idle threads), and the loop 99.9998% utilized; its real
// stalls (a 300 ms CPU handler, a 73 ms file read) were lost among them. The C program here has that
// shape without Go: two workers and a looker share an epoll fd, and a lone loop with its own epoll fd
// waits on a futex between its waits (there the futex wait is a stall, as before).
import Foundation
import Testing

private let program = #"""
    #define _GNU_SOURCE
    #include <linux/futex.h>
    #include <pthread.h>
    #include <stdint.h>
    #include <sys/epoll.h>
    #include <sys/eventfd.h>
    #include <sys/syscall.h>
    #include <time.h>
    #include <unistd.h>
    static int ep;
    static volatile int looked, burned;
    static uint32_t word;
    static uint64_t cpu_now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec * 1000000000ull + t.tv_nsec; }
    static void burn_cpu(uint64_t ns) { volatile uint64_t x = 0; uint64_t end = cpu_now() + ns; while (cpu_now() < end) for (int i = 0; i < 100000; i++) x++; }
    static void park(uint64_t ns) {
        struct timespec t = { ns / 1000000000ull, ns % 1000000000ull };
        syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &t, 0, 0);
    }
    static void wait_events(int fd, int timeout_ms) { struct epoll_event out[1]; epoll_wait(fd, out, 1, timeout_ms); }
    /* like Go's sysmon: only looks at the poller (timeout 0), and sleeps; it looks first */
    static void *looker(void *a) {
        pthread_setname_np(pthread_self(), "pool-looker");
        wait_events(ep, 0);
        looked = 1;
        for (int i = 0; i < 20; i++) { usleep(20000); wait_events(ep, 0); }
        return 0;
    }
    static void *worker(void *a) {
        pthread_setname_np(pthread_self(), a ? "pool-w1" : "pool-w2");
        while (!looked) usleep(100);
        if (!a) { while (!burned) wait_events(ep, 20); return 0; }  /* the pool goes on meanwhile */
        wait_events(ep, 50);
        park(300000000);              /* idle: another worker has the poller */
        wait_events(ep, 20);
        burn_cpu(75000000);           /* a stall: 150 ms of CPU with a look at the poller inside */
        wait_events(ep, 0);
        burn_cpu(75000000);
        burned = 1;
        wait_events(ep, 20);
        return 0;
    }
    static void *lone(void *a) {
        pthread_setname_np(pthread_self(), "lone-loop");
        int own = epoll_create1(0), ev = eventfd(0, 0);
        struct epoll_event e = { .events = EPOLLIN, .data.fd = ev };
        epoll_ctl(own, EPOLL_CTL_ADD, ev, &e);
        wait_events(own, 10);
        park(150000000);              /* its loop waits for nothing else meanwhile: a stall */
        wait_events(own, 10);
        return 0;
    }
    int main(void) {
        ep = epoll_create1(0);
        int ev = eventfd(0, 0);
        struct epoll_event e = { .events = EPOLLIN, .data.fd = ev };
        epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e);
        pthread_t t[4];
        pthread_create(&t[0], 0, looker, 0);
        pthread_create(&t[1], 0, worker, (void *)1);
        pthread_create(&t[2], 0, worker, 0);
        pthread_create(&t[3], 0, lone, 0);
        for (int i = 0; i < 4; i++) pthread_join(t[i], 0);
        return 0;
    }
    """#

@Suite(.serialized) struct SharedPollerTests {
    @Test func aWorkerParkedWhileAnotherHasTheSharedPollerIsIdleNotStalled() throws {
        try requireKernel("aWorkerParkedWhileAnotherHasTheSharedPollerIsIdleNotStalled")
        let binary = try compileC(program, name: "shared-poller", flags: ["-O1", "-pthread"])
        let trace = try recordTrace([binary], name: "shared-poller")
        defer { for p in [binary, trace] { try? FileManager.default.removeItem(atPath: p) } }
        let json = try runCapturing(try asynctrace(), ["report", "--json", "--threshold", "50ms", "--top", "50", trace])
        try #require(json.status == 0, "report failed: \(json.stderr)")
        let j = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let allStalls = try #require(j["stalls"] as? [[String: Any]])
        let threads = try #require(j["threads"] as? [[String: Any]])
        func thread(_ name: String) -> [String: Any]? { threads.first { $0["name"] as? String == name } }
        func stalls(of name: String) -> [[String: Any]] { allStalls.filter { $0["thread"] as? String == name } }
        func futexBlockedNs(_ stall: [String: Any]) -> Int {
            ((stall["syscalls"] as? [[String: Any]]) ?? []).filter { $0["name"] as? String == "futex wait" }
                .reduce(0) { $0 + ($1["blocked_ns"] as? Int ?? 0) }
        }

        // The worker's 300 ms park is idle time; its 150 ms of CPU is its stall, the look inside it a syscall of it.
        #expect(thread("pool-w1")?["is_loop"] as? Bool == true, "\(threads)")
        let w1 = stalls(of: "pool-w1")
        #expect(w1.allSatisfy { futexBlockedNs($0) < 50_000_000 }, "\(w1)")
        let burn = w1.first { ($0["on_cpu_ns"] as? Int ?? 0) >= 120_000_000 }
        #expect(burn != nil, "\(w1)")
        let burnSyscalls = (burn?["syscalls"] as? [[String: Any]]) ?? []
        #expect(burnSyscalls.contains { ($0["name"] as? String)?.hasPrefix("epoll") == true }, "\(burn ?? [:])")
        // Meanwhile the other worker waited for events every 20 ms: the pool went on (w1's own look is not counted;
        // neither are the looker's, which never blocks).
        let others = burn?["other_workers_waits"] as? Int ?? 0
        #expect(others >= 5, "\(burn ?? [:])")
        // The looker never waited in the poller: no loop, and its 400 ms of sleeps no stall.
        #expect(thread("pool-looker")?["is_loop"] as? Bool == false, "\(threads)")
        #expect(stalls(of: "pool-looker").isEmpty, "\(allStalls)")
        // A lone loop's futex wait between its waits is a stall still.
        let lone = stalls(of: "lone-loop")
        #expect(lone.contains { futexBlockedNs($0) >= 120_000_000 }, "\(lone)")
        #expect(lone.allSatisfy { $0["other_workers_waits"] is NSNull }, "no pool: \(lone)")
        let text = try runCapturing(try asynctrace(), ["report", "--threshold", "50ms", trace]).stdout
        #expect(text.contains("its pool went on: the process's other workers waited for events"), "\(text)")
    }
}
