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
    var openStdio = 0
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
            let environment = env.map { $0.map { "\($0.key)=\($0.value)" }.sorted() } ?? Sys.environment()
            pid = try Sys.spawn(path: command, argv: [command] + args, env: environment, cwd: cwd, stdio: childFDs)
            for fd in toClose { try? Sys.close(fd) }
            toClose = []
            pidFD = try Sys.pidfdOpen(pid)
            // The stdio sockets are created inside the process's scope: their trigger is the PROCESSWRAP.
            try context.runInScope {
                for (i, fd) in parentEnds.enumerated() where fd >= 0 {
                    let s = try Socket(connectedFD: fd, kind: .pipe, server: nil, loop: loop)
                    parentEnds[i] = -1
                    openStdio += 1
                    s.onClose { [self] _ in stdioClosed() }
                    if i == 0 {
                        stdin = s
                        s.updateInterest()
                    } else {
                        if i == 1 { stdout = s } else { stderr = s }
                        s.updateInterest()
                    }
                }
            }
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
            // Node (onErrorNT): 'error' on a nextTick, no 'exit', and 'close' (code -errno, no signal)
            // once the stdio pipes closed: in the close phase when there were pipes, else right after
            // 'error'. The handle is closed without a callback: destroyed in the close phase.
            closeEmitted = true
            stdin?.destroy(); stdout?.destroy(); stderr?.destroy()
            if pid > 0 { _ = try? Sys.kill(pid, SIGKILL); _ = try? Sys.reap(pid) }
            hasExited = true
            exitCode = -(sys?.errno ?? EINVAL)
            let pipes = stdio.prefix(3).contains { $0 == .pipe }
            let ctx = context
            loop.nextTick { [self] in
                if errorListeners.isEmpty { throw e }
                try errorListeners.emit(e)
                if !pipes {
                    try closeListeners.emit((exitCode, nil))
                    dropListeners()
                }
            }
            if pipes {
                loop.queueClose(context, destroyAfter: true) { [self] in
                    try closeListeners.emit((exitCode, nil))
                    dropListeners()
                }
            } else {
                loop.queueClose(nil, destroyAfter: false) { ctx.emitDestroy() }
            }
        }
    }

    func reap() throws {
        guard let status = try? Sys.reap(pid) else { return }
        hasExited = true
        exitCode = status.code
        signalCode = status.signal.map(Sys.signalName)
        try? watcher?.close()
        watcher = nil
        try? Sys.close(pidFD)
        pidFD = -1
        try exitListeners.emit((exitCode, signalCode))
        maybeClose()
    }

    func stdioClosed() {
        openStdio -= 1
        maybeClose()
    }

    /// 'close' follows 'exit' once every stdio stream has closed; then the PROCESSWRAP is destroyed.
    func maybeClose() {
        guard hasExited, openStdio == 0, !closeEmitted else { return }
        closeEmitted = true
        loop.queueClose(context, destroyAfter: true) { [self] in
            try closeListeners.emit((exitCode, signalCode))
            dropListeners()
        }
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
