// The hot-function rule on stacks written out here (HotFunctionTests records real programs): which frames
// count as the program's own code, and which of them is picked.
import Testing
import TraceReports
import TraceSymbols

@testable import TraceAnalyses

struct HotFunctionRuleTests {
    /// Frames by id; stacks are lists of ids, innermost first.
    private let frames: [CodeFrame] = [
        CodeFrame(function: "main", module: "/srv/app", offset: 0x10),  // 0
        CodeFrame(function: "dispatch", module: "/srv/app", offset: 0x20),  // 1
        CodeFrame(function: "handle", module: "/srv/app", offset: 0x30),  // 2
        CodeFrame(function: "parse", module: "/srv/app", offset: 0x40),  // 3
        CodeFrame(function: "__memmove_avx_unaligned", module: "/usr/lib/x86_64-linux-gnu/libc.so.6", offset: 0x50),  // 4
        CodeFrame(function: "AsyncTraceRuntime.EventLoop.run()", module: "/srv/app", offset: 0x60),  // 5
        CodeFrame(function: "closure #1 in App.serve()", module: "/srv/app", offset: 0x70),  // 6
        CodeFrame(function: "specialized Swift.Array.append(_:)", module: "/srv/app", offset: 0x80),  // 7
        CodeFrame(function: "handleHash", file: "/srv/server.js", line: 17, module: "[jit]", offset: 0),  // 8
        CodeFrame(function: "emit", file: "node:events", line: 517, module: "[jit]", offset: 0),  // 9
        CodeFrame(function: "node::Start", module: "/usr/local/bin/node", offset: 0x90),  // 10
        CodeFrame(function: "(anonymous)", file: "/srv/server.js", line: 20, module: "[jit]", offset: 0),  // 11
        CodeFrame(function: "swift_retain", module: "/opt/swift/usr/lib/swift/linux/libswiftCore.so", offset: 0xa0),  // 12
        CodeFrame(function: nil, module: "[anon]", offset: 0xb0),  // 13
    ]

    private func hot(_ stacks: [[Int]: Int]) -> HotFunction? { OwnCode.hot(stacks, frame: { frames[$0] }) }

    @Test func theInnermostMajorityFrameNotTheDispatch() {
        // handle holds 90 of 100 samples, spread over parse (30), libc (30) and itself (30); dispatch and main hold all.
        let h = hot([[3, 2, 1, 0]: 30, [4, 2, 1, 0]: 30, [2, 1, 0]: 30, [1, 0]: 10])
        #expect(h?.frame.function == "handle")
        #expect(h?.samples == 90 && h?.totalSamples == 100)
        #expect(h?.callers.map(\.name) == ["dispatch", "main"])
    }

    @Test func whenNoCalleeHoldsHalfTheCallerIsTheAnswer() {
        // handle 45 and parse 45 under dispatch: neither is a majority, dispatch is.
        let h = hot([[2, 1, 0]: 45, [3, 1, 0]: 45, [1, 0]: 10])
        #expect(h?.frame.function == "dispatch")
    }

    @Test func aCallerLostInSomeSamplesIsStillTheCaller() {
        // The unwinder lost handle's caller dispatch in 10 samples: dispatch counts fewer samples than handle, but
        // sits below it wherever both are seen.
        let h = hot([[3, 2, 1, 0]: 40, [2, 1, 0]: 40, [2, 0]: 10])
        #expect(h?.frame.function == "handle", "\(h.map { $0.frame.name } ?? "-")")
    }

    @Test func asynctraceRuntimeAndSwiftLibraryFramesAreNotTheProgram() {
        // The runtime's loop runs a closure of the program, whose time is split between the stdlib and retain.
        let h = hot([[7, 6, 5, 0]: 30, [12, 6, 5, 0]: 30, [6, 5, 0]: 20, [5, 0]: 20])
        #expect(h?.frame.function == "closure #1 in App.serve()")
        #expect(OwnCode.swiftModule("closure #2 in closure #1 in static AsyncTraceRuntime.Loop.run()") == "AsyncTraceRuntime")
        #expect(OwnCode.swiftModule("generic specialization <Swift.Int> of Swift.Array.append(_:)") == "Swift")
        #expect(OwnCode.swiftModule("burn_leaf") == nil && OwnCode.swiftModule("v8::internal::Heap::Scavenge") == nil)
    }

    @Test func goStandardLibraryFramesAreNotTheProgram() {
        // A Go server's 64 MiB file read: its samples in the read syscall's Go wrappers, under the handler.
        let go = [
            "runtime/internal/syscall.Syscall6", "syscall.read", "internal/poll.(*FD).Read", "os.(*File).Read",
            "main.fileHandler", "net/http.HandlerFunc.ServeHTTP", "net/http.(*conn).serve", "runtime.goexit.abi0",
        ].map { CodeFrame(function: $0, module: "/srv/gosrv", offset: 0x10) }
        let h = OwnCode.hot([[0, 1, 2, 3, 4, 5, 6, 7]: 40, [2, 3, 4, 5, 6, 7]: 5], frame: { go[$0] })
        #expect(h?.frame.function == "main.fileHandler")
        #expect(OwnCode.isGoStandardLibrary("net/http.(*conn).serve") && OwnCode.isGoStandardLibrary("runtime.futex"))
        #expect(OwnCode.isGoStandardLibrary("vendor/golang.org/x/net/http2/hpack.(*Decoder).Write"))
        #expect(!OwnCode.isGoStandardLibrary("main.burn") && !OwnCode.isGoStandardLibrary("github.com/acme/db.(*Pool).Get"))
        // C: no package; a compiler's suffixes on a C function named like a Go package are not Go.
        #expect(!OwnCode.isGoStandardLibrary("burn_leaf") && !OwnCode.isGoStandardLibrary("sort.part.0"))
        #expect(!OwnCode.isGoStandardLibrary("io.cold") && !OwnCode.isGoStandardLibrary("v8::internal::Heap::Scavenge"))
    }

    @Test func rustStandardLibraryFramesAreNotTheProgram() {
        // A Tokio task's 64 MiB std::fs::read: its samples in std's read loop, under the task's closure.
        let libcRead = CodeFrame(function: "__libc_read", module: "/usr/lib/x86_64-linux-gnu/libc.so.6", offset: 0x10)
        let rust = [
            "std::io::default_read_to_end::<std::fs::File>", "std::fs::read::inner",
            "tk::file_task::{{closure}}", "tokio::runtime::task::core::Core<T,S>::poll",
            "tokio::runtime::scheduler::multi_thread::worker::Context::run_task",
        ].map { CodeFrame(function: $0, module: "/srv/tk", offset: 0x10) }
        let h = OwnCode.hot([[-1, 0, 1, 2, 3, 4]: 40, [0, 1, 2, 3, 4]: 5], frame: { $0 < 0 ? libcRead : rust[$0] })
        #expect(h?.frame.function == "tk::file_task::{{closure}}")
        #expect(OwnCode.isRustStandardLibrary("<std::fs::File as std::io::Read>::read"))
        #expect(OwnCode.isRustStandardLibrary("<&mut [u8] as core::fmt::Debug>::fmt"))
        #expect(OwnCode.isRustStandardLibrary("alloc::raw_vec::finish_grow"))
        #expect(!OwnCode.isRustStandardLibrary("<tk::Request as core::fmt::Debug>::fmt"))
        #expect(!OwnCode.isRustStandardLibrary("tokio::runtime::task::core::Core<T,S>::poll"))
        #expect(!OwnCode.isRustStandardLibrary("stdout_flush") && !OwnCode.isRustStandardLibrary("corelib::run"))
    }

    @Test func aJVMsPerfMapNamesTheApplicationsMethodsNotTheJDKsOrItsStubs() {
        #expect(OwnCode.isApplicationJavaMethod("double Burn.burnForTheTest(long)"))
        #expect(OwnCode.isApplicationJavaMethod("void com.example.Server.handle(com.sun.net.httpserver.HttpExchange)"))
        #expect(OwnCode.isApplicationJavaMethod("void Srv.lambda$main$2(com.sun.net.httpserver.HttpExchange)"))
        #expect(!OwnCode.isApplicationJavaMethod("void java.lang.System.arraycopy(java.lang.Object, int, java.lang.Object, int, int)"))
        #expect(!OwnCode.isApplicationJavaMethod("java.lang.Object jdk.internal.misc.Unsafe.getReferenceVolatile(java.lang.Object, long)"))
        #expect(!OwnCode.isApplicationJavaMethod("Interpreter") && !OwnCode.isApplicationJavaMethod("StubRoutines (1)"))
        #expect(!OwnCode.isApplicationJavaMethod("handle (/srv/app.js:12)") && !OwnCode.isApplicationJavaMethod("f()"))
    }

    @Test func scriptFramesWinOverTheInterpreterAndNodeInternals() {
        // JS handler under node's emit, over node's binary: the script function, with the runtime frames as callers.
        let h = hot([[13, 8, 11, 9, 10]: 50, [8, 11, 9, 10]: 30, [11, 9, 10]: 15, [9, 10]: 5])
        #expect(h?.frame.function == "handleHash" && h?.frame.line == 17)
        #expect(h?.samples == 80)
        #expect(h?.callers.map(\.name) == ["(anonymous)", "emit", "node::Start"])
        #expect(OwnCode.isInterpreter("python3.11") && OwnCode.isInterpreter("node") && !OwnCode.isInterpreter("python-app"))
        // Debian's versioned names (/usr/bin/ruby -> ruby3.1): a Ruby server's stall was "hot under ruby3.1+0x110a".
        #expect(OwnCode.isInterpreter("ruby3.1") && OwnCode.isInterpreter("perl5.36.0") && OwnCode.isInterpreter("lua5.4"))
        #expect(OwnCode.isInterpreter("python") && OwnCode.isInterpreter("python3") && OwnCode.isInterpreter("ruby"))
        #expect(!OwnCode.isInterpreter("ruby-server") && !OwnCode.isInterpreter("node2pdf") && !OwnCode.isInterpreter("rubyx"))
    }

    @Test func pythonFramesFromPerfTrampolinesAreTheProgram() {
        // CPython 3.12+ with perf trampolines: "py::render:/srv/app/views.py" frames over the interpreter's C.
        let f: [CodeFrame] = [
            CodeFrame(function: "_PyEval_EvalFrameDefault", module: "/usr/bin/python3.12", offset: 0x10),
            CodeFrame(function: "main", file: "/srv/app/app.py", module: "[jit]", offset: 0),
            CodeFrame(function: "render", file: "/srv/app/views.py", module: "[jit]", offset: 0),
            CodeFrame(function: "_bootstrap", file: "<frozen importlib._bootstrap>", module: "[jit]", offset: 0),
            CodeFrame(function: "dumps", file: "/usr/lib/python3.12/json/__init__.py", module: "[jit]", offset: 0),
        ]
        let h = OwnCode.hot([[0, 4, 0, 2, 0, 1, 0, 3, 0]: 60, [0, 2, 0, 1, 0, 3, 0]: 30, [0, 1, 0, 3, 0]: 10], frame: { f[$0] })
        #expect(h?.frame.function == "render" && h?.samples == 90)
        #expect(!OwnCode.isScript(f[3]) && !OwnCode.isScript(f[4]) && !OwnCode.isNative(f[0]))
    }

    @Test func anInterpreterLinkedAsALibraryIsNotTheProgram() {
        // pyenv's python3.11: the interpreter's C is in libpython3.11.so under the user's home, not a system path;
        // without perf trampolines (before 3.12) no frame is the program's, so there is no answer.
        let f: [CodeFrame] = [
            CodeFrame(function: "_PyDict_GetItem_KnownHash", module: "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0", offset: 0x10),
            CodeFrame(function: "_PyEval_EvalFrameDefault", module: "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0", offset: 0x20),
            CodeFrame(function: "main", module: "/root/.pyenv/versions/3.11.7/bin/python3.11", offset: 0x30),
            CodeFrame(function: "burn", module: "/srv/app/libburn.so", offset: 0x40),
        ]
        #expect(OwnCode.hot([[0, 1, 2]: 30, [1, 2]: 70], frame: { f[$0] }) == nil)
        // A library of the program itself, outside a system path, still is.
        #expect(OwnCode.hot([[3, 1, 2]: 60, [1, 2]: 40], frame: { f[$0] })?.frame.function == "burn")
        #expect(OwnCode.isInterpreterLibrary("libpython3.11.so.1.0") && !OwnCode.isInterpreterLibrary("libburn.so"))
    }

    /// The text's hot line gives a Python function's Python callers: each call's three frames of the interpreter's
    /// C left room for one ("burn (app.py) ← py_trampoline_evaluator ← PyObject_Vectorcall ←
    /// _PyEval_EvalFrameDefault ← cpu (app.py) ← py_trampoline_evaluator ← …"). A native function keeps its callers.
    @Test func aScriptFunctionsHotLineGivesItsScriptCallers() {
        let c = { (name: String) in CodeFrame(function: name, module: "/usr/lib/libpython3.12.so.1.0", offset: 0x10) }
        let py = { (name: String, file: String) in CodeFrame(function: name, file: file, module: "[jit]", offset: 0) }
        let interpreter = [c("py_trampoline_evaluator"), c("PyObject_Vectorcall"), c("_PyEval_EvalFrameDefault")]
        let callers =
            interpreter + [py("cpu", "/srv/app.py")] + interpreter + [py("Handle._run", "/usr/lib/python3.12/asyncio/events.py")]
            + interpreter + [c("Py_RunMain"), c("main")]
        let h = HotFunction(frame: py("burn", "/srv/app.py"), callers: callers, samples: 90, totalSamples: 100)
        #expect(TextReport.hotLine(h) == "90.0% of 100 samples under burn (app.py) ← cpu (app.py) ← Handle._run (events.py) ← …")
        #expect(TextReport.hotLine(h, callers: 1) == "90.0% of 100 samples under burn (app.py) ← cpu (app.py) ← …")
        let whole = HotFunction(frame: py("burn", "/srv/app.py"), callers: interpreter + [py("main", "/srv/app.py")], samples: 9, totalSamples: 10)
        #expect(TextReport.hotLine(whole) == "90.0% of 10 samples under burn (app.py) ← main (app.py)")
        let native = HotFunction(frame: c("handle_request"), callers: [c("dispatch"), c("serve_loop"), c("main")], samples: 5, totalSamples: 10)
        #expect(TextReport.hotLine(native) == "50.0% of 10 samples under handle_request ← dispatch ← serve_loop ← main")
    }

    @Test func aPythonInstallationsSourcesAreNotTheProgram() {
        // An aiohttp server on pyenv's 3.12 in a venv, its loop thread over a recording: asyncio's Handle._run
        // (pyenv's standard library) and aiohttp's Application._handle (the venv's site-packages) pass above every
        // handler; the program's cpu and fileread handlers split its time. It was 'hot 44.7% of 788 samples
        // under Application._handle (web_app.py)'; the program's burn, under cpu, holds most of the program's samples.
        let f: [CodeFrame] = [
            CodeFrame(function: "_PyEval_EvalFrameDefault", module: "/root/.pyenv/versions/3.12.1/lib/libpython3.12.so.1.0", offset: 0x20),
            CodeFrame(function: "Handle._run", file: "/root/.pyenv/versions/3.12.1/lib/python3.12/asyncio/events.py", module: "[jit]", offset: 0),
            CodeFrame(
                function: "Application._handle", file: "/srv/venv/lib/python3.12/site-packages/aiohttp/web_app.py", module: "[jit]",
                offset: 0),
            CodeFrame(function: "cpu", file: "/srv/app/server.py", module: "[jit]", offset: 0),
            CodeFrame(function: "burn", file: "/srv/app/server.py", module: "[jit]", offset: 0),
            CodeFrame(function: "fileread", file: "/srv/app/server.py", module: "[jit]", offset: 0),
            CodeFrame(function: "_WorkItem.run", file: "/usr/local/lib/python3.13/concurrent/futures/thread.py", module: "[jit]", offset: 0),
        ]
        let h = OwnCode.hot(
            [[0, 4, 0, 3, 0, 2, 0, 1]: 300, [0, 5, 0, 2, 0, 1]: 50, [0, 2, 0, 1]: 100, [0, 1]: 338], frame: { f[$0] })
        #expect(h?.frame.function == "burn" && h?.samples == 300, "\(String(describing: h?.frame.name))")
        // Only the installation's code: no answer (as a python 3.11 stack without Python frames has none).
        #expect(OwnCode.hot([[0, 2, 0, 1]: 100, [0, 1]: 50, [0, 6]: 50], frame: { f[$0] }) == nil)
        #expect(OwnCode.isInstalledPythonSource("/opt/conda/lib/python3.13t/json/encoder.py"))
        #expect(!OwnCode.isInstalledPythonSource("/srv/lib/python-tools/job.py") && !OwnCode.isInstalledPythonSource("/srv/app/lib/python3"))
    }

    @Test func aPythonInstallationsExtensionModulesAreNotTheProgram() {
        // pyenv's python3.11 running an aiohttp (or uvloop) server, its handler spinning on the loop: asyncio's
        // C (lib-dynload) and uvloop's (site-packages) under libpython, no Python frames before 3.12: no answer.
        // It was 'hot 100.0% of 130 samples under task_step_impl ← TaskStepMethWrapper_call ← …'.
        let f: [CodeFrame] = [
            CodeFrame(function: "_PyEval_EvalFrameDefault", module: "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0", offset: 0x20),
            CodeFrame(
                function: "task_step_impl",
                module: "/root/.pyenv/versions/3.11.7/lib/python3.11/lib-dynload/_asyncio.cpython-311-x86_64-linux-gnu.so", offset: 0x30),
            CodeFrame(
                function: "__pyx_f_6uvloop_4loop_6Handle__run",
                module: "/srv/venv/lib/python3.11/site-packages/uvloop/loop.cpython-311-x86_64-linux-gnu.so", offset: 0x40),
            CodeFrame(function: "main", module: "/root/.pyenv/versions/3.11.7/bin/python3.11", offset: 0x50),
            CodeFrame(function: "burn", module: "/srv/app/_speedups.cpython-311-x86_64-linux-gnu.so", offset: 0x60),
        ]
        #expect(OwnCode.hot([[0, 1, 0, 2, 3]: 90, [0, 1, 3]: 10], frame: { f[$0] }) == nil)
        // The program's own extension, outside the installation, still is.
        #expect(OwnCode.hot([[4, 0, 1, 2, 3]: 90, [0, 1, 3]: 10], frame: { f[$0] })?.frame.function == "burn")
    }

    @Test func noOwnCodeNoAnswer() {
        #expect(hot([[4, 10]: 10, [13]: 5]) == nil)
        #expect(hot([:]) == nil)
    }

    @Test func tooFewSamplesNoAnswer() {
        // A callback blocked 200 ms in read with 365 µs on CPU: one sample is no heat to name.
        #expect(hot([[3, 2, 1, 0]: 1]) == nil)
        #expect(hot([[3, 2, 1, 0]: OwnCode.minimumSamples - 1]) == nil)
        #expect(hot([[3, 2, 1, 0]: OwnCode.minimumSamples])?.frame.function == "parse")
    }

    @Test func recursionCountsOncePerSample() {
        // parse calls itself: one sample per stack, however deep; its callers are below its outermost occurrence.
        let h = hot([[3, 3, 3, 2, 1, 0]: 60, [2, 1, 0]: 40])
        #expect(h?.frame.function == "parse" && h?.samples == 60)
        #expect(h?.callers.first?.name == "handle")
    }
}
