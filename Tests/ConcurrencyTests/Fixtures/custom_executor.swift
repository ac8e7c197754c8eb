// An actor on a serial executor of the program's own (one thread it starts, running each job with
// runSynchronously, no Dispatch) whose method blocks 120 ms in a named task. Built with `swiftc -O` by the test
// and recorded unchanged by `asynctrace record`.
import Glibc

final class OneThreadExecutor: SerialExecutor, @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var jobs: [UnownedJob] = []

    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
        var t = pthread_t()
        pthread_create(
            &t, nil,
            { me in
                Unmanaged<OneThreadExecutor>.fromOpaque(me!).takeUnretainedValue().serve()
                return nil
            }, Unmanaged.passRetained(self).toOpaque())
        pthread_detach(t)
    }

    private func serve() {
        while true {
            pthread_mutex_lock(&mutex)
            while jobs.isEmpty { pthread_cond_wait(&cond, &mutex) }
            let job = jobs.removeFirst()
            pthread_mutex_unlock(&mutex)
            job.runSynchronously(on: asUnownedSerialExecutor())
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        pthread_mutex_lock(&mutex)
        jobs.append(job)
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }
}

actor Store {
    let executor = OneThreadExecutor()
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    func slowSave() { usleep(120_000) }
}

@main struct CustomExecutor {
    static func main() async {
        let store = Store()
        await Task(name: "saver") { await store.slowSave() }.value
        print("custom-executor saved")
    }
}
