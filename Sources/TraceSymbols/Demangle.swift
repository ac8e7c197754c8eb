#if canImport(Glibc)
import Glibc
#endif

/// Readable names for mangled symbols: Swift through the runtime's swift_demangle, C++ through
/// __cxa_demangle (both found with dlsym, nothing linked for them), Rust (legacy and v0) by RustDemangle.
public enum Demangle {
    private typealias SwiftDemangle =
        @convention(c) (
            UnsafePointer<CChar>?, Int, UnsafeMutablePointer<CChar>?,
            UnsafeMutablePointer<Int>?, UInt32
        ) -> UnsafeMutablePointer<CChar>?
    private typealias CxaDemangle =
        @convention(c) (
            UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?,
            UnsafeMutablePointer<Int>?, UnsafeMutablePointer<Int32>?
        ) -> UnsafeMutablePointer<CChar>?

    private static let swiftDemangle: SwiftDemangle? = lookup("swift_demangle")
    private static let cxaDemangle: CxaDemangle? = lookup("__cxa_demangle")

    private static func lookup<T>(_ name: String) -> T? {
        guard let handle = dlopen(nil, RTLD_NOW), let sym = dlsym(handle, name) else { return nil }
        return unsafeBitCast(sym, to: T.self)
    }

    /// The demangled, shortened name; `name` itself when it is not mangled (C) or cannot be demangled. A Go
    /// assembly function's ABI wrapper suffix is dropped ("runtime.futex.abi0" is runtime.futex, as Go's own
    /// tools name it). A Rust name loses its hashes: "tk::burn_cpu", not "tk::burn_cpu::h475435a258186d6c".
    public static func name(_ name: String) -> String {
        if name.hasSuffix(".abi0"), name.utf8.count > 5, name.dropLast(5).contains(".") { return String(name.dropLast(5)) }
        if name.hasPrefix("_R") || name.hasPrefix("_ZN"), let rust = RustDemangle.demangle(name) { return rust }
        if isSwift(name), let f = swiftDemangle {
            let out = name.withCString { f($0, strlen($0), nil, nil, 0) }
            if let out {
                defer { free(out) }
                return shortenSwift(String(cString: out))
            }
        } else if name.hasPrefix("_Z"), let f = cxaDemangle {
            var status: Int32 = 0
            let out = name.withCString { f($0, nil, nil, &status) }
            if let out {
                defer { free(out) }
                if status == 0 { return shortenCxx(String(cString: out)) }
            }
        }
        return name
    }

    /// "v8::internal::Execution::Call(v8::internal::Isolate*, ...) const" -> "v8::internal::Execution::Call":
    /// the qualified name without parameters (templates and "(anonymous namespace)" kept).
    public static func shortenCxx(_ s: String) -> String {
        var depth = 0
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if c == "<" { depth += 1 } else if c == ">" && depth > 0 { depth -= 1 }
            if c == "(" && depth == 0 {
                let rest = s[s.index(after: i)...]
                if rest.hasPrefix("anonymous namespace)") {
                    i = s.index(i, offsetBy: 21)
                    continue
                }
                return i == s.startIndex ? s : String(s[..<i])
            }
            i = s.index(after: i)
        }
        return s
    }

    static func isSwift(_ n: String) -> Bool {
        n.hasPrefix("$s") || n.hasPrefix("_$s") || n.hasPrefix("$S") || n.hasPrefix("_$S") || n.hasPrefix("_T0")
            || n.hasPrefix("$e") || n.hasPrefix("_$e")
    }

    /// "Mod.Type.handle(_: Mod.Request, id: Swift.Int) async throws -> Mod.Response" -> "Mod.Type.handle(_:id:)":
    /// the argument labels, as Swift names a function, without types, effects and result. An async
    /// function's continuations ("(1) suspend resume partial function for f") and forwarding thunks are
    /// named after the function they belong to; closures keep their place and number ("closure #2 in
    /// closure #1 in App.main()").
    public static func shortenSwift(_ s: String) -> String {
        var rest = Substring(s)
        var changed = true, strips = 0
        while changed && strips < 8 {
            changed = false
            strips += 1
            if rest.first == "(", let close = rest.firstIndex(of: ")"),
                rest[rest.index(after: rest.startIndex)..<close].allSatisfy(\.isNumber),
                let f = find(" partial function for ", in: rest), f.lowerBound > close,
                rest[rest.index(after: close)..<f.lowerBound].allSatisfy({ $0.isLetter || $0 == " " })
            {
                rest = rest[f.upperBound...]
                changed = true
            }
            for thunk in ["partial apply forwarder for ", "partial apply for ", "specialized ", "merged "]
            where rest.hasPrefix(thunk) {
                rest = rest.dropFirst(thunk.count)
                changed = true
            }
            // The full form of "specialized ": "generic specialization <Swift.Int> of f",
            // "function signature specialization <Arg[3] = [Closure Propagated : …]> of f".
            if rest.hasPrefix("generic specialization <") || rest.hasPrefix("function signature specialization <"),
                let of = specializationEnd(rest)
            {
                rest = rest[of...]
                changed = true
            }
        }
        var closures = ""
        // Each split scans what is left: bounded, so a crafted name of many closures stays linear.
        var splits = 0
        while splits < 16, let (closure, enclosing) = splitClosure(rest) {
            splits += 1
            closures += closure + " in "
            rest = enclosing
        }
        return closures + shortenFunction(String(rest))
    }

    /// Where the function of "… specialization <…> of f" begins: after the " of " that follows the
    /// "<…>" matching the first "<" ("->" is not a bracket); nil if there is none.
    private static func specializationEnd(_ s: Substring) -> Substring.Index? {
        guard let open = s.firstIndex(of: "<") else { return nil }
        var depth = 0
        var i = open
        while i < s.endIndex {
            let c = s[i]
            if c == "<" {
                depth += 1
            } else if c == ">" && s[s.index(before: i)] != "-" {
                depth -= 1
                if depth == 0 {
                    let after = s[s.index(after: i)...]
                    return after.hasPrefix(" of ") ? after.index(after.startIndex, offsetBy: 4) : nil
                }
            }
            i = s.index(after: i)
        }
        return nil
    }

    /// "closure #2 () async -> Swift.Int in static M.App.main() async -> ()" -> ("closure #2", "static M.App.main() …").
    private static func splitClosure(_ s: Substring) -> (String, Substring)? {
        let kinds = ["closure #", "implicit closure #"]
        guard let kind = kinds.first(where: { s.hasPrefix($0) }) else { return nil }
        let digits = s.dropFirst(kind.count).prefix(while: \.isNumber)
        guard !digits.isEmpty else { return nil }
        // The enclosing function follows the first " in " outside parentheses and angle brackets.
        var depth = 0
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if c == "(" || c == "<" || c == "[" {
                depth += 1
            } else if (c == ")" || c == "]" || (c == ">" && i > s.startIndex && s[s.index(before: i)] != "-")) && depth > 0 {
                depth -= 1
            } else if c == " " && depth == 0 && s[i...].hasPrefix(" in ") {
                let enclosing = s[s.index(i, offsetBy: 4)...]
                return enclosing.isEmpty ? nil : (kind + digits, enclosing)
            }
            i = s.index(after: i)
        }
        return nil
    }

    private static func find(_ needle: String, in s: Substring) -> Range<Substring.Index>? {
        var i = s.startIndex
        while i < s.endIndex {
            if s[i...].hasPrefix(needle) { return i..<s.index(i, offsetBy: needle.count) }
            i = s.index(after: i)
        }
        return nil
    }

    private static func shortenFunction(_ s: String) -> String {
        let chars = Array(s)
        // The argument list: the first "(" at nesting depth 0 of <> that is not "(extension in M)" or
        // "(in _$s...)", and its matching ")".
        var depth = 0, i = 0
        var open = -1, close = -1
        while i < chars.count {
            let c = chars[i]
            if c == "<" { depth += 1 } else if c == ">" && depth > 0 && !(i > 0 && chars[i - 1] == "-") { depth -= 1 }
            if c == "(" && depth == 0 {
                var level = 0, j = i
                while j < chars.count {
                    if chars[j] == "(" { level += 1 } else if chars[j] == ")" { level -= 1; if level == 0 { break } }
                    j += 1
                }
                guard j < chars.count else { return s }
                let inner = String(chars[(i + 1)..<j])
                if inner.hasPrefix("extension in ") || inner.hasPrefix("in ") {
                    i = j + 1
                    continue
                }
                open = i
                close = j
                break
            }
            i += 1
        }
        guard open >= 0 else { return s }
        let inner = String(chars[(open + 1)..<close])
        var labels = ""
        var argDepth = 0, segment = ""
        var args: [String] = []
        for c in inner {
            if "(<[".contains(c) { argDepth += 1 } else if ")>]".contains(c) { argDepth -= 1 }
            if c == "," && argDepth == 0 { args.append(segment); segment = "" } else { segment.append(c) }
        }
        if !inner.isEmpty { args.append(segment) }
        for a in args {
            let t = a.drop(while: { $0 == " " })
            if let colon = t.firstIndex(of: ":"), !t[..<colon].contains(" "), !t[..<colon].contains(".") {
                labels += t[..<colon] + ":"
            } else {
                labels += "_:"
            }
        }
        // Without generic parameters ("withUnsafeBytes<A>") and "static ", "(extension in M):" noise.
        var name = String(chars[..<open])
        if name.hasSuffix(">"), let lt = Self.matchingOpen(name) { name = String(name[..<lt]) }
        if name.hasPrefix("static ") { name.removeFirst(7) }
        while name.hasPrefix("(extension in "), let end = name.firstIndex(of: ":") { name = String(name[name.index(after: end)...]) }
        return name + "(" + labels + ")"
    }

    /// The index of the "<" matching a name's final ">".
    private static func matchingOpen(_ s: String) -> String.Index? {
        var level = 0
        var i = s.endIndex
        while i > s.startIndex {
            i = s.index(before: i)
            if s[i] == ">" { level += 1 } else if s[i] == "<" { level -= 1; if level == 0 { return i } }
        }
        return nil
    }
}
