// A task sleeps 150 ms and then calls exit(): the process ends inside the task's run, with no event of the
// program after the run's before. Built with `swiftc -O` by the test and recorded unchanged by `asynctrace record`.
import Glibc

@main struct ExitAfterSleepInTask {
    static func main() async {
        await Task.detached {
            usleep(150_000)
            exit(0)
        }.value
    }
}
