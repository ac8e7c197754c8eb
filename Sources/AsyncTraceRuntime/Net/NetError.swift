// The error every net, dgram, tls, child_process and http resource reports: Node's `err.code`,
// `errno`, `syscall` and address, plus the async id of the resource it happened on.
@_spi(Runtime) import AsyncHooks

/// The error every net, dgram, tls, child_process and http resource reports: Node's `err.code`, `errno`,
/// `syscall` and address, plus the async id of the resource it happened on.
public struct NetError: Error, Sendable, CustomStringConvertible {
    /// Node's code: "ECONNREFUSED", "EADDRINUSE", "ERR_SSL_...", "HPE_INVALID_METHOD", ...
    public let code: String
    /// The errno of a failed system call (0 for protocol errors such as TLS or HTTP parsing).
    public let errno: Int32
    /// The operation that failed ("connect", "listen", "read", "handshake", "parse", ...).
    public let syscall: String
    /// The address involved, when there is one.
    public let address: SocketAddress?
    /// The resource the error happened on.
    public let asyncID: AsyncID
    /// Node's message ("connect ECONNREFUSED 127.0.0.1:9").
    public let message: String

    /// An error from its parts.
    public init(
        code: String, errno: Int32 = 0, syscall: String, address: SocketAddress? = nil,
        asyncID: AsyncID, message: String
    ) {
        self.code = code
        self.errno = errno
        self.syscall = syscall
        self.address = address
        self.asyncID = asyncID
        self.message = message
    }

    init(_ e: SystemError, syscall: String? = nil, address: SocketAddress? = nil, asyncID: AsyncID) {
        let call = syscall ?? e.function
        var msg = "\(call) \(e.code)"
        if let address { msg += " \(address)" }
        self.init(code: e.code, errno: e.errno, syscall: call, address: address, asyncID: asyncID, message: msg)
    }

    public var description: String { "Error: \(message) (async id \(asyncID))" }
}

/// A small list of listeners for one event (Node's EventEmitter, one event, typed).
struct Listeners<Arg> {
    var list: [(Arg) throws -> Void] = []
    var isEmpty: Bool { list.isEmpty }
    mutating func add(_ f: @escaping (Arg) throws -> Void) { list.append(f) }
    @inline(__always)
    func emit(_ a: Arg) throws {
        for f in list { try f(a) }
    }
}
