// dns.lookup: getaddrinfo on the thread pool (as Node), completing as a GETADDRINFOREQWRAP callback.
@_spi(Runtime) import AsyncHooks

/// Node's `dns`: lookups with getaddrinfo on the thread pool, completing as GETADDRINFOREQWRAP callbacks.
public enum DNS {
    /// The first address for `hostname` (family 0: any, 4 or 6), as Node's `dns.lookup(host, cb)`.
    public static func lookup(
        _ hostname: String, family: Int = 0,
        _ cb: @escaping (Result<(address: String, family: Int), any Error>) throws -> Void
    ) {
        lookupAll(hostname, family: family) { result in
            try cb(
                result.flatMap { all in
                    all.first.map { .success($0) } ?? .failure(DNSError(code: "ENOTFOUND", hostname: hostname, message: "no addresses"))
                })
        }
    }

    /// Every address, as `dns.lookup(host, { all: true }, cb)`.
    public static func lookupAll(
        _ hostname: String, family: Int = 0,
        _ cb: @escaping (Result<[(address: String, family: Int)], any Error>) throws -> Void
    ) {
        guard family == 0 || family == 4 || family == 6 else {
            let loop = EventLoop.current
            let ctx = AsyncResourceContext(type: .getAddrInfoReqWrap)
            loop.queuePending(ctx, destroyAfter: true) { try cb(.failure(RuntimeError.invalidArgument("family must be 0, 4 or 6, got \(family)"))) }
            return
        }
        EventLoop.current.queueWork(
            type: .getAddrInfoReqWrap,
            { () throws -> AddressList in
                AddressList(items: try Sys.getAddresses(hostname, family: family))
            }
        ) { result in try cb(result.map(\.items)) }
    }

    /// `dns.promises.lookup`.
    public static func lookup(_ hostname: String, family: Int = 0) -> Promise<(address: String, family: Int)> {
        let (p, r) = Promise<(address: String, family: Int)>.withResolver()
        lookup(hostname, family: family) { result in
            switch result {
            case .success(let v): r.resolve(v)
            case .failure(let e): r.reject(e)
            }
        }
        return p
    }

    struct AddressList: Sendable { let items: [(address: String, family: Int)] }
}
