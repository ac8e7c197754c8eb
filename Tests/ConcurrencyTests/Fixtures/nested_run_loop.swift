// A Swift task that runs a nested run loop, as Foundation's `Process.waitUntilExit()` and `RunLoop.run`
// do (CFRunLoop on Linux): each turn looks at its epoll fd without blocking, then blocks in poll. Built
// with `swiftc -O` by the test and recorded unchanged by `asynctrace record`. Every stretch between the
// thread's epoll waits lies inside the task's one run.
import Glibc

// Glibc's module map leaves out <sys/epoll.h>: the two calls, from libc itself.
typealias EpollCreate = @convention(c) (Int32) -> Int32
typealias EpollWait = @convention(c) (Int32, UnsafeMutableRawPointer?, Int32, Int32) -> Int32
let epollCreate1 = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "epoll_create1"), to: EpollCreate.self)
let epollWait = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "epoll_wait"), to: EpollWait.self)

@inline(never) func runNestedLoop(turns: Int, pollMs: Int32) -> Int {
    let epfd = epollCreate1(0)
    defer { close(epfd) }
    var event = (UInt64(0), UInt64(0))  // room for one struct epoll_event (12 bytes)
    var ready = 0
    for _ in 0..<turns {
        ready += withUnsafeMutableBytes(of: &event) { Int(epollWait(epfd, $0.baseAddress, 1, 0)) }
        ready += Int(poll(nil, 0, pollMs))
    }
    return ready
}

@main struct NestedRunLoop {
    static func main() async {
        let ready = await Task.detached { runNestedLoop(turns: 5, pollMs: 40) }.value
        print("nested-run-loop", ready)
    }
}
