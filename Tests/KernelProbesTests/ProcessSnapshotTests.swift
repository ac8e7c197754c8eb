// The /proc snapshot taken at attach describes this process's own fds and threads (no BPF needed).
import Foundation
@testable import KernelProbes
import Testing
import TraceFormat

@Suite struct ProcessSnapshotTests {
    @Test func fdsOpenAtAttachHaveKindsPathsAndAddresses() throws {
        let path = temporaryPath("snapshot-file")
        _ = FileManager.default.createFile(atPath: path, contents: Data([1, 2, 3]))
        let file = open(path, O_RDONLY | O_CLOEXEC)
        let dir = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        var fds: [Int32] = [0, 0]
        _ = pipe(&fds)
        // A listener on 127.0.0.1, a client connected to it, and the accepted end.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                _ = bind(listener, $0, len)
                _ = listen(listener, 4)
                _ = getsockname(listener, $0, &len)
            }
        }
        let port = UInt16(bigEndian: addr.sin_port)
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = connect(client, $0, len) } }
        let accepted = accept(listener, nil, nil)
        var local = sockaddr_in()
        var localLen = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(client, $0, &localLen) } }
        let clientPort = UInt16(bigEndian: local.sin_port)
        defer { for fd in [file, dir, fds[0], fds[1], listener, client, accepted] { close(fd) } }

        let events = ProcessSnapshot.events(pid: getpid(), timestampNs: 42)
        func fdEvent(_ fd: Int32) -> KernelEvent? { events.first { $0.kind == .fdOpen && $0.fd == fd } }
        #expect(events.allSatisfy { $0.timestampNs == 42 && $0.pid == UInt32(getpid()) })
        #expect(
            fdEvent(file).map { ($0.fdKind, $0.detail, $0.tid, $0.sourceFd) } ?? (0, "", 1, 0)
                == (FDKind.file.rawValue, path, 0, -1))
        #expect(fdEvent(dir)?.fdKind == FDKind.directory.rawValue && fdEvent(dir)?.detail == "/tmp")
        #expect(fdEvent(fds[0])?.fdKind == FDKind.pipe.rawValue && fdEvent(fds[1])?.fdKind == FDKind.pipe.rawValue)
        #expect(fdEvent(listener)?.fdKind == FDKind.tcp.rawValue)
        #expect(fdEvent(listener)?.detail == "127.0.0.1:\(port)")
        #expect(fdEvent(client)?.detail == "127.0.0.1:\(clientPort)->127.0.0.1:\(port)")
        #expect(fdEvent(accepted)?.detail == "127.0.0.1:\(port)->127.0.0.1:\(clientPort)")
        // Every thread of this process, with its name.
        let names = events.filter { $0.kind == .threadName }
        #expect(names.contains { $0.tid == UInt32(getpid()) && !$0.detail.isEmpty })
        #expect(names.count == ProcessSnapshot.numericEntries("/proc/self/task").count || names.count > 1)
    }

    @Test func ipv6AndLongDetailsAreWrittenReadably() {
        var e = KernelEvent(kind: .fdOpen, pid: 1, tid: 1, timestampNs: 0)
        let long = "/" + String(repeating: "a", count: 300) + "/end.txt"
        e.detail = long
        #expect(
            e.detail.count == 128 && e.detail.hasPrefix("/aaa") && e.detail.hasSuffix("a/end.txt")
                && e.detail.contains("..."))
        e.detail = "short"
        #expect(e.detail == "short")
        #expect(ProcessSnapshot.procAddress(Array("00000000000000000000000001000000:0050".utf8), v6: true) == "[::1]:80")
        #expect(ProcessSnapshot.procAddress(Array("0100007F:1F90".utf8), v6: false) == "127.0.0.1:8080")
        #expect(ProcessSnapshot.procAddress(Array("0000000000000000FFFF00000100007F:1F90".utf8), v6: true) == "127.0.0.1:8080")
    }
}
