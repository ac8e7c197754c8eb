// The inclusive view of a slow moment's CPU samples: the function of the program's own code that most
// of them passed through, at any depth ("86% of 585 samples under handleHash (server.js:17) ← …").
// The code lines group samples by their exact stack, so a function whose time is spread over many
// leaves (V8 builtins, crypto, libc, allocation) shows there as many small lines; this names it once.
import TraceSymbols

/// The function of the program's own code that held the most specific majority of a callback's (or
/// stall's) CPU samples, with its callers.
public struct HotFunction: Sendable {
    /// The function (its frame as the code lines name it).
    public var frame: CodeFrame
    /// Its most common callers, innermost first (the stack below its outermost occurrence).
    public var callers: [CodeFrame]
    /// Samples with it anywhere in the stack.
    public var samples: Int
    /// All the samples taken in the callback (or stall).
    public var totalSamples: Int
    /// samples / totalSamples.
    public var share: Double { totalSamples > 0 ? Double(samples) / Double(totalSamples) : 0 }
}

/// Which frames are the program's own code, and the rule that picks the hot one.
enum OwnCode {
    /// Script frames (JS or Python source named by a perf map, outside the runtime's own sources).
    static func isScript(_ f: CodeFrame) -> Bool {
        if f.module == "[jit]", f.file == nil, let function = f.function, isApplicationJavaMethod(function) { return true }
        guard f.module == "[jit]", f.function != nil, let file = f.file, !file.isEmpty else { return false }
        // node:events, node:internal/…; Python's <frozen …>, <string>; an installed runtime's own library sources.
        if file.hasPrefix("node:") || file.hasPrefix("<") || !file.contains("/") { return false }
        return !isSystemPath(file) && !isInstalledPythonSource(file)
    }

    /// A method as a JVM's perf map names it ("double Burn.burnForTheTest(long)"), not one of the JDK's own
    /// classes, nor the JVM's stubs ("Interpreter", "StubRoutines (1)").
    static func isApplicationJavaMethod(_ function: String) -> Bool {
        guard let open = function.firstIndex(of: "("), function.hasSuffix(")") else { return false }
        let head = function[..<open]
        guard let space = head.lastIndex(of: " ") else { return false }
        let qualified = head[head.index(after: space)...]
        guard qualified.contains("."), !qualified.hasPrefix(".") else { return false }
        return !["java.", "javax.", "jdk.", "sun.", "com.sun."].contains { qualified.hasPrefix($0) }
    }

    /// Native frames of the program: not the kernel, not JIT stubs or unnamed memory, not a shared
    /// library of the system or the Swift toolchain, not an interpreter's binary, and not the frames
    /// of the Swift standard library or of asynctrace's own modules (hooks, runtime, recorder)
    /// compiled into the executable.
    static func isNative(_ f: CodeFrame) -> Bool {
        guard !f.isKernel, !f.module.hasPrefix("[") else { return false }
        let base = f.moduleName
        if base.contains(".so")
            && (isSystemPath(f.module) || isToolchainLibrary(base) || isInterpreterLibrary(base) || isInstalledPythonExtension(f.module))
        {
            return false
        }
        if isInterpreter(base) { return false }
        if let function = f.function, let module = swiftModule(function), runtimeModules.contains(module) || isOurs(module) {
            return false
        }
        if let function = f.function, isGoStandardLibrary(function) || isRustStandardLibrary(function) { return false }
        return true
    }

    /// A function of Rust's standard library, compiled into every Rust program: its path starts at std, core or
    /// alloc ("std::fs::read::inner", "<std::fs::File as std::io::Read>::read", "<&mut [u8] as
    /// core::fmt::Debug>::fmt"); C++'s std:: is its standard library as well. A Tokio server's file-read stall was
    /// "hot under std::io::default_read_to_end ← std::fs::read::inner ← tk::file_task::{{closure}}".
    static func isRustStandardLibrary(_ function: String) -> Bool {
        var rest = Substring(function)
        guard rest.hasPrefix("<") else { return rustStandardRoots.contains(firstPathElement(rest)) }
        // An impl: the crate of its type, or of the trait when the type is a primitive ("[u8]", "&str", "()").
        rest = rest.dropFirst()
        while let prefix = ["&", "mut ", "*const ", "*mut ", "[", "(", "dyn "].first(where: { rest.hasPrefix($0) }) {
            rest = rest.dropFirst(prefix.count)
        }
        let root = firstPathElement(rest)
        if rustStandardRoots.contains(root) { return true }
        guard root.isEmpty || rustPrimitives.contains(root) else { return false }
        var i = rest.startIndex
        while i < rest.endIndex {
            if rest[i...].hasPrefix(" as ") { return rustStandardRoots.contains(firstPathElement(rest[i...].dropFirst(4))) }
            i = rest.index(after: i)
        }
        return false
    }

    private static func firstPathElement(_ s: Substring) -> Substring {
        s.prefix(while: { $0.isLetter || $0.isNumber || $0 == "_" })
    }

    static let rustStandardRoots: Set<Substring> = ["std", "core", "alloc", "proc_macro", "panic_unwind", "panic_abort"]
    static let rustPrimitives: Set<Substring> = [
        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32", "f64", "bool",
        "char", "str",
    ]

    /// A function of Go's runtime or standard library, compiled into every Go program: its package path's first
    /// element has no dot ("runtime.futex", "net/http.(*conn).serve", "internal/poll.(*FD).Read"), unlike the
    /// program's own ("main.handler") and its modules' ("github.com/x/y.F"). A Go server's file-read stall was
    /// "hot 100% under runtime/internal/syscall.Syscall6 ← syscall.Syscall ← …" above main.fileHandler. C's
    /// compiler suffixes ("sort.part.0", "io.cold") are not Go packages.
    static func isGoStandardLibrary(_ function: String) -> Bool {
        guard let dot = function.firstIndex(of: ".") else { return false }
        let path = function[..<dot]
        guard let root = path.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first,
            goStandardRoots.contains(root)
        else { return false }
        let rest = function[function.index(after: dot)...]
        return !["cold", "part.", "isra.", "constprop.", "lto_priv.", "localalias"].contains { rest.hasPrefix($0) }
    }

    /// The first path elements of Go's standard library packages (and the linker's "type" and "go" symbols).
    static let goStandardRoots: Set<Substring> = [
        "archive", "bufio", "bytes", "cmp", "compress", "container", "context", "crypto", "database", "debug",
        "embed", "encoding", "errors", "expvar", "flag", "fmt", "go", "hash", "html", "image", "index", "internal",
        "io", "iter", "log", "maps", "math", "mime", "net", "os", "path", "plugin", "reflect", "regexp", "runtime",
        "slices", "sort", "strconv", "strings", "structs", "sync", "syscall", "testing", "text", "time", "type",
        "unicode", "unique", "unsafe", "vendor", "weak",
    ]

    static func isSystemPath(_ path: String) -> Bool {
        ["/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/libexec/", "/usr/share/"].contains { path.hasPrefix($0) }
    }

    /// The Swift runtime and core libraries wherever the toolchain is installed; C and C++ runtimes.
    static func isToolchainLibrary(_ base: String) -> Bool {
        ["libswift", "libFoundation", "lib_Foundation", "libdispatch", "libBlocksRuntime", "libicu", "libstdc++", "libc++"]
            .contains { base.hasPrefix($0) }
    }

    /// The binaries of script runtimes, also under their versioned names (Debian's ruby is ruby3.1, perl
    /// perl5.36.0, lua lua5.4): their native frames are the interpreter, not the program. A Ruby server's stall was
    /// "hot 100% under ruby3.1+0x110a ← __libc_start_call_main".
    static func isInterpreter(_ base: String) -> Bool {
        let name = base.prefix { !$0.isNumber && $0 != "." }
        let version = base.dropFirst(name.count)
        guard version.allSatisfy({ $0.isNumber || $0 == "." }) else { return false }
        return ["node", "nodejs", "deno", "bun", "ruby", "perl", "php", "java", "lua", "luajit", "python"].contains(name)
            && (name != "python" || !version.isEmpty || base == "python")
    }

    /// Script runtimes built as a shared library wherever installed (pyenv's and conda's python link
    /// libpython3.x.so from their own prefix): their frames are the interpreter too.
    static func isInterpreterLibrary(_ base: String) -> Bool {
        ["libpython", "libnode", "libruby", "libperl", "libjvm", "libphp", "liblua", "libluajit"].contains { base.hasPrefix($0) }
    }

    /// A Python installation's extension modules, wherever it is installed (pyenv, a venv, conda): the standard
    /// library's C (`lib/python3.11/lib-dynload/_asyncio.cpython-311-x86_64-linux-gnu.so`: asyncio's
    /// `task_step_impl`, under every coroutine) and installed packages' (`site-packages/uvloop/loop.cpython-311-…so`:
    /// the loop that runs the handler) are the runtime, as `.py` files under /usr/lib are; a pyenv python 3.11's
    /// every stall was 'hot … under task_step_impl'.
    static func isInstalledPythonExtension(_ path: String) -> Bool {
        let parts = path.split(separator: "/")
        guard let base = parts.last, base.contains(".cpython-") || base.hasSuffix(".abi3.so"), let lib = pythonLibrary(parts)
        else { return false }
        return parts[(lib + 2)...].contains { $0 == "lib-dynload" || $0 == "site-packages" }
    }

    /// Python source of an installation outside a system path (pyenv's, a venv's, /usr/local's): its standard
    /// library (`lib/python3.12/concurrent/futures/thread.py`, asyncio's `events.py`) and installed packages
    /// (`lib/python3.12/site-packages/aiohttp/web_app.py`) are the runtime, as those under /usr/lib are. A server's
    /// dispatcher passes above every handler: an aiohttp server's loop thread was 'hot 44.7% of 788 samples under
    /// Application._handle (web_app.py)' while its handlers' own burn held 38% of them.
    static func isInstalledPythonSource(_ path: String) -> Bool {
        pythonLibrary(path.split(separator: "/")) != nil
    }

    /// The index of "lib" in a path's ".../lib/pythonX.Y/..." (pythonX.Y or python3: an installation's library), nil:
    /// none.
    private static func pythonLibrary(_ parts: [Substring]) -> Int? {
        parts.indices.first { i in
            guard i + 2 < parts.count, parts[i] == "lib", parts[i + 1].hasPrefix("python") else { return false }
            // python3.12, python3, python3.13t (free-threaded); not a project directory named "python-tools".
            return parts[i + 1].dropFirst("python".count).first?.isNumber == true
        }
    }

    /// Swift's and the toolchain's modules (their generic code specialized into the executable).
    static let runtimeModules: Set<Substring> = [
        "Swift", "_Concurrency", "_StringProcessing", "Foundation", "FoundationEssentials", "FoundationInternationalization",
        "Dispatch", "Synchronization",
    ]

    /// asynctrace's hooks, runtime, recorder and adapters: the loop that dispatches a callback.
    static func isOurs(_ module: Substring) -> Bool { module.hasPrefix("AsyncTrace") || module == "AsyncHooks" || module == "TraceFlight" }

    /// The module of a demangled Swift name ("closure #1 in static App.main()" -> "App"); nil for a
    /// name that is not qualified (C).
    static func swiftModule(_ function: String) -> Substring? {
        var name = Substring(function)
        if name.hasPrefix("generic specialization") || name.hasPrefix("function signature specialization"), let end = afterLast("> of ", in: name) {
            name = name[end...]
        }
        // "closure #2 in closure #1 in M.f()": the function it is in.
        if let end = afterLast(" in ", in: name) { name = name[end...] }
        var stripped = true
        while stripped {
            stripped = false
            for prefix in ["static ", "@objc ", "@nonobjc ", "merged ", "outlined ", "specialized ", "dispatch thunk of ", "protocol witness for "]
            where name.hasPrefix(prefix) {
                name = name.dropFirst(prefix.count)
                stripped = true
            }
        }
        guard let dot = name.firstIndex(of: "."), dot > name.startIndex else { return nil }
        let module = name[..<dot]
        // A qualified Swift name starts with an identifier; C++ names ("ns::f") and file names do not qualify.
        guard module.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { return nil }
        return module
    }

    /// Where the last `needle` in `s` ends.
    private static func afterLast(_ needle: String, in s: Substring) -> Substring.Index? {
        let n = Array(needle.utf8), u = s.utf8
        guard u.count >= n.count else { return nil }
        var i = u.index(u.endIndex, offsetBy: -n.count)
        while true {
            if u[i...].starts(with: n) { return u.index(i, offsetBy: n.count) }
            if i == u.startIndex { return nil }
            i = u.index(before: i)
        }
    }

    /// Fewer samples than this (5 ms of CPU at the default 999 Hz) name no hot function: a blocked
    /// callback's one sample said "100% of 1 sample under …", a claim of heat its CPU time does not bear.
    static let minimumSamples = 5

    /// The hot function of stacks (frame ids, innermost first) counted by samples: among the frames of
    /// the program's own code (script frames when any stack has one, else native ones), those each on
    /// more than half of the samples that have own code at all form one call chain from the outside
    /// in; the innermost of them is the answer: the most specific function that still holds most of
    /// the time, not `main` or the loop's dispatch that every sample passes through.
    static func hot(_ stacks: [[Int]: Int], frame: (Int) -> CodeFrame, maxCallers: Int = 32) -> HotFunction? {
        let total = stacks.values.reduce(0, +)
        guard total >= minimumSamples else { return nil }
        var script: [Int: Bool] = [:], native: [Int: Bool] = [:]
        for ids in stacks.keys {
            for id in ids where script[id] == nil {
                let f = frame(id)
                script[id] = isScript(f)
                native[id] = isNative(f)
            }
        }
        let own = script.values.contains(true) ? script : native
        // Per own frame: samples with it (counted once per stack, at its innermost occurrence).
        var count: [Int: Int] = [:]
        var withOwn = 0
        for (ids, n) in stacks {
            var seen = Set<Int>()
            for id in ids where own[id] == true && seen.insert(id).inserted { count[id, default: 0] += n }
            if !seen.isEmpty { withOwn += n }
        }
        let majority = count.filter { 2 * $0.value > withOwn }.map(\.key).sorted()
        guard !majority.isEmpty else { return nil }
        // Which of them is inside which: on the samples with both, the one nearer the leaf. Not by counts: a
        // caller the unwinder lost in a few samples would count fewer samples than its callee.
        var inside = [[Int]](repeating: [Int](repeating: 0, count: majority.count), count: majority.count)
        let slot = Dictionary(uniqueKeysWithValues: majority.enumerated().map { ($1, $0) })
        for (ids, n) in stacks {
            var order: [Int] = []  // candidates' slots, innermost first
            for id in ids { if let k = slot[id], !order.contains(k) { order.append(k) } }
            for (i, a) in order.enumerated() { for b in order[(i + 1)...] { inside[a][b] += n } }
        }
        // The innermost: inside the most of the others; then the fewest samples.
        func wins(_ a: Int) -> Int { majority.indices.filter { $0 != a && inside[a][$0] > inside[$0][a] }.count }
        let bestSlot = majority.indices.min { (-wins($0), count[majority[$0]]!, $0) < (-wins($1), count[majority[$1]]!, $1) }!
        let best = (key: majority[bestSlot], value: count[majority[bestSlot]]!)
        // Its callers: the most common stack below its outermost occurrence.
        var callerCounts: [ArraySlice<Int>: Int] = [:]
        for (ids, n) in stacks {
            guard let i = ids.lastIndex(of: best.key) else { continue }
            callerCounts[ids[(i + 1)...].prefix(maxCallers), default: 0] += n
        }
        let callers =
            callerCounts.max { $0.value != $1.value ? $0.value < $1.value : $1.key.lexicographicallyPrecedes($0.key) }?.key ?? []
        return HotFunction(frame: frame(best.key), callers: callers.map(frame), samples: best.value, totalSamples: total)
    }
}
