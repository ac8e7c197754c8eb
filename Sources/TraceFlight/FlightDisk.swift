// A flight recorder's window on disk (`record --flight-recorder --keep 512MiB --keep-on-disk DIR`):
// the chunks go to segment files in DIR, a file header then sealed chunks as their writers sealed
// them; the oldest segment is removed as a whole when the next chunk would not fit. The ring keeps
// only the chunks' headers and where they are. Files are created as the recorder creates its other
// files (under sudo: as the invoking user), O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600, in a
// directory only that user can write. What a dump still reads is never removed under it.
import CRecorderSupport
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// Who the window's files are created as (uid -1: as ourselves).
public struct FlightFileOwner: Sendable {
    public var uid: Int
    public var gid: Int
    public var groups: [UInt32]
    public init(uid: Int, gid: Int, groups: [UInt32]) {
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }
    public static let current = FlightFileOwner(uid: -1, gid: -1, groups: [])

    func withIdentity<R>(_ body: (UnsafePointer<trace_file_owner>?) -> R) -> R {
        groups.withUnsafeBufferPointer { g in
            var identity = trace_file_owner(uid: uid, gid: gid, groups: g.baseAddress, group_count: g.count)
            return withUnsafePointer(to: &identity) { body(uid >= 0 ? $0 : nil) }
        }
    }
}

public struct FlightDiskError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// One segment file of the window.
public final class FlightSegment: @unchecked Sendable {
    let fd: Int32
    public let name: String
    /// Bytes in the file (its header included); all of it counts against the bound until it is gone.
    var size: Int
    /// Dumps (or live feeds) reading it: it is not removed while they do.
    var pins = 0
    var unlinked = false

    init(fd: Int32, name: String, size: Int) {
        self.fd = fd
        self.name = name
        self.size = size
    }

    deinit { close(fd) }

    /// Reads `count` bytes at `offset` into `to`; false if they cannot all be read.
    func read(_ offset: Int, _ count: Int, into to: UnsafeMutableRawPointer) -> Bool {
        var done = 0
        while done < count {
            let n = pread(fd, to + done, count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }
}

/// The segments of a window and how much of the bound they take; changed only under its ring's lock.
public final class FlightDiskWindow: @unchecked Sendable {
    public let directory: String
    let directoryFD: Int32
    let owner: FlightFileOwner
    /// Segment names: `window-<recorder pid>-<n>.atseg`.
    let prefix: String
    /// Segments not yet gone, oldest first (removed from the directory but still read by a dump: counted).
    var segments: [FlightSegment] = []
    var current: FlightSegment?
    var nextIndex = 1
    var header: [UInt8]
    var segmentBytes = 1 << 20
    /// Bytes of every segment not gone (what the bound limits), and the most at once.
    var usedBytes = 0
    var peakBytes = 0
    var segmentsCreated = 0
    /// Chunks not kept: no room (a dump still reading the oldest segment), a chunk larger than the
    /// bound allows, or a failed write (the first errno kept).
    var chunksNotKept: UInt64 = 0
    var firstErrno: Int32 = 0

    /// Opens (creating it, 0700) `directory` as `owner`: refused if it is a symlink, not a directory,
    /// someone else's, or writable by other users.
    public init(directory: String, owner: FlightFileOwner, recorderPid: Int32) throws(FlightDiskError) {
        var why: UnsafePointer<CChar>?
        let fd = owner.withIdentity { trace_open_window_directory(directory, $0, &why) }
        guard fd >= 0 else {
            let reason = why.map { String(cString: $0) } ?? String(cString: strerror(errno))
            throw FlightDiskError(description: "cannot use \(directory) for the flight recorder's window: \(reason)")
        }
        self.directory = directory
        directoryFD = fd
        self.owner = owner
        prefix = "window-\(recorderPid)-"
        header = FileHeader(pid: 0, monotonicStartNs: 0, realtimeStartNs: 0, program: "").encode()
    }

    deinit { close(directoryFD) }

    /// Segments of other recordings (a recorder that was killed) found in the directory: left alone.
    public func foreignSegments() -> [String] {
        FlightSegmentFiles.names(in: directory).filter { !$0.hasPrefix(prefix) }
    }

    func newSegment() -> FlightSegment? {
        for _ in 0..<1000 {
            let name = prefix + String(nextIndex) + ".atseg"
            nextIndex += 1
            let fd = owner.withIdentity { trace_create_at(directoryFD, name, $0) }
            if fd < 0 && errno == EEXIST { continue }
            guard fd >= 0 else {
                if firstErrno == 0 { firstErrno = errno }
                return nil
            }
            let segment = FlightSegment(fd: fd, name: name, size: 0)
            guard write(header, to: segment) else {
                _ = owner.withIdentity { trace_unlink_at(directoryFD, name, $0) }
                return nil
            }
            segments.append(segment)
            segmentsCreated += 1
            return segment
        }
        return nil
    }

    /// Appends `bytes` to `segment`; on failure the file is cut back (nothing half-written stays).
    func write(_ bytes: UnsafeRawBufferPointer, to segment: FlightSegment) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = pwrite(segment.fd, bytes.baseAddress! + done, bytes.count - done, off_t(segment.size + done))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                if firstErrno == 0 { firstErrno = n < 0 ? errno : EIO }
                _ = ftruncate(segment.fd, off_t(segment.size))
                return false
            }
            done += n
        }
        segment.size += bytes.count
        usedBytes += bytes.count
        peakBytes = max(peakBytes, usedBytes)
        return true
    }

    func write(_ bytes: [UInt8], to segment: FlightSegment) -> Bool {
        bytes.withUnsafeBytes { write($0, to: segment) }
    }

    /// Removes `segment` from the directory; its bytes stop counting once no dump reads it.
    func unlink(_ segment: FlightSegment) {
        guard !segment.unlinked else { return }
        segment.unlinked = true
        if current === segment { current = nil }
        _ = owner.withIdentity { trace_unlink_at(directoryFD, segment.name, $0) }
        if segment.pins == 0 { gone(segment) }
    }

    func unpin(_ segment: FlightSegment) {
        segment.pins -= 1
        if segment.pins == 0 && segment.unlinked { gone(segment) }
    }

    private func gone(_ segment: FlightSegment) {
        usedBytes -= segment.size
        segments.removeAll { $0 === segment }
    }

    /// The oldest segment still in the directory.
    var oldest: FlightSegment? { segments.first { !$0.unlinked } }
}

/// The segments a snapshot reads: pinned until the dump has written their chunks (then released
/// oldest first, so the ring can make room while a long dump goes on), or the snapshot is gone.
public final class FlightPins: @unchecked Sendable {
    let ring: FlightRing
    private var segments: [FlightSegment]

    init(ring: FlightRing, segments: [FlightSegment]) {
        self.ring = ring
        self.segments = segments
    }

    /// Releases the segments before `segment` (a dump has written every chunk they hold).
    func releaseBefore(_ segment: FlightSegment) {
        guard let i = segments.firstIndex(where: { $0 === segment }), i > 0 else { return }
        let done = Array(segments[..<i])
        segments.removeFirst(i)
        ring.unpin(done)
    }

    func releaseAll() {
        let done = segments
        segments = []
        if !done.isEmpty { ring.unpin(done) }
    }

    deinit { releaseAll() }
}

/// Segment files left in a directory (the recorder was killed): read back into a window that a dump
/// writes as a trace (`asynctrace dump --segments DIR`).
public enum FlightSegmentFiles {
    /// `window-<pid>-<n>.atseg` names in `directory`.
    public static func names(in directory: String) -> [String] {
        guard let d = opendir(directory) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if parse(name) != nil { out.append(name) }
        }
        return out
    }

    /// (recorder pid, index) of a segment name.
    public static func parse(_ name: String) -> (pid: Int32, index: Int)? {
        guard name.hasPrefix("window-"), name.hasSuffix(".atseg") else { return nil }
        let parts = name.dropFirst("window-".count).dropLast(".atseg".count).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let pid = Int32(parts[0]), pid > 0, let index = Int(parts[1]), index > 0 else { return nil }
        return (pid, index)
    }

    /// What reading the segments found.
    public struct Recovered {
        public var ring: FlightRing
        public var header: FileHeader
        public var recorderPid: Int32
        public var segments = 0
        public var chunks = 0
        /// Bytes that were not whole, checksummed chunks (the end of a segment cut by the kill).
        public var unreadableBytes = 0
        public var lastNs: UInt64 = 0
        /// Other recordings' segments in the directory (not read).
        public var otherRecorders: [Int32] = []
        /// Files named as segments that are not regular files of a segment's size (not read).
        public var skipped: [String] = []
    }

    /// Reads the segments of one recording in `directory` (`recorderPid`, or the one whose newest
    /// segment is newest) into a ring without limits.
    public static func recover(directory: String, recorderPid: Int32? = nil) throws(FlightDiskError) -> Recovered {
        var byPid: [Int32: [(index: Int, name: String)]] = [:]
        for name in names(in: directory) {
            let (pid, index) = parse(name)!
            byPid[pid, default: []].append((index, name))
        }
        guard !byPid.isEmpty else { throw FlightDiskError(description: "no flight-recorder segments (window-*.atseg) in \(directory)") }
        let pid: Int32
        if let recorderPid {
            guard byPid[recorderPid] != nil else { throw FlightDiskError(description: "no segments of recorder \(recorderPid) in \(directory)") }
            pid = recorderPid
        } else {
            pid = byPid.keys.max { newest(byPid[$0]!, directory) < newest(byPid[$1]!, directory) }!
        }
        let files = byPid[pid]!.sorted { $0.index < $1.index }
        var out: Recovered? = nil
        let ring = FlightRing(limits: FlightLimits(keepNs: nil, keepBytes: Int.max))
        var unreadable = 0
        var chunks = 0
        var lastNs: UInt64 = 0
        var header: FileHeader?
        var segments = 0
        var skipped: [String] = []
        for f in files {
            let fd = open(directory + "/" + f.name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var st = stat()
            // A segment is at most 64 MiB plus one chunk (16 MiB): anything larger is not one of ours.
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size <= 128 << 20 else {
                skipped.append(f.name)
                continue
            }
            var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            guard n == bytes.count else { continue }
            segments += 1
            bytes.withUnsafeBytes { raw in
                guard case .success(let (h, length)) = FileHeader.decode(raw) else {
                    unreadable += raw.count
                    return
                }
                if header == nil || h.pid != 0 { header = h }
                var at = length
                while at + TraceFileFormat.chunkHeaderSize <= raw.count {
                    let base = raw.baseAddress! + at
                    guard let ch = ChunkHeader.load(from: base), Int(ch.payloadLength) <= raw.count - at - TraceFileFormat.chunkHeaderSize,
                        flightChunkCRC(header: base, payload: base + TraceFileFormat.chunkHeaderSize, count: Int(ch.payloadLength)) == ch.crc
                    else { break }
                    let count = TraceFileFormat.chunkHeaderSize + Int(ch.payloadLength)
                    ring.add(FlightChunk(bytes: Array(UnsafeRawBufferPointer(rebasing: raw[at..<(at + count)])), header: ch), nowNs: 0)
                    chunks += 1
                    lastNs = max(lastNs, ch.endNs)
                    at += count
                }
                unreadable += raw.count - at
            }
        }
        guard let header else { throw FlightDiskError(description: "the segments of recorder \(pid) in \(directory) could not be read") }
        out = Recovered(ring: ring, header: header, recorderPid: pid)
        out!.segments = segments
        out!.chunks = chunks
        out!.unreadableBytes = unreadable
        out!.lastNs = lastNs
        out!.otherRecorders = byPid.keys.filter { $0 != pid }.sorted()
        out!.skipped = skipped
        return out!
    }

    /// The latest modification time of `files`.
    private static func newest(_ files: [(index: Int, name: String)], _ directory: String) -> Int {
        files.map { f -> Int in
            var st = stat()
            return lstat(directory + "/" + f.name, &st) == 0 ? Int(st.st_mtim.tv_sec) * 1_000_000_000 + Int(st.st_mtim.tv_nsec) : 0
        }.max() ?? 0
    }
}
