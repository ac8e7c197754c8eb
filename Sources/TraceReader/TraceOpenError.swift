/// Why a trace file could not be opened at all. Anything past a readable header is not an error:
/// damage inside the file is skipped and reported as `TraceDamage`.
public enum TraceOpenError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The path does not exist (ENOENT).
    case noSuchFile(path: String)
    /// The file cannot be opened for reading (EACCES/EPERM).
    case permissionDenied(path: String)
    /// The path is a directory.
    case isDirectory(path: String)
    /// A FIFO, socket or device: reading it could block forever or never end.
    case notRegularFile(path: String, kind: String)
    /// A file that reports size 0 but has contents (procfs, sysfs): not a trace.
    case unsizedFile(path: String)
    /// Opening, `fstat` or reading failed otherwise (`errno` 0: a short read).
    case cannotRead(path: String, errno: Int32, message: String)
    /// The file has no bytes (the recording wrote nothing).
    case emptyFile(path: String)
    /// The file does not start with the trace magic "ASYNCTRC".
    case notATrace(path: String)
    /// Written by a newer asynctrace than this one.
    case newerVersion(path: String, found: UInt16, supported: UInt16)
    /// The file starts like a trace but ends inside its header.
    case truncatedHeader(path: String, bytes: Int)
    /// The header is complete but its checksum or layout is wrong.
    case corruptHeader(path: String)

    public var description: String {
        switch self {
        case .noSuchFile(let p): "\(p): no such file"
        case .permissionDenied(let p): "\(p): permission denied"
        case .isDirectory(let p): "\(p): is a directory, not a trace file"
        case .notRegularFile(let p, let kind):
            "\(p): is \(kind), not a trace file (traces are read from regular files; copy it to one first)"
        case .unsizedFile(let p):
            "\(p): not a trace file (it reports size 0 but has contents, like files in /proc and /sys)"
        case .cannotRead(let p, let e, let m): "\(p): cannot read (\(m), errno \(e))"
        case .emptyFile(let p): "\(p): the file is empty (the recording wrote nothing)"
        case .notATrace(let p): "\(p): not an asynctrace trace file (its first bytes are not \"ASYNCTRC\")"
        case .newerVersion(let p, let found, let supported):
            "\(p): trace format version \(found) was written by a newer asynctrace; this one reads versions 1...\(supported)"
        case .truncatedHeader(let p, let n): "\(p): the file ends inside its header (\(n) bytes); nothing was recorded after it"
        case .corruptHeader(let p): "\(p): the file header is damaged (checksum or layout mismatch)"
        }
    }
}
