import Testing
import TraceFormat

/// `CompactStack` (format 10): every stack written on every base reads back as itself, frames and methods.
@Suite struct CompactStackTests {
    /// A small deterministic generator (the same stacks every run).
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 17
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// Stacks of a program: callers drawn from a few chains in two modules far apart (and the kernel's half),
    /// leaves anywhere near them, methods of every kind the writer sees.
    static func stacks(_ count: Int) -> [(frames: [UInt64], methods: [UInt8]?)] {
        var g = Generator(state: 42)
        let modules: [UInt64] = [0x0140_0000, 0x7f6d_3efc_0000, 0xffff_ffff_8100_0000]
        let chains: [[UInt64]] = (0..<6).map { _ in (0..<(3 + g.below(20))).map { _ in modules[g.below(2)] + UInt64(g.below(1 << 22)) } }
        var out: [(frames: [UInt64], methods: [UInt8]?)] = []
        for _ in 0..<count {
            let chain = chains[g.below(chains.count)]
            var frames = Array(chain.suffix(1 + g.below(chain.count)))
            for _ in 0..<g.below(4) { frames.insert(modules[g.below(3)] + UInt64(g.below(1 << 24)), at: 0) }
            let methods: [UInt8]?
            switch g.below(6) {
            case 0: methods = nil
            case 1: methods = [UInt8](repeating: UInt8(g.below(4)), count: frames.count)
            case 2: methods = frames.map { _ in UInt8(g.below(4)) }
            case 3: methods = frames.map { _ in UInt8(g.below(4)) } + [4]  // unwinding ended before the outermost frame
            case 4: methods = Array(frames.map { _ in UInt8(g.below(2)) }.prefix(g.below(frames.count + 1)))  // fewer than frames
            default: methods = [UInt8](repeating: 0, count: frames.count - 1) + [UInt8(g.below(4))]
            }
            out.append((frames, methods))
        }
        return out
    }

    @Test func everyStackOnEveryBaseReadsBackAsItself() {
        let stacks = Self.stacks(120)
        var defined: [UInt32: (frames: [UInt64], methods: [UInt8]?)] = [:]
        var onBase = 0
        for (i, s) in stacks.enumerated() {
            let id = UInt32(i + 1)
            // No base: always possible.
            var encodings: [(UInt32, CompactStack.Encoded)] = []
            if let e = CompactStack.encode(id: id, frames: s.frames, methods: s.methods, baseID: 0, baseFrames: [], baseMethods: nil) {
                encodings.append((0, e))
            }
            #expect(encodings.count == 1, "stack \(i) without a base")
            for (baseID, base) in defined {
                if let e = CompactStack.encode(
                    id: id, frames: s.frames, methods: s.methods, baseID: baseID, baseFrames: base.frames, baseMethods: base.methods)
                {
                    encodings.append((baseID, e))
                }
            }
            for (baseID, e) in encodings {
                if baseID != 0 { onBase += 1 }
                let read = e.frames.withUnsafeBufferPointer { list in
                    CompactStack.decode(id: UInt64(id), base: e.base, shape: e.shape, frames: list, maxFrames: 512) { defined[$0] }
                }
                guard case .success(let stack) = read else {
                    Issue.record("stack \(i) on \(baseID): \(read)")
                    continue
                }
                #expect(stack.frames == s.frames && stack.methods == s.methods && !stack.cut, "stack \(i) on \(baseID)")
            }
            defined[id] = s
        }
        // Most stacks could be written on most bases (the rest: their methods cannot be said on that base).
        #expect(onBase > 4_000, "\(onBase)")
    }

    @Test func aLeafBesideItsBasesLeafCostsAByte() throws {
        let callers: [UInt64] = [0x0140_1234, 0x7f6d_3efc_5678, 0x0150_0000]
        let base = [0x7f6d_3eff_0010] + callers, stack = [0x7f6d_3eff_0028] + callers
        let e = try #require(
            CompactStack.encode(id: 40, frames: stack, methods: [1, 0, 0, 0], baseID: 38, baseFrames: base, baseMethods: [1, 0, 0, 0]))
        // base 2, shape: code 1 and one frame dropped, the leaf 0x18 from the base's leaf, selector set: a byte each.
        #expect(e.base == 2 && e.shape == 1 + 8 && e.frames == [zigzag(0x18) << 1 | 1] && e.size == 4)
    }
}
