// Timing and output helpers shared by every benchmark group.
#if canImport(Glibc)
import Glibc
#endif

func monotonicNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return .nan }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Runs `body` (which performs `ops` operations) `runs` times; returns the median ns per op.
func measure(runs: Int = 5, ops: Int, _ body: () -> Void) -> Double {
    var samples: [Double] = []
    for _ in 0..<runs {
        let t0 = monotonicNs()
        body()
        samples.append(Double(monotonicNs() - t0) / Double(ops))
    }
    return median(samples)
}

/// One JSON line: {"benchmark": name, "ns_per_op": x, "ops_per_s": y, extra...}.
func report(_ name: String, nsPerOp: Double, extra: [(String, String)] = []) {
    var fields = [
        "\"benchmark\": \"\(name)\"", "\"ns_per_op\": \(fmt(nsPerOp))",
        "\"ops_per_s\": \(fmt(nsPerOp > 0 ? 1e9 / nsPerOp : 0))",
    ]
    for (k, v) in extra { fields.append("\"\(k)\": \(v)") }
    print("{" + fields.joined(separator: ", ") + "}")
    fflush(nil)
}

func fmt(_ x: Double) -> String {
    if x.isNaN || x.isInfinite { return "null" }
    let r = (x * 100).rounded() / 100
    return r == r.rounded() && abs(r) < 1e15 ? String(Int64(r)) : String(r)
}

/// Starts `n` threads running `body(i)` at the same moment; returns wall time in ns.
func timeThreads(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) -> UInt64 {
    final class Box: @unchecked Sendable {
        let body: (Int) -> Void
        let i: Int
        let gate: UnsafeMutablePointer<pthread_barrier_t>
        init(_ b: @escaping (Int) -> Void, _ i: Int, _ g: UnsafeMutablePointer<pthread_barrier_t>) { body = b; self.i = i; gate = g }
    }
    let gate = UnsafeMutablePointer<pthread_barrier_t>.allocate(capacity: 1)
    pthread_barrier_init(gate, nil, UInt32(n + 1))
    var threads: [pthread_t] = []
    for i in 0..<n {
        var t = pthread_t()
        pthread_create(
            &t, nil,
            { p in
                let b = Unmanaged<Box>.fromOpaque(p!).takeRetainedValue()
                pthread_barrier_wait(b.gate)
                b.body(b.i)
                return nil
            }, Unmanaged.passRetained(Box(body, i, gate)).toOpaque())
        threads.append(t)
    }
    pthread_barrier_wait(gate)
    let t0 = monotonicNs()
    for t in threads { pthread_join(t, nil) }
    let dt = monotonicNs() - t0
    pthread_barrier_destroy(gate)
    gate.deallocate()
    return dt
}
