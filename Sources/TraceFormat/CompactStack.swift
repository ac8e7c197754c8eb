/// The arguments after the id of `stackCompact` and `userSampleNewStack` (version 10): a stack defined as
/// its own innermost frames on the outer frames of a stack defined before (its base), in fewer bytes than
/// `stackExtend`'s: most new stacks of a program differ from a recent one in a frame or two near the leaf.
///
/// - `base` (signed): the stack's id minus its base's id (a recent base costs a byte); 0: no base, every
///   frame is the stack's own.
/// - `shape` (unsigned): `code + 8 × dropped`. `dropped`: the base's innermost frames the stack does not
///   share (it shares the base's other, outer frames; 0 without a base). `code`, the unwinding methods
///   (`stackUnwind`'s values): 0…4 every own frame's is this one, the shared frames keep the base's; 5 the
///   stack has none (not unwound from a copy); 6 they are listed in `frames` as runs; 7 is not used.
/// - `frames` (list): with code 6 first the number of runs, then the runs (`count × 8 + method`, count ≥ 1):
///   the methods they spell are the own frames' (the shared frames keeping the base's) when there are no
///   more of them than own frames, else the whole stack's. Then the own frames, innermost first, each a
///   zigzag difference from a reference: the frame after it (the outermost own frame: the first shared
///   frame, or 0), or, where the base has a frame at the same depth (counted from the outermost frame,
///   one of the base's dropped frames), `difference << 1 | 0` from the frame after it or
///   `difference << 1 | 1` from that frame of the base (a leaf in the same function as the base's leaf).
public enum CompactStack {
    /// `shape`'s code for a stack without unwinding methods.
    public static let noMethods: UInt64 = 5
    /// `shape`'s code for methods listed as runs.
    public static let listedMethods: UInt64 = 6

    /// A definition's arguments after its id.
    public struct Encoded: Equatable, Sendable {
        /// The stack's id minus its base's (0: no base).
        public var base: Int64
        /// Methods code + 8 × dropped.
        public var shape: UInt64
        /// Method runs (code 6) and own frames.
        public var frames: [UInt64]
        /// Bytes of the three arguments as written (the list with its count).
        public var size: Int {
            varintSize(zigzag(base)) + varintSize(shape) + varintSize(UInt64(frames.count)) + frames.reduce(0) { $0 + varintSize($1) }
        }
    }

    /// Stack `id`'s definition: `frames` (innermost first) with their unwinding `methods` (nil: none), on the
    /// stack `baseID` (0: none) of `baseFrames` and `baseMethods`, sharing as many outer frames with it as
    /// they have in common. Nil when it cannot be said on that base (methods listed shorter than the own
    /// frames while the base has methods for the shared ones, a method above 7).
    public static func encode(
        id: UInt32, frames: [UInt64], methods: [UInt8]?, baseID: UInt32, baseFrames: [UInt64], baseMethods: [UInt8]?
    ) -> Encoded? {
        let base = baseID == 0 ? [] : baseFrames
        var shared = 0
        while shared < base.count && shared < frames.count && base[base.count - 1 - shared] == frames[frames.count - 1 - shared] {
            shared += 1
        }
        let own = frames.count - shared, dropped = base.count - shared
        let inherited = baseID == 0 ? [] : (baseMethods ?? []).dropFirst(dropped)
        var code: UInt64
        var list: [UInt64] = []
        if let m = methods {
            guard m.allSatisfy({ $0 < 8 }) else { return nil }
            let ownMethods = m.prefix(own), rest = m.dropFirst(own)
            let restInherited = rest.elementsEqual(inherited)
            if own > 0 && ownMethods.count == own && restInherited && ownMethods.allSatisfy({ $0 == ownMethods.first! }) && ownMethods.first! < 5 {
                code = UInt64(ownMethods.first!)
            } else if own == 0 && restInherited {
                code = 0
            } else {
                // Runs of the own frames' methods (the rest inherited), else of the whole stack's.
                let spelled: ArraySlice<UInt8>
                if m.count > own {
                    spelled = restInherited ? ownMethods : m[...]
                } else {
                    guard inherited.isEmpty else { return nil }  // would read as these and the base's
                    spelled = m[...]
                }
                code = listedMethods
                var runs: [UInt64] = []
                var i = spelled.startIndex
                while i < spelled.endIndex {
                    var j = i + 1
                    while j < spelled.endIndex && spelled[j] == spelled[i] { j += 1 }
                    runs.append(UInt64(j - i) << 3 | UInt64(spelled[i]))
                    i = j
                }
                list.append(UInt64(runs.count))
                list += runs
            }
        } else {
            code = noMethods
        }
        let first = list.count
        list += repeatElement(0, count: own)
        var next = shared > 0 ? frames[own] : 0
        for i in stride(from: own - 1, through: 0, by: -1) {
            let f = frames[i]
            let fromNext = zigzag(Int64(bitPattern: f &- next))
            let j = i + base.count - frames.count
            if j >= 0 {
                let fromBase = zigzag(Int64(bitPattern: f &- base[j]))
                list[first + i] = varintSize(fromBase << 1 | 1) < varintSize(fromNext << 1) ? fromBase << 1 | 1 : fromNext << 1
            } else {
                list[first + i] = fromNext
            }
            next = f
        }
        return Encoded(base: baseID == 0 ? 0 : Int64(id) - Int64(baseID), shape: code + 8 * UInt64(dropped), frames: list)
    }

    /// Why a definition could not be read.
    public enum Failure: Error, Equatable, Sendable {
        /// Its id is 0 or out of range, its base is itself or out of range.
        case badID
        /// Its base was never defined (a damaged chunk lost it).
        case unknownBase
        /// More dropped frames than the base has, code 7, runs that do not fit the list or spell too many methods.
        case malformed
    }

    /// The stack defined by `id`'s arguments (`base`, `shape`, `frames`), reading its base by id with
    /// `lookup` (frames and methods, nil: never defined); frames are cut at `maxFrames` (`cut` says so),
    /// methods at `maxFrames + 1`. The own frames' differences wrap (any address), nothing traps.
    public static func decode(
        id: UInt64, base: Int64, shape: UInt64, frames list: UnsafeBufferPointer<UInt64>, maxFrames: Int,
        lookup: (UInt32) -> (frames: [UInt64], methods: [UInt8]?)?
    ) -> Result<(frames: [UInt64], methods: [UInt8]?, cut: Bool), Failure> {
        guard id > 0, id <= UInt64(UInt32.max) else { return .failure(.badID) }
        var baseFrames: [UInt64] = []
        var baseMethods: [UInt8]?
        var hasBase = false
        if base != 0 {
            let (b, overflow) = Int64(id).subtractingReportingOverflow(base)
            guard !overflow, b > 0, b <= Int64(UInt32.max) else { return .failure(.badID) }
            guard let found = lookup(UInt32(b)) else { return .failure(.unknownBase) }
            (baseFrames, baseMethods, hasBase) = (found.frames, found.methods, true)
        }
        let code = shape & 7, droppedRaw = shape >> 3
        guard code != 7, droppedRaw <= UInt64(baseFrames.count) else { return .failure(.malformed) }
        let dropped = Int(droppedRaw), shared = baseFrames.count - dropped
        var first = 0
        var spelled: [UInt8] = []
        if code == listedMethods {
            guard let runs = list.first, runs < UInt64(list.count) else { return .failure(.malformed) }
            first = 1 + Int(runs)
            for r in list[1..<first] {
                let count = r >> 3
                guard count >= 1, count <= UInt64(maxFrames + 1 - spelled.count) else { return .failure(.malformed) }
                spelled += repeatElement(UInt8(r & 7), count: Int(count))
            }
        }
        let own = list.count - first
        var frames = [UInt64](repeating: 0, count: own)
        var next = shared > 0 ? baseFrames[dropped] : 0
        for i in stride(from: own - 1, through: 0, by: -1) {
            let v = list[first + i]
            let j = i + baseFrames.count - (own + shared)
            let f: UInt64
            if hasBase && j >= 0 {
                f = (v & 1 == 1 ? baseFrames[j] : next) &+ UInt64(bitPattern: unzigzag(v >> 1))
            } else {
                f = next &+ UInt64(bitPattern: unzigzag(v))
            }
            frames[i] = f
            next = f
        }
        let cut = own + shared > maxFrames
        if frames.count > maxFrames { frames.removeSubrange(maxFrames...) }
        frames += baseFrames[dropped...].prefix(maxFrames - frames.count)
        let inherited = (baseMethods ?? []).dropFirst(dropped)
        var methods: [UInt8]?
        switch code {
        case noMethods: methods = nil
        case listedMethods: methods = spelled.count > own ? spelled : Array((spelled + inherited).prefix(maxFrames + 1))
        default: methods = Array((repeatElement(UInt8(code), count: min(own, maxFrames + 1)) + inherited).prefix(maxFrames + 1))
        }
        return .success((frames, methods, cut))
    }
}
