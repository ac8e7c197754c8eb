// What CPU samples refer to beyond a plain KernelEvent: interned stacks and recorded mappings.
// Kept out of KernelEvent so that an event stays a plain value (no reference counting per copy).

/// Each distinct stack once, by id (1, 2, 3, ...; 0 means "no stack").
public struct StackTable {
    private var ids: [[UInt64]: UInt32] = [:]
    /// The stacks by id (index 0: the empty stack).
    public private(set) var stacks: [[UInt64]] = [[]]  // index 0: the empty stack
    /// An empty table.
    public init() {}

    /// Distinct stacks interned (the empty stack not counted).
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

    /// The frames of stack `id` (innermost first); empty for 0 or an unknown id.
    public func frames(_ id: UInt32) -> [UInt64] { Int(id) < stacks.count ? stacks[Int(id)] : [] }
}

/// An executable region of a traced process, as /proc/PID/maps showed it.
public struct RecordedMapping: Sendable, Equatable {
    /// The process.
    public var pid: UInt32
    /// The region's first address.
    public var start: UInt64
    /// The address after the region's last.
    public var end: UInt64
    /// Where in the file the region starts.
    public var fileOffset: UInt64
    /// Empty for anonymous memory (JIT code); "[vdso]" and the like for the kernel's.
    public var path: String
    /// The ELF build id (GNU note), empty when the file has none or could not be read.
    public var buildID: [UInt8]
}

/// A sample's user registers and the words of its user stack copy an unwinder can use (the
/// `stackCopy` event): return addresses (values in an executable mapping) and pointers into the
/// stack (saved frame pointers); every other word is zero, so it costs one byte in the trace.
public struct StackCopy: Sendable {
    /// The sampled instruction, stack and frame pointers.
    public var ip: UInt64, sp: UInt64, bp: UInt64
    /// Bytes copied from `sp` up.
    public var bytes: UInt32
    /// (word index, value) of the kept words, by index.
    public var words: [(index: UInt32, value: UInt64)]
    /// A copy from its registers, size and kept words (by index).
    public init(ip: UInt64, sp: UInt64, bp: UInt64, bytes: UInt32, words: [(index: UInt32, value: UInt64)]) {
        self.ip = ip
        self.sp = sp
        self.bp = bp
        self.bytes = bytes
        self.words = words
    }

    /// The list argument of `stackCopy`: per kept word the gap to the previous kept index, then the
    /// value: a pointer into the stack as (value - sp) << 1 | 1, anything else as value << 1.
    public var encodedWords: [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity(words.count * 2)
        var next: UInt32 = 0
        for w in words {
            out.append(UInt64(w.index &- next))
            next = w.index &+ 1
            if w.value >= sp && w.value - sp < Self.stackReach {
                out.append((w.value - sp) << 1 | 1)
            } else {
                out.append(w.value << 1)
            }
        }
        return out
    }

    /// The `stackCopyDelta` list against `base` (the same thread's previous copy): the words whose value
    /// differs from what `base` held at the same address (0 where this copy keeps none), encoded as
    /// `encodedWords`. Nil when the two are not word-aligned with each other.
    public func encodedDelta(from base: StackCopy) -> [UInt64]? {
        guard base.sp & 7 == sp & 7 else { return nil }
        let count = UInt64(bytes / 8)
        // base's words at this copy's indices.
        var inherited: [UInt32: UInt64] = [:]
        for w in base.words {
            let address = base.sp &+ UInt64(w.index) &* 8
            guard address >= sp else { continue }
            let i = (address - sp) / 8
            if i < count { inherited[UInt32(i)] = w.value }
        }
        var changes: [(index: UInt32, value: UInt64)] = []
        for w in words {
            if inherited.removeValue(forKey: w.index) != w.value { changes.append(w) }
        }
        for (i, v) in inherited where v != 0 { changes.append((i, 0)) }
        changes.sort { $0.index < $1.index }
        return StackCopy(ip: ip, sp: sp, bp: bp, bytes: bytes, words: changes).encodedWords
    }

    /// Values this far above sp count as pointers into the stack.
    public static let stackReach: UInt64 = 64 << 20
}

/// Shared by the collector that fills it and the writer that encodes from it.
public final class SampleTables {
    /// CPU time per sample (0: sampling off); written as the stream's `sampling` event.
    public var periodNs: UInt64 = 0
    /// Whether samples carry kernel stacks (the `sampling` event's flag).
    public var kernelStacks = false
    /// The samples' stacks, user and kernel.
    public var stacks = StackTable()
    /// For stacks unwound from a copy while recording: how each frame's caller was found (written
    /// as `stackUnwind` after the stack's stackDef; see StackUnwinder.TallyLog.methodsPerFrame).
    public var unwindMethods: [UInt32: [UInt8]] = [:]
    /// Every executable region recorded, in the order seen.
    public var mappings: [RecordedMapping] = []
    /// Stack copies of samples not written yet, by KernelEvent.stackCopy (the writer removes them).
    public var stackCopies: [UInt32: StackCopy] = [:]
    var nextStackCopy: UInt32 = 1
    /// Empty tables, sampling off.
    public init() {}

    /// Keeps `copy` until the writer takes it; the id for KernelEvent.stackCopy.
    public func add(_ copy: StackCopy) -> UInt32 {
        let id = nextStackCopy
        nextStackCopy = nextStackCopy == UInt32.max ? 1 : nextStackCopy + 1
        stackCopies[id] = copy
        return id
    }
}
