// The async main blocks before its first suspension (the program's `main` runs that job itself, never
// enqueued), then again after an await (a job Dispatch runs).
import Foundation

@main struct MainFirstRun {
    static func main() async {
        usleep(150_000)
        print("main-first-run before")
        try? await Task.sleep(nanoseconds: 10_000_000)
        usleep(60_000)
        print("main-first-run after")
    }
}
