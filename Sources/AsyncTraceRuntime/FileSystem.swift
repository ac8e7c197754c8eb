// fs: Node's file system API in three shapes. Callback functions run the syscalls on the thread
// pool and call back on the loop as FSREQCALLBACK resources; `FS.promises` returns promises
// (FSREQPROMISE); the *Sync functions make the syscalls right here and block the loop, which is
// exactly what a trace should then show.
#if canImport(Glibc)
import Glibc
#endif
@_spi(Runtime) import AsyncHooks

public enum FS {
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

    public static func open(_ path: String, _ flags: String = "r", mode: UInt32 = 0o666, _ cb: @escaping Completion<Int32>) {
        request({ try openSync(path, flags, mode: mode) }, cb)
    }
    public static func close(_ fd: Int32, _ cb: @escaping Completion<Void>) { request({ try closeSync(fd) }, cb) }
    /// Reads up to `length` bytes at `position` (nil: the file position). An empty result means end of file.
    public static func read(_ fd: Int32, length: Int, position: Int64? = nil, _ cb: @escaping Completion<[UInt8]>) {
        request({ try readSync(fd, length: length, position: position) }, cb)
    }
    public static func write(_ fd: Int32, _ data: [UInt8], position: Int64? = nil, _ cb: @escaping Completion<Int>) {
        request({ try writeSync(fd, data, position: position) }, cb)
    }
    public static func stat(_ path: String, _ cb: @escaping Completion<FileStats>) { request({ try statSync(path) }, cb) }
    public static func fstat(_ fd: Int32, _ cb: @escaping Completion<FileStats>) { request({ try fstatSync(fd) }, cb) }
    public static func readdir(_ path: String, _ cb: @escaping Completion<[String]>) { request({ try readdirSync(path) }, cb) }
    public static func unlink(_ path: String, _ cb: @escaping Completion<Void>) { request({ try unlinkSync(path) }, cb) }
    public static func mkdir(_ path: String, mode: UInt32 = 0o777, _ cb: @escaping Completion<Void>) {
        request({ try mkdirSync(path, mode: mode) }, cb)
    }
    public static func rmdir(_ path: String, _ cb: @escaping Completion<Void>) { request({ try rmdirSync(path) }, cb) }
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

    public static func openSync(_ path: String, _ flags: String = "r", mode: UInt32 = 0o666) throws -> Int32 {
        try Sys.open(path, try openFlags(flags), mode_t(mode))
    }
    public static func closeSync(_ fd: Int32) throws { try Sys.close(fd) }
    public static func readSync(_ fd: Int32, length: Int, position: Int64? = nil) throws -> [UInt8] {
        guard length >= 0 else { throw RuntimeError.invalidArgument("negative read length \(length)") }
        var buf = [UInt8](repeating: 0, count: length)
        let n = try buf.withUnsafeMutableBytes { b throws(SystemError) in try Sys.read(fd, b, at: position) }
        buf.removeSubrange(n...)
        return buf
    }
    @discardableResult
    public static func writeSync(_ fd: Int32, _ data: [UInt8], position: Int64? = nil) throws -> Int {
        try data.withUnsafeBytes { b throws(SystemError) in try Sys.writeAll(fd, b, at: position) }
    }
    public static func statSync(_ path: String) throws -> FileStats { try Sys.fileStats(path: path) }
    public static func fstatSync(_ fd: Int32) throws -> FileStats { try Sys.fileStats(fd) }
    public static func readdirSync(_ path: String) throws -> [String] { try Sys.readDirectory(path) }
    public static func unlinkSync(_ path: String) throws { try Sys.removeFile(path) }
    public static func mkdirSync(_ path: String, mode: UInt32 = 0o777) throws { try Sys.makeDirectory(path, mode: mode_t(mode)) }
    public static func rmdirSync(_ path: String) throws { try Sys.removeDirectory(path) }
    public static func renameSync(_ from: String, _ to: String) throws { try Sys.rename(from, to) }

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

    public static func writeFileSync(_ path: String, _ data: [UInt8], flags: String = "w") throws {
        let fd = try Sys.open(path, try openFlags(flags), 0o666)
        defer { try? Sys.close(fd) }
        _ = try data.withUnsafeBytes { b throws(SystemError) in try Sys.writeAll(fd, b, at: nil) }
    }

    // MARK: promises (fs/promises)

    public enum promises {
        static func request<T: Sendable>(_ work: @escaping @Sendable () throws -> T) -> Promise<T> {
            EventLoop.current.queueWork(type: .fsReqPromise, work)
        }
        public static func open(_ path: String, _ flags: String = "r", mode: UInt32 = 0o666) -> Promise<Int32> {
            request { try openSync(path, flags, mode: mode) }
        }
        public static func close(_ fd: Int32) -> Promise<Void> { request { try closeSync(fd) } }
        public static func read(_ fd: Int32, length: Int, position: Int64? = nil) -> Promise<[UInt8]> {
            request { try readSync(fd, length: length, position: position) }
        }
        public static func write(_ fd: Int32, _ data: [UInt8], position: Int64? = nil) -> Promise<Int> {
            request { try writeSync(fd, data, position: position) }
        }
        public static func stat(_ path: String) -> Promise<FileStats> { request { try statSync(path) } }
        public static func readdir(_ path: String) -> Promise<[String]> { request { try readdirSync(path) } }
        public static func unlink(_ path: String) -> Promise<Void> { request { try unlinkSync(path) } }
        public static func mkdir(_ path: String, mode: UInt32 = 0o777) -> Promise<Void> { request { try mkdirSync(path, mode: mode) } }
        public static func rmdir(_ path: String) -> Promise<Void> { request { try rmdirSync(path) } }
        public static func rename(_ from: String, _ to: String) -> Promise<Void> { request { try renameSync(from, to) } }
        public static func readFile(_ path: String) -> Promise<[UInt8]> { request { try readFileSync(path) } }
        public static func writeFile(_ path: String, _ data: [UInt8], flags: String = "w") -> Promise<Void> {
            request { try writeFileSync(path, data, flags: flags) }
        }
    }
}
