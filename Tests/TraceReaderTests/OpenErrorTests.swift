import Foundation
import Testing
import TraceFormat
@testable import TraceReader

@Suite struct OpenErrorTests {
    private func openError(_ bytes: [UInt8]?, _ name: String) -> TraceOpenError? {
        let path = temporaryTracePath(name)
        if let bytes { writeFile(path, bytes) }
        defer { removeFile(path) }
        do {
            _ = try TraceReader(path: path)
            return nil
        } catch {
            return error
        }
    }

    @Test func missingFile() {
        let e = openError(nil, "missing")
        guard case .noSuchFile = e else { Issue.record("got \(String(describing: e))"); return }
        #expect(e!.description.hasSuffix("no such file"))
    }

    @Test func directory() {
        do {
            _ = try TraceReader(path: NSTemporaryDirectory())
            Issue.record("a directory opened")
        } catch {
            guard case .isDirectory = error else { Issue.record("got \(error)"); return }
        }
    }

    @Test func emptyFile() {
        let e = openError([], "empty")
        guard case .emptyFile = e else { Issue.record("got \(String(describing: e))"); return }
        #expect(e!.description.contains("empty"))
    }

    @Test func notATrace() {
        let e = openError(Array("#!/bin/sh\necho hello, this is a shell script\n".utf8), "script")
        guard case .notATrace = e else { Issue.record("got \(String(describing: e))"); return }
        #expect(e!.description.contains("not an asynctrace trace file"))
        // Shorter than the magic and not its prefix is also not a trace.
        guard case .notATrace = openError([0x7f, 0x45, 0x4c], "elf") else { Issue.record("short non-trace"); return }
    }

    @Test func newerFormatVersion() {
        var bytes = FileHeader(pid: 1, monotonicStartNs: 0, realtimeStartNs: 0, program: "x").encode()
        bytes[8] = UInt8(TraceFileFormat.currentVersion + 1)
        let e = openError(bytes, "newer")
        guard case .newerVersion(_, let found, let supported) = e else { Issue.record("got \(String(describing: e))"); return }
        #expect(found == TraceFileFormat.currentVersion + 1 && supported == TraceFileFormat.currentVersion)
        #expect(e!.description.contains("newer asynctrace"))
    }

    @Test func truncatedHeaderAtEveryLength() {
        let bytes = FileHeader(pid: 1, monotonicStartNs: 2, realtimeStartNs: 3, program: "./app").encode()
        for n in 1..<bytes.count {
            let e = openError(Array(bytes[0..<n]), "cut\(n)")
            guard case .truncatedHeader(_, let got) = e else { Issue.record("length \(n): got \(String(describing: e))"); continue }
            #expect(got == n)
        }
    }

    @Test func damagedHeader() {
        var bytes = FileHeader(pid: 1, monotonicStartNs: 2, realtimeStartNs: 3, program: "./app").encode()
        bytes[14] ^= 0x10
        guard case .corruptHeader = openError(bytes, "corrupt") else { Issue.record("damage not found"); return }
    }

    @Test func headerOnlyIsAnEmptyTrace() throws {
        let path = temporaryTracePath("headeronly")
        writeFile(path, FileHeader(pid: 9, monotonicStartNs: 2, realtimeStartNs: 3, program: "./app").encode())
        defer { removeFile(path) }
        let r = try TraceReader(path: path)
        #expect(r.header.pid == 9 && r.header.program == "./app")
        #expect(r.streams.isEmpty && r.damage.isEmpty && r.eventCount == 0)
        #expect(r.events().next() == nil)
    }
}
