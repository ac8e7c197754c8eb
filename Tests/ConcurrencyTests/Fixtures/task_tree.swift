// A program with a known task tree, for the Concurrency adapter's tests. Built with `swiftc -O` by the
// test and recorded unchanged by `asynctrace record`. Expected (19 tasks):
//   main task (async main)
//   ├── 3 group children                      (withTaskGroup in main)
//   │   ├── async let `quick`                 -> leaf: Task.yield
//   │   └── async let `nested`                -> a task group of 2 children
//   │       └── 2 group children              -> leaf
//   ├── detached task "detached-worker"       (Task.detached(name:) in main)
//   │   └── unstructured child "inner-leaf"   (Task(name:) in the detached task)
//   └── the helper task of Task.sleep         (the runtime's own, in main)
// Each group child hops to the actor `Ledger` once.
actor Ledger {
    var entries: [Int] = []
    func record(_ n: Int) -> Int { entries.append(n); return entries.count }
}

@inline(never) func leaf(_ n: Int) async -> Int {
    await Task.yield()
    var x = n
    for i in 0..<1000 { x = x &* 31 &+ i }
    return x & 0xff
}

func nested(_ n: Int) async -> Int {
    await withTaskGroup(of: Int.self) { group in
        for k in 0..<2 { group.addTask { await leaf(n * 10 + k) } }
        var sum = 0
        for await v in group { sum += v }
        return sum
    }
}

@main struct TaskTree {
    static func main() async {
        let ledger = Ledger()
        let total = await withTaskGroup(of: Int.self) { group in
            for i in 0..<3 {
                group.addTask {
                    async let quick = leaf(i)
                    async let deep = nested(i)
                    let count = await ledger.record(i)
                    return await quick + deep + count
                }
            }
            var sum = 0
            for await v in group { sum += v }
            return sum
        }
        // Early, so its helper task has finished long before the process exits (an exit cuts a running job).
        try? await Task.sleep(nanoseconds: 2_000_000)
        let detached = Task.detached(name: "detached-worker") {
            let inner = Task(name: "inner-leaf") { await leaf(100) }
            return await inner.value
        }
        let d = await detached.value
        print("task-tree", total, d, await ledger.entries.count)
    }
}
