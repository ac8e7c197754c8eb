// Starting the traced program held before exec, so the probes see it from its first syscall.
import CKernelProbes
#if canImport(Glibc)
import Glibc
#endif

/// Why a program could not be started. `exitCode` follows the shell's convention.
public enum ProgramLaunchError: Error, CustomStringConvertible, Sendable, Equatable {
    /// No executable file of that name (in PATH, for a name without a slash).
    case notFound(String)
    /// The file exists but cannot be executed (`errno`: why; EISDIR for a directory).
    case notExecutable(String, errno: Int32)
    /// The child could not drop to `uid`/`gid`.
    case cannotSwitchUser(uid: Int32, gid: Int32, errno: Int32)
    /// fork failed.
    case forkFailed(errno: Int32)
    /// The held child was gone before it could exec (killed by a signal forwarded to it).
    case goneBeforeExec

    /// 127: not found; 126: found but not executable / could not be started.
    public var exitCode: Int32 {
        if case .notFound = self { return 127 }
        return 126
    }

    public var description: String {
        switch self {
        case .notFound(let p): "\(p): command not found"
        case .notExecutable(let p, let e): "\(p): cannot execute: \(errorText(e))"
        case .cannotSwitchUser(let u, let g, let e): "cannot run as uid \(u) gid \(g): \(errorText(e))"
        case .forkFailed(let e): "cannot start the program: \(errorText(e))"
        case .goneBeforeExec: "the program was stopped before it started"
        }
    }
}

func errorText(_ e: Int32) -> String {
    guard let s = strerror(e) else { return "errno \(e)" }
    return String(validatingCString: s) ?? "errno \(e)"
}

/// Finding the file a command names, as execvp would.
package enum ProgramLookup {
    /// The file `program` names: itself if it contains a slash, else the first executable regular
    /// file of that name in `searchPath` (PATH), like execvp.
    package static func resolve(_ program: String, searchPath: String?) -> Result<String, ProgramLaunchError> {
        if program.isEmpty { return .failure(.notFound(program)) }
        if program.contains("/") { return check(program, reportedAs: program) }
        var deniedError: ProgramLaunchError?
        for dir in (searchPath ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + program
            switch check(candidate, reportedAs: program) {
            case .success(let p): return .success(p)
            case .failure(let e):
                if case .notExecutable = e, deniedError == nil { deniedError = e }
            }
        }
        return .failure(deniedError ?? .notFound(program))
    }

    private static func check(_ path: String, reportedAs name: String) -> Result<String, ProgramLaunchError> {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let e = errno
            return .failure(e == ENOENT || e == ENOTDIR ? .notFound(name) : .notExecutable(name, errno: e))
        }
        if (st.st_mode & S_IFMT) == S_IFDIR { return .failure(.notExecutable(name, errno: EISDIR)) }
        // Root may execute any file with at least one x bit; access(X_OK) knows the rules.
        guard access(path, X_OK) == 0 else { return .failure(.notExecutable(name, errno: errno)) }
        return .success(path)
    }
}

/// A forked child waiting to exec until `release()`.
public final class HeldProcess {
    /// The child's pid (it has not exec'd before `release()`).
    public let pid: Int32
    private var child: kp_held_child
    private var released = false

    /// Forks; the child drops to `gid`/`uid` (when given, with supplementary `groups`) and execs
    /// `path` on release. `arguments[0]` is the program's argv[0]. No shell is involved.
    public init(
        path: String, arguments: [String], environment: [String], uid: Int32? = nil, gid: Int32? = nil,
        groups: [gid_t] = []
    ) throws(ProgramLaunchError) {
        var c = kp_held_child(pid: 0, release_fd: -1, status_fd: -1)
        let argv = CStringArray(arguments)
        let envp = CStringArray(environment)
        let rc = groups.withUnsafeBufferPointer { g in
            kp_spawn_held(path, argv.pointers, envp.pointers, uid ?? -1, gid ?? -1, g.baseAddress, Int32(g.count), &c)
        }
        guard rc == 0 else { throw .forkFailed(errno: -rc) }
        child = c
        pid = c.pid
        self.path = path
        self.uid = uid ?? -1
        self.gid = gid ?? -1
    }

    private let path: String
    private let uid: Int32
    private let gid: Int32

    /// Lets the child exec, with `extraEnvironment` ("NAME=value") added to its environment.
    /// On failure the child has exited (status 126/127): reap it with waitpid.
    public func release(extraEnvironment: String? = nil) throws(ProgramLaunchError) {
        guard !released else { return }
        released = true
        var stage: Int32 = 0
        let err = kp_release_held(&child, extraEnvironment, &stage)
        guard err == 0 else {
            if stage == 0 { throw .goneBeforeExec }
            if stage == 1 { throw .cannotSwitchUser(uid: uid, gid: gid, errno: err) }
            if err == ENOENT { throw .notFound(path) }
            throw .notExecutable(path, errno: err)
        }
    }

    /// The child exits (127) without exec'ing.
    public func abandon() {
        guard !released else { return }
        released = true
        kp_abandon_held(&child)
    }

    deinit { abandon() }
}

/// NUL-terminated C strings and a NULL-terminated pointer array, alive as long as this value.
final class CStringArray {
    let pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private let count: Int

    init(_ strings: [String]) {
        count = strings.count
        pointers = .allocate(capacity: strings.count + 1)
        for (i, s) in strings.enumerated() { pointers[i] = strdup(s) }
        pointers[strings.count] = nil
    }

    deinit {
        for i in 0..<count { free(pointers[i]) }
        pointers.deallocate()
    }
}

/// Keeps the traced tree from outliving a killed `asynctrace record` (kernel_probes.h, "the guardian"): the
/// program itself dies with its parent (PR_SET_PDEATHSIG), but what it started would run on, untraced.
package final class TreeGuardian {
    private var guardian = kp_guardian(pid: -1, fd: -1)

    /// Starts the guardian process; nil (and the reason's errno) if it cannot be forked.
    package init?() {
        guard kp_guardian_start(&guardian) == 0 else { return nil }
    }

    /// A process of the traced tree, to be killed if asynctrace dies without `dismiss()`.
    package func watch(pid: UInt32) {
        guard pid > 1, pid <= UInt32(Int32.max) else { return }
        kp_guardian_watch(&guardian, pid_t(pid))
    }

    /// The recording ended normally: nothing is killed; the guardian exits and is reaped.
    package func dismiss() { kp_guardian_dismiss(&guardian) }

    deinit { dismiss() }
}
