// OutputFile's uncached writes (pwritev2 RWF_DONTCACHE at the file position) must land exactly where
// plain writes would: in order, across many flushes and after a partial buffer, on a disk file (uncached
// where the kernel does it), on tmpfs and through a pipe (where it falls back to write).
import Foundation
import Testing
@testable import TraceExports

@Suite struct OutputFileTests {
    /// 3 MB of a pattern that shows any misplaced or repeated block, written in odd-sized pieces through a
    /// 64 KB buffer, so flushes come from full buffers, partial buffers and direct large writes.
    static func writePattern(to out: OutputFile) -> [UInt8] {
        var expected: [UInt8] = []
        var seed: UInt32 = 1
        var piece = 1
        while expected.count < 3 << 20 {
            var bytes = [UInt8](repeating: 0, count: piece)
            for i in bytes.indices {
                seed = seed &* 1_664_525 &+ 1_013_904_223
                bytes[i] = UInt8(truncatingIfNeeded: seed >> 24)
            }
            bytes.withUnsafeBytes { out.write($0) }
            expected += bytes
            piece = piece * 7 % 200_003 + 1  // 1 B .. ~200 KB, larger than the buffer at times
        }
        return expected
    }

    @Test(arguments: ["disk", "tmpfs"])
    func uncachedOutputMatchesWhatWasWritten(_ where: String) throws {
        let dir = ScratchDirectory("outputfile")
        let path = `where` == "disk" ? dir.file("out.bin") : "/dev/shm/asynctrace-outputfile-\(getpid())"
        defer { if `where` == "tmpfs" { unlink(path) } }
        let out = try OutputFile(path: path, bufferSize: 64 << 10, uncached: true)
        let expected = Self.writePattern(to: out)
        try out.close()
        let written = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(firstDifference(written, expected) == nil)
    }

    @Test func uncachedOutputThroughAPipe() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let readEnd = fds[0], writeEnd = fds[1]
        // A reader drains the pipe meanwhile, so the writer never blocks on a full pipe.
        let reader = Thread.detachNewThreadWithResult { () -> [UInt8] in
            var got: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buf.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                got += buf[0..<n]
            }
            close(readEnd)
            return got
        }
        let out = try OutputFile(path: "/dev/fd/\(writeEnd)", bufferSize: 64 << 10, uncached: true)
        close(writeEnd)  // the OutputFile holds its own descriptor for the pipe now
        let expected = Self.writePattern(to: out)
        try out.close()
        #expect(firstDifference(reader.wait(), expected) == nil)
    }
}

/// Where two byte arrays first differ (an index, or "length a vs b"), nil when equal: a 3 MB array in a
/// failure message would be unreadable.
func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> String? {
    if let i = (0..<min(a.count, b.count)).first(where: { a[$0] != b[$0] }) { return "byte \(i)" }
    return a.count == b.count ? nil : "length \(a.count) vs \(b.count)"
}

extension Thread {
    /// Runs `body` on a new thread; `wait()` returns its result.
    static func detachNewThreadWithResult<T: Sendable>(_ body: @escaping @Sendable () -> T) -> ResultBox<T> {
        let box = ResultBox<T>()
        Thread.detachNewThread { box.set(body()) }
        return box
    }
}

final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var value: T?
    func set(_ v: T) { value = v; done.signal() }
    func wait() -> T { done.wait(); return value! }
}
