/// Rust's two manglings, read without the hashes that make them unique (as `rustc-demangle`'s `{:#}` does):
/// legacy `_ZN…17h<16 hex>E` ("tk::mutex_tasks::{{closure}}", "Core<T,S>::poll") and v0 `_R…`
/// ("std::io::default_read_to_end::<std::fs::File>", "<&mut [u8] as core::fmt::Debug>::fmt").
/// nil when a name is not one of them or does not parse: the caller keeps the raw name.
enum RustDemangle {
    /// Output beyond this many bytes gives up: v0 back references can describe a name that grows
    /// exponentially with its mangled length, and no stack line is readable at that length anyway.
    static let maxOutput = 2048
    private static let maxDepth = 64

    static func demangle(_ name: String) -> String? {
        var bytes = Array(name.utf8)
        guard bytes.count < 8192 else { return nil }
        // LLVM's ".llvm.<digits>" (a copy made for LTO) names the same function.
        if let cut = llvmSuffix(bytes) { bytes.removeSubrange(cut...) }
        if bytes.starts(with: Array("_ZN".utf8)) { return legacy(bytes) }
        if bytes.starts(with: Array("_R".utf8)) {
            var parser = V0Parser(bytes: bytes, start: 2)
            return parser.symbol()
        }
        return nil
    }

    private static func llvmSuffix(_ b: [UInt8]) -> Int? {
        let marker = Array(".llvm.".utf8)
        var i = 0
        while i + marker.count <= b.count {
            if b[i] == UInt8(ascii: "."), Array(b[i..<(i + marker.count)]) == marker {
                let rest = b[(i + marker.count)...]
                if !rest.isEmpty, rest.allSatisfy({ isDigit($0) || ($0 >= 65 && $0 <= 70) || $0 == UInt8(ascii: "@") }) {
                    return i
                }
                return nil
            }
            i += 1
        }
        return nil
    }

    static func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }

    // MARK: legacy

    /// `_ZN` {<length><identifier>} `E` [suffix]: Rust's when the last identifier is `h` and 16 hex digits.
    private static func legacy(_ b: [UInt8]) -> String? {
        var i = 3
        var parts: [ArraySlice<UInt8>] = []
        while i < b.count, b[i] != UInt8(ascii: "E") {
            var length = 0
            let digitsStart = i
            while i < b.count, isDigit(b[i]), i - digitsStart < 5 {
                length = length * 10 + Int(b[i] - 48)
                i += 1
            }
            guard i > digitsStart, length > 0, i + length <= b.count else { return nil }
            parts.append(b[i..<(i + length)])
            i += length
        }
        guard i < b.count, let hash = parts.last, parts.count >= 2, hash.count == 17, hash.first == UInt8(ascii: "h"),
            hash.dropFirst().allSatisfy({ isDigit($0) || ($0 >= 97 && $0 <= 102) })
        else { return nil }
        var out = ""
        for (n, part) in parts.dropLast().enumerated() {
            if n > 0 { out += "::" }
            guard let text = unescapeLegacy(part) else { return nil }
            out += text
        }
        let suffix = b[(i + 1)...]
        if !suffix.isEmpty { out += String(decoding: suffix, as: UTF8.self) }
        return out
    }

    /// `$LT$` is "<", `$u7b$` "{", ".." "::"; an identifier written `_$…` starts with "$".
    private static func unescapeLegacy(_ part: ArraySlice<UInt8>) -> String? {
        var rest = part
        if rest.starts(with: [UInt8(ascii: "_"), UInt8(ascii: "$")]) { rest = rest.dropFirst() }
        var out = ""
        while let c = rest.first {
            if c == UInt8(ascii: ".") {
                if rest.dropFirst().first == UInt8(ascii: ".") {
                    out += "::"
                    rest = rest.dropFirst(2)
                } else {
                    out += "."
                    rest = rest.dropFirst()
                }
            } else if c == UInt8(ascii: "$") {
                guard let end = rest.dropFirst().firstIndex(of: UInt8(ascii: "$")) else { return nil }
                let escape = String(decoding: rest[(rest.startIndex + 1)..<end], as: UTF8.self)
                switch escape {
                case "SP": out += "@"
                case "BP": out += "*"
                case "RF": out += "&"
                case "LT": out += "<"
                case "GT": out += ">"
                case "LP": out += "("
                case "RP": out += ")"
                case "C": out += ","
                default:
                    guard escape.hasPrefix("u"), escape.count <= 7, let v = UInt32(escape.dropFirst(), radix: 16),
                        let scalar = Unicode.Scalar(v), !(v < 0x20 || v == 0x7f)
                    else { return nil }
                    out.unicodeScalars.append(scalar)
                }
                rest = rest[(end + 1)...]
            } else {
                let run = rest.prefix(while: { $0 != UInt8(ascii: "$") && $0 != UInt8(ascii: ".") })
                out += String(decoding: run, as: UTF8.self)
                rest = rest.dropFirst(run.count)
            }
        }
        return out
    }

    // MARK: v0

    private struct Failure: Error {}

    /// A recursive descent over the v0 grammar (https://doc.rust-lang.org/rustc/symbol-mangling/v0.html),
    /// printing as it parses. Back references jump to an earlier position and come back.
    private struct V0Parser {
        let bytes: [UInt8]
        let start: Int
        var pos: Int
        var out = ""
        var depth = 0
        /// While > 0, parsing goes on without printing (an impl's path, the instantiating crate).
        var silent = 0

        init(bytes: [UInt8], start: Int) {
            self.bytes = bytes
            self.start = start
            self.pos = start
        }

        mutating func symbol() -> String? {
            do {
                guard let first = peek(), first >= 65 && first <= 90 else { return nil }  // no encoding version
                try path(inValue: true)
                // The instantiating crate: which crate made this copy of a generic function.
                if let c = peek(), c >= 65 && c <= 90 {
                    silent += 1
                    try path(inValue: false)
                    silent -= 1
                }
                if pos < bytes.count {
                    guard bytes[pos] == UInt8(ascii: ".") || bytes[pos] == UInt8(ascii: "$") else { return nil }
                    out += String(decoding: bytes[pos...], as: UTF8.self)
                }
                return out
            } catch {
                return nil
            }
        }

        func peek() -> UInt8? { pos < bytes.count ? bytes[pos] : nil }

        mutating func next() throws -> UInt8 {
            guard pos < bytes.count else { throw Failure() }
            defer { pos += 1 }
            return bytes[pos]
        }

        mutating func eat(_ c: Character) -> Bool {
            guard let p = peek(), p == c.asciiValue else { return false }
            pos += 1
            return true
        }

        mutating func emit(_ s: String) throws {
            guard silent == 0 else { return }
            out += s
            guard out.utf8.count <= RustDemangle.maxOutput else { throw Failure() }
        }

        mutating func enter() throws {
            depth += 1
            guard depth <= RustDemangle.maxDepth else { throw Failure() }
        }

        /// {0-9a-zA-Z} "_": "_" is 0, otherwise the digits' value plus 1.
        mutating func base62() throws -> UInt64 {
            if eat("_") { return 0 }
            var value: UInt64 = 0
            while true {
                let c = try next()
                if c == UInt8(ascii: "_") { break }
                let digit: UInt64
                switch c {
                case 48...57: digit = UInt64(c - 48)
                case 97...122: digit = UInt64(c - 97) + 10
                case 65...90: digit = UInt64(c - 65) + 36
                default: throw Failure()
                }
                let (m, o1) = value.multipliedReportingOverflow(by: 62)
                let (s, o2) = m.addingReportingOverflow(digit)
                guard !o1, !o2 else { throw Failure() }
                value = s
            }
            guard value < UInt64.max else { throw Failure() }
            return value + 1
        }

        mutating func disambiguator() throws -> UInt64 {
            guard eat("s") else { return 0 }
            let v = try base62()
            guard v < UInt64.max else { throw Failure() }
            return v + 1
        }

        mutating func decimal() throws -> Int {
            let first = try next()
            guard RustDemangle.isDigit(first) else { throw Failure() }
            if first == 48 { return 0 }
            var value = Int(first - 48)
            while let c = peek(), RustDemangle.isDigit(c) {
                pos += 1
                value = value * 10 + Int(c - 48)
                guard value < 1 << 20 else { throw Failure() }
            }
            return value
        }

        /// ["u"] <decimal> ["_"] <bytes>; a punycode ("u") identifier is shown as written.
        mutating func identifier() throws -> String {
            let punycode = eat("u")
            let length = try decimal()
            _ = eat("_")
            guard length <= bytes.count - pos else { throw Failure() }
            var text = String(decoding: bytes[pos..<(pos + length)], as: UTF8.self)
            pos += length
            if punycode { text = "punycode{\(text)}" }
            return text
        }

        /// Runs `body` at the position a back reference names (strictly before it), then comes back.
        mutating func backref(_ body: (inout V0Parser) throws -> Void) throws {
            let tagAt = pos - 1
            let target = try base62()
            guard target < UInt64(tagAt - start) else { throw Failure() }
            let saved = pos
            pos = start + Int(target)
            try body(&self)
            pos = saved
        }

        mutating func path(inValue: Bool) throws {
            try enter()
            defer { depth -= 1 }
            let tag = try next()
            switch tag {
            case UInt8(ascii: "C"):
                _ = try disambiguator()
                try emit(try identifier())
            case UInt8(ascii: "N"):
                let ns = try next()
                guard (ns >= 65 && ns <= 90) || (ns >= 97 && ns <= 122) else { throw Failure() }
                try path(inValue: inValue)
                let dis = try disambiguator()
                let name = try identifier()
                if ns >= 65 && ns <= 90 {
                    let kind = ns == UInt8(ascii: "C") ? "closure" : ns == UInt8(ascii: "S") ? "shim" : String(UnicodeScalar(ns))
                    try emit("::{" + kind + (name.isEmpty ? "" : ":" + name) + "#\(dis)}")
                } else if !name.isEmpty {
                    try emit("::" + name)
                }
            case UInt8(ascii: "M"), UInt8(ascii: "X"), UInt8(ascii: "Y"):
                if tag != UInt8(ascii: "Y") {
                    _ = try disambiguator()
                    silent += 1
                    try path(inValue: false)
                    silent -= 1
                }
                try emit("<")
                try type()
                if tag != UInt8(ascii: "M") {
                    try emit(" as ")
                    try path(inValue: false)
                }
                try emit(">")
            case UInt8(ascii: "I"):
                try path(inValue: inValue)
                try emit(inValue ? "::<" : "<")
                try genericArguments()
                try emit(">")
            case UInt8(ascii: "B"):
                try backref { try $0.path(inValue: inValue) }
            default:
                throw Failure()
            }
        }

        mutating func genericArguments() throws {
            var first = true
            while !eat("E") {
                if !first { try emit(", ") }
                first = false
                try genericArgument()
            }
        }

        mutating func genericArgument() throws {
            if eat("L") {
                _ = try base62()
                try emit("'_")
            } else if eat("K") {
                try constant()
            } else {
                try type()
            }
        }

        static let basicTypes: [UInt8: String] = [
            UInt8(ascii: "a"): "i8", UInt8(ascii: "b"): "bool", UInt8(ascii: "c"): "char", UInt8(ascii: "d"): "f64",
            UInt8(ascii: "e"): "str", UInt8(ascii: "f"): "f32", UInt8(ascii: "h"): "u8", UInt8(ascii: "i"): "isize",
            UInt8(ascii: "j"): "usize", UInt8(ascii: "l"): "i32", UInt8(ascii: "m"): "u32", UInt8(ascii: "n"): "i128",
            UInt8(ascii: "o"): "u128", UInt8(ascii: "s"): "i16", UInt8(ascii: "t"): "u16", UInt8(ascii: "u"): "()",
            UInt8(ascii: "v"): "...", UInt8(ascii: "x"): "i64", UInt8(ascii: "y"): "u64", UInt8(ascii: "z"): "!",
            UInt8(ascii: "p"): "_",
        ]

        mutating func type() throws {
            try enter()
            defer { depth -= 1 }
            let tag = try next()
            if let basic = Self.basicTypes[tag] { return try emit(basic) }
            switch tag {
            case UInt8(ascii: "R"), UInt8(ascii: "Q"):
                try emit("&")
                if eat("L") {
                    if try base62() != 0 { try emit("'_ ") }
                }
                if tag == UInt8(ascii: "Q") { try emit("mut ") }
                try type()
            case UInt8(ascii: "P"):
                try emit("*const ")
                try type()
            case UInt8(ascii: "O"):
                try emit("*mut ")
                try type()
            case UInt8(ascii: "A"), UInt8(ascii: "S"):
                try emit("[")
                try type()
                if tag == UInt8(ascii: "A") {
                    try emit("; ")
                    try constant()
                }
                try emit("]")
            case UInt8(ascii: "T"):
                try emit("(")
                var count = 0
                while !eat("E") {
                    if count > 0 { try emit(", ") }
                    try type()
                    count += 1
                }
                try emit(count == 1 ? ",)" : ")")
            case UInt8(ascii: "F"):
                if eat("G") { _ = try base62() }
                if eat("U") { try emit("unsafe ") }
                if eat("K") {
                    if eat("C") {
                        try emit("extern \"C\" ")
                    } else {
                        let abi = try identifier().replacingUnderscores()
                        try emit("extern \"\(abi)\" ")
                    }
                }
                try emit("fn(")
                var count = 0
                while !eat("E") {
                    if count > 0 { try emit(", ") }
                    try type()
                    count += 1
                }
                try emit(")")
                if eat("u") { return }
                try emit(" -> ")
                try type()
            case UInt8(ascii: "D"):
                try emit("dyn ")
                if eat("G") { _ = try base62() }
                var count = 0
                while !eat("E") {
                    if count > 0 { try emit(" + ") }
                    try dynTrait()
                    count += 1
                }
                guard eat("L") else { throw Failure() }
                if try base62() != 0 { try emit(" + '_") }
            case UInt8(ascii: "B"):
                try backref { try $0.type() }
            default:
                pos -= 1
                try path(inValue: false)
            }
        }

        /// A trait with its associated types: "Fn<(u8,), Output = ()>".
        mutating func dynTrait() throws {
            var open = try pathMaybeOpenGenerics()
            while eat("p") {
                try emit(open ? ", " : "<")
                open = true
                try emit(try identifier())
                try emit(" = ")
                try type()
            }
            if open { try emit(">") }
        }

        /// A type path whose generic arguments stay open (no ">" yet) when it has some.
        mutating func pathMaybeOpenGenerics() throws -> Bool {
            if eat("B") {
                var open = false
                try backref { open = try $0.pathMaybeOpenGenerics() }
                return open
            }
            if eat("I") {
                try enter()
                defer { depth -= 1 }
                try path(inValue: false)
                try emit("<")
                var first = true
                while !eat("E") {
                    if !first { try emit(", ") }
                    first = false
                    try genericArgument()
                }
                return true
            }
            try path(inValue: false)
            return false
        }

        mutating func constant() throws {
            try enter()
            defer { depth -= 1 }
            if eat("B") { return try backref { try $0.constant() } }
            let tag = try next()
            switch tag {
            case UInt8(ascii: "p"):
                try emit("_")
            case UInt8(ascii: "a"), UInt8(ascii: "s"), UInt8(ascii: "l"), UInt8(ascii: "x"), UInt8(ascii: "n"),
                UInt8(ascii: "i"), UInt8(ascii: "h"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "y"),
                UInt8(ascii: "o"), UInt8(ascii: "j"):
                let negative = eat("n")
                let hex = try hexDigits()
                if hex.count <= 16, let v = UInt64(hex.isEmpty ? "0" : hex, radix: 16) {
                    try emit((negative ? "-" : "") + String(v))
                } else {
                    try emit((negative ? "-" : "") + "0x" + hex)
                }
            case UInt8(ascii: "b"):
                let hex = try hexDigits()
                guard hex == "0" || hex == "1" else { throw Failure() }
                try emit(hex == "1" ? "true" : "false")
            case UInt8(ascii: "c"):
                let hex = try hexDigits()
                guard hex.count <= 8, let v = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(v) else { throw Failure() }
                try emit("'" + String(Character(scalar)).debugEscaped + "'")
            default:
                throw Failure()
            }
        }

        mutating func hexDigits() throws -> String {
            let from = pos
            while let c = peek(), RustDemangle.isDigit(c) || (c >= 97 && c <= 102) { pos += 1 }
            guard eat("_") else { throw Failure() }
            return String(decoding: bytes[from..<(pos - 1)], as: UTF8.self)
        }
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String { String(map { $0 == "_" ? "-" : $0 }) }
    fileprivate var debugEscaped: String {
        var s = ""
        for u in unicodeScalars { s += u.escaped(asASCII: false) }
        return s
    }
}
