// A read-only file descriptor with positioned reads; pread keeps concurrent iterators independent.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class TraceFileHandle: @unchecked Sendable {  // the fd is only read with pread, never moved
    let fd: Int32
    let size: UInt64

    /// Where the file lives (device and inode), so an output path can be checked against it.
    let identity: FileIdentity

    init(path: String) throws(TraceOpenError) {
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below); reads of a
        // regular file ignore the flag.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        if fd < 0 {
            let e = errno
            switch e {
            case ENOENT, ENOTDIR: throw .noSuchFile(path: path)
            case EACCES, EPERM: throw .permissionDenied(path: path)
            default: throw .cannotRead(path: path, errno: e, message: String(cString: strerror(e)))
            }
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            close(fd)
            throw .cannotRead(path: path, errno: e, message: String(cString: strerror(e)))
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            break
        case S_IFDIR:
            close(fd)
            throw .isDirectory(path: path)
        default:
            // A FIFO or socket would block or never end, a device (/dev/zero) never ends: only regular
            // files have a size to index.
            close(fd)
            throw .notRegularFile(path: path, kind: Self.kindName(st.st_mode & S_IFMT))
        }
        if st.st_size == 0 {
            // procfs and sysfs files report size 0 but have contents: not an empty recording.
            var byte: UInt8 = 0
            if pread(fd, &byte, 1, 0) == 1 {
                close(fd)
                throw .unsizedFile(path: path)
            }
        }
        self.fd = fd
        self.size = UInt64(max(0, st.st_size))
        self.identity = FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    private static func kindName(_ type: mode_t) -> String {
        switch type {
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        case S_IFLNK: "a symbolic link"
        default: "not a regular file"
        }
    }

    deinit { close(fd) }

    /// The file's size now (it grows while a recording is followed).
    func currentSize() -> UInt64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return size }
        return UInt64(max(0, st.st_size))
    }

    /// Reads up to `count` bytes at `offset`; returns how many were read (short only at end of file or on error).
    func read(into p: UnsafeMutableRawPointer, count: Int, at offset: UInt64) -> Int {
        var done = 0
        while done < count {
            let n = pread(fd, p + done, count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            if n == 0 { break }
            done += n
        }
        return done
    }
}

/// A file's place on its file system: two paths with the same identity are the same file (through symbolic
/// or hard links).
public struct FileIdentity: Hashable, Sendable {
    /// The `st_dev` of the file's `stat`.
    public var device: UInt64
    /// The `st_ino` of the file's `stat`.
    public var inode: UInt64

    /// An identity from a `stat`'s device and inode numbers.
    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    /// The identity of the file `fd` refers to, if it can be found.
    public init?(fd: Int32) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        self.init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }
}

/// A growable raw byte buffer (chunk payloads are read into it; it never shrinks).
struct ByteBuffer: ~Copyable {
    private(set) var pointer: UnsafeMutableRawPointer
    private(set) var capacity: Int

    init(capacity: Int) {
        self.capacity = max(capacity, 64)
        self.pointer = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 16)
    }

    mutating func reserve(_ n: Int) {
        guard n > capacity else { return }
        pointer.deallocate()
        capacity = max(n, capacity * 2)
        pointer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    }

    deinit { pointer.deallocate() }
}
