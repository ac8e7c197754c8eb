// What CPU samples refer to beyond a plain KernelEvent: interned stacks and recorded mappings.
// Kept out of KernelEvent so that an event stays a plain value (no reference counting per copy).

/// Each distinct stack once, by id (1, 2, 3, ...; 0 means "no stack").
public struct StackTable {
    private var ids: [[UInt64]: UInt32] = [:]
    public private(set) var stacks: [[UInt64]] = [[]]  // index 0: the empty stack
    public init() {}

    public var count: Int { stacks.count - 1 }

    /// The id of `frames` (innermost first), assigned on first sight; 0 for an empty stack.
    public mutating func intern(_ frames: UnsafeBufferPointer<UInt64>) -> UInt32 {
        guard !frames.isEmpty else { return 0 }
        let key = Array(frames)
        if let id = ids[key] { return id }
        let id = UInt32(stacks.count)
        ids[key] = id
        stacks.append(key)
        return id
    }

    public func frames(_ id: UInt32) -> [UInt64] { Int(id) < stacks.count ? stacks[Int(id)] : [] }
}

/// An executable region of a traced process, as /proc/PID/maps showed it.
public struct RecordedMapping: Sendable, Equatable {
    public var pid: UInt32
    public var start: UInt64
    public var end: UInt64
    public var fileOffset: UInt64
    /// Empty for anonymous memory (JIT code); "[vdso]" and the like for the kernel's.
    public var path: String
    /// The ELF build id (GNU note), empty when the file has none or could not be read.
    public var buildID: [UInt8]
}

/// Shared by the collector that fills it and the writer that encodes from it.
public final class SampleTables {
    /// CPU time per sample (0: sampling off); written as the stream's `sampling` event.
    public var periodNs: UInt64 = 0
    public var kernelStacks = false
    public var stacks = StackTable()
    public var mappings: [RecordedMapping] = []
    public init() {}
}
