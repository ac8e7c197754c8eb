// FD watchers on real pipes: readiness, scoping, liveness, misuse errors.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import Synchronization
import Testing
@testable import AsyncTraceRuntime

@Suite("FD watchers")
struct FDWatcherTests {
    @Test("a readable pipe calls back under its resource, with the fd recorded")
    func readablePipe() {
        let out = runScenario { log in
            let (r, w) = try Sys.pipe()
            let ctx = AsyncResourceContext(type: ResourceType("PIPEWRAP"))
            var watcher: FDWatcher!
            watcher = try FDWatcher(fd: r, context: ctx) { events in
                var buf = [UInt8](repeating: 0, count: 16)
                let n = try buf.withUnsafeMutableBytes { try Sys.read(r, $0) }
                log("\(events.contains(.readable)) \(n) \(String(decoding: buf[..<n], as: UTF8.self)) in \(executionAsyncID() == ctx.asyncID)")
                try watcher.close()
                ctx.emitDestroy()
                try Sys.close(r)
                try Sys.close(w)
            }
            try watcher.start(.readable)
            setTimeout(5) { _ = try "hello".utf8.withContiguousStorageIfAvailable { try Sys.write(w, UnsafeRawBufferPointer($0)) } }
        }
        #expect(out == ["true 5 hello in true"])
    }

    @Test("a writable pipe is ready at once; a started watcher keeps the loop alive until stopped")
    func writableAndLiveness() {
        let out = runScenario { log in
            let (r, w) = try Sys.pipe()
            var count = 0
            var watcher: FDWatcher!
            watcher = try FDWatcher(fd: w) { events in
                count += 1
                if count == 3 {
                    log("writable 3 times: \(events.contains(.writable))")
                    try watcher.stop()  // the loop ends: nothing else is ref'd
                }
            }
            try watcher.start(.writable)
            setTimeout(50) {
                log("cleanup"); try watcher.close(); try Sys.close(r); try Sys.close(w)
            }.unref()
        }
        #expect(out == ["writable 3 times: true"])
    }

    @Test("an unref'd watcher does not keep the loop alive")
    func unrefWatcher() {
        let out = runScenario { log in
            let (r, w) = try Sys.pipe()
            let watcher = try FDWatcher(fd: r) { _ in log("never readable") }
            try watcher.start(.readable)
            watcher.unref()
            setTimeout(5) { log("done") }
            _ = w
        }
        #expect(out == ["done"])
    }

    @Test("the peer closing is reported as hangup")
    func hangup() {
        let out = runScenario { log in
            let (r, w) = try Sys.pipe()
            var watcher: FDWatcher!
            watcher = try FDWatcher(fd: r) { events in
                log("hangup: \(events.contains(.hangup))")
                try watcher.close()
                try Sys.close(r)
            }
            try watcher.start(.readable)
            try Sys.close(w)
        }
        #expect(out == ["hangup: true"])
    }

    @Test("closing twice, using a closed watcher, bad fds: clear errors")
    func misuse() {
        let out = runScenario { log in
            let (r, w) = try Sys.pipe()
            let ctx = AsyncResourceContext(type: ResourceType("PIPEWRAP"))
            let watcher = try FDWatcher(fd: r, context: ctx) { _ in }
            do { _ = try FDWatcher(fd: r) { _ in } } catch { log("\(error)") }
            try watcher.close()
            do { try watcher.close() } catch { log("\(error)") }
            do { try watcher.start(.readable) } catch { log("\(error)") }
            do { _ = try FDWatcher(fd: -1) { _ in } } catch { log("\(error)") }
            // A closed fd: epoll_ctl's EBADF comes back as a SystemError.
            try Sys.close(r)
            let stale = try FDWatcher(fd: r) { _ in }
            do { try stale.start(.readable) } catch let e as SystemError { log("\(e.code) \(e.function)") }
            try stale.close()
            try Sys.close(w)
            ctx.emitDestroy()
        }
        #expect(out.count == 5)
        #expect(out[0].contains("ERR_INVALID_FD") && out[0].contains("already watched"))
        #expect(out[1].contains("ERR_HANDLE_CLOSED") && out[1].contains("already closed") && out[1].contains("PIPEWRAP"))
        #expect(out[2].contains("ERR_HANDLE_CLOSED") && out[2].contains("cannot start"))
        #expect(out[3].contains("ERR_INVALID_FD: fd -1"))
        #expect(out[4] == "EBADF epoll_ctl")
    }

    @Test("a watcher closed by an earlier callback in the same poll batch does not fire")
    func closedInBatch() {
        let out = runScenario { log in
            let (r1, w1) = try Sys.pipe()
            let (r2, w2) = try Sys.pipe()
            var a: FDWatcher!
            var b: FDWatcher!
            a = try FDWatcher(fd: r1) { _ in
                log("first")
                try a.close(); try b.close()
            }
            b = try FDWatcher(fd: r2) { _ in
                log("first")
                try a.close(); try b.close()
            }
            try a.start(.readable)
            try b.start(.readable)
            _ = try [UInt8(1)].withUnsafeBytes { try Sys.write(w1, $0) }
            _ = try [UInt8(1)].withUnsafeBytes { try Sys.write(w2, $0) }
            setTimeout(10) { for fd in [r1, w1, r2, w2] { try Sys.close(fd) } }
        }
        #expect(out == ["first"])
    }
}
