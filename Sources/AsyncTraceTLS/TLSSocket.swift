// TLS client and server over the runtime's TCP sockets (Node's `tls.connect`, `tls.createServer`).
// A TLSWRAP resource (trigger: the TCP socket) is installed under the socket: the handshake, every
// read and write OpenSSL makes on the fd, and the data events run under it, so kernel I/O on the fd
// is attributed to TLSWRAP.
import AsyncHooks
import AsyncTraceRuntime
import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// OpenSSL doing the socket's I/O directly on its fd (a socket BIO), non-blocking.
final class OpenSSLTransport: SocketTransport {
    var ssl: OpaquePointer?
    let context: SecureContext
    let asyncID: AsyncID
    var attached = false
    let verifyName: String?

    init(context: SecureContext, asyncID: AsyncID, servername: String?) throws(TLSConfigurationError) {
        guard let ssl = SSL_new(context.ctx) else { throw SecureContext.lastError("ERR_SSL_NEW") }
        self.ssl = ssl
        self.context = context
        self.asyncID = asyncID
        self.verifyName = servername
        if !context.isServer {
            SSL_set_connect_state(ssl)
            if let name = servername {
                if SocketAddress.numeric(host: name, port: 0) == nil || name == "localhost" {
                    _ = copenssl_set_sni(ssl, name)  // SNI carries names, never IP addresses
                    SSL_set1_host(ssl, name)
                } else {
                    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
                }
            }
            if !context.alpnWire.isEmpty {
                _ = context.alpnWire.withUnsafeBufferPointer { SSL_set_alpn_protos(ssl, $0.baseAddress, UInt32($0.count)) }
            }
        } else {
            SSL_set_accept_state(ssl)
        }
    }

    func attach(_ fd: Int32) {
        if !attached, let ssl {
            SSL_set_fd(ssl, fd)
            attached = true
        }
    }

    func handshake(fd: Int32) -> TransportResult {
        guard let ssl else { return .failed(closedError()) }
        attach(fd)
        ERR_clear_error()
        let r = SSL_do_handshake(ssl)
        if r == 1 { return .bytes(0) }
        return result(r, operation: "handshake")
    }

    func read(fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int) -> TransportResult {
        guard let ssl else { return .failed(closedError()) }
        ERR_clear_error()
        let r = SSL_read(ssl, buffer, Int32(clamping: count))
        if r > 0 { return .bytes(Int(r)) }
        return result(r, operation: "read")
    }

    func write(fd: Int32, from buffer: UnsafeRawPointer, count: Int) -> TransportResult {
        guard let ssl else { return .failed(closedError()) }
        ERR_clear_error()
        let r = SSL_write(ssl, buffer, Int32(clamping: count))
        if r > 0 { return .bytes(Int(r)) }
        return result(r, operation: "write")
    }

    func shutdown(fd: Int32) {
        guard let ssl else { return }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)  // sends close_notify; the peer's is not awaited (as Node)
        ERR_clear_error()
    }

    func close() {
        if let ssl { SSL_free(ssl) }
        ssl = nil
    }

    var hasBufferedInput: Bool { ssl.map { SSL_has_pending($0) != 0 } ?? false }

    func closedError() -> NetError {
        NetError(code: "ERR_SSL_CLOSED", syscall: "tls", asyncID: asyncID, message: "TLS session closed")
    }

    /// Maps a failed SSL_* call to the socket's vocabulary, with Node's error codes.
    func result(_ r: Int32, operation: String) -> TransportResult {
        let err = SSL_get_error(ssl, r)
        switch err {
        case SSL_ERROR_WANT_READ:
            return .wouldBlock(wantWrite: false)
        case SSL_ERROR_WANT_WRITE:
            return .wouldBlock(wantWrite: true)
        case SSL_ERROR_ZERO_RETURN:
            return .endOfStream
        case SSL_ERROR_SYSCALL:
            let e = errno
            ERR_clear_error()
            if e == 0 || e == EAGAIN { return operation == "handshake" ? .endOfStream : .endOfStream }
            let sys = SystemError(errno: e, function: operation)
            return .failed(NetError(code: sys.code, errno: e, syscall: operation, asyncID: asyncID, message: "\(operation) \(sys.code)"))
        default:
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK && !context.isServer {
                ERR_clear_error()
                let reason = String(cString: X509_verify_cert_error_string(verify))
                let code = OpenSSLTransport.nodeVerifyCode(Int32(verify))
                var message = reason
                if code == "ERR_TLS_CERT_ALTNAME_INVALID" {
                    message = "Hostname/IP does not match certificate's altnames: Host: \(verifyName ?? "?")"
                }
                return .failed(NetError(code: code, syscall: operation, asyncID: asyncID, message: message))
            }
            let e = ERR_get_error()
            ERR_clear_error()
            let reason = e == 0 ? "ssl error \(err)" : (ERR_reason_error_string(e).map { String(cString: $0) } ?? "ssl error \(e)")
            let code = "ERR_SSL_" + reason.uppercased().map { $0 == " " ? "_" : $0 }.reduce("") { $0 + String($1) }
            return .failed(NetError(code: code, syscall: operation, asyncID: asyncID, message: reason))
        }
    }

    /// Node's codes for certificate verification failures.
    static func nodeVerifyCode(_ v: Int32) -> String {
        switch v {
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: return "DEPTH_ZERO_SELF_SIGNED_CERT"
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: return "SELF_SIGNED_CERT_IN_CHAIN"
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: return "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: return "UNABLE_TO_VERIFY_LEAF_SIGNATURE"
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT: return "UNABLE_TO_GET_ISSUER_CERT"
        case X509_V_ERR_CERT_HAS_EXPIRED: return "CERT_HAS_EXPIRED"
        case X509_V_ERR_CERT_NOT_YET_VALID: return "CERT_NOT_YET_VALID"
        case X509_V_ERR_CERT_SIGNATURE_FAILURE: return "CERT_SIGNATURE_FAILURE"
        case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH: return "ERR_TLS_CERT_ALTNAME_INVALID"
        default: return "ERR_TLS_CERT_VERIFY_\(v)"
        }
    }

    var alpnProtocol: String? {
        guard let ssl else { return nil }
        var p: UnsafePointer<UInt8>?
        var len: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &p, &len)
        guard let p, len > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: p, count: Int(len)), as: UTF8.self)
    }

    var servername: String? {
        guard let ssl, let p = copenssl_servername(ssl) else { return nil }
        return String(cString: p)
    }

    var protocolVersion: String? {
        guard let ssl else { return nil }
        return String(cString: SSL_get_version(ssl))
    }

    var peerSubject: String? {
        guard let ssl, let cert = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(cert) }
        guard let name = X509_get_subject_name(cert) else { return nil }
        var buf = [CChar](repeating: 0, count: 256)
        X509_NAME_oneline(name, &buf, Int32(buf.count))
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Node's `tls.TLSSocket`: a TCP socket with TLS under its bytes. Use `socket` for the stream API
/// (write, end, onData, onEnd, onClose, onError...), which runs under this TLSWRAP.
public final class TLSSocket {
    /// The TCP socket underneath (its stream API carries the decrypted bytes).
    public let socket: Socket
    /// TLSWRAP.
    public let context: AsyncResourceContext
    let transport: OpenSSLTransport
    /// Whether this is the server's end.
    public let isServer: Bool
    /// The handshake completed and (for clients) the certificate verified against the trusted CAs.
    public private(set) var authorized = false
    /// The ALPN protocol both ends agreed on, once the handshake completed (nil: none).
    public private(set) var alpnProtocol: String?
    /// The SNI name of the connection, once the handshake completed.
    public private(set) var servername: String?
    /// The TLS version ("TLSv1.3"), once the handshake completed.
    public private(set) var protocolVersion: String?
    /// The peer certificate's subject ("/CN=localhost"), when it sent one.
    public private(set) var peerCertificateSubject: String?
    /// Whether the handshake completed.
    public private(set) var secure = false
    var secureListeners: [() throws -> Void] = []

    init(socket: Socket, secureContext: SecureContext, servername: String?) throws(TLSConfigurationError) {
        self.socket = socket
        self.isServer = secureContext.isServer
        context = AsyncResourceContext(type: .tlsWrap, triggerAsyncID: socket.asyncID)
        do {
            transport = try OpenSSLTransport(context: secureContext, asyncID: context.asyncID, servername: servername)
        } catch {
            context.emitDestroy()
            throw error
        }
        socket.onHandshakeDone = { [self] in try handshakeDone() }
        socket.installTransport(transport, context: context)
    }

    func handshakeDone() throws {
        secure = true
        authorized = isServer || transport.context.options.rejectUnauthorized
        alpnProtocol = transport.alpnProtocol
        servername = transport.servername
        protocolVersion = transport.protocolVersion
        peerCertificateSubject = transport.peerSubject
        let l = secureListeners
        secureListeners = []
        for f in l { try f() }
    }

    /// 'secureConnect' (clients) / 'secure' (servers): the handshake completed.
    @discardableResult
    public func onSecureConnect(_ f: @escaping () throws -> Void) -> TLSSocket { secureListeners.append(f); return self }

    /// Writes `data` (encrypted before it is sent); false when the queue is at or past its high-water mark;
    /// `cb` runs once the bytes are handed to the kernel (or with the error that stopped them).
    @discardableResult public func write(_ data: [UInt8], _ cb: ((NetError?) throws -> Void)? = nil) -> Bool { socket.write(data, cb) }
    /// Writes the string's UTF-8 bytes.
    @discardableResult public func write(_ s: String) -> Bool { socket.write(s) }
    /// Sends `data`, if any, then ends the writing side (`Socket.end`).
    public func end(_ data: [UInt8]? = nil) { socket.end(data) }
    /// Closes the connection now (`Socket.destroy`): 'error' follows when `error` is given, then 'close'.
    public func destroy(_ error: NetError? = nil) { socket.destroy(error) }
    /// 'data': `f` runs with each piece of decrypted data.
    @discardableResult public func onData(_ f: @escaping ([UInt8]) throws -> Void) -> TLSSocket { socket.onData(f); return self }
    /// 'end': the peer ended its side.
    @discardableResult public func onEnd(_ f: @escaping () throws -> Void) -> TLSSocket { socket.onEnd(f); return self }
    /// 'close': the connection closed (`true`: because of an error).
    @discardableResult public func onClose(_ f: @escaping (Bool) throws -> Void) -> TLSSocket { socket.onClose(f); return self }
    /// 'error': the connection or the handshake failed.
    @discardableResult public func onError(_ f: @escaping (NetError) throws -> Void) -> TLSSocket { socket.onError(f); return self }
    /// The TLSWRAP resource's async id.
    public var asyncID: AsyncID { context.asyncID }
}

/// Node's `tls` functions.
public enum TLS {
    /// Node's `tls.connect`: TCP connect, then the TLS handshake; 'secureConnect' when it completed and
    /// the server's certificate verified (or `rejectUnauthorized` is false). Failures arrive as 'error'
    /// on `socket` (ECONNREFUSED, DEPTH_ZERO_SELF_SIGNED_CERT, ERR_TLS_CERT_ALTNAME_INVALID, ERR_SSL_...).
    public static func connect(
        port: Int, host: String = "localhost", options: TLSOptions = TLSOptions(),
        loop: EventLoop = .current, _ onSecureConnect: (() throws -> Void)? = nil
    ) throws -> TLSSocket {
        let context = try SecureContext(server: false, options: options)
        return try connect(port: port, host: host, context: context, loop: loop, onSecureConnect)
    }

    /// Node's `tls.connect` with a context made already (shared by many connections).
    public static func connect(
        port: Int, host: String = "localhost", context: SecureContext,
        loop: EventLoop = .current, _ onSecureConnect: (() throws -> Void)? = nil
    ) throws -> TLSSocket {
        let socket = Socket.connect(port: port, host: host, loop: loop)
        let tls: TLSSocket
        do {
            tls = try TLSSocket(socket: socket, secureContext: context, servername: context.options.servername ?? host)
        } catch {
            socket.destroy()
            throw error
        }
        if let onSecureConnect { tls.onSecureConnect(onSecureConnect) }
        return tls
    }
}

/// Node's `tls.Server`: a TCP server whose connections handshake before 'secureConnection'.
public final class TLSServer {
    /// The TCP server underneath.
    public let server: Server
    /// The server's context (certificate, key, ALPN).
    public let secureContext: SecureContext
    var secureListeners: [(TLSSocket) throws -> Void] = []
    var clientErrorListeners: [(NetError, TLSSocket) throws -> Void] = []

    /// A server (not listening yet) with `options`' certificate and key; throws when they cannot be used.
    public init(options: TLSOptions, loop: EventLoop = .current, _ onSecureConnection: ((TLSSocket) throws -> Void)? = nil) throws {
        secureContext = try SecureContext(server: true, options: options)
        server = Server(loop: loop)
        if let onSecureConnection { secureListeners.append(onSecureConnection) }
        server.onConnection { [self] socket in
            let tls: TLSSocket
            do { tls = try TLSSocket(socket: socket, secureContext: secureContext, servername: nil) } catch {
                socket.destroy()
                return
            }
            // Errors before the handshake completed are the server's 'tlsClientError'.
            socket.onError { [self] e in
                guard !tls.secure else { return }
                if clientErrorListeners.isEmpty { return }  // Node: the socket is destroyed, nothing thrown
                for f in clientErrorListeners { try f(e, tls) }
            }
            tls.onSecureConnect { [self] in for f in secureListeners { try f(tls) } }
        }
    }

    /// Serve `context` (its certificate) to clients asking for `hostname` by SNI.
    public func addContext(_ hostname: String, options: TLSOptions) throws {
        secureContext.addContext(hostname, try SecureContext(server: true, options: options))
    }

    /// Starts listening on `host`:`port` (0: any free port; see `address()`); `onListening` runs once it listens.
    @discardableResult
    public func listen(port: Int = 0, host: String = "0.0.0.0", _ onListening: Callback? = nil) -> TLSServer {
        server.listen(port: port, host: host, onListening)
        return self
    }

    /// Stops accepting connections; `callback` runs once the server closed.
    public func close(_ callback: ((NetError?) throws -> Void)? = nil) { server.close(callback) }
    /// The bound address, nil before `listen` took effect.
    public func address() -> SocketAddress? { server.address() }
    /// 'secureConnection': `f` runs with each connection whose handshake completed.
    @discardableResult public func onSecureConnection(_ f: @escaping (TLSSocket) throws -> Void) -> TLSServer {
        secureListeners.append(f); return self
    }
    /// A connection whose handshake failed (the socket is destroyed).
    @discardableResult public func onTLSClientError(_ f: @escaping (NetError, TLSSocket) throws -> Void) -> TLSServer {
        clientErrorListeners.append(f); return self
    }
    /// 'error': the listening socket failed.
    @discardableResult public func onError(_ f: @escaping (NetError) throws -> Void) -> TLSServer { server.onError(f); return self }
}
