// Child processes in the shape of Node's `child_process`: spawn with args, env and cwd; stdio as
// socket pairs (PIPEWRAP sockets); exit code or signal through a pidfd watched on the loop
// (PROCESSWRAP, which records the pidfd); kill; and execFile/exec collecting the output.
#if canImport(Glibc)
import Glibc
#endif
@_spi(Runtime) import AsyncHooks

/// Node's `child_process.ChildProcess`: a spawned program (a PROCESSWRAP resource recording its pidfd),
/// its stdio as PIPEWRAP sockets, its exit from the pidfd watched on the loop.
public final class ChildProcess {
    /// How each of the child's stdin, stdout and stderr is connected.
    public enum StdioMode: Sendable {
        /// A socket pair; the parent's end is `stdin`/`stdout`/`stderr`.
        case pipe
        /// The parent's own fd.
        case inherit
        /// /dev/null.
        case ignore
    }

    let loop: EventLoop
    /// PROCESSWRAP.
    public let context: AsyncResourceContext
    /// The child's pid (0 until spawned).
    public private(set) var pid: pid_t = 0
    /// The program spawned (as given).
    public let spawnFile: String
    /// Its arguments, argv[0] included.
    public let spawnArgs: [String]
    /// The parent's end of the child's stdin (nil unless `.pipe`).
    public private(set) var stdin: Socket?
    /// The parent's end of the child's stdout (nil unless `.pipe`).
    public private(set) var stdout: Socket?
    /// The parent's end of the child's stderr (nil unless `.pipe`).
    public private(set) var stderr: Socket?
    var pidFD: Int32 = -1
    var watcher: FDWatcher?
    /// The exit code once it exited normally; -errno when spawning failed; nil while running or when a signal ended it.
    public private(set) var exitCode: Int32?
    /// The signal that ended the child, e.g. "SIGTERM".
    public private(set) var signalCode: String?
    /// Whether the child has ended (exited, killed by a signal, or failed to spawn).
    public private(set) var hasExited = false
    /// Node's _closesNeeded/_closesGot: the exit, plus stdout's and stderr's 'close' when piped.
    var closesNeeded = 1
    var closesGot = 0
    var closeEmitted = false
    /// Whether `kill` sent a signal successfully.
    public private(set) var killed = false

    var exitListeners = Listeners<(Int32?, String?)>()
    var closeListeners = Listeners<(Int32?, String?)>()
    var errorListeners = Listeners<NetError>()
    var spawnListeners = Listeners<Void>()

    /// Node's `child_process.spawn(command, args, { env, cwd, stdio })`. `command` is looked up in PATH.
    /// `env` replaces the environment (nil: inherit). Failures (ENOENT, EACCES) arrive as 'error'.
    public static func spawn(
        _ command: String, _ args: [String] = [], env: [String: String]? = nil, cwd: String? = nil,
        stdio: [StdioMode] = [.pipe, .pipe, .pipe], loop: EventLoop = .current
    ) -> ChildProcess {
        ChildProcess(command, args, env: env, cwd: cwd, stdio: stdio, loop: loop)
    }

    init(_ command: String, _ args: [String], env: [String: String]?, cwd: String?, stdio: [StdioMode], loop: EventLoop) {
        self.loop = loop
        self.spawnFile = command
        self.spawnArgs = [command] + args
        self.context = AsyncResourceContext(type: .processWrap)
        var parentEnds: [Int32] = []
        var childFDs: [Int32] = []
        var toClose: [Int32] = []
        do {
            for i in 0..<3 {
                let mode = i < stdio.count ? stdio[i] : .ignore
                switch mode {
                case .pipe:
                    let (parent, child) = try Sys.socketPair()
                    parentEnds.append(parent)
                    childFDs.append(child)
                    toClose.append(child)
                case .inherit:
                    parentEnds.append(-1)
                    childFDs.append(Int32(i))
                case .ignore:
                    parentEnds.append(-1)
                    childFDs.append(-1)
                }
            }
            // The stdio sockets exist before the spawn, as Node's pipes (their trigger is the caller, not
            // the process); stdout and stderr are each one more 'close' the process waits for.
            for (i, fd) in parentEnds.enumerated() where fd >= 0 {
                let sock = try Socket(connectedFD: fd, kind: .pipe, server: nil, loop: loop)
                parentEnds[i] = -1
                if i == 0 {
                    stdin = sock
                } else {
                    if i == 1 { stdout = sock } else { stderr = sock }
                    closesNeeded += 1
                    sock.onClose { [self] _ in try maybeClose() }
                }
                sock.updateInterest()
            }
            let environment = env.map { $0.map { "\($0.key)=\($0.value)" }.sorted() } ?? Sys.environment()
            defer {
                // The child's ends: once closed, a failed spawn's stdout and stderr read their end.
                for fd in toClose { try? Sys.close(fd) }
                toClose = []
            }
            pid = try Sys.spawn(path: command, argv: [command] + args, env: environment, cwd: cwd, stdio: childFDs)
            pidFD = try Sys.pidfdOpen(pid)
            let w = try FDWatcher(fd: pidFD, loop: loop, context: context) { [self] _ in try reap() }
            try w.start(.readable)
            watcher = w
            loop.nextTick { [self] in try spawnListeners.emit(()) }
        } catch {
            for fd in toClose { try? Sys.close(fd) }
            for fd in parentEnds where fd >= 0 { try? Sys.close(fd) }
            let sys = error as? SystemError
            let e = NetError(
                code: sys?.code ?? "EINVAL", errno: sys?.errno ?? 0, syscall: "spawn \(command)",
                asyncID: context.asyncID, message: "spawn \(command) \(sys?.code ?? "\(error)")")
            if pid > 0 { _ = try? Sys.kill(pid, SIGKILL); _ = try? Sys.reap(pid) }
            // Node (onErrorNT -> onexit): stdin destroyed, the handle closed (destroyed in the close phase),
            // 'error' instead of 'exit', then the exit's share of 'close', which comes once stdout and
            // stderr closed too (they read the end of their closed child ends).
            let ctx = context
            loop.nextTick { [self] in
                stdin?.destroy()
                hasExited = true
                exitCode = -(sys?.errno ?? EINVAL)
                loop.queueClose(nil, destroyAfter: false) { ctx.emitDestroy() }
                if errorListeners.isEmpty { throw e }
                try errorListeners.emit(e)
                try maybeClose()
            }
        }
    }

    /// Node's onexit: stdin destroyed, the process handle closed (destroyed in the close phase), 'exit',
    /// then the exit's share of 'close'.
    func reap() throws {
        guard let status = try? Sys.reap(pid) else { return }
        hasExited = true
        exitCode = status.code
        signalCode = status.signal.map(Sys.signalName)
        try? watcher?.close()
        watcher = nil
        try? Sys.close(pidFD)
        pidFD = -1
        stdin?.destroy()
        let ctx = context
        loop.queueClose(nil, destroyAfter: false) { ctx.emitDestroy() }
        try exitListeners.emit((exitCode, signalCode))
        try maybeClose()
    }

    /// Node's maybeClose: 'close' once the exit and every stdout/stderr socket's 'close' arrived, in the
    /// callback of the last of them.
    func maybeClose() throws {
        closesGot += 1
        guard closesGot == closesNeeded, !closeEmitted else { return }
        closeEmitted = true
        defer { dropListeners() }
        try closeListeners.emit((exitCode, signalCode))
    }

    func dropListeners() {
        exitListeners = Listeners()
        closeListeners = Listeners()
        errorListeners = Listeners()
        spawnListeners = Listeners()
    }

    /// Sends `signal` (default SIGTERM); false when the child is gone or the signal could not be sent.
    @discardableResult
    public func kill(_ signal: Int32 = SIGTERM) -> Bool {
        guard pid > 0, !hasExited else { return false }
        do {
            try Sys.kill(pid, signal)
            killed = true
            return true
        } catch {
            return false
        }
    }

    /// The PROCESSWRAP resource's async id.
    public var asyncID: AsyncID { context.asyncID }

    /// 'exit' (code, signal): exactly one is non-nil.
    @discardableResult public func onExit(_ f: @escaping (Int32?, String?) throws -> Void) -> ChildProcess {
        exitListeners.add { try f($0.0, $0.1) }; return self
    }
    /// 'close' (code, signal): after exit and all stdio closed.
    @discardableResult public func onClose(_ f: @escaping (Int32?, String?) throws -> Void) -> ChildProcess {
        closeListeners.add { try f($0.0, $0.1) }; return self
    }
    /// 'error': the child could not be spawned (without a listener the error is uncaught).
    @discardableResult public func onError(_ f: @escaping (NetError) throws -> Void) -> ChildProcess { errorListeners.add(f); return self }
    /// 'spawn': the child started.
    @discardableResult public func onSpawn(_ f: @escaping Callback) -> ChildProcess { spawnListeners.add { _ in try f() }; return self }
}

/// What `execFile` collected.
public struct ExecResult: Sendable {
    /// Everything the child wrote to stdout.
    public let stdout: [UInt8]
    /// Everything the child wrote to stderr.
    public let stderr: [UInt8]
    /// The exit code (nil when a signal ended it or it was not spawned).
    public let exitCode: Int32?
    /// The signal that ended it ("SIGTERM"), nil otherwise.
    public let signal: String?
    /// Spawn failure, or a non-zero exit / a signal (code "ERR_CHILD_FAILED"), as Node's callback error.
    public let error: NetError?
    /// `stdout` as UTF-8 (invalid bytes replaced).
    public var stdoutString: String { String(decoding: stdout, as: UTF8.self) }
    /// `stderr` as UTF-8 (invalid bytes replaced).
    public var stderrString: String { String(decoding: stderr, as: UTF8.self) }
}

extension ChildProcess {
    /// Node's `execFile`: runs `file` with `args`, collects stdout and stderr, calls back once it closed.
    @discardableResult
    public static func execFile(
        _ file: String, _ args: [String] = [], env: [String: String]? = nil, cwd: String? = nil,
        loop: EventLoop = .current, _ callback: @escaping (ExecResult) throws -> Void
    ) -> ChildProcess {
        let child = ChildProcess.spawn(file, args, env: env, cwd: cwd, stdio: [.ignore, .pipe, .pipe], loop: loop)
        var out: [UInt8] = []
        var err: [UInt8] = []
        var spawnError: NetError?
        child.stdout?.onData { out += $0 }
        child.stderr?.onData { err += $0 }
        child.onError { e in
            spawnError = e
            try callback(ExecResult(stdout: [], stderr: [], exitCode: nil, signal: nil, error: e))
        }
        child.onClose { code, signal in
            guard spawnError == nil else { return }
            var e: NetError?
            if code != 0 {
                e = NetError(
                    code: "ERR_CHILD_FAILED", syscall: "execFile", asyncID: child.asyncID,
                    message: "Command failed: \(([file] + args).joined(separator: " ")) (\(code.map { "exit code \($0)" } ?? signal ?? "?"))")
            }
            try callback(ExecResult(stdout: out, stderr: err, exitCode: code, signal: signal, error: e))
        }
        return child
    }

    /// Node's `exec`: runs `command` with /bin/sh -c.
    @discardableResult
    public static func exec(
        _ command: String, env: [String: String]? = nil, cwd: String? = nil, loop: EventLoop = .current,
        _ callback: @escaping (ExecResult) throws -> Void
    ) -> ChildProcess {
        execFile("/bin/sh", ["-c", command], env: env, cwd: cwd, loop: loop, callback)
    }
}
