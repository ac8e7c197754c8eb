// Child processes: real /bin programs, stdio over socket pairs, exit codes, signals, spawn errors.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import Testing
@testable import AsyncTraceRuntime

@Suite("Child processes")
struct ChildProcessTests {
    @Test("spawn with args, env and cwd; stdin to stdout through cat; exit then close; pipes triggered by the caller (as Node's); balanced")
    func spawnPipes() {
        let caller = LockedValue<AsyncID>(.none)
        let (lines, hook) = runTraced { log in
            caller.withLock { $0 = executionAsyncID() }
            let child = ChildProcess.spawn(
                "/bin/sh", ["-c", "echo \"$GREETING from $(pwd)\"; cat; exit 3"],
                env: ["GREETING": "hello", "PATH": "/usr/bin:/bin"], cwd: "/tmp")
            var out: [UInt8] = []
            child.stdout!.onData { out += $0 }
            child.stdin!.write("through cat\n")
            child.stdin!.end()
            child.onExit { code, signal in log("exit \(code.map(String.init) ?? "nil") \(signal ?? "nil")") }
            child.onClose { code, _ in
                log(String(decoding: out, as: UTF8.self))
                log("close \(code!)")
            }
        }
        #expect(lines == ["exit 3 nil", "hello from /tmp\nthrough cat\n", "close 3"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
        let proc = hook.ids(of: "PROCESSWRAP")
        let pipes = hook.ids(of: "PIPEWRAP")
        #expect(proc.count == 1 && pipes.count == 3)
        if let p = proc.first {
            #expect(pipes.allSatisfy { hook.resource($0)?.trigger == caller.withLock { $0 } })
            #expect((hook.resource(p)?.fds.first ?? -1) >= 0)
        }
    }

    @Test("kill ends the child with a signal")
    func kill() {
        let (lines, hook) = runTraced { log in
            let child = ChildProcess.spawn("sleep", ["10"], stdio: [.ignore, .ignore, .ignore])
            setTimeout(20) { log("kill \(child.kill())") }
            child.onExit { code, signal in log("exit \(code.map(String.init) ?? "nil") \(signal ?? "nil")") }
        }
        #expect(lines == ["kill true", "exit nil SIGTERM"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }

    @Test("a missing program is an ENOENT error event; execFile and exec collect output")
    func errorsAndExec() {
        let (lines, hook) = runTraced { log in
            let bad = ChildProcess.spawn("/nonexistent/program")
            bad.onError { e in log("error \(e.code) \(e.errno == ENOENT) \(e.syscall) \(e.asyncID == bad.asyncID)") }
            ChildProcess.execFile("/bin/echo", ["a", "b"]) { r in log("execFile \(r.stdoutString.debugDescription) \(r.exitCode!) \(r.error == nil)")
            }
            ChildProcess.exec("echo oops >&2; exit 2") { r in log("exec \(r.stderrString.debugDescription) \(r.exitCode!) \(r.error?.code ?? "")") }
        }
        #expect(
            lines.sorted() == [
                "error ENOENT true spawn /nonexistent/program true", "exec \"oops\\n\" 2 ERR_CHILD_FAILED",
                "execFile \"a b\\n\" 0 true",
            ])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }
}
