// Socket addresses (IPv4, IPv6, Unix paths) and host resolution for net, dgram and http.
#if canImport(Glibc)
import Glibc
import CRuntimeSystem
#endif

/// A socket address, as Node reports it in `address()` and `rinfo`.
public enum SocketAddress: Sendable, Hashable, CustomStringConvertible {
    /// An IPv4 address and port.
    case ipv4(host: String, port: Int)
    /// An IPv6 address and port.
    case ipv6(host: String, port: Int)
    /// A Unix-domain socket's path.
    case unix(path: String)

    /// Node's `family`: "IPv4", "IPv6" or "Unix".
    public var family: String {
        switch self {
        case .ipv4: return "IPv4"
        case .ipv6: return "IPv6"
        case .unix: return "Unix"
        }
    }

    /// The address ("127.0.0.1", "::1"), or a Unix socket's path.
    public var host: String {
        switch self {
        case let .ipv4(h, _), let .ipv6(h, _): return h
        case let .unix(p): return p
        }
    }

    /// The port (0 for a Unix socket).
    public var port: Int {
        switch self {
        case let .ipv4(_, p), let .ipv6(_, p): return p
        case .unix: return 0
        }
    }

    public var description: String {
        switch self {
        case let .ipv4(h, p): return "\(h):\(p)"
        case let .ipv6(h, p): return "[\(h)]:\(p)"
        case let .unix(p): return p
        }
    }

    var domain: Int32 {
        switch self {
        case .ipv4: return AF_INET
        case .ipv6: return AF_INET6
        case .unix: return AF_UNIX
        }
    }

    /// A numeric address for `host` ("127.0.0.1", "::1", "localhost"), or nil for a name that needs DNS.
    public static func numeric(host: String, port: Int) -> SocketAddress? {
        if host == "localhost" { return .ipv4(host: "127.0.0.1", port: port) }
        var a4 = in_addr()
        if inet_pton(AF_INET, host, &a4) == 1 { return .ipv4(host: host, port: port) }
        var a6 = in6_addr()
        if inet_pton(AF_INET6, host, &a6) == 1 { return .ipv6(host: host, port: port) }
        return nil
    }

    /// The longest path a Unix socket address holds (sun_path minus the terminating NUL).
    static let maxUnixPath = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// The C form. Call only on addresses that came from `numeric` or the kernel (validated).
    func storage() -> (sockaddr_storage, socklen_t) {
        var s = sockaddr_storage()
        switch self {
        case let .ipv4(host, port):
            let p = net_sockaddr_in(&s)!
            p.pointee.sin_family = sa_family_t(AF_INET)
            p.pointee.sin_port = in_port_t(UInt16(truncatingIfNeeded: port)).bigEndian
            _ = inet_pton(AF_INET, host, &p.pointee.sin_addr)
            return (s, socklen_t(MemoryLayout<sockaddr_in>.size))
        case let .ipv6(host, port):
            let p = net_sockaddr_in6(&s)!
            p.pointee.sin6_family = sa_family_t(AF_INET6)
            p.pointee.sin6_port = in_port_t(UInt16(truncatingIfNeeded: port)).bigEndian
            _ = inet_pton(AF_INET6, host, &p.pointee.sin6_addr)
            return (s, socklen_t(MemoryLayout<sockaddr_in6>.size))
        case let .unix(path):
            let p = net_sockaddr_un(&s)!
            p.pointee.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8.prefix(SocketAddress.maxUnixPath))
            withUnsafeMutableBytes(of: &p.pointee.sun_path) { dst in
                for (i, b) in bytes.enumerated() { dst[i] = b }
                dst[bytes.count] = 0
            }
            return (s, socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1))
        }
    }

    static func string(_ buf: [CChar]) -> String {
        String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    init?(storage s: inout sockaddr_storage, length: socklen_t) {
        switch Int32(s.ss_family) {
        case AF_INET:
            let p = net_sockaddr_in(&s)!
            var buf = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            inet_ntop(AF_INET, &p.pointee.sin_addr, &buf, socklen_t(buf.count))
            self = .ipv4(host: SocketAddress.string(buf), port: Int(UInt16(bigEndian: p.pointee.sin_port)))
        case AF_INET6:
            let p = net_sockaddr_in6(&s)!
            var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            inet_ntop(AF_INET6, &p.pointee.sin6_addr, &buf, socklen_t(buf.count))
            self = .ipv6(host: SocketAddress.string(buf), port: Int(UInt16(bigEndian: p.pointee.sin6_port)))
        case AF_UNIX:
            let p = net_sockaddr_un(&s)!
            let pathLength = Int(length) - MemoryLayout<sa_family_t>.size
            let path = withUnsafeBytes(of: &p.pointee.sun_path) { raw -> String in
                let n = max(0, min(pathLength, raw.count))
                let bytes = raw.prefix(n).prefix { $0 != 0 }
                return String(decoding: bytes, as: UTF8.self)
            }
            self = .unix(path: path)
        default:
            return nil
        }
    }
}
