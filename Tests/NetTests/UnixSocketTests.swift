// Unix-domain sockets: the same Server/Socket API with a path; PIPE* resource types; errors.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import Testing
@testable import AsyncTraceRuntime

@Suite("Unix sockets")
struct UnixSocketTests {
    @Test("echo over a path; PIPESERVERWRAP/PIPEWRAP/PIPECONNECTWRAP; the path is removed on close; balanced")
    func echo() {
        let path = tempSocketPath("echo")
        unlink(path)
        let (lines, hook) = runTraced { log in
            let server = Server { s in s.onData { s.write($0) } }
            server.listen(path: path) {
                log("address \(server.address()!) \(server.address()!.family)")
                let c = Socket.connect(path: path)
                var got: [UInt8] = []
                c.onConnect { c.write("over a unix socket") }
                c.onData { d in
                    got += d
                    if got.count == 18 { log(String(decoding: got, as: UTF8.self)); c.end() }
                }
                c.onClose { _ in server.close { _ in log("closed, path exists: \(access(path, F_OK) == 0)") } }
            }
        }
        #expect(lines == ["address \(path) Unix", "over a unix socket", "closed, path exists: false"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
        #expect(hook.typeCounts["PIPESERVERWRAP"] == 1 && hook.typeCounts["PIPEWRAP"] == 2 && hook.typeCounts["PIPECONNECTWRAP"] == 1)
        let server = hook.ids(of: "PIPESERVERWRAP").first!
        #expect(hook.resource(hook.ids(of: "PIPEWRAP")[1])?.trigger == server)
    }

    @Test("connecting to a missing path: ENOENT error event; listening on a used path: EADDRINUSE")
    func errors() {
        let path = tempSocketPath("errors")
        unlink(path)
        let (lines, hook) = runTraced { log in
            let c = Socket.connect(path: path + ".missing")
            c.onError { e in log("connect \(e.code) \(e.errno == ENOENT) \(e.asyncID == c.asyncID)") }
            c.onClose { _ in log("close") }
            let a = Server()
            a.listen(path: path) {
                let b = Server()
                b.onError { e in
                    log("listen \(e.code)"); a.close()
                }
                b.listen(path: path)
            }
        }
        #expect(Set(lines) == ["connect ENOENT true true", "close", "listen EADDRINUSE"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }
}
