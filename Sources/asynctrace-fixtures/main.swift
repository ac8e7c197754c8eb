// Small programs the tests run as child processes: they record with the in-process recorder
// and then end in a chosen way (normally, SIGSEGV, SIGKILL), so tests can check what survives.
import AsyncHooks
import AsyncTraceRecorder
import CAsyncHooksSupport
#if canImport(Glibc)
import Glibc
#endif

func emit(_ n: Int) {
    for _ in 0..<n {
        let r = AsyncResourceContext(type: .timeout)
        r.runInScope {}
        r.emitDestroy()
    }
}

/// The write end of a pipe the locker thread signals on once it holds the lock.
nonisolated(unsafe) var lockedSignal: Int32 = -1

/// Starts a thread that takes AsyncHooks' registry lock and keeps it; returns once it holds it.
nonisolated func holdRegistryLockOnAnotherThread() {
    var fds: [Int32] = [0, 0]
    pipe(&fds)
    lockedSignal = fds[1]
    var locker = pthread_t()
    pthread_create(
        &locker, nil,
        { _ in
            asynchooks_lock()
            var one: UInt8 = 1
            _ = write(lockedSignal, &one, 1)
            while true { pause() }
        }, nil)
    var byte: UInt8 = 0
    _ = read(fds[0], &byte, 1)
}

func say(_ s: String) {
    var b = Array((s + "\n").utf8)
    _ = b.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
}

let args = CommandLine.arguments
guard args.count >= 3, let n = Int(args[2]) else {
    say("usage: asynctrace-fixtures normal|segv|segv-locked|fork-locked|sigkill|abort RESOURCES   (records to $ASYNCTRACE_OUTPUT)")
    exit(2)
}
if args[1] == "sigkill" {
    // Its wait below counts four events per resource; a creation stack would add events per resource
    // (and definitions), so the count could be reached before every resource's events were written.
    setenv("ASYNCTRACE_CREATION_STACKS", "off", 1)
}
guard TraceRecorder.startFromEnvironment() else {
    say("ASYNCTRACE_OUTPUT is not set")
    exit(2)
}
emit(n)
switch args[1] {
case "normal":
    exit(0)  // atexit flushes
case "segv":
    let p = UnsafeMutablePointer<Int>(bitPattern: 8)!
    p.pointee = 1
case "abort":
    abort()
case "segv-locked":
    // Another thread holds AsyncHooks' registry lock (as a thread enabling or disabling a hook does) when
    // this one crashes: the crash handler must not wait for that lock. SIGALRM ends a handler that does.
    holdRegistryLockOnAnotherThread()
    // The test runner's thread that forked this process may block SIGALRM; the mask survives exec.
    var alarmOnly = sigset_t()
    sigemptyset(&alarmOnly)
    sigaddset(&alarmOnly, SIGALRM)
    sigprocmask(SIG_UNBLOCK, &alarmOnly, nil)
    alarm(20)
    let p = UnsafeMutablePointer<Int>(bitPattern: 8)!
    p.pointee = 1
case "fork-locked":
    // fork() while another thread holds the registry lock: in the child that lock stays taken forever, so
    // the child's fork handler must not take it. The child emits, exits normally (atexit handlers run) and
    // must end at once, writing nothing into the parent's trace.
    holdRegistryLockOnAnotherThread()
    let child = fork()
    if child == 0 {
        emit(100)
        exit(0)
    }
    // A child stuck in fork's handler never reaches an alarm() of its own: the parent waits 20 s at most.
    var status: Int32 = 0
    var waited = 0
    while waitpid(child, &status, WNOHANG) == 0 {
        if waited == 2_000 {
            kill(child, SIGKILL)
            waitpid(child, &status, 0)
            break
        }
        usleep(10_000)
        waited += 1
    }
    say("child status \(status)")
    _exit(0)  // exit() would stop the recorder, which disables its hook: the lock is held for good here
case "sigkill":
    // Wait until what was emitted so far reached the kernel, report it, then die without warning.
    TraceRecorder.requestFlush()
    AsyncResourceContext(type: .timeout).emitDestroy()  // the flush happens at a thread's next event
    while TraceRecorder.statistics.eventsWritten < UInt64(4 * n) { usleep(1000) }
    say("written \(TraceRecorder.statistics.eventsWritten)")
    emit(1000)  // these stay in the thread's buffer and are lost with SIGKILL
    kill(getpid(), SIGKILL)
default:
    say("unknown mode \(args[1])")
    exit(2)
}
