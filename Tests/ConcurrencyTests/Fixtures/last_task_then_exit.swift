// The async main awaits one task and returns right after: the process ends as soon as the task has
// completed. Built with `swiftc -O` by the test and recorded unchanged by `asynctrace record`.
import Glibc

@main struct LastTaskThenExit {
    static func main() async {
        let value = await Task.detached { () -> Int in
            usleep(30_000)
            return 7
        }.value
        print("last-task", value)
    }
}
