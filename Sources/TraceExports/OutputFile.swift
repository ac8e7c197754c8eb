// A buffered output file: exports write through a fixed buffer, so memory stays flat for any trace size.
#if canImport(Glibc)
import Glibc
#endif
import TraceReader

/// Why an export failed, as one sentence for people.
public struct ExportError: Error, CustomStringConvertible, Sendable {
    /// The sentence.
    public let message: String
    /// An error with this message.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A buffered output file: exports write through a fixed buffer, so memory stays flat for any trace size.
/// Write errors are kept, not thrown, until `close()`.
public final class OutputFile {
    /// The path it was opened with ("-": standard output).
    public let path: String
    private let fd: Int32
    private var buffer: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    // Touched per event by every exporter; no dynamic exclusivity checks.
    @exclusivity(unchecked) private var count = 0
    /// Bytes written to the file so far (buffered bytes not yet included).
    @exclusivity(unchecked) public private(set) var bytesWritten: UInt64 = 0
    /// The first write error; later writes are dropped and `close()` throws it.
    public private(set) var failure: ExportError?
    private var closed = false
    /// Flushes go through `UncachedWrite` until the file turns out not to support it.
    private var uncached: Bool

    /// Creates or truncates `path` ("-": standard output). `uncached`: an output written once and not read
    /// back by us (not a spool file), whose data need not stay in the page cache (see `UncachedWrite`).
    /// `sparing`: the trace being read; if `path` (or standard output) is that file, under any name (a symbolic
    /// or hard link), nothing is truncated and the init throws.
    public init(
        path: String, bufferSize: Int = 1 << 20, uncached: Bool = false,
        sparing input: FileIdentity? = nil
    ) throws(ExportError) {
        self.path = path
        if path == "-" {
            fd = 1
            if let input, FileIdentity(fd: 1) == input {
                throw ExportError("standard output is the trace file being read; write the output elsewhere")
            }
        } else {
            // Opened without O_TRUNC, so the file can be checked before anything is lost.
            fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0o644)
            if fd < 0 { throw ExportError("\(path): cannot create (\(String(cString: strerror(errno))))") }
            var st = stat()
            if fstat(fd, &st) == 0 {
                if let input, FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)) == input {
                    Glibc.close(fd)
                    throw ExportError(
                        "\(path) is the trace file being read (the same file, perhaps through a link); "
                            + "choose another output path")
                }
                if (st.st_mode & S_IFMT) == S_IFREG && ftruncate(fd, 0) != 0 {
                    let message = String(cString: strerror(errno))
                    Glibc.close(fd)
                    throw ExportError("\(path): cannot truncate (\(message))")
                }
            }
        }
        self.uncached = uncached
        capacity = bufferSize
        buffer = .allocate(capacity: bufferSize)
    }

    deinit {
        if !closed && fd > 2 { Glibc.close(fd) }
        buffer.deallocate()
    }

    /// Writes `n` bytes from `p` (buffered).
    @inline(__always)
    public func write(_ p: UnsafeRawPointer, count n: Int) {
        if count + n > capacity {
            flush()
            if n > capacity {
                writeAll(p, n)
                return
            }
        }
        (buffer + count).update(from: p.assumingMemoryBound(to: UInt8.self), count: n)
        count += n
    }

    /// Room for `n` bytes: write them through the returned writer, then `commit` it.
    /// One capacity check for a whole event instead of one per field.
    @inline(__always)
    func reserve(_ n: Int) -> ByteWriter {
        if count + n > capacity {
            flush()
            if n > capacity { grow(n) }
        }
        return ByteWriter(buffer + count)
    }

    /// An event larger than the buffer (a huge name): the buffer grows (it is empty here).
    private func grow(_ n: Int) {
        buffer.deallocate()
        capacity = n
        buffer = .allocate(capacity: n)
    }

    @inline(__always)
    func commit(_ w: ByteWriter) { count = w.p - buffer }

    /// Writes `bytes` (buffered).
    @inline(__always)
    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        write(base, count: bytes.count)
    }

    /// Writes `s` as UTF-8 (buffered).
    public func write(_ s: String) {
        var s = s
        s.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }

    /// Writes one byte (buffered).
    @inline(__always)
    public func write(byte b: UInt8) {
        if count == capacity { flush() }
        buffer[count] = b
        count += 1
    }

    /// Writes the buffer out (an error goes to `failure`).
    public func flush() {
        if count > 0 { writeAll(buffer, count) }
        count = 0
    }

    private func writeAll(_ p: UnsafeRawPointer, _ n: Int) {
        guard failure == nil else { return }
        var done = 0
        while done < n {
            let r: Int
            if uncached, let written = UncachedWrite.write(fd, p + done, n - done) {
                r = written
            } else {
                uncached = false
                r = Glibc.write(fd, p + done, n - done)
            }
            if r < 0 {
                if errno == EINTR { continue }
                failure = ExportError("\(path): write failed (\(String(cString: strerror(errno))))")
                return
            }
            done += r
        }
        bytesWritten &+= UInt64(n)
    }

    /// Flushes and closes; throws the first write error, if any.
    public func close() throws(ExportError) {
        flush()
        if !closed && fd > 2 {
            if Glibc.close(fd) != 0 && failure == nil {
                failure = ExportError("\(path): close failed (\(String(cString: strerror(errno))))")
            }
        }
        closed = true
        if let failure { throw failure }
    }
}
