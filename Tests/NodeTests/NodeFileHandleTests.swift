// fs.promises FileHandles closed by the program are not open at exit. Node destroys a FileHandle when it is
// garbage collected, not when it is closed: an ESM program that read its files with readFile() and
// open()/close() listed every one of them as 'FILEHANDLE 3 ... created and never destroyed (what kept the
// process alive, or leaked)'.
import Foundation
import Testing

@Suite(.serialized) struct NodeFileHandleTests {
    static let program = #"""
        import { open, readFile } from 'node:fs/promises';
        const me = new URL(import.meta.url);
        const fh = await open(me);
        await fh.read(Buffer.alloc(16), 0, 16, 0);
        await fh.close();
        await readFile(me);
        await Promise.all([readFile(me), readFile(me)]);
        globalThis.leaked = await open(me);   // never closed: open at exit
        setTimeout(() => {}, 200);
        """#

    @Test func closedFileHandlesAreNotOpenAtExit() throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try withRecordedNodeScript(Self.program, file: "files.mjs", node: node, record: ["--no-kernel"], report: []) { r in
            let (rec, json) = (r.record, r.json)
            #expect(rec.status == 0, "record: \(rec.stderr)")
            let open = (json["open_at_exit"] as? [[String: Any]] ?? []).filter { $0["type"] as? String == "FILEHANDLE" }
            let count = open.reduce(0) { $0 + (($1["count"] as? NSNumber)?.intValue ?? 0) }
            #expect(count == 1, "only the handle never closed: \(open)")
            let resources = json["resources"] as? [[String: Any]] ?? []
            let handles = try #require(resources.first { $0["type"] as? String == "FILEHANDLE" }, "\(resources)")
            #expect((handles["count"] as? NSNumber)?.intValue ?? 0 >= 5, "\(handles)")
            #expect((handles["destroyed"] as? NSNumber)?.intValue == ((handles["count"] as? NSNumber)?.intValue ?? 0) - 1, "\(handles)")
        }
    }

    /// fs.promises reads run on libuv's pool threads, outside every callback: the fd table names the FileHandle
    /// that owns the fd (it said "-", nothing tying the pool's reads of files.mjs to the program's handles).
    @Test func aFileHandlesFDIsNamedByItsResource() throws {
        if getuid() != 0 || !FileManager.default.isReadableFile(atPath: "/sys/kernel/btf/vmlinux") {
            print("KERNEL TEST SKIPPED: the fd table of fs.promises reads: not root or no BTF")
            try Test.cancel("kernel test skipped: not root or no BTF")
        }
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try withRecordedNodeScript(Self.program, file: "files.mjs", node: node, record: ["--sample-rate", "0"], report: []) { r in
            #expect(r.record.status == 0, "record: \(r.record.stderr)")
            let lives = (r.json["fds"] as? [[String: Any]] ?? []).filter { ($0["path"] as? String ?? "").hasSuffix("/files.mjs") }
            // open() twice and readFile() three times, each its own fd life (node's own read of the module aside).
            let owned = lives.filter { $0["resource_type"] as? String == "FILEHANDLE" }
            #expect(owned.count >= 5, "fd lives of files.mjs: \(lives.map { ($0["fd"] ?? -1, $0["resource_type"] ?? "-") })")
        }
    }
}

/// A resource node's code made through a V8 builtin (child_process creates a child's stdio pipes inside
/// Array.prototype.reduce) is placed by the program's frames, not by the builtin: the pipes of
/// `spawn('sleep', ...)` called in startChild were open at exit 'created at Array.reduce ← startChild'.
@Suite(.serialized) struct NodeBuiltinFrameSiteTests {
    static let program = #"""
        const { spawn } = require('child_process');
        function startChild() { return spawn('sleep', ['5'], { stdio: 'pipe' }); }
        const child = startChild();
        setTimeout(() => { child.kill(); process.exit(0); }, 300);
        """#

    @Test func sitesSkipV8Builtins() throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try withRecordedNodeScript(Self.program, file: "child.js", node: node, record: ["--no-kernel"], report: []) { r in
            let (rec, json) = (r.record, r.json)
            #expect(rec.status == 0, "record: \(rec.stderr)")
            let open = json["open_at_exit"] as? [[String: Any]] ?? []
            let pipes = try #require(open.first { $0["type"] as? String == "PIPEWRAP" }, "\(open)")
            let functions = (pipes["created_at"] as? [[String: Any]] ?? []).map { $0["function"] as? String ?? "" }
            #expect(functions.first == "startChild", "\(functions)")
            #expect(!functions.contains("Array.reduce"), "\(functions)")
        }
    }
}

/// Node's handles for a process's standard streams (`process.stdout` on a pipe is a PIPEWRAP node never closes,
/// unref'd so that it keeps nothing alive) were listed as open at exit like a server left listening, under
/// "what kept the process alive, or leaked". A child node whose stdout and stderr are pipes writes to both and
/// leaves a server listening: its stdio handles are told apart (`standard_streams` [1, 2]), the server is not.
@Suite(.serialized) struct NodeStandardStreamsTests {
    static let program = #"""
        const { spawn } = require('child_process');
        const child = spawn(process.execPath, ['-e', `
            console.log('out'); console.error('err');
            require('net').createServer().listen(0, '127.0.0.1', () => setTimeout(() => process.exit(0), 50));
        `], { stdio: ['ignore', 'pipe', 'pipe'] });
        child.stdout.resume(); child.stderr.resume();
        child.on('exit', () => {});
        """#

    @Test func standardStreamsAreToldApartFromWhatKeptTheProcessAlive() throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try withRecordedNodeScript(Self.program, file: "stdio.js", node: node, record: ["--no-kernel"], report: []) { r in
            let (rec, json) = (r.record, r.json)
            #expect(rec.status == 0, "record: \(rec.stderr)")
            let open = json["open_at_exit"] as? [[String: Any]] ?? []
            func streams(_ g: [String: Any]) -> [Int] { (g["standard_streams"] as? [NSNumber] ?? []).map(\.intValue) }
            #expect(open.contains { $0["type"] as? String == "PIPEWRAP" && streams($0) == [1, 2] }, "\(open)")
            let server = try #require(open.first { $0["type"] as? String == "TCPSERVERWRAP" }, "\(open)")
            #expect(streams(server).isEmpty, "\(server)")
            let text = try runNodeTool([NodeRepo.executable("asynctrace"), "report", r.trace])
            #expect(text.stdout.contains("PIPEWRAP (stdout, stderr)"), "\(text.stdout)")
            #expect(text.stdout.contains("stdout, stderr: the handles of the standard streams stay open"), "\(text.stdout)")
        }
    }
}

/// A node program that ends by itself was kept alive by nothing it left open: its unref'd server and timer were
/// listed under "what kept the process alive, or leaked". When every traced process exited with a status (the
/// kernel's processExit), the report says so (JSON `exited_by_themselves_status`); one killed by a signal says which,
/// and that the ref'd ones held it (NodeProcessEndTests).
@Suite(.serialized) struct NodeExitedByItselfTests {
    static let program = #"""
        const s = require('net').createServer().listen(0, '127.0.0.1');
        s.unref();
        setTimeout(() => {}, 100000).unref();
        setTimeout(() => { if (process.argv[2] === 'kill') process.kill(process.pid, 'SIGKILL'); process.exitCode = 3; }, 50);
        """#

    @Test func whatANodeThatExitedByItselfLeftOpenKeptNothingAlive() throws {
        if getuid() != 0 || !FileManager.default.isReadableFile(atPath: "/sys/kernel/btf/vmlinux") {
            print("KERNEL TEST SKIPPED: how node ended comes from the kernel probes: not root or no BTF")
            try Test.cancel("kernel test skipped: not root or no BTF")
        }
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let dir = NSTemporaryDirectory() + "asynctrace-node-exit-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/exit.js"
        try Self.program.write(toFile: script, atomically: true, encoding: .utf8)
        let cli = NodeRepo.executable("asynctrace")
        for killed in [false, true] {
            let trace = dir + "/exit-\(killed).atrace"
            _ = try runNodeTool([cli, "record", "-o", trace, "--", node, script] + (killed ? ["kill"] : []))
            let rep = try runNodeTool([cli, "report", trace, "--json"])
            let json = try #require(try JSONSerialization.jsonObject(with: Data(rep.stdout.utf8)) as? [String: Any])
            let open = json["open_at_exit"] as? [[String: Any]] ?? []
            #expect(open.contains { $0["type"] as? String == "TCPSERVERWRAP" }, "\(open)")
            let text = try runNodeTool([cli, "report", trace]).stdout
            if killed {
                #expect(json["exited_by_themselves_status"] is NSNull, "\(json["exited_by_themselves_status"] ?? "absent")")
                #expect(text.contains("(killed by SIGKILL: the ref'd ones kept the process alive until then, or leaked)"), "\(text)")
            } else {
                #expect(json["exited_by_themselves_status"] as? Int == 3, "\(json["exited_by_themselves_status"] ?? "absent")")
                #expect(text.contains("the process exited by itself, status 3: none kept it alive"), "\(text)")
            }
        }
    }
}
