// The syscall probes skip an untraced process by the tgid the scheduler probe noted for the CPU at its
// last switch (no look at the task). A traced and an untraced process pinned to one CPU hand a byte back
// and forth, so that note changes between them at every hop: every syscall of the traced one must be
// recorded, and none of the other's.
import Foundation
import KernelProbes
import Testing

private let pingPongSource = """
    #define _GNU_SOURCE
    #include <fcntl.h>
    #include <sched.h>
    #include <stdlib.h>
    #include <string.h>
    #include <unistd.h>
    // pingpong traced|partner THERE BACK N: both on CPU 0; the traced side writes to THERE (as fd 100)
    // and reads BACK (as fd 101) N times, the partner echoes until EOF.
    int main(int argc, char **argv) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(0, &set);
        if (sched_setaffinity(0, sizeof(set), &set) != 0) return 2;
        int traced = strcmp(argv[1], "traced") == 0;
        long n = atol(argv[4]);
        char c = 'x';
        if (traced) {
            if (dup2(open(argv[2], O_WRONLY), 100) != 100 || dup2(open(argv[3], O_RDONLY), 101) != 101) return 3;
            for (long i = 0; i < n; i++)
                if (write(100, &c, 1) != 1 || read(101, &c, 1) != 1) return 4;
            return 0;
        }
        int in = open(argv[2], O_RDONLY), out = open(argv[3], O_WRONLY);
        if (in < 0 || out < 0) return 3;
        while (read(in, &c, 1) == 1)
            if (write(out, &c, 1) != 1) return 4;
        return 0;
    }
    """

@Suite(.serialized) struct CPUFilterTests {
    @Test func tracedAndUntracedSharingACPUAreTold() throws {
        try requireKernel("tracedAndUntracedSharingACPUAreTold")
        let exe = try compileC(pingPongSource, name: "cpu-filter-pingpong", flags: ["-O1"])
        let there = temporaryPath("cpu-filter-there"), back = temporaryPath("cpu-filter-back")
        for fifo in [there, back] {
            unlink(fifo)
            guard mkfifo(fifo, 0o600) == 0 else { throw TestFailure("mkfifo \(fifo): \(errno)") }
        }
        defer { unlink(there); unlink(back) }
        let trips = 20_000
        let partner = try HeldProcess(path: exe, arguments: [exe, "partner", there, back, "0"], environment: [])
        try partner.release()
        let result = try recordProgram(exe, ["traced", there, back, String(trips)])
        var partnerStatus: Int32 = 0
        waitpid(partner.pid, &partnerStatus, 0)
        #expect(result.exitStatus == 0, "traced side failed (status \(result.exitStatus))")
        #expect(partnerStatus == 0, "partner failed (status \(partnerStatus))")
        #expect(result.statistics.dropped == 0)
        let root = UInt32(result.rootPid)
        let mine = result.events.filter { $0.kind == .syscall && $0.pid == root }
        let writes = mine.filter { $0.nr == 1 && $0.fd == 100 && $0.size == 1 && $0.ret == 1 }
        let reads = mine.filter { $0.nr == 0 && $0.fd == 101 && $0.size == 1 && $0.ret == 1 }
        #expect(writes.count == trips, "writes recorded: \(writes.count) of \(trips)")
        #expect(reads.count == trips, "reads recorded: \(reads.count) of \(trips)")
        // Nothing of the untraced partner but its name, as the waker of the traced side's reads.
        let partnerEvents = result.events.filter { $0.pid == UInt32(partner.pid) && $0.kind != .wakerName }
        #expect(partnerEvents.isEmpty, "\(partnerEvents.count) events of the untraced partner")
        #expect(result.events.filter { $0.kind == .wakerName && $0.pid == UInt32(partner.pid) }.count == 1)
        // Most hops switch between the two on CPU 0: the traced side waits off the CPU about once per trip.
        let waits = result.events.filter { $0.kind == .offCPU && $0.pid == root }
        #expect(waits.count >= trips / 2, "off-CPU episodes: \(waits.count)")
    }
}
