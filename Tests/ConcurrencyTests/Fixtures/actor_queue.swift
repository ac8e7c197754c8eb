// A task calls into an actor that another task holds: its call is queued on the actor, and the actor's drain
// (a SwiftActorJob) runs it when the first task leaves, blocking 60 ms. Built with `swiftc -O` by the test and
// recorded unchanged by `asynctrace record`.
import Glibc

final class Pipe: @unchecked Sendable {
    var fds: [Int32] = [0, 0]
    init() { pipe(&fds) }
}
let inside = Pipe()

actor Store {
    func hold() {
        _ = write(inside.fds[1], "i", 1)
        usleep(80_000)
    }
    func save() { usleep(60_000) }
}

@main struct ActorQueue {
    static func main() async {
        let store = Store()
        let holder = Task.detached(name: "holder") { await store.hold() }
        var b: UInt8 = 0
        _ = read(inside.fds[0], &b, 1)  // the holder is inside the actor now
        let saver = Task.detached(name: "saver") { await store.save() }
        await holder.value
        await saver.value
        print("actor-queue")
    }
}
