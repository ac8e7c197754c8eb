// The Swift Concurrency benchmark's program (asynctrace-bench concurrency compiles it with swiftc -O).
// `tasks group N`: a task group of N child tasks; `tasks yield N`: one task yielding N times (one job
// per yield). Prints the measured section's wall time in ns, so process start-up is not counted.
@main struct Tasks {
    static func main() async {
        let args = CommandLine.arguments
        let mode = args.count > 1 ? args[1] : "group"
        let n = args.count > 2 ? Int(args[2]) ?? 100_000 : 100_000
        let clock = ContinuousClock()
        let start = clock.now
        var check = 0
        if mode == "yield" {
            check = await Task.detached {
                var k = 0
                for i in 0..<n { await Task.yield(); k &+= i }
                return k
            }.value
        } else {
            check = await withTaskGroup(of: Int.self) { group in
                for i in 0..<n { group.addTask { i } }
                var sum = 0
                for await v in group { sum &+= v }
                return sum
            }
        }
        let d = clock.now - start
        let ns = d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
        print("elapsed_ns \(ns) check \(check)")
    }
}
