// An application with its own copy of AsyncHooks (as one that uses an adapter: AsyncTraceNIO, the tracing
// bridge) and no recorder: `asynctrace record` injects its library, and the two copies meet in one
// registry, so this program's events reach the injected recorder. The tests check the trace:
//   - resource EmbeddedWork (trigger: the main task, in its first run) with the read end of a pipe as its fd, one
//     before/after, destroy; inside its callback a Swift task is created (its trigger: EmbeddedWork) and a
//     mark "embedded-mark" is made;
//   - span "embedded-span" with attribute "copy=application";
//   - stdout: "copies N" (the copies of AsyncHooks sharing the process's hooks), "ids A B" (the resource's
//     and a second resource's ids), "locals ..." (an AsyncLocal's values in child tasks, async let, group
//     tasks, a detached task and across awaits, while the injected copy runs every job as a callback).
@_spi(Recorder) import AsyncHooks
#if canImport(Glibc)
import Glibc
#endif

let requestID = AsyncLocal<String>()

/// The AsyncLocal's value where Swift's structure carries it, and nil in a detached task.
func localsAcrossTasks() async -> [String] {
    await requestID.run("async-run") {
        let afterAwait: String? = await {
            await Task.yield()
            return requestID.current
        }()
        async let fromAsyncLet: String? = {
            await Task.yield()
            return requestID.current
        }()
        let fromGroup = await withTaskGroup(of: String?.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    await Task.yield()
                    return requestID.current
                }
            }
            var all: [String?] = []
            for await v in group { all.append(v) }
            return all
        }
        let detached = await Task.detached { requestID.current }.value
        let fromSyncRun = await requestID.run("sync-run") { Task { requestID.current } }.value
        return ([afterAwait, await fromAsyncLet] + fromGroup + [detached, fromSyncRun, requestID.current]).map { $0 ?? "nil" }
    }
}

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
        say("locals " + (await localsAcrossTasks()).joined(separator: " "))
    }
}
