// Tasks that block their pool thread 40 ms each: one named (Swift 6.2+ `Task(name:)`), one an `async let`,
// one a group child. The report should say which task each blocking run was, not only its async id.
// Built with `swiftc -O` by the test and recorded unchanged by `asynctrace record`.
import Glibc

@main struct NamedTasks {
    static func main() async {
        _ = await Task(name: "slow-reader") { usleep(40_000) }.value
        async let blocked = usleep(40_000)
        _ = await blocked
        await withTaskGroup(of: Int32.self) { group in
            group.addTask { usleep(40_000) }
            _ = await group.next()
        }
        print("named-tasks")
    }
}
