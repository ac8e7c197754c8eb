// An unmodified Swift program with one stall of each kind, each in a named task on the cooperative pool: a read
// of a pipe that a thread writes 120 ms later, a 100 ms sleep, a wait for a mutex a thread holds for 130 ms, and
// 100 ms of CPU. Then a Task.sleep (a timer: Dispatch's event thread serves it). Built with `swiftc -O` by the
// test and recorded unchanged by `asynctrace record`.
import Glibc

final class Shared: @unchecked Sendable {
    var data: [Int32] = [0, 0]
    var ready: [Int32] = [0, 0]
    let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() {
        pipe(&data)
        pipe(&ready)
        pthread_mutex_init(mutex, nil)
    }
}
let shared = Shared()

func startThread(_ body: @escaping () -> Void) {
    final class Body { let run: () -> Void; init(_ r: @escaping () -> Void) { run = r } }
    var t = pthread_t()
    let arg = Unmanaged.passRetained(Body(body)).toOpaque()
    pthread_create(
        &t, nil,
        { arg in
            Unmanaged<Body>.fromOpaque(arg!).takeRetainedValue().run()
            return nil
        }, arg)
    pthread_detach(t)
}

func cpuTimeNs() -> Int {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

@main struct FourStalls {
    static func main() async {
        startThread {
            usleep(120_000); _ = write(shared.data[1], "x", 1)
        }
        _ = await Task(name: "pipe-reader") {
            var b: UInt8 = 0
            return read(shared.data[0], &b, 1)
        }.value
        _ = await Task(name: "sleeper") { usleep(100_000) }.value
        startThread {
            pthread_mutex_lock(shared.mutex)
            _ = write(shared.ready[1], "r", 1)
            usleep(130_000)
            pthread_mutex_unlock(shared.mutex)
        }
        var r: UInt8 = 0
        _ = read(shared.ready[0], &r, 1)
        _ = await Task(name: "locker") {
            pthread_mutex_lock(shared.mutex)
            pthread_mutex_unlock(shared.mutex)
        }.value
        let spun = await Task(name: "spinner") { () -> Int in
            let start = cpuTimeNs()
            var x = 0
            while cpuTimeNs() - start < 100_000_000 { x &+= 1 }
            return x
        }.value
        try? await Task.sleep(nanoseconds: 20_000_000)
        print("four-stalls \(spun > 0)")
    }
}
