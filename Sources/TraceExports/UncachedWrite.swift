// Writes that leave no file data in the page cache once it is on disk (RWF_DONTCACHE, Linux ≥ 6.15).
// An export writes hundreds of MB once. Through the page cache, each export claims that much fresh memory:
// the kernel's copy into it was 40–60% of Chrome's export time here, and on VMs that hand freed memory back
// to the host its first touch costs several times more (up to ~200 ns per 100-byte event). Uncached, the
// kernel writes the data back at once and reuses the same few warm pages; it also spares other programs'
// cached files.
#if canImport(Glibc)
import Glibc
#endif

enum UncachedWrite {
    private typealias PWriteV2 = @convention(c) (Int32, UnsafePointer<iovec>?, Int32, Int, Int32) -> Int
    /// glibc's `pwritev2` (2.26+), looked up at run time: the Glibc module leaves out GNU declarations.
    private static let pwritev2: PWriteV2? = dlsym(nil, "pwritev2").map { unsafeBitCast($0, to: PWriteV2.self) }
    private static let dontCache: Int32 = 0x80  // RWF_DONTCACHE (newer than this system's headers)
    /// `pwritev2`'s offset for "at the file position, and advance it", like `write`.
    private static let atFilePosition = -1

    /// Writes up to `n` bytes at the file position like `write` (-1 and errno on failure); nil when the kernel,
    /// the filesystem or the file does not do uncached writes (the caller then uses `write`).
    static func write(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int? {
        guard let pwritev2 else { return nil }
        var chunk = iovec(iov_base: UnsafeMutableRawPointer(mutating: p), iov_len: n)
        let r = pwritev2(fd, &chunk, 1, atFilePosition, dontCache)
        if r < 0 && (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS) { return nil }
        return r
    }
}
