// A task blocks its pool thread in DispatchSemaphore.wait (a callback API bridged the wrong way) until a
// thread named "signaller" signals it 150 ms later. Built with `swiftc -O` by the test and recorded
// unchanged by `asynctrace record`.
import Dispatch
import Glibc

let semaphore = DispatchSemaphore(value: 0)
// Glibc's module map leaves pthread_setname_np out: from libc itself.
typealias SetName = @convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32
let setName = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pthread_setname_np"), to: SetName.self)

@main struct SemaphoreInTask {
    static func main() async {
        var signaller = pthread_t()
        pthread_create(
            &signaller, nil,
            { _ in
                _ = setName(pthread_self(), "signaller")
                usleep(150_000)
                semaphore.signal()
                return nil
            }, nil)
        let got = await Task.detached { () -> Int in
            semaphore.wait()
            return 1
        }.value
        pthread_join(signaller, nil)
        print("semaphore-in-task", got)
    }
}
