// An application with its own copy of AsyncHooks (as one that uses an adapter: AsyncTraceNIO, the tracing
// bridge) and no recorder: `asynctrace record` injects its library, and the two copies meet in one
// registry, so this program's events reach the injected recorder. The tests check the trace:
//   - resource EmbeddedWork (trigger: top level) with the read end of a pipe as its fd, one
//     before/after, destroy; inside its callback a Swift task is created (its trigger: EmbeddedWork) and a
//     mark "embedded-mark" is made;
//   - span "embedded-span" with attribute "copy=application";
//   - stdout: "copies N" (the copies of AsyncHooks sharing the process's hooks), "ids A B" (the resource's
//     and a second resource's ids).
@_spi(Recorder) import AsyncHooks
#if canImport(Glibc)
import Glibc
#endif

func say(_ s: String) {
    var b = Array((s + "\n").utf8)
    _ = b.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
}

@main struct EmbeddedFixture {
    static func main() async {
        var fds: [Int32] = [0, 0]
        _ = pipe(&fds)
        let work = AsyncResourceContext(type: ResourceType("EmbeddedWork"))
        work.setFD(fds[0])
        let span = AsyncHooks.beginSpan("embedded-span")
        AsyncHooks.setSpanAttribute(span, key: "copy", value: "application")
        let task: Task<Int, Never> = work.runInScope {
            AsyncHooks.mark("embedded-mark")
            return Task.detached {
                await Task.yield(); return 42
            }
        }
        _ = await task.value
        work.emitDestroy()
        AsyncHooks.endSpan(span)
        let second = AsyncResourceContext(type: ResourceType("EmbeddedWork"))
        second.emitDestroy()
        say("copies \(AsyncHooks.copiesInProcess)")
        say("ids \(work.asyncID.rawValue) \(second.asyncID.rawValue)")
    }
}
