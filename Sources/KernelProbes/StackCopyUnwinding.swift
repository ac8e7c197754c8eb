// Unwinding a stack copy while the recording runs. The probes copy the user stack where frame
// pointers are missing; written to the trace, a copy costs ~70 bytes per sample even as a delta.
// The recording process has what the reader would use (the mapped files, read through
// /proc/PID/map_files, and the maps as they are now), so an unwinder given here turns the copy into
// an interned stack of return addresses on the spot. KernelProbes does not unwind itself (that is
// the reading side's code, TraceSymbols): the CLI, which has both, plugs one in.

/// A stack unwound from a copy: the sampled instruction then return addresses (innermost first),
/// and per frame how its caller was found (`methods`, as the `stackUnwind` event writes them).
public struct UnwoundStack: Sendable {
    /// The sampled instruction, then return addresses, innermost first.
    public var frames: [UInt64]
    /// Per frame, how its caller was found (`UnwindMethod` values, as `stackUnwind` writes them).
    public var methods: [UInt8]
    /// A stack from its frames and methods.
    public init(frames: [UInt64], methods: [UInt8]) {
        self.frames = frames
        self.methods = methods
    }
}

/// Why a copy is left to the reader rather than unwound while recording.
public enum UnwindDeferral: Sendable {
    /// The stack reached an address no region read so far holds: code mapped after the maps were
    /// last read (the reader will have the later regions), unless the maps were read after the sample.
    case unknownAddress
    /// A frame lies in a file the recorder could not open (the reader may).
    case unreadableFile
    /// The unwinder holds as many files or mappings as it may (a long recording of many processes).
    case full
}

/// An unwinder the CLI plugs into `SampleCollector.unwinder` to unwind stack copies while recording
/// (TraceSymbols has the code; KernelProbes does not unwind itself).
public protocol StackCopyUnwinding: AnyObject {
    /// A new executable region of `pid` as its maps showed it at `timeNs`.
    func mapped(pid: UInt32, region: MapsEntry, buildID: [UInt8], timeNs: UInt64)
    /// `child` was forked by `parent` at `timeNs` and starts with its regions.
    func forked(parent: UInt32, child: UInt32, timeNs: UInt64)
    /// `pid` exited: what is kept for it only can go.
    func exited(pid: UInt32)
    /// The stack of the copy (`framePointerStack`: the kernel's walk of the same moment, which
    /// continues where the copy ends), and why it should rather be left to the reader (nil: it
    /// should not). `exited`: the process exited before the sample was processed, so an address in
    /// no region known may be JIT code that will never be (unwound by frame pointers, as JIT code keeps them).
    func unwind(pid: UInt32, timeNs: UInt64, copy: StackCopy, framePointerStack: UnsafeBufferPointer<UInt64>, exited: Bool)
        -> (stack: UnwoundStack, deferral: UnwindDeferral?)
}
