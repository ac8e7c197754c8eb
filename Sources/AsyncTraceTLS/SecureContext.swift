// TLS configuration (Node's `tls.createSecureContext`) over OpenSSL: certificate and key, trusted
// CAs, verification, ALPN. Verification is on by default for clients.
import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// Node's TLS options, the subset this runtime supports.
public struct TLSOptions: Sendable {
    /// PEM text, or a path in the `File` variants.
    public var certificatePEM: String?
    /// A path to the PEM certificate (chain).
    public var certificateFile: String?
    /// The private key as PEM text.
    public var privateKeyPEM: String?
    /// A path to the PEM private key.
    public var privateKeyFile: String?
    /// Trusted CAs for verifying the peer (PEM text or a file); without one, the system store.
    public var caPEM: String?
    /// A path to a PEM file of trusted CAs.
    public var caFile: String?
    /// Clients: fail the handshake when the server's certificate does not verify (Node's default: true).
    public var rejectUnauthorized = true
    /// Clients: the SNI name and the name the certificate must match (default: the host connected to).
    public var servername: String?
    /// ALPN protocols, most preferred first ("h2", "http/1.1").
    public var alpnProtocols: [String] = []

    /// Options from their parts; nothing is read until a `SecureContext` is made from them.
    public init(
        certificatePEM: String? = nil, certificateFile: String? = nil, privateKeyPEM: String? = nil,
        privateKeyFile: String? = nil, caPEM: String? = nil, caFile: String? = nil,
        rejectUnauthorized: Bool = true, servername: String? = nil, alpnProtocols: [String] = []
    ) {
        self.certificatePEM = certificatePEM
        self.certificateFile = certificateFile
        self.privateKeyPEM = privateKeyPEM
        self.privateKeyFile = privateKeyFile
        self.caPEM = caPEM
        self.caFile = caFile
        self.rejectUnauthorized = rejectUnauthorized
        self.servername = servername
        self.alpnProtocols = alpnProtocols
    }
}

/// A bad configuration (unreadable certificate, key not matching, ...), with OpenSSL's reason.
public struct TLSConfigurationError: Error, CustomStringConvertible {
    /// A short code naming the failing step (e.g. "ERR_SSL_CTX_NEW").
    public let code: String
    /// OpenSSL's reason.
    public let message: String
    public var description: String { "\(code): \(message)" }
}

/// An SSL_CTX built from options. Shared by every connection made with it.
public final class SecureContext: @unchecked Sendable {
    let ctx: OpaquePointer
    let isServer: Bool
    /// The options it was built from.
    public let options: TLSOptions
    /// ALPN list in wire format (length-prefixed names).
    let alpnWire: [UInt8]
    /// Server: contexts selected by SNI name (Node's `server.addContext`).
    var sniContexts: [(name: String, context: SecureContext)] = []

    /// Builds the context for a server or a client: reads the certificate, key and CAs; throws when one
    /// cannot be read or the key does not match.
    public init(server: Bool, options: TLSOptions) throws(TLSConfigurationError) {
        ignoreSIGPIPE
        guard let ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()) else {
            throw SecureContext.lastError("ERR_SSL_CTX_NEW")
        }
        self.ctx = ctx
        self.isServer = server
        self.options = options
        var wire: [UInt8] = []
        for p in options.alpnProtocols where !p.isEmpty && p.utf8.count < 256 {
            wire.append(UInt8(p.utf8.count))
            wire += Array(p.utf8)
        }
        alpnWire = wire
        _ = copenssl_ctx_set_min_tls12(ctx)
        _ = copenssl_ctx_set_mode(ctx, copenssl_partial_write_modes())
        // Read whole socket buffers, not a record header then its body: fewer read(2)s per record.
        copenssl_ctx_set_read_ahead(ctx)
        // A peer closing without close_notify is an end of stream, not an error (as Node treats it).
        SSL_CTX_set_options(ctx, copenssl_op_ignore_unexpected_eof())
        try configure(options)
    }

    deinit { SSL_CTX_free(ctx) }

    private func configure(_ o: TLSOptions) throws(TLSConfigurationError) {
        if let pem = o.certificatePEM {
            let certs = SecureContext.readCertificates(pem)
            defer { certs.forEach { X509_free($0) } }
            guard let first = certs.first else {
                throw TLSConfigurationError(code: "ERR_TLS_INVALID_CERT", message: "no certificate in the PEM text")
            }
            guard SSL_CTX_use_certificate(ctx, first) == 1 else { throw SecureContext.lastError("ERR_TLS_INVALID_CERT") }
            for c in certs.dropFirst() { _ = copenssl_ctx_add_extra_chain_cert(ctx, X509_dup(c)) }
        } else if let file = o.certificateFile {
            guard SSL_CTX_use_certificate_chain_file(ctx, file) == 1 else { throw SecureContext.lastError("ERR_TLS_INVALID_CERT", file) }
        }
        if let pem = o.privateKeyPEM {
            let bio = SecureContext.memoryBIO(pem)
            defer { BIO_free(bio) }
            guard let key = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else { throw SecureContext.lastError("ERR_TLS_INVALID_KEY") }
            defer { EVP_PKEY_free(key) }
            guard SSL_CTX_use_PrivateKey(ctx, key) == 1 else { throw SecureContext.lastError("ERR_TLS_INVALID_KEY") }
        } else if let file = o.privateKeyFile {
            guard SSL_CTX_use_PrivateKey_file(ctx, file, SSL_FILETYPE_PEM) == 1 else { throw SecureContext.lastError("ERR_TLS_INVALID_KEY", file) }
        }
        if o.certificatePEM != nil || o.certificateFile != nil {
            guard SSL_CTX_check_private_key(ctx) == 1 else { throw SecureContext.lastError("ERR_TLS_KEY_MISMATCH") }
        }
        if let pem = o.caPEM {
            let store = SSL_CTX_get_cert_store(ctx)
            let certs = SecureContext.readCertificates(pem)
            guard !certs.isEmpty else { throw TLSConfigurationError(code: "ERR_TLS_INVALID_CA", message: "no certificate in the CA PEM text") }
            for c in certs {
                X509_STORE_add_cert(store, c)
                X509_free(c)
            }
        } else if let file = o.caFile {
            guard SSL_CTX_load_verify_locations(ctx, file, nil) == 1 else { throw SecureContext.lastError("ERR_TLS_INVALID_CA", file) }
        } else if !isServer {
            SSL_CTX_set_default_verify_paths(ctx)
        }
        if !isServer {
            SSL_CTX_set_verify(ctx, o.rejectUnauthorized ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nil)
        }
        if isServer && !alpnWire.isEmpty {
            SSL_CTX_set_alpn_select_cb(
                ctx,
                { _, out, outlen, inp, inlen, arg in
                    let me = Unmanaged<SecureContext>.fromOpaque(arg!).takeUnretainedValue()
                    var selected: UnsafeMutablePointer<UInt8>?
                    var selectedLength: UInt8 = 0
                    let r = me.alpnWire.withUnsafeBufferPointer { server in
                        SSL_select_next_proto(&selected, &selectedLength, server.baseAddress, UInt32(server.count), inp, inlen)
                    }
                    guard r == OPENSSL_NPN_NEGOTIATED, let selected else { return copenssl_alpn_noack() }
                    // OpenSSL wants a pointer into the client's list; map the server entry we matched back into it.
                    let name = Array(UnsafeBufferPointer(start: selected, count: Int(selectedLength)))
                    var i = 0
                    while i < Int(inlen) {
                        let len = Int(inp![i])
                        if len == name.count && Array(UnsafeBufferPointer(start: inp! + i + 1, count: len)) == name {
                            out!.pointee = inp! + i + 1
                            outlen!.pointee = UInt8(len)
                            return SSL_TLSEXT_ERR_OK
                        }
                        i += 1 + len
                    }
                    return copenssl_alpn_noack()
                }, Unmanaged.passUnretained(self).toOpaque())
        }
    }

    /// Server: use `context` for connections whose SNI name is `hostname` (exact, or "*.domain").
    public func addContext(_ hostname: String, _ context: SecureContext) {
        if sniContexts.isEmpty {
            _ = copenssl_ctx_set_servername_cb(
                ctx,
                { ssl, _, arg in
                    let me = Unmanaged<SecureContext>.fromOpaque(arg!).takeUnretainedValue()
                    guard let p = copenssl_servername(ssl) else { return copenssl_sni_noack() }
                    let name = String(cString: p).lowercased()
                    if let match = me.sniContexts.first(where: { SecureContext.matches(pattern: $0.name, name) }) {
                        SSL_set_SSL_CTX(ssl, match.context.ctx)
                    }
                    return copenssl_sni_ok()
                }, Unmanaged.passUnretained(self).toOpaque())
        }
        sniContexts.append((hostname.lowercased(), context))
    }

    static func matches(pattern: String, _ name: String) -> Bool {
        if pattern.hasPrefix("*.") {
            return name.hasSuffix(pattern.dropFirst(1)) && name.split(separator: ".").count == pattern.split(separator: ".").count
        }
        return pattern == name
    }

    static func memoryBIO(_ text: String) -> OpaquePointer {
        let bytes = Array(text.utf8)
        let bio = BIO_new(BIO_s_mem())!
        _ = bytes.withUnsafeBytes { BIO_write(bio, $0.baseAddress, Int32($0.count)) }
        return bio
    }

    static func readCertificates(_ pem: String) -> [OpaquePointer] {
        let bio = memoryBIO(pem)
        defer { BIO_free(bio) }
        var out: [OpaquePointer] = []
        while let x = PEM_read_bio_X509(bio, nil, nil, nil) { out.append(x) }
        ERR_clear_error()  // the loop ends with a "no start line" error
        return out
    }

    static func lastError(_ code: String, _ context: String? = nil) -> TLSConfigurationError {
        let e = ERR_get_error()
        ERR_clear_error()
        var reason = e == 0 ? "unknown error" : (ERR_reason_error_string(e).map { String(cString: $0) } ?? "error \(e)")
        if let context { reason += " (\(context))" }
        return TLSConfigurationError(code: code, message: reason)
    }
}

/// OpenSSL writes to sockets with write(2): a peer gone mid-write must be EPIPE, not a fatal SIGPIPE
/// (Node ignores SIGPIPE process-wide too).
let ignoreSIGPIPE: Void = {
    signal(SIGPIPE, SIG_IGN)
}()
