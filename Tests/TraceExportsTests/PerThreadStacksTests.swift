import Testing
@testable import TraceExports

/// The raw per-thread stacks grow past their first capacities (8 threads, 16 entries) without losing a value.
@Suite struct PerThreadStacksTests {
    @Test func growsThreadsAndDepthsKeepingEveryValue() {
        var s = PerThreadStacks<Int>()
        defer { s.deallocate() }
        for _ in 0..<20 { s.addThread() }
        for t in 0..<20 { for i in 0..<(t * 5) { s.push(t, t * 1_000 + i) } }
        for t in (0..<20).reversed() {
            var popped: [Int] = []
            while let v = s.pop(t) { popped.append(v) }
            #expect(popped == (0..<(t * 5)).reversed().map { t * 1_000 + $0 })
        }
    }
}
