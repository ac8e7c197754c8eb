// A program that ends from inside a task, in the way its first argument names: exit, _exit, sigkill,
// fatal (fatalError), abort, sighup (sent to the process: its default action ends it), or ignored-sigint
// (SIGINT sent while it is ignored: the program goes on, runs one more task and exits normally). Before that, a first task
// completes on a pool thread, so its end is in some thread's buffer when the program ends. Built with
// `swiftc -O` by the test and recorded unchanged by `asynctrace record`.
import Glibc

@main struct EndingInTask {
    static func main() async {
        let mode = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "exit"
        // A thread of the program's own that does not block signals (Dispatch's workers do), as a program
        // with a thread of its own has.
        var plain = pthread_t()
        pthread_create(
            &plain, nil,
            { _ in
                while true { pause() }
            }, nil)
        let first = await Task.detached { () -> Int in (0..<1000).reduce(0, &+) }.value
        print("first", first)
        fflush(stdout)
        await Task.detached {
            usleep(20_000)
            switch mode {
            case "exit": exit(3)
            case "_exit": _exit(3)
            case "sigkill": kill(getpid(), SIGKILL)
            case "fatal": fatalError("ending inside a task")
            case "abort": abort()
            case "sighup":
                // Dispatch's workers block it: the plain thread takes it, while this task is still running.
                kill(getpid(), SIGHUP)
                usleep(2_000_000)
            case "ignored-sigint":
                kill(getpid(), SIGINT)
                usleep(20_000)
            default: break
            }
        }.value
        let last = await Task.detached { () -> Int in 42 }.value
        print("went on", last)
    }
}
