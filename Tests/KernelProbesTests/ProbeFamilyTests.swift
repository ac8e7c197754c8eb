// The probe families `record --no-syscalls` / `--no-sched` switch off are really off (their programs are not
// loaded), the other family still records, and process/thread identity is kept either way.
import Foundation
import KernelProbes
import Testing
import TraceFormat

@Suite(.serialized) struct ProbeFamilyTests {
    /// /bin/sleep 0.05: a 50 ms sleep in clock_nanosleep (a syscall and an off-CPU episode).
    func record(_ options: KernelProbeOptions) throws -> RecordingResult {
        let r = try recordProgram("/bin/sleep", ["0.05"], options: options)
        #expect(r.exitStatus == 0)
        #expect(r.statistics.dropped == 0)
        return r
    }

    func longSleeps(_ r: RecordingResult) -> [KernelEvent] {
        r.events.filter { $0.kind == .offCPU && $0.pid == UInt32(r.rootPid) && $0.blockedNs >= 40_000_000 }
    }

    func syscalls(_ r: RecordingResult) -> [KernelEvent] {
        r.events.filter { ($0.kind == .syscall || $0.kind == .epollWait) && $0.pid == UInt32(r.rootPid) }
    }

    @Test func bothFamiliesByDefault() throws {
        try requireKernel("bothFamiliesByDefault")
        let r = try record(KernelProbeOptions())
        #expect(syscalls(r).contains { $0.nr == 230 || $0.nr == 35 }, "no nanosleep/clock_nanosleep recorded")
        #expect(longSleeps(r).count == 1)
    }

    @Test func noSchedulerRecordsSyscallsOnly() throws {
        try requireKernel("noSchedulerRecordsSyscallsOnly")
        let r = try record(KernelProbeOptions(scheduler: false))
        #expect(!r.events.contains { $0.kind == .offCPU }, "off-CPU events with the scheduler probes off")
        #expect(syscalls(r).contains { $0.nr == 230 || $0.nr == 35 }, "no nanosleep/clock_nanosleep recorded")
        #expect(r.events.contains { $0.kind == .processExit && $0.pid == UInt32(r.rootPid) })
    }

    @Test func noSyscallsRecordsSchedulerOnly() throws {
        try requireKernel("noSyscallsRecordsSchedulerOnly")
        let r = try record(KernelProbeOptions(syscalls: false))
        #expect(syscalls(r).isEmpty, "syscall events with the syscall probes off: \(syscalls(r).prefix(3).map(\.nr))")
        #expect(longSleeps(r).count == 1, "the 50 ms sleep as an off-CPU episode")
        #expect(r.events.contains { $0.kind == .threadName && $0.pid == UInt32(r.rootPid) })
    }
}
