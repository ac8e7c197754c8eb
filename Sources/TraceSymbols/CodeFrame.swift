/// One frame of code, as named at read time: function, module and offset (and source position where known).
public struct CodeFrame: Hashable, Sendable {
    /// The function's (demangled) name; nil when nothing names the address.
    public var function: String?
    /// Source file and line where known (Node's perf map; DWARF line tables are not read yet).
    public var file: String?
    /// The source line where known (with `file`).
    public var line: Int?
    /// The file the code is in ("/usr/lib/.../libc.so.6"), "[kernel]", "[anon]" (JIT memory no map
    /// names) or "[unknown]" (no recorded mapping holds the address).
    public var module: String
    /// Unnamed frames: the address's offset in the module (its link-time address for ELF files).
    /// Named frames: the function's start (0 for JIT code), so one function is one frame.
    public var offset: UInt64
    /// Whether the frame is kernel code (module "[kernel]").
    public var isKernel: Bool

    /// A frame from its parts.
    public init(function: String?, file: String? = nil, line: Int? = nil, module: String, offset: UInt64, isKernel: Bool = false) {
        self.function = function
        self.file = file
        self.line = line
        self.module = module
        self.offset = offset
        self.isKernel = isKernel
    }

    /// The module's file name without its directory.
    public var moduleName: String { module.split(separator: "/").last.map(String.init) ?? module }

    /// A frame label: the function, else module+offset (never a bare address).
    public var name: String { function ?? "\(moduleName)+0x\(String(offset, radix: 16))" }

    /// The name with its source location: "handleHash (server.js:17)".
    public var description: String {
        guard let file else { return name }
        let base = file.split(separator: "/").last.map(String.init) ?? file
        return line.map { "\(name) (\(base):\($0))" } ?? "\(name) (\(base))"
    }
}
