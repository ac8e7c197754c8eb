// close_range finds a process's fds in a range through an ordered index, not a walk over every fd of the
// trace (a crafted file of many fds and many close_range calls made that quadratic).
import Testing
@testable import TraceAnalyses

@Suite struct OrderedFDsTests {
    @Test func behavesLikeASortedSet() {
        var rng = SystemRandomNumberGenerator()
        for space in [Int64(50), 5_000, 1 << 40] {
            var fds = OrderedFDs()
            var reference = Set<Int64>()
            for step in 0..<30_000 {
                let fd = Int64.random(in: 0..<space, using: &rng)
                if Bool.random(using: &rng) || step < 3_000 {
                    fds.insert(fd)
                    reference.insert(fd)
                } else {
                    fds.remove(fd)
                    reference.remove(fd)
                }
                if step % 1_499 == 0 {
                    let a = Int64.random(in: 0..<space, using: &rng), b = Int64.random(in: 0..<space, using: &rng)
                    let (lo, hi) = (min(a, b), max(a, b))
                    #expect(fds.inRange(lo, hi) == reference.filter { $0 >= lo && $0 <= hi }.sorted())
                }
            }
            #expect(fds.inRange(0, .max) == reference.sorted())
            #expect(fds.isEmpty == reference.isEmpty)
        }
    }

    @Test func closeRangeEndsOnlyThatProcesssFdsInTheRange() {
        var io = IOTracker(streams: 1)
        for fd in Int64(0)..<3_000 { io.fdOpen(pid: 1, tid: 1, fd: fd, kind: 1, sourceFd: -1, detail: "f\(fd)", ns: 10) }
        for fd in Int64(0)..<50 { io.fdOpen(pid: 2, tid: 2, fd: fd, kind: 1, sourceFd: -1, detail: "g\(fd)", ns: 10) }
        io.closedRange(pid: 1, first: 10, last: 2_500, ns: 20)
        var open: [UInt32: [Int64]] = [:]
        io.byFD.forEach { k, _ in open[k.pid, default: []].append(k.fd) }
        #expect(open[1]?.sorted() == Array(0..<10) + Array(2_501..<3_000))
        #expect(open[2]?.count == 50)
        #expect(io.endedLives.count == 2_491 && io.endedLives.map(\.key.fd) == Array(10...2_500))
        io.closedRange(pid: 1, first: 0, last: .max, ns: 30)
        #expect(io.fdsOfProcess[1] == nil && io.fdsOfProcess[2] != nil)
    }
}
