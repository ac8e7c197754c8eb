// Time aggregated by stack: the data behind folded stacks and flame graphs.
import TraceReader
import TraceSymbols

// A trie of frames; each node holds its self time. Per thread, the pass keeps the stack of open
// slices and charges the time between two operations to the innermost counted frame.
import TraceFormat

/// How stacks are formed.
public enum StackGrouping: String, Sendable, CaseIterable {
    /// thread → resource type → nested callbacks → syscall leaves.
    case callback
    /// The trigger chain as the stack (root resource first), so everything one connection caused is one tower.
    case causal
    /// CPU samples: the trigger chain of the callback that was running (the thread outside callbacks),
    /// then the sampled code inside it, outermost first; each sample weighs its CPU time.
    case code
}

/// Which time is counted.
public enum StackWeight: String, Sendable, CaseIterable {
    /// Time inside callbacks (and the syscalls they made).
    case busy
    /// All time of each thread, including loop phases and waiting in epoll.
    case wall
}

/// The frames and their self times.
public final class StackTree {
    /// One frame: its label, parent and self time.
    public struct Node: Sendable {
        /// Its label, an id of `labels` (-1: the root).
        public var label: Int
        /// Its parent's index in `nodes` (-1: the root).
        public var parent: Int
        /// Time charged to this frame itself (ns; sampled CPU time for code grouping).
        public var selfWeight: UInt64
        /// Distance from the root (0: the root).
        public var depth: Int
    }

    /// Every frame; index 0 is the root, and a child always comes after its parent.
    @exclusivity(unchecked) public private(set) var nodes: [Node] = [Node(label: -1, parent: -1, selfWeight: 0, depth: 0)]
    /// The frames' labels.
    public let labels = NameTable()
    @exclusivity(unchecked) private var childIndex = IDTable<Int>()

    /// The root's index in `nodes`.
    public static let root = 0

    /// A tree with only its root.
    public init() {}

    /// The child of `parent` labelled `label` (created when new).
    public func child(_ parent: Int, _ label: Int) -> Int {
        let key = UInt64(parent) << 32 | UInt64(label)
        if let c = childIndex[key] { return c }
        let c = nodes.count
        nodes.append(Node(label: label, parent: parent, selfWeight: 0, depth: nodes[parent].depth + 1))
        childIndex.insert(key, c)
        return c
    }

    /// The child of `parent` labelled `label` (created when new).
    public func child(_ parent: Int, _ label: String) -> Int { child(parent, labels.id(label)) }

    /// Gives `node` another label, unless a sibling already has it.
    func relabel(_ node: Int, _ label: String) {
        let id = labels.id(label), parent = nodes[node].parent
        guard node > 0, nodes[node].label != id, childIndex[UInt64(parent) << 32 | UInt64(id)] == nil else { return }
        nodes[node].label = id
        childIndex.insert(UInt64(parent) << 32 | UInt64(id), node)
    }

    /// Takes `w` off `node`'s self time (not below 0): time that children now stand for.
    func take(_ node: Int, _ w: UInt64) { nodes[node].selfWeight = nodes[node].selfWeight.subtractingSaturated(w) }

    // Weights come from timestamps and durations in the file: sums saturate (a wrapped sum would make a frame
    // wider than its parent, and the flame graph's layout arithmetic leave every range).
    @inline(__always) func add(_ node: Int, _ w: UInt64) { nodes[node].selfWeight = nodes[node].selfWeight.addingSaturated(w) }

    /// All self times together (ns; saturates).
    public var totalWeight: UInt64 { nodes.reduce(0) { $0.addingSaturated($1.selfWeight) } }

    /// Frame labels from the root's child down to `node`.
    public func path(_ node: Int) -> [String] {
        var out: [String] = []
        var n = node
        while n > 0 {
            out.append(labels[nodes[n].label])
            n = nodes[n].parent
        }
        return out.reversed()
    }

    /// Inclusive weights (self + descendants), by node.
    public func inclusiveWeights() -> [UInt64] {
        var w = nodes.map(\.selfWeight)
        // Children always come after their parent, so one backward sweep sums every subtree.
        for i in stride(from: nodes.count - 1, through: 1, by: -1) { w[nodes[i].parent] = w[nodes[i].parent].addingSaturated(w[i]) }
        return w
    }
}

/// Builds a StackTree from a timeline.
public final class StackAggregator: TimelineSink {
    /// The tree being built.
    public let tree = StackTree()
    /// How stacks are formed.
    public let grouping: StackGrouping
    /// Which time is counted.
    public let weight: StackWeight

    struct Frame {
        var node: Int
        var counted: Bool
        var isCallback: Bool
        /// A kernel-only thread's time outside syscalls ("on CPU"): what begins here hangs off the thread's node.
        var isOnCPU = false
        /// A syscall: time off the CPU inside it is a sibling frame ("read", "blocked in read"), so syscall frames
        /// stay leaves (flamegraph.pl sorts lines as text: "close;x" after "close phase" would split "close").
        var siblingParent = -1
    }

    @exclusivity(unchecked) private var stacks: [[Frame]] = []
    @exclusivity(unchecked) private var lastTs: [UInt64] = []
    private var threadNodes: [Int] = []
    private var outsideCallbacks = -1
    // Causal grouping: every live resource's node (evicted on destroy).
    private struct ResourceKey: Hashable { var pid: UInt32; var id: UInt64 }
    @exclusivity(unchecked) private var causalNodes: [ResourceKey: Int] = [:]
    @exclusivity(unchecked) private var causalTypes: [ResourceKey: Int] = [:]
    @exclusivity(unchecked) private var frameLabels: [Int] = []  // timeline name id -> tree label id (-1: not yet)

    // Code grouping, and a kernel-only trace's "on CPU" frames: the samples' stacks, named; frame id -> tree label
    // (-1: not yet).
    private var samples: TraceSamples?
    private var codeLabels: [Int] = []
    /// Callback grouping of a kernel-only trace: sampled time hung below each "on CPU" node, taken off its self
    /// time at the end (the samples say where the thread's measured time on the CPU went).
    private var sampledOnCPU: [Int: UInt64] = [:]
    /// CPU samples counted (code grouping).
    public private(set) var sampleCount = 0

    /// An aggregator forming stacks by `grouping`, counting `weight`'s time.
    public init(grouping: StackGrouping = .callback, weight: StackWeight = .busy) {
        self.grouping = grouping
        self.weight = weight
        if grouping == .code || grouping == .callback {
            let data = TraceSamples()
            data.keepsSamples = false
            samples = data
        }
    }

    public func code(_ event: EventView, thread t: Int, strings: TraceEventIterator, timeline: Timeline) {
        // Callback grouping uses samples only below a kernel-only thread's "on CPU" (see threadAdded).
        if grouping == .callback && (timeline.reader.hasUserEvents || timeline.reader.header.version < 3) { return }
        guard let data = samples, let sample = data.add(event, strings: strings), t >= 0, t < stacks.count else { return }
        let top = stacks[t][stacks[t].count - 1]
        // A sample inside a syscall or while off the CPU: that frame already has the time.
        if grouping == .callback && !top.isOnCPU { return }
        if grouping == .code { sampleCount += 1 }
        var node = top.node
        let frames = top.isCallback ? data.callbackFrames(of: sample) : data.frames(of: sample)
        for f in frames.reversed() {
            if f >= codeLabels.count { codeLabels.append(contentsOf: repeatElement(-1, count: f + 1 - codeLabels.count)) }
            if codeLabels[f] < 0 { codeLabels[f] = tree.labels.id(data.frame(f).description.replacingSemicolons()) }
            node = tree.child(node, codeLabels[f])
        }
        // Without a recorded period (an older trace) a sample counts 1 ms, the default rate's.
        let w = data.periodNs > 0 ? data.periodNs : 1_000_000
        tree.add(node, w)
        if grouping == .callback { sampledOnCPU[top.node, default: 0] &+= w }
    }

    private func label(_ name: Int, _ timeline: Timeline) -> Int {
        if name < frameLabels.count && frameLabels[name] >= 0 { return frameLabels[name] }
        // flamegraph.pl splits frames on ';'.
        let l = tree.labels.id(timeline.names[name].replacingSemicolons())
        if name >= frameLabels.count { frameLabels.append(contentsOf: repeatElement(-1, count: name - frameLabels.count + 1)) }
        frameLabels[name] = l
        return l
    }

    /// Threads renamed after they appeared (a main thread naming itself, a thread created with its creator's name)
    /// take their final name.
    public func finished(timeline: Timeline) {
        // The sampled code below "on CPU" stands for that much of its measured time (sampling's error stays: a
        // thread with more samples than time on the CPU keeps the samples' weight).
        for (node, w) in sampledOnCPU { tree.take(node, w) }
        sampledOnCPU = [:]
        guard grouping != .causal else { return }
        for t in threadNodes.indices where t < timeline.threads.count {
            tree.relabel(threadNodes[t], "\(processLabel(timeline.process(of: t))) \(timeline.threads[t].label)".replacingSemicolons())
        }
    }

    public func threadAdded(_ thread: TimelineThread, process: TimelineProcess, timeline: Timeline) {
        let base: Int
        switch grouping {
        case .callback, .code:
            base = tree.child(StackTree.root, "\(processLabel(process)) \(thread.label)".replacingSemicolons())
        case .causal:
            if outsideCallbacks < 0 { outsideCallbacks = tree.child(StackTree.root, "(outside callbacks)") }
            base = outsideCallbacks
        }
        threadNodes.append(base)
        stacks.append([Frame(node: base, counted: weight == .wall, isCallback: false)])
        // A kernel-only trace of format 3 (an unmodified program, scheduler events): a thread's time outside
        // syscalls is on CPU and counts as busy (thread → on CPU / syscall / off-CPU reason), so the graph is not
        // empty; CPU samples hang their code below "on CPU". With callbacks, busy stays the time inside them.
        if grouping == .callback && !timeline.reader.hasUserEvents && timeline.reader.header.version >= 3 {
            stacks[stacks.count - 1].append(Frame(node: tree.child(base, "on CPU"), counted: true, isCallback: false, isOnCPU: true))
        }
        lastTs.append(0)
    }

    private func processLabel(_ p: TimelineProcess) -> String {
        let prog = p.program.split(separator: " ").first.map { String($0.split(separator: "/").last ?? $0) } ?? ""
        return prog.isEmpty ? "pid \(p.pid)" : "\(prog) (\(p.pid))"
    }

    public func resource(_ change: ResourceChange, timeline: Timeline) {
        guard grouping != .callback else { return }
        let key = ResourceKey(pid: change.pid, id: change.asyncID)
        switch change.kind {
        case .created:
            let parent = causalNodes[ResourceKey(pid: change.pid, id: change.trigger)] ?? StackTree.root
            causalNodes[key] = causalChild(parent, label(change.type, timeline))
            causalTypes[key] = change.type
        case .fd:
            // Resources that own an fd (connections, servers) get their own frame, so each is one tower.
            guard change.fd >= 0, let node = causalNodes[key], let type = causalTypes[key] else { return }
            // The node may stand for a collapsed run or the depth cap (its label is then not this resource's type).
            guard tree.nodes[node].label == label(type, timeline) else { return }
            let parent = tree.nodes[node].parent
            causalNodes[key] = causalChild(parent, tree.labels.id("\(timeline.names[type].replacingSemicolons()) #\(change.asyncID) fd \(change.fd)"))
        case .destroyed:
            causalNodes[key] = nil
            causalTypes[key] = nil
        }
    }

    /// Causal chains can be as long as the program ran (a keep-alive client makes each request in the previous
    /// one's callback): runs of one type fold into one frame, and chains stop growing at this depth.
    public static let maxCausalDepth = 32

    private func causalChild(_ parent: Int, _ label: Int) -> Int {
        if parent != StackTree.root && tree.nodes[parent].label == label { return parent }
        if tree.nodes[parent].depth >= Self.maxCausalDepth { return parent }
        return tree.child(parent, label)
    }

    public func consume(_ op: TimelineOp, timeline: Timeline) {
        let t = op.thread
        let top = stacks[t][stacks[t].count - 1]
        // Code grouping weighs samples only; the slices just say which callback was running.
        if top.counted && grouping != .code && lastTs[t] != 0 && op.timestampNs > lastTs[t] { tree.add(top.node, op.timestampNs - lastTs[t]) }
        lastTs[t] = op.timestampNs
        switch op.kind {
        case .begin:
            var frame = top
            switch op.slice {
            case .callback:
                let node: Int
                if grouping != .callback {
                    let key = ResourceKey(pid: timeline.threads[t].pid, id: op.asyncID)
                    if let n = causalNodes[key] {
                        node = n
                    } else {
                        // Created before the recording started (or in lost events).
                        node = tree.child(StackTree.root, label(op.typeName, timeline))
                        causalNodes[key] = node
                        causalTypes[key] = op.typeName
                    }
                } else {
                    node = tree.child(top.node, label(op.name, timeline))
                }
                frame = Frame(node: node, counted: true, isCallback: true)
            case .syscall:
                if top.isOnCPU {
                    // A loop waiting in epoll is idle, not busy (it counts with --weight wall).
                    let idle = weight == .busy && op.isLoopWait
                    frame = Frame(
                        node: tree.child(threadNodes[t], label(op.name, timeline)), counted: !idle, isCallback: false,
                        siblingParent: threadNodes[t])
                } else if top.counted {
                    frame = Frame(
                        node: tree.child(top.node, label(op.name, timeline)), counted: true, isCallback: false,
                        siblingParent: top.node)
                }
            case .offCPU:
                // Off the CPU in a counted frame: a frame named for why ("blocked in read", "runnable (preempted)"),
                // beside the syscall it happened in.
                if top.isOnCPU {
                    frame = Frame(node: tree.child(threadNodes[t], label(op.name, timeline)), counted: true, isCallback: false)
                } else if top.counted {
                    let parent = top.siblingParent >= 0 ? top.siblingParent : top.node
                    frame = Frame(node: tree.child(parent, label(op.name, timeline)), counted: true, isCallback: false)
                }
            default:
                // Loop phases and polls are frames of their own only when all time counts and no callback is open.
                if weight == .wall && !top.isCallback {
                    frame = Frame(node: tree.child(top.node, label(op.name, timeline)), counted: true, isCallback: false)
                }
            }
            stacks[t].append(frame)
        case .end:
            if stacks[t].count > 1 { stacks[t].removeLast() }
        case .instant, .counter:
            break
        }
    }
}

extension String {
    func replacingSemicolons() -> String {
        guard contains(";") else { return self }
        return String(map { $0 == ";" ? ":" : $0 })
    }
}

/// Brendan Gregg's folded format: one line per stack, `frame;frame;frame weight` (weight in ns).
public enum FoldedStacks {
    /// Writes `tree`: a line `frame;frame weight` per frame with self time, in frame order (one frame's lines
    /// together, as flamegraph.pl merges them); whitespace before a number ending a frame name becomes "_".
    public static func write(_ tree: StackTree, to out: OutputFile) {
        let labels = (0..<tree.labels.count).map { frameName(tree.labels[$0]) }
        var paths: [String] = [""]
        paths.reserveCapacity(tree.nodes.count)
        for i in 1..<max(1, tree.nodes.count) {
            let n = tree.nodes[i]
            let l = labels[n.label]
            paths.append(n.parent == 0 ? l : paths[n.parent] + ";" + l)
        }
        // flamegraph.pl merges a frame only across consecutive lines (it expects stackcollapse's sorted output):
        // lines in frame-by-frame order keep every path's lines together, so one frame is drawn once.
        var frames: [[Int]] = [[]]
        frames.reserveCapacity(tree.nodes.count)
        for i in 1..<max(1, tree.nodes.count) { frames.append(frames[tree.nodes[i].parent] + [tree.nodes[i].label]) }
        let order = (1..<max(1, tree.nodes.count)).filter { tree.nodes[$0].selfWeight > 0 }.sorted {
            frames[$0].lexicographicallyPrecedes(frames[$1]) { labels[$0] < labels[$1] }
        }
        for i in order {
            out.write(paths[i])
            out.write(byte: UInt8(ascii: " "))
            out.write(uint: tree.nodes[i].selfWeight)
            out.write(byte: 10)
        }
    }

    /// A frame ending in whitespace and a number (`TCPWRAP #3 fd 7`, `thread 102`) would be read by flamegraph.pl
    /// as a sample count (a line `a;b 7 700` is its two-column differential format), so the whitespace before
    /// that number becomes `_` (`TCPWRAP #3 fd_7`), in every frame so that the same frame has one name.
    static func frameName(_ label: String) -> String {
        var u = Array(label.utf8)
        var i = u.count
        while i > 0 && (u[i - 1] >= 0x30 && u[i - 1] <= 0x39 || u[i - 1] == UInt8(ascii: ".")) { i -= 1 }
        guard i < u.count, u[i] != UInt8(ascii: "."), i > 0, u[i - 1] == 0x20 || u[i - 1] == 0x09 else { return label }
        while i > 0 && (u[i - 1] == 0x20 || u[i - 1] == 0x09) {
            u[i - 1] = UInt8(ascii: "_")
            i -= 1
        }
        return String(decoding: u, as: UTF8.self)
    }
}
