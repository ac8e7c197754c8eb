// Uncaught errors, warnings, and hook balance over a scenario.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import Testing
@testable import AsyncTraceRuntime

struct Boom: Error, CustomStringConvertible { var description: String { "boom" } }

@Suite("Errors and balance", .serialized)
struct ErrorTests {
    @Test("a throwing callback is reported with its async id and type, to the hooks and the handler")
    func uncaught() {
        let box = BalanceHookBox()
        let out = runScenario { log in
            let hook = BalanceHook()
            box.set(hook)
            AsyncHooks.enable(hook)
            EventLoop.current.onUncaughtError = { e in log("\(e.type?.name ?? "-") \(e.asyncID) \(e.error)") }
            let t = setTimeout(1) { throw Boom() }
            log("timer id \(t.asyncID)")
            nextTick { throw Boom() }
            setImmediate { log("loop still runs") }
        }
        AsyncHooks.disable(box.get()!)
        let timerID = out[0].split(separator: " ").last!
        #expect(out.count == 4)
        #expect(box.get()!.undestroyed == [])
        #expect(out[1].hasPrefix("TickObject ") && out[1].hasSuffix(" boom"))
        #expect(out.contains("Timeout \(timerID) boom"))
        #expect(out.contains("loop still runs"))
        let uncaught = box.get()!.state.withLock { $0.uncaught }
        #expect(uncaught.count == 2)
        #expect(uncaught.contains { "\($0.0)" == timerID && $0.1 == "Timeout: boom" })
        #expect(box.get()!.state.withLock { $0.problems } == [])
    }

    @Test("a negative delay is a warning and becomes 1 ms, as in Node")
    func negativeDelay() {
        let warnings = LockedValue<[String]>([])
        RuntimeProcess.setWarningHandler { w in warnings.withLock { $0.append(w) } }
        defer { RuntimeProcess.setWarningHandler(nil) }
        let out = runScenario { log in
            setTimeout(-5) { log("ran") }
        }
        #expect(out == ["ran"])
        #expect(warnings.withLock { $0 } == ["TimeoutNegativeWarning: -5 is a negative number.\nTimeout duration was set to 1."])
    }

    @Test("every resource of a finished scenario has init, balanced before/after, and destroy")
    func balance() {
        let box = BalanceHookBox()
        let out = runScenario { log in
            let hook = BalanceHook()
            box.set(hook)
            AsyncHooks.enable(hook)
            let (r, w) = try Sys.pipe()
            let pipeCtx = AsyncResourceContext(type: ResourceType("PIPEWRAP"))
            var watcher: FDWatcher!
            watcher = try FDWatcher(fd: r, context: pipeCtx) { _ in
                var b = [UInt8](repeating: 0, count: 8)
                _ = try b.withUnsafeMutableBytes { try Sys.read(r, $0) }
                nextTick { log("tick in io") }
                setImmediate { log("immediate after io") }
                try watcher.close()
                EventLoop.current.queueClose(pipeCtx) {
                    try Sys.close(r); try Sys.close(w); log("closed")
                }
            }
            try watcher.start(.readable)
            var n = 0
            var iv: Timeout?
            iv = setInterval(1) {
                n += 1
                queueMicrotask { nextTick { log("tick in microtask") } }
                if n == 3 {
                    clearInterval(iv)
                    _ = try [UInt8(7)].withUnsafeBytes { try Sys.write(w, $0) }
                }
            }
            setTimeout(1000) {}.clear()
            setImmediate {}
        }
        AsyncHooks.disable(box.get()!)
        #expect(out.filter { $0 == "tick in microtask" }.count == 3)
        #expect(out.suffix(3) == ["tick in io", "immediate after io", "closed"])
        let h = box.get()!
        let s = h.state.withLock { $0 }
        #expect(s.problems == [])
        #expect(s.befores == s.afters)
        #expect(s.stack.isEmpty)
        #expect(h.undestroyed == [])
        #expect(s.befores > 10)
    }
}
