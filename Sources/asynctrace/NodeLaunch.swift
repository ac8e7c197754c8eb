// `record` and Node.js: when the program is node (or --node), the preload script of NodeRecording is
// injected through NODE_OPTIONS into every node process and worker thread of the program, and its
// events reach the trace through a FIFO. Kept apart from RecordCommand.swift, which calls in at
// three points (environment, start, finish). Under a flight recorder the chunks go into its window.
import ArgumentParser
import NodeRecording
#if canImport(Glibc)
import Glibc
#endif

struct NodeOptions: ParsableArguments {
    @Flag(
        name: .customLong("node"),
        help: "Inject the Node.js hooks even though the program is not named node (e.g. a shell script that starts node).")
    var force = false

    @Flag(name: .customLong("no-node-hooks"), help: "Do not inject the Node.js hooks (kernel events only for node).")
    var disabled = false

    @Flag(
        name: .customLong("node-promises"),
        help: "Node.js: record promises too (PROMISE resources, await continuations, promiseResolve); costs more.")
    var promises = false

    @Flag(
        name: .customLong("no-node-sites"),
        help:
            "Node.js: do not capture where resources are created (a short JS stack per handle at init; open at exit and blocking callbacks then show no file:line)."
    )
    var noSites = false

    @Flag(
        name: .customLong("node-all-sites"),
        help: "Node.js: capture the creation site of every resource (by default: the first 64 of each type, then ~200 a second).")
    var allSites = false

    @Flag(
        name: .customLong("node-loop-phases"),
        help:
            "Node.js: the libuv loop's iterations and phases, from uprobes on node's binary (kernel probes; also with --pid); costs ~1.3 us per phase, 7 per iteration."
    )
    var loopPhases = false
}

/// The Node adapter of one `record` run.
final class NodeLaunch {
    let pipe: NodeEventPipe
    let promises: Bool
    let sites: String
    /// For the atexit handler: `fail()` exits without unwinding.
    nonisolated(unsafe) private static var active: NodeEventPipe?

    private init(pipe: NodeEventPipe, promises: Bool, sites: String) {
        self.pipe = pipe
        self.promises = promises
        self.sites = sites
    }

    /// The adapter for this program, or nil if it is not node (and not forced) or the hooks are off.
    /// A setup failure is reported and recording goes on without the hooks.
    static func prepare(options: NodeOptions, program: String, owner: (uid: UInt32, gid: UInt32)?) -> NodeLaunch? {
        guard !options.disabled, options.force || options.promises || isNode(program) else { return nil }
        // Under sudo the directory goes in /tmp, never in a TMPDIR the invoking user chose.
        var base = "/tmp"
        if owner == nil, let t = getenv("TMPDIR").map({ String(cString: $0) }), t.hasPrefix("/") { base = t }
        do {
            let pipe = try NodeEventPipe(temporaryDirectory: base, owner: owner)
            active = pipe
            atexit { NodeLaunch.active?.removeFiles() }
            return NodeLaunch(
                pipe: pipe, promises: options.promises, sites: options.noSites ? "off" : options.allSites ? "all" : "on")
        } catch {
            noteNode("cannot set up the Node.js hooks (\(error.description)); recording kernel events only")
            return nil
        }
    }

    /// The program's environment with NODE_OPTIONS (the preload first, the user's options kept) and
    /// the FIFO's path.
    func adjust(_ environment: [String]) -> [String] {
        let existing = environment.last { $0.hasPrefix("NODE_OPTIONS=") }.map { String($0.dropFirst("NODE_OPTIONS=".count)) }
        let out = environment.filter { !$0.hasPrefix("NODE_OPTIONS=") && !$0.hasPrefix("ASYNCTRACE_NODE_") }
        return out + pipe.environment(existingNodeOptions: existing, promises: promises, sites: sites)
    }

    func start(traceFD: Int32) { pipe.start(traceFD: traceFD) }

    /// Flight recorder: the Node streams' chunks go into the window instead of a file.
    func start(flight: FlightRecording) { pipe.start(sink: { flight.addOwnChunk($0) }) }

    /// Ends the Node streams, removes the files, and says what was recorded and lost.
    func finish() {
        let s = pipe.finish()
        pipe.removeFiles()
        NodeLaunch.active = nil
        var line =
            "node: \(s.events) events from \(s.threads) thread\(s.threads == 1 ? "" : "s") of "
            + "\(s.processes) process\(s.processes == 1 ? "" : "es")"
        if s.threads == 0 {
            line = "node: no events arrived from the Node.js hooks (was the program node? NODE_OPTIONS reset by the program?)"
        }
        if s.takenBatches > 0 {
            line += " (\(s.takenBatches) unwritten batch\(s.takenBatches == 1 ? "" : "es") of stopped workers written by another thread)"
        }
        var losses: [String] = []
        if s.droppedByNode > 0 { losses.append("\(s.droppedByNode) dropped by node (recorder behind)") }
        if s.lostAtWorkerStop > 0 { losses.append("\(s.lostAtWorkerStop) of stopped workers lost (recorder behind)") }
        if s.missingBatches > 0 { losses.append("\(s.missingBatches) batches missing") }
        if s.malformedBytes > 0 || s.malformedRecords > 0 {
            losses.append("\(s.malformedBytes) malformed bytes, \(s.malformedRecords) malformed records skipped")
        }
        if s.refusedThreads > 0 { losses.append("\(s.refusedThreads) threads over the limit not recorded") }
        if s.writeErrno != 0 { losses.append("cannot write the trace file: \(String(cString: strerror(s.writeErrno)))") }
        if !losses.isEmpty { line += "; " + losses.joined(separator: ", ") }
        noteNode(line)
    }

    /// node by name (node, nodejs, node20, ...) or a script whose #! line runs node (npm, npx, ...).
    static func isNode(_ path: String) -> Bool {
        if isNodeName(path.split(separator: "/").last.map(String.init) ?? path) { return true }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 256)
        let n = read(fd, &head, head.count)
        guard n > 2, head[0] == UInt8(ascii: "#"), head[1] == UInt8(ascii: "!") else { return false }
        let line = String(decoding: head[2..<n].prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        // "#!/usr/bin/node", "#!/usr/bin/env node", "#!/usr/bin/env -S node --flag"
        return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).prefix(3).contains {
            isNodeName($0.split(separator: "/").last.map(String.init) ?? String($0))
        }
    }

    static func isNodeName(_ name: String) -> Bool {
        var rest = Substring(name)
        guard rest.hasPrefix("node") else { return false }
        rest = rest.dropFirst(4)
        if rest.hasPrefix("js") { rest = rest.dropFirst(2) }
        return rest.allSatisfy { $0.isNumber || $0 == "." || $0 == "-" }
    }

    /// `--pid`: hooks cannot be added to a running node; say what is missing.
    static func noteIfAttachingToNode(pid: Int32) {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/\(pid)/exe", &buf, buf.count - 1)
        guard n > 0 else { return }
        let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard isNodeName(exe.split(separator: "/").last.map(String.init) ?? exe) else { return }
        noteNode(
            "node: attaching records kernel events only (syscalls, epoll waits, per-fd I/O): Node's callbacks, "
                + "types, async ids and open resources need its hooks, which only a start under `asynctrace record node …` injects"
                + " (--node-loop-phases adds the loop's iterations and phases)")
    }
}

private func noteNode(_ message: String) {
    let line = "asynctrace: " + message + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}
