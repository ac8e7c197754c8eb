// fs: Node's file system API in three shapes. Callback functions run the syscalls on the thread
// pool and call back on the loop as FSREQCALLBACK resources; `FS.promises` returns promises
// (FSREQPROMISE); the *Sync functions make the syscalls right here and block the loop, which is
// exactly what a trace should then show.
#if canImport(Glibc)
import Glibc
#endif
@_spi(Runtime) import AsyncHooks

/// Node's `fs` in three shapes: callback functions run the syscall on the thread pool and call back on
/// the loop as FSREQCALLBACK resources; `FS.promises` returns promises (FSREQPROMISE); the *Sync functions
/// make the syscall right here and block the loop (which a trace then shows).
public enum FS {
    /// A callback's argument: the result, or the error (a `SystemError` with errno, a `RuntimeError`).
    public typealias Completion<T> = (Result<T, any Error>) throws -> Void

    /// Node's open flags ("r", "r+", "w", "w+", "wx", "a", "a+", "ax") as open(2) flags.
    static func openFlags(_ flags: String) throws(RuntimeError) -> Int32 {
        switch flags {
        case "r": return O_RDONLY
        case "r+": return O_RDWR
        case "w": return O_WRONLY | O_CREAT | O_TRUNC
        case "w+": return O_RDWR | O_CREAT | O_TRUNC
        case "wx", "xw": return O_WRONLY | O_CREAT | O_TRUNC | O_EXCL
        case "a": return O_WRONLY | O_CREAT | O_APPEND
        case "a+": return O_RDWR | O_CREAT | O_APPEND
        case "ax", "xa": return O_WRONLY | O_CREAT | O_APPEND | O_EXCL
        default: throw .invalidArgument("unknown file open flags '\(flags)'")
        }
    }

    static func request<T: Sendable>(_ work: @escaping @Sendable () throws -> T, _ completion: @escaping Completion<T>) {
        EventLoop.current.queueWork(type: .fsReqCallback, work, completion: completion)
    }

    // MARK: callbacks (thread pool)

    /// Opens `path` with Node's flags ("r", "r+", "w", "w+", "wx", "a", "a+", "ax"); the result is the fd.
    public static func open(_ path: String, _ flags: String = "r", mode: UInt32 = 0o666, _ cb: @escaping Completion<Int32>) {
        request({ try openSync(path, flags, mode: mode) }, cb)
    }
    /// Closes `fd`.
    public static func close(_ fd: Int32, _ cb: @escaping Completion<Void>) { request({ try closeSync(fd) }, cb) }
    /// Reads up to `length` bytes at `position` (nil: the file position). An empty result means end of file.
    public static func read(_ fd: Int32, length: Int, position: Int64? = nil, _ cb: @escaping Completion<[UInt8]>) {
        request({ try readSync(fd, length: length, position: position) }, cb)
    }
    /// Writes all of `data` at `position` (nil: the file position); the result is the bytes written.
    public static func write(_ fd: Int32, _ data: [UInt8], position: Int64? = nil, _ cb: @escaping Completion<Int>) {
        request({ try writeSync(fd, data, position: position) }, cb)
    }
    /// The file's stats, following symbolic links.
    public static func stat(_ path: String, _ cb: @escaping Completion<FileStats>) { request({ try statSync(path) }, cb) }
    /// The stats of the file open as `fd`.
    public static func fstat(_ fd: Int32, _ cb: @escaping Completion<FileStats>) { request({ try fstatSync(fd) }, cb) }
    /// The names in the directory (without "." and "..").
    public static func readdir(_ path: String, _ cb: @escaping Completion<[String]>) { request({ try readdirSync(path) }, cb) }
    /// Removes the file.
    public static func unlink(_ path: String, _ cb: @escaping Completion<Void>) { request({ try unlinkSync(path) }, cb) }
    /// Makes the directory with `mode` (less the umask).
    public static func mkdir(_ path: String, mode: UInt32 = 0o777, _ cb: @escaping Completion<Void>) {
        request({ try mkdirSync(path, mode: mode) }, cb)
    }
    /// Removes the empty directory.
    public static func rmdir(_ path: String, _ cb: @escaping Completion<Void>) { request({ try rmdirSync(path) }, cb) }
    /// Renames `from` to `to`, replacing `to`.
    public static func rename(_ from: String, _ to: String, _ cb: @escaping Completion<Void>) {
        request({ try renameSync(from, to) }, cb)
    }
    /// As Node: open, fstat, read until end of file, close — each its own FSREQCALLBACK request, the
    /// callback running in the close's. So it takes several loop iterations, as in Node.
    public static func readFile(_ path: String, _ cb: @escaping Completion<[UInt8]>) {
        open(path, "r") { opened in
            let fd: Int32
            switch opened {
            case .failure(let e): try cb(.failure(e)); return
            case .success(let v): fd = v
            }
            fstat(fd) { statted in
                var data: [UInt8] = []
                func finish(_ r: Result<[UInt8], any Error>) {
                    close(fd) { closed in
                        if case .failure(let e) = closed, case .success = r { try cb(.failure(e)) } else { try cb(r) }
                    }
                }
                guard case .success(let st) = statted else {
                    if case .failure(let e) = statted { finish(.failure(e)) }
                    return
                }
                let chunk = st.isFile && st.size > 0 ? Int(min(st.size, 512 << 10)) + 1 : 64 << 10
                data.reserveCapacity(Int(st.size))
                func readNext() {
                    read(fd, length: chunk) { r in
                        switch r {
                        case .failure(let e): finish(.failure(e))
                        case .success(let bytes) where bytes.isEmpty: finish(.success(data))
                        case .success(let bytes): data.append(contentsOf: bytes); readNext()
                        }
                    }
                }
                readNext()
            }
        }
    }

    /// As Node: open, write until done, close — each its own FSREQCALLBACK request.
    public static func writeFile(_ path: String, _ data: [UInt8], flags: String = "w", _ cb: @escaping Completion<Void>) {
        open(path, flags) { opened in
            let fd: Int32
            switch opened {
            case .failure(let e): try cb(.failure(e)); return
            case .success(let v): fd = v
            }
            write(fd, data) { written in
                close(fd) { closed in
                    switch (written, closed) {
                    case (.failure(let e), _), (_, .failure(let e)): try cb(.failure(e))
                    default: try cb(.success(()))
                    }
                }
            }
        }
    }

    // MARK: synchronous (block the calling thread, i.e. the loop)

    /// `open` on the calling thread: the fd; throws on an unknown flag or the syscall's error.
    public static func openSync(_ path: String, _ flags: String = "r", mode: UInt32 = 0o666) throws -> Int32 {
        try Sys.open(path, try openFlags(flags), mode_t(mode))
    }
    /// `close` on the calling thread.
    public static func closeSync(_ fd: Int32) throws { try Sys.close(fd) }
    /// Up to `length` bytes at `position` (nil: the file position), on the calling thread; empty at end of file.
    public static func readSync(_ fd: Int32, length: Int, position: Int64? = nil) throws -> [UInt8] {
        guard length >= 0 else { throw RuntimeError.invalidArgument("negative read length \(length)") }
        var buf = [UInt8](repeating: 0, count: length)
        let n = try buf.withUnsafeMutableBytes { b throws(SystemError) in try Sys.read(fd, b, at: position) }
        buf.removeSubrange(n...)
        return buf
    }
    /// Writes all of `data` on the calling thread; returns the bytes written.
    @discardableResult
    public static func writeSync(_ fd: Int32, _ data: [UInt8], position: Int64? = nil) throws -> Int {
        try data.withUnsafeBytes { b throws(SystemError) in try Sys.writeAll(fd, b, at: position) }
    }
    /// `stat` on the calling thread.
    public static func statSync(_ path: String) throws -> FileStats { try Sys.fileStats(path: path) }
    /// `fstat` on the calling thread.
    public static func fstatSync(_ fd: Int32) throws -> FileStats { try Sys.fileStats(fd) }
    /// `readdir` on the calling thread.
    public static func readdirSync(_ path: String) throws -> [String] { try Sys.readDirectory(path) }
    /// `unlink` on the calling thread.
    public static func unlinkSync(_ path: String) throws { try Sys.removeFile(path) }
    /// `mkdir` on the calling thread.
    public static func mkdirSync(_ path: String, mode: UInt32 = 0o777) throws { try Sys.makeDirectory(path, mode: mode_t(mode)) }
    /// `rmdir` on the calling thread.
    public static func rmdirSync(_ path: String) throws { try Sys.removeDirectory(path) }
    /// `rename` on the calling thread.
    public static func renameSync(_ from: String, _ to: String) throws { try Sys.rename(from, to) }

    /// The whole file, read on the calling thread.
    public static func readFileSync(_ path: String) throws -> [UInt8] {
        let fd = try Sys.open(path, O_RDONLY, 0)
        defer { try? Sys.close(fd) }
        let size = Int(try Sys.fileStats(fd).size)
        var out = [UInt8]()
        out.reserveCapacity(size + 1)
        var chunk = [UInt8](repeating: 0, count: max(size + 1, 64 << 10))
        while true {
            let n = try chunk.withUnsafeMutableBytes { b throws(SystemError) in try Sys.read(fd, b, at: nil) }
            if n == 0 { break }
            out.append(contentsOf: chunk[..<n])
        }
        return out
    }

    /// Creates or replaces (flags "w") the file with `data`, on the calling thread.
    public static func writeFileSync(_ path: String, _ data: [UInt8], flags: String = "w") throws {
        let fd = try Sys.open(path, try openFlags(flags), 0o666)
        defer { try? Sys.close(fd) }
        _ = try data.withUnsafeBytes { b throws(SystemError) in try Sys.writeAll(fd, b, at: nil) }
    }

    // MARK: promises (fs/promises)

    /// Node's `fs/promises`: each call a promise settled on the loop (an FSREQPROMISE resource; the work on
    /// the thread pool).
    public enum promises {
        static func request<T: Sendable>(_ work: @escaping @Sendable () throws -> T) -> Promise<T> {
            EventLoop.current.queueWork(type: .fsReqPromise, work)
        }
        /// `FS.open` as a promise.
        public static func open(_ path: String, _ flags: String = "r", mode: UInt32 = 0o666) -> Promise<Int32> {
            request { try openSync(path, flags, mode: mode) }
        }
        /// `FS.close` as a promise.
        public static func close(_ fd: Int32) -> Promise<Void> { request { try closeSync(fd) } }
        /// `FS.read` as a promise.
        public static func read(_ fd: Int32, length: Int, position: Int64? = nil) -> Promise<[UInt8]> {
            request { try readSync(fd, length: length, position: position) }
        }
        /// `FS.write` as a promise.
        public static func write(_ fd: Int32, _ data: [UInt8], position: Int64? = nil) -> Promise<Int> {
            request { try writeSync(fd, data, position: position) }
        }
        /// `FS.stat` as a promise.
        public static func stat(_ path: String) -> Promise<FileStats> { request { try statSync(path) } }
        /// `FS.readdir` as a promise.
        public static func readdir(_ path: String) -> Promise<[String]> { request { try readdirSync(path) } }
        /// `FS.unlink` as a promise.
        public static func unlink(_ path: String) -> Promise<Void> { request { try unlinkSync(path) } }
        /// `FS.mkdir` as a promise.
        public static func mkdir(_ path: String, mode: UInt32 = 0o777) -> Promise<Void> { request { try mkdirSync(path, mode: mode) } }
        /// `FS.rmdir` as a promise.
        public static func rmdir(_ path: String) -> Promise<Void> { request { try rmdirSync(path) } }
        /// `FS.rename` as a promise.
        public static func rename(_ from: String, _ to: String) -> Promise<Void> { request { try renameSync(from, to) } }
        /// The whole file (one thread-pool request, unlike the callback `readFile`).
        public static func readFile(_ path: String) -> Promise<[UInt8]> { request { try readFileSync(path) } }
        /// Creates or replaces (flags "w") the file with `data` (one thread-pool request).
        public static func writeFile(_ path: String, _ data: [UInt8], flags: String = "w") -> Promise<Void> {
            request { try writeFileSync(path, data, flags: flags) }
        }
    }
}
