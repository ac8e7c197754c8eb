// Samples counted by stack and by function: the answer to "which code was on the CPU".

/// One distinct stack and how many samples had it.
public struct StackCount: Sendable {
    /// Frame ids, innermost first.
    public var frames: [Int]
    /// Samples with this stack.
    public var samples: Int
}

/// One function (frame) and how many samples it was in.
public struct FunctionCount: Sendable {
    /// The frame's id (`TraceSamples.frame(_:)`).
    public var frame: Int
    /// Samples with this frame innermost (on the CPU itself).
    public var selfSamples: Int
    /// Samples with this frame anywhere in the stack.
    public var totalSamples: Int
}

/// Samples counted by stack and by function: which code was on the CPU.
public struct CodeProfile: Sendable {
    /// Samples counted.
    public var totalSamples = 0
    /// Distinct stacks, most samples first.
    public var stacks: [StackCount] = []
    /// Functions, most samples first.
    public var functions: [FunctionCount] = []

    /// Counts `samples` (or those `include` keeps); stacks and functions by samples, most first.
    public init(_ data: TraceSamples, samples selected: some Sequence<CPUSample>) {
        var byStack: [[Int]: Int] = [:]
        var selfCount: [Int: Int] = [:]
        var totalCount: [Int: Int] = [:]
        for s in selected {
            let f = data.frames(of: s)
            totalSamples += 1
            byStack[f, default: 0] += 1
        }
        for (frames, n) in byStack {
            if let leaf = frames.first { selfCount[leaf, default: 0] += n }
            for id in Set(frames) { totalCount[id, default: 0] += n }
        }
        stacks = byStack.map { StackCount(frames: $0.key, samples: $0.value) }
            .sorted { $0.samples != $1.samples ? $0.samples > $1.samples : $0.frames.lexicographicallyPrecedes($1.frames) }
        functions = totalCount.map { FunctionCount(frame: $0.key, selfSamples: selfCount[$0.key] ?? 0, totalSamples: $0.value) }
            .sorted {
                $0.selfSamples != $1.selfSamples
                    ? $0.selfSamples > $1.selfSamples
                    : $0.totalSamples != $1.totalSamples ? $0.totalSamples > $1.totalSamples : $0.frame < $1.frame
            }
    }

    /// "86% on CPU in handleHash (server.js:17) <- emit <- ...", for one stack.
    public static func describe(_ stack: StackCount, of total: Int, frames: (Int) -> CodeFrame, depth: Int = 6) -> String {
        let pct = total > 0 ? Int((Double(stack.samples) * 100 / Double(total)).rounded()) : 0
        var names = stack.frames.prefix(depth).map { frames($0).description }
        if stack.frames.count > depth { names.append("…") }
        return "\(pct)% (\(stack.samples) samples) in " + (names.isEmpty ? "[no stack]" : names.joined(separator: " <- "))
    }
}
