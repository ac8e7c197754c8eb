// Naming without a kernel: demangled names shortened, perf-map lines split, the mapping a sample's
// address belongs to chosen by time, ELF symbols of a file compiled here.
import Foundation
import Testing
import TraceSymbols

@Suite struct NamingTests {
    @Test func swiftNamesKeepTheirLabelsAndLoseTypes() {
        #expect(Demangle.shortenSwift("App.ReportController.render() -> Swift.String") == "App.ReportController.render()")
        #expect(
            Demangle.shortenSwift("App.Server.handle(_: App.Request, id: Swift.Int) async throws -> App.Response")
                == "App.Server.handle(_:id:)")
        #expect(
            Demangle.shortenSwift("static (extension in ArgumentParser):ArgumentParser.ParsableCommand.main() -> ()")
                == "ArgumentParser.ParsableCommand.main()")
        #expect(
            Demangle.shortenSwift("Swift.Array.withUnsafeBytes<A>(_: (Swift.UnsafeRawBufferPointer) throws -> A) throws -> A")
                == "Swift.Array.withUnsafeBytes(_:)")
        #expect(Demangle.shortenSwift("App.Store.count.getter : Swift.Int") == "App.Store.count.getter : Swift.Int")
        #expect(Demangle.name("$s4main6renderyyF") == "main.render()")
        // Go's assembly functions carry their ABI in the symbol; Go's tools name them without it.
        #expect(Demangle.name("runtime.futex.abi0") == "runtime.futex")
        #expect(Demangle.name("runtime/internal/syscall.Syscall6") == "runtime/internal/syscall.Syscall6")
        #expect(Demangle.name(".abi0") == ".abi0" && Demangle.name("x.abi0") == "x.abi0")
        // Closures keep their place; async continuations and thunks are named after their function.
        #expect(
            Demangle.name("$s4conc3AppV4mainyyYaFZyScGySiGzYaXEfU_SiyYacfU0_")
                == "closure #2 in closure #1 in conc.App.main()")
        #expect(
            Demangle.name("$s4conc3AppV4mainyyYaFZyScGySiGzYaXEfU_SiyYacfU_TATQ0_")
                == "closure #1 in closure #1 in conc.App.main()")
        #expect(Demangle.name("$s4conc3AppV4mainyyYaFZTQ0_") == "conc.App.main()")
        #expect(
            Demangle.shortenSwift("(2) suspend resume partial function for App.Server.handle(_: App.Request) async -> ()")
                == "App.Server.handle(_:)")
        #expect(
            Demangle.shortenSwift("implicit closure #1 (Swift.Int) -> Swift.Bool in App.Store.filter(by: Swift.Int) -> [Swift.Int]")
                == "implicit closure #1 in App.Store.filter(by:)")
        #expect(Demangle.name("_ZN2v88internal9Execution4CallEPNS0_7IsolateE") == "v8::internal::Execution::Call")
        #expect(Demangle.name("uv__io_poll") == "uv__io_poll")
        // Specializations in their full form are named after the function they specialize (stdlib code
        // specialized into the program: its module says so).
        #expect(
            Demangle.name(
                "$sSr15_stableSortImpl2byySbx_xtKXE_tKFySryxGz_SiztKXEfU_Si_Tg559$sSMsSkRzSL7ElementSTRpzrlE4sortyyFSbAB_ABtcfu_SaySiG_Tt1G5Tf1nnncn_n"
            ) == "closure #1 in Swift.UnsafeMutableBufferPointer._stableSortImpl(by:)")
        #expect(
            Demangle.shortenSwift("generic specialization <Swift.Array<(Swift.Int) -> Swift.Int>> of App.Store.run(_: Swift.Int) -> ()")
                == "App.Store.run(_:)")
        // Unbalanced: left as it is.
        let unbalanced = "generic specialization <Swift.Int of App.f() -> ()"
        #expect(Demangle.shortenSwift(unbalanced) == unbalanced)
    }

    @Test func cxxNamesLoseTheirParameters() {
        #expect(
            Demangle.shortenCxx("node::(anonymous namespace)::Parser::Execute(char const*, unsigned long)")
                == "node::(anonymous namespace)::Parser::Execute")
        #expect(
            Demangle.shortenCxx("std::vector<int, std::allocator<int> >::push_back(int const&)")
                == "std::vector<int, std::allocator<int> >::push_back")
    }

    /// Node's own perf map of an ESM HTTP server (/tmp/perf-PID.map, lines 1006 and 4081 of 4,500): a
    /// start-up trampoline, then, in the same space once it was freed, the request handler's baseline code
    /// starting 0x100 bytes lower. The handler's frames were named `(anonymous) (node:_http_agent:1)`.
    @Test func aLaterLineOverlappingAnEarlierOneWinsWhereverItStarts() {
        let map = PerfMap(
            text: Array(
                """
                7f83b0083400 378 Eval:~ node:_http_agent:1:1
                7f83b00837c0 378 JS:~ node:_http_agent:1:1
                2ee47fdfeda6 5 Eval:~ node:_http_agent:1:1
                7f83b0083300 180 JS:^ file:///tmp/xd/node/server.mjs:59:34
                7f83b0083540 1d0 JS:^emitReadable node:internal/streams/readable:819:22
                7f83b00839c0 100 JS:^readStart node:_http_incoming:39:19
                7f83b0090000 40 JS:^kept /srv/a.js:1:1
                """.utf8))
        #expect(map.entry(at: 0x7f83b0083450)?.name == "JS:^ file:///tmp/xd/node/server.mjs:59:34")
        #expect(map.entry(at: 0x7f83b0083300)?.name == "JS:^ file:///tmp/xd/node/server.mjs:59:34")
        #expect(map.entry(at: 0x7f83b0083600)?.name == "JS:^emitReadable node:internal/streams/readable:819:22")
        // The freed trampolines are gone entirely, also where nothing later was written over them.
        #expect(map.entry(at: 0x7f83b00837d0) == nil)
        #expect(map.entry(at: 0x7f83b0083a00)?.name == "JS:^readStart node:_http_incoming:39:19")
        #expect(map.entry(at: 0x2ee47fdfeda8)?.name == "Eval:~ node:_http_agent:1:1")
        #expect(map.entry(at: 0x7f83b0090010)?.name == "JS:^kept /srv/a.js:1:1")
        #expect(map.entries.map(\.start) == [0x2ee47fdfeda6, 0x7f83b0083300, 0x7f83b0083540, 0x7f83b00839c0, 0x7f83b0090000])
        // Nested and chained overlaps: only lines no later line touches stay.
        let chainText = (0..<2000).map { String(0x1000 + $0 * 8, radix: 16) + " 10 f\($0)" }.joined(separator: "\n")
        let chain = PerfMap(text: Array(chainText.utf8))
        #expect(chain.entries.map(\.name) == ["f1999"], "\(chain.entries.count) lines left")
    }

    @Test func perfMapLinesOfNode() {
        let map = PerfMap(
            text: Array(
                """
                7fc11dfc5b80 130 JS:^handleHash /srv/server.js:17:20
                7fc11dfc6180 2c4 JS:*handleHash /srv/server.js:17:20
                2a3f34acad66 78 JS:~ node:internal/main/run_main_module:1:1
                garbage line
                7fc11dfc6180 10 JS:*replaced /srv/b.js:3:1
                """.utf8))
        #expect(map.entries.count == 3)
        let e = map.entry(at: 0x7fc11dfc6185)
        #expect(e?.name == "JS:*replaced /srv/b.js:3:1", "the later line wins")
        #expect(map.entry(at: 0x7fc11dfc5b80 + 0x130) == nil)
        let (f, file, line) = PerfMap.split("JS:*handleHash /srv/server.js:17:20")
        #expect(f == "handleHash" && file == "/srv/server.js" && line == 17)
        let anon = PerfMap.split("JS:~ node:internal/main/run_main_module:1:1")
        #expect(anon.function == "(anonymous)" && anon.file == "node:internal/main/run_main_module" && anon.line == 1)
        #expect(PerfMap.split("stub:CEntry").function == "stub:CEntry")
        let py = PerfMap.split("py::Handler.render:/srv/app/views.py")
        #expect(py.function == "Handler.render" && py.file == "/srv/app/views.py" && py.line == nil)
        #expect(PerfMap.split("py::<module>:C:/odd:name.py").file == "C:/odd:name.py")
        #expect(PerfMap.split("py::").function == "(anonymous)" && PerfMap.split("py::f:").file == nil)
    }

    @Test func elfSymbolsOfACompiledProgramNameItsFunctions() throws {
        let dir = NSTemporaryDirectory() + "naming-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let src = dir + "/f.c", exe = dir + "/f"
        try "__attribute__((noinline)) int named_function(int x) { return x * 3 + 1; }\nint main(int c, char **v) { return named_function(c); }\n"
            .write(toFile: src, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/cc")
        p.arguments = ["-O2", "-Wl,--build-id", "-o", exe, src]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let image = try #require(ELFImage(path: exe))
        #expect(image.hasSymtab && image.buildID.count == 20)
        let sym = try #require(image.symbols.first { image.name(of: $0) == "named_function" })
        #expect(image.symbol(at: sym.address + 1)?.name == "named_function")
        // Not ELF, a directory, a FIFO: no image, no hang.
        #expect(ELFImage(path: src) == nil)
        #expect(ELFImage(path: dir) == nil)
        mkfifo(dir + "/fifo", 0o600)
        #expect(ELFImage(path: dir + "/fifo") == nil)
    }

    /// Of two symbols that start at one address, the smaller names it, and a function one the linker made for a
    /// whole object file's code ("x.o(.text)"), which starts where its first function does, even unsized. Go's external link gives each C object's code one
    /// ("runtime/cgo(.text)", 436 bytes, at threadentry's address), and every Go thread's stack read
    /// "runtime/cgo(.text) ← runtime/cgo(.text) ← start_thread" where threadentry and crosscall_amd64 were.
    /// A global label with no type in code is a function too: another cgo build's crosscall_amd64 is one, and
    /// its frame was "many+0x4ca657".
    @Test func overlappingAndUntypedSymbolsNameTheFunctionsTheyStart() throws {
        let dir = NSTemporaryDirectory() + "naming-overlap-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = dir + "/f.c", exe = dir + "/f"
        try #"""
        __asm__(
            "  .text\n"
            "  .type \"f.o(.text)\", @function\n"
            "\"f.o(.text)\":\n"
            "  .type first_in_object, @function\n"
            "first_in_object:\n"
            "  nop\n  nop\n  ret\n"
            "  .size first_in_object, .-first_in_object\n"
            "  .type second_in_object, @function\n"
            "second_in_object:\n"
            "  nop\n  ret\n"
            "  .size second_in_object, .-second_in_object\n"
            "  .size \"f.o(.text)\", .-\"f.o(.text)\"\n"
            "  .type \"g.o(.text)\", @function\n"
            "\"g.o(.text)\":\n"
            "  .type unsized_entry, @function\n"
            "unsized_entry:\n"
            "  nop\n  ret\n"
            "  .size \"g.o(.text)\", .-\"g.o(.text)\"\n"
            "  .globl untyped_entry\n"
            "untyped_entry:\n"
            "  nop\n  nop\n  ret\n");
        int main(void) { return 0; }
        """#.write(toFile: src, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/cc")
        p.arguments = ["-O1", "-o", exe, src]
        try p.run()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0)
        let image = try #require(ELFImage(path: exe))
        let second = try #require(image.symbols.first { image.name(of: $0) == "second_in_object" })
        // first_in_object is the 3 bytes before it, where f.o(.text) (5 bytes) starts too.
        #expect(image.symbol(at: second.address - 2)?.name == "first_in_object")
        #expect(image.symbol(at: second.address + 1)?.name == "second_in_object")
        // unsized_entry (hand-written, no .size) comes after it, where g.o(.text) (2 bytes) starts.
        #expect(image.symbol(at: second.address + 2)?.name == "unsized_entry")
        // A global label with no type in code (hand-written assembly's entry, as cgo's crosscall_amd64) names it.
        #expect(image.symbol(at: second.address + 5)?.name == "untyped_entry")
        // Untyped globals outside code (the linker's _edata, _end) name nothing.
        #expect(!image.symbols.contains { ["_edata", "_end", "__bss_start"].contains(image.name(of: $0)) })
    }

    /// A forked child's JIT code not in its own perf map is named by its parent's, and that one's parent's; its own
    /// map comes first. A crafted trace's fork cycle (1 forked from 2 forked from 1) ends without a name, not a hang.
    @Test func aForkedChildsCodeIsNamedByItsOwnPerfMapThenItsAncestors() throws {
        let dir = NSTemporaryDirectory() + "perfmaps-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "1000 100 py::run:/srv/arbiter.py\n".write(toFile: "\(dir)/perf-50.map", atomically: true, encoding: .utf8)
        try "2000 100 py::spawn:/srv/arbiter.py\n3000 100 py::parent_later:/srv/a.py\n"
            .write(toFile: "\(dir)/perf-51.map", atomically: true, encoding: .utf8)
        try "3000 100 py::handle:/srv/worker.py\n".write(toFile: "\(dir)/perf-52.map", atomically: true, encoding: .utf8)
        let s = Symbolizer()
        s.perfMapDirectory = dir
        s.useKallsyms = false
        s.addFork(parent: 50, child: 51)
        s.addFork(parent: 51, child: 52)
        s.addFork(parent: 60, child: 61)
        s.addFork(parent: 61, child: 60)
        s.addFork(parent: 70, child: 70)
        func function(_ pid: UInt32, _ address: UInt64) -> String? {
            let id = s.frame(pid: pid, address: address, timeNs: 1, isReturnAddress: false)
            return s.frames[id].function
        }
        #expect(function(52, 0x3010) == "handle", "its own map first")
        #expect(function(52, 0x2010) == "spawn", "its parent's")
        #expect(function(52, 0x1010) == "run", "its grandparent's")
        #expect(function(51, 0x3010) == "parent_later")
        #expect(function(50, 0x2010) == nil, "a parent is not named by its child's map")
        #expect(function(60, 0x1010) == nil && function(61, 0x1010) == nil && function(70, 0x1010) == nil)
    }

    /// A recorded `[vdso]` region is named from this process's own vDSO only where their build ids are one: a
    /// trace from another kernel (another id) or an older trace (none recorded) keeps '[vdso]+0x…'.
    @Test func aVDSOIsNamedOnlyByTheSameKernelsImage() throws {
        let own = try #require(ELFImage.ownVDSO(), "every x86-64 Linux process has a vDSO")
        #expect(!own.buildID.isEmpty && !own.symbols.isEmpty)
        let clock = try #require(own.symbols.first { own.name(of: $0).hasSuffix("clock_gettime") })
        let s = Symbolizer()
        s.perfMapDirectory = nil
        let other = own.buildID.map { $0 ^ 0xff }
        for (pid, id) in [(UInt32(1), own.buildID), (2, other), (3, [])] {
            s.addMapping(pid: pid, .init(start: 0x7000_0000, end: 0x7000_2000, fileOffset: 0, path: "[vdso]", buildID: id, timeNs: 0))
        }
        func frame(_ pid: UInt32) -> CodeFrame {
            let id = s.frame(pid: pid, address: 0x7000_0000 + clock.address + 1, timeNs: 1, isReturnAddress: false)
            return s.frames[id]
        }
        #expect(frame(1).function?.hasSuffix("clock_gettime") == true && frame(1).module == "[vdso]", "\(frame(1))")
        #expect(frame(2).function == nil && frame(2).name.hasPrefix("[vdso]+0x"), "\(frame(2))")
        #expect(frame(3).function == nil, "\(frame(3))")
    }

    @Test func theMappingOfAnAddressIsChosenByTime() {
        let s = Symbolizer()
        s.perfMapDirectory = nil
        // The same range held /a before an exec at t=100 and /b after it; a third region only recorded late.
        s.addMapping(pid: 7, .init(start: 0x1000, end: 0x2000, fileOffset: 0, path: "/nonexistent/a", buildID: [], timeNs: 10))
        s.addMapping(pid: 7, .init(start: 0x1000, end: 0x2000, fileOffset: 0, path: "/nonexistent/b", buildID: [], timeNs: 100))
        s.addMapping(pid: 7, .init(start: 0x5000, end: 0x6000, fileOffset: 0x2000, path: "/nonexistent/c", buildID: [], timeNs: 500))
        func module(_ a: UInt64, _ t: UInt64, pid: UInt32 = 7) -> CodeFrame {
            let id = s.frame(pid: pid, address: a, timeNs: t, isReturnAddress: false)  // before reading `frames`, which it grows
            return s.frames[id]
        }
        #expect(module(0x1800, 50).module == "/nonexistent/a")
        #expect(module(0x1800, 150).module == "/nonexistent/b")
        #expect(module(0x1800, 5).module == "/nonexistent/a", "before any record: the earliest after")
        let late = module(0x5010, 200)
        #expect(late.module == "/nonexistent/c" && late.offset == 0x2010 && late.name == "c+0x2010")
        #expect(module(0x9000, 200).module == "[unknown]")
        #expect(module(0x1800, 50, pid: 8).module == "[unknown]")
    }
}
