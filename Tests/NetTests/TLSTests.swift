// TLS over loopback with the test-only identities in Fixtures/: verified echo with SNI and ALPN,
// I/O under TLSWRAP, and the failures: untrusted certificate, wrong host name, plain-text client.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import Testing
@testable import AsyncTraceRuntime
@testable import AsyncTraceTLS

enum Fixtures {
    static let directory: String = {
        let file = "\(#filePath)"
        return String(file[..<file.lastIndex(of: "/")!]) + "/Fixtures"
    }()
    static func path(_ name: String) -> String { "\(directory)/\(name)" }
    static var serverOptions: TLSOptions {
        TLSOptions(certificateFile: path("server-cert.pem"), privateKeyFile: path("server-key.pem"), alpnProtocols: ["h2", "http/1.1"])
    }
}

@Suite("TLS")
struct TLSTests {
    @Test("verified echo with SNI and ALPN; data and OpenSSL's I/O run under TLSWRAP; balanced")
    func echo() throws {
        let dataScope = LockedValue<[AsyncID]>([])
        let (lines, hook) = runTraced { log in
            let server = try TLSServer(options: Fixtures.serverOptions) { tls in
                log("server: secure, servername \(tls.servername ?? "-"), alpn \(tls.alpnProtocol ?? "-")")
                tls.onData { tls.write($0) }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let port = server.address()!.port
                var options = TLSOptions(caFile: Fixtures.path("ca.pem"), alpnProtocols: ["http/1.1"])
                options.servername = "localhost"
                var got: [UInt8] = []
                let client = try TLS.connect(port: port, host: "127.0.0.1", options: options)
                client.onSecureConnect {
                    log(
                        "client: authorized \(client.authorized), alpn \(client.alpnProtocol ?? "-"), \(client.protocolVersion ?? "-"), peer \(client.peerCertificateSubject ?? "-")"
                    )
                    client.write("hello over tls")
                }
                client.onData { data in
                    dataScope.withLock { $0.append(executionAsyncID()) }
                    got += data
                    if got.count == 14 {
                        log("echo: \(String(decoding: got, as: UTF8.self))")
                        client.end()
                    }
                }
                client.onClose { _ in server.close() }
            }
        }
        // TLS 1.3: the client's handshake completes first, then the server's.
        #expect(
            Set(lines.prefix(2)) == [
                "server: secure, servername localhost, alpn http/1.1",
                "client: authorized true, alpn http/1.1, TLSv1.3, peer /CN=localhost",
            ])
        #expect(lines.last == "echo: hello over tls")
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
        let tlsWraps = hook.ids(of: "TLSWRAP")
        #expect(tlsWraps.count == 2)
        #expect(!dataScope.withLock { $0 }.isEmpty && dataScope.withLock { $0 }.allSatisfy { tlsWraps.contains($0) })
        // Each TLSWRAP records the fd of its TCP socket and is triggered by it.
        for id in tlsWraps {
            let r = hook.resource(id)
            #expect((r?.fds.first ?? -1) >= 0)
            #expect(hook.resource(r!.trigger)?.type == "TCPWRAP")
        }
    }

    @Test("untrusted certificate and wrong host name fail the handshake with Node's codes; the server sees tlsClientError")
    func badCertificates() throws {
        let (lines, hook) = runTraced { log in
            let server = try TLSServer(options: Fixtures.serverOptions) { _ in log("server: secure (client c)") }
            var clientErrors = 0
            server.onTLSClientError { e, _ in
                clientErrors += 1; _ = e
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let port = server.address()!.port
                var remaining = 3
                func done() {
                    remaining -= 1
                    if remaining == 0 {
                        setTimeout(20) {
                            log("server tlsClientErrors \(clientErrors > 0)"); server.close()
                        }
                    }
                }
                // 1. Trusting another CA.
                let a = try TLS.connect(
                    port: port, host: "127.0.0.1", options: TLSOptions(caFile: Fixtures.path("other-ca.pem"), servername: "localhost"))
                a.onSecureConnect { log("a secure?!") }
                a.onError { e in log("a: \(e.code) \(e.asyncID == a.asyncID)") }
                a.onClose { _ in done() }
                // 2. The right CA, the wrong name.
                let b = try TLS.connect(
                    port: port, host: "127.0.0.1", options: TLSOptions(caFile: Fixtures.path("ca.pem"), servername: "example.com"))
                b.onError { e in log("b: \(e.code)") }
                b.onClose { _ in done() }
                // 3. Verification off: connects, not authorized.
                let c = try TLS.connect(
                    port: port, host: "127.0.0.1", options: TLSOptions(caFile: Fixtures.path("other-ca.pem"), rejectUnauthorized: false))
                c.onSecureConnect {
                    log("c: secure, authorized \(c.authorized)"); c.end()
                }
                c.onClose { _ in done() }
            }
        }
        #expect(
            Set(lines) == [
                "a: UNABLE_TO_GET_ISSUER_CERT_LOCALLY true", "b: ERR_TLS_CERT_ALTNAME_INVALID",
                "c: secure, authorized false", "server: secure (client c)", "server tlsClientErrors true",
            ])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }

    @Test("SNI: the server picks the certificate for the name the client asks for")
    func sniContexts() throws {
        let (lines, hook) = runTraced { log in
            // Default context: a certificate the client does not trust; "localhost": the CA-signed one.
            let untrusted = TLSOptions(certificateFile: Fixtures.path("other-ca.pem"), privateKeyFile: Fixtures.path("other-key.pem"))
            let server = try TLSServer(options: untrusted) { tls in
                log("server: \(tls.servername ?? "-")"); tls.end()
            }
            try server.addContext("localhost", options: Fixtures.serverOptions)
            server.listen(port: 0, host: "127.0.0.1") {
                let c = try TLS.connect(port: server.address()!.port, host: "localhost", options: TLSOptions(caFile: Fixtures.path("ca.pem")))
                c.onSecureConnect { log("client: \(c.authorized)") }
                c.onData { _ in }
                c.onError { e in log("client error \(e.code)") }
                c.onClose { _ in server.close() }
            }
        }
        #expect(Set(lines) == ["server: localhost", "client: true"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }

    @Test("a plain-text client against a TLS server: the server reports a TLS error; nothing leaks")
    func plainTextClient() throws {
        let (lines, hook) = runTraced { log in
            let server = try TLSServer(options: Fixtures.serverOptions) { _ in log("secure?!") }
            server.onTLSClientError { e, _ in log("tlsClientError \(e.code.hasPrefix("ERR_SSL_"))") }
            server.listen(port: 0, host: "127.0.0.1") {
                let raw = Socket.connect(port: server.address()!.port, host: "127.0.0.1")
                raw.onConnect { raw.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n") }
                raw.onData { _ in }
                raw.onError { _ in }
                raw.onClose { _ in server.close() }
            }
        }
        #expect(lines == ["tlsClientError true"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }
}
