import CKernelProbes
import Foundation
import Testing
@testable import KernelProbes

/// Samples are processed late (seconds in a debug build), so a process may have exited, its maps
/// reading empty as a zombie's, before its last samples are: what was known of its regions must stay
/// until its exit is processed, or its samples lose their callers. (How such a copy is unwound:
/// TraceSymbolsTests' ExitedProcessStackTests.)
@Suite struct ExitedProcessSampleTests {
    /// A real child, killed and left a zombie (its /proc/PID/maps reads empty); reaped by `reap`.
    static func zombie() throws -> (pid: pid_t, reap: () -> Void) {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sleep"), strdup("30"), nil]
        defer { for a in argv { free(a) } }
        try #require(posix_spawn(&pid, "/bin/sleep", nil, nil, argv, environ) == 0)
        // Until the dynamic loader has mapped libc: the program, the loader and libc.
        for _ in 0..<1_000 where !(ProcessMaps.executableRegions(pid: UInt32(pid)) ?? []).contains(where: { $0.path.contains("libc") }) {
            usleep(1_000)
        }
        return (
            pid,
            {
                var status: Int32 = 0; _ = waitpid(pid, &status, 0)
            }
        )
    }

    /// The executable regions of the program (sleep) and of libc.
    static func programAndLibc(_ pid: pid_t) throws -> (program: MapsEntry, libc: MapsEntry) {
        let regions = try #require(ProcessMaps.executableRegions(pid: UInt32(pid)))
        let program = try #require(regions.first { $0.path.hasSuffix("/sleep") }, "\(regions.map(\.path))")
        let libc = try #require(regions.first { $0.path.contains("/libc") }, "\(regions.map(\.path))")
        return (program, libc)
    }

    static func kill(_ pid: pid_t) throws {
        Glibc.kill(pid, SIGKILL)
        // Until the kernel has torn its memory down: a zombie's maps read empty.
        for _ in 0..<500 {
            if let maps = ProcessMaps.executableRegions(pid: UInt32(pid)), maps.isEmpty { return }
            usleep(2_000)
        }
        Issue.record("pid \(pid) did not become a zombie")
    }

    /// A sample record as the probes write it: `user` (the kernel's walk), and a stack copy of `words`.
    static func record(pid: UInt32, timeNs: UInt64, user: [UInt64], ip: UInt64, sp: UInt64, words: [UInt64]) -> [UInt8] {
        let header = MemoryLayout<kp_sample_record>.offset(of: \kp_sample_record.frames)!
        var r = [UInt8](repeating: 0, count: header + 8 * user.count + 8 * words.count)
        r.withUnsafeMutableBytes { b in
            b.storeBytes(of: KP_RECORD_CPU_SAMPLE, toByteOffset: 0, as: UInt32.self)
            b.storeBytes(of: pid, toByteOffset: 4, as: UInt32.self)
            b.storeBytes(of: pid, toByteOffset: 8, as: UInt32.self)
            b.storeBytes(of: UInt16(user.count), toByteOffset: 12, as: UInt16.self)
            b.storeBytes(of: timeNs, toByteOffset: 16, as: UInt64.self)
            let regs = MemoryLayout<kp_sample_record>.offset(of: \kp_sample_record.regs)!
            b.storeBytes(of: kp_user_regs(ip: ip, sp: sp, bp: 0), toByteOffset: regs, as: kp_user_regs.self)
            let bytes = MemoryLayout<kp_sample_record>.offset(of: \kp_sample_record.stack_bytes)!
            b.storeBytes(of: UInt32(8 * words.count), toByteOffset: bytes, as: UInt32.self)
            for (i, f) in (user + words).enumerated() { b.storeBytes(of: f, toByteOffset: header + 8 * i, as: UInt64.self) }
        }
        return r
    }

    /// The copy of a sample taken before the exit but processed after it keeps its return addresses
    /// (it read as only stack pointers when the zombie's empty maps replaced the regions: the
    /// frame-pointer walk was then kept, a leaf without a frame pointer losing its caller), and those
    /// into code mapped after the last read.
    @Test func aZombiesSamplesKeepItsRegions() throws {
        let (pid, reap) = try Self.zombie()
        defer { reap() }
        let collector = SampleCollector()
        collector.processTraced(pid: UInt32(pid), nowNs: 1)
        let (program, libc) = try Self.programAndLibc(pid)
        let leaf = program.start + 0x10, caller = libc.start + 0x20
        try Self.kill(pid)
        // Well after the maps were read: the collector reads them again and finds them empty.
        let sp: UInt64 = 0x7ffd_0000_0000
        // And JIT code mapped after the last live read: in no region known, kept too (the unwinder
        // follows it by frame pointers); a small number is no address.
        let jit: UInt64 = 0x3a00_0000_1000
        let r = Self.record(pid: UInt32(pid), timeNs: 10_000_000_000, user: [leaf], ip: leaf, sp: sp, words: [sp + 64, caller, 0x1234, jit])
        var events: [KernelEvent] = []
        #expect(r.withUnsafeBytes { collector.take(record: $0.baseAddress!, size: $0.count, into: &events) })
        let sample = try #require(events.last { $0.kind == .cpuSample })
        let copy = try #require(collector.tables.stackCopies[sample.stackCopy], "the copy holds a return address the walk lacks")
        #expect(copy.words.map(\.value) == [sp + 64, caller, jit])
        #expect(collector.mapsReads >= 2)
        // Its exit processed, the process is forgotten: a new process with its pid starts afresh.
        collector.processExited(pid: UInt32(pid))
        let again = Self.record(pid: UInt32(pid), timeNs: 11_000_000_000, user: [leaf], ip: leaf, sp: sp, words: [caller])
        events.removeAll()
        #expect(again.withUnsafeBytes { collector.take(record: $0.baseAddress!, size: $0.count, into: &events) })
        let after = try #require(events.last { $0.kind == .cpuSample })
        #expect(after.stackCopy == 0 || collector.tables.stackCopies[after.stackCopy]?.words.isEmpty == true)
    }
}
