// Syscall names: the recorded ones agree with the kernel's numbering, and any x86_64 syscall has a name
// (an off-CPU wait names the syscall it slept in, recorded or not).
import Testing
@testable import TraceFormat

@Suite struct SyscallNamesTests {
    @Test func everyRecordedSyscallHasTheKernelsNameForItsNumber() {
        for (nr, name) in SyscallNames.table {
            #expect(Int(nr) < SyscallNames.x86_64.count && SyscallNames.x86_64[Int(nr)] == name, "\(nr): \(name)")
        }
    }

    @Test func syscallsTheProbesDoNotRecordAreNamedToo() {
        #expect(SyscallNames.name(61) == "wait4")
        #expect(SyscallNames.name(130) == "rt_sigsuspend")
        #expect(SyscallNames.name(58) == "vfork")
        #expect(SyscallNames.name(100_000) == "syscall_100000")
        #expect(SyscallNames.name(335) == "syscall_335")  // a hole in the numbering
    }
}
