// Issue 13: traces whose checksums are right but whose numbers and names are hostile. The analyses saturate
// instead of trapping, and no view lets a name reach the terminal as an escape sequence.
import Foundation
import Testing
import TraceAnalyses
import TraceFormat
import TraceReader
import TraceReports
import TraceText

@Suite struct HostileTraceTests {
    @Test func durationSumsThatOverflowSaturate() throws {
        // Syscall durations are file fields: each one ~2^63, their sums (per syscall, per fd, per epoll thread)
        // used to trap.
        let end = UInt64.max - 10
        var k = StreamScript(pid: 5, tid: 0, kernel: true, startNs: 0)
        k.syscall(pid: 5, tid: 6, nr: 0, fd: 3, size: 10, ret: Int64.max, enter: 1, exit: end)
        k.syscall(pid: 5, tid: 6, nr: 0, fd: 3, size: 10, ret: Int64.max, enter: 2, exit: end)
        k.syscall(pid: 5, tid: 6, nr: 0, fd: 3, size: 10, ret: Int64.max, enter: 3, exit: end)
        k.epollWait(pid: 5, tid: 6, epfd: 4, ret: 1, enter: 1, exit: end, ready: [3])
        k.epollWait(pid: 5, tid: 6, epfd: 4, ret: 1, enter: 1, exit: end, ready: [3])
        let path = writeTrace([k], pid: 5, startNs: 0)
        defer { removeTrace(path) }
        let a = analyzeTrace(try TraceReader(path: path))
        let read = try #require(a.io.syscalls.first { $0.name == "read" })
        #expect(read.count == 3 && read.totalNs == .max && read.bytes == .max)
        let fd = try #require(a.io.fds.first { $0.fd == 3 })
        #expect(fd.kernelNs == .max && fd.bytesRead == .max)
        #expect(a.kernelLoop?.threads.first?.waitNs == .max)
        _ = TextReport.render(a)
        _ = JSONReport.render(a)
    }

    @Test func forkedChildrenInheritBoundedFdTables() throws {
        // A forked child's fds are its parent's (as the parent had them at the fork), taken when the child uses
        // them. A crafted trace forks 2,000 children of a parent with 4,000 fds: what is kept is bounded (at most
        // 4,096 per child and 262,144 in all), not 8 million entries; children past the bound have unknown fds.
        var k = StreamScript(pid: 100, tid: 0, kernel: true, startNs: 0)
        for fd in 0..<4_000 { k.fdOpen(pid: 100, tid: 100, fd: Int64(fd), kind: .file, "/f/\(fd)", at: 10) }
        for i in 0..<2_000 {
            let ns = UInt64(100 + 10 * i), child = UInt32(1_000 + i)
            k.processFork(parent: 100, child: child, at: ns)
            k.syscall(pid: child, tid: child, nr: 1, fd: 3, size: 1, ret: 1, enter: ns + 1, exit: ns + 2)
        }
        let path = writeTrace([k], pid: 100, startNs: 0)
        defer { removeTrace(path) }
        let a = analyzeTrace(try TraceReader(path: path))
        let children = a.io.fds.filter { $0.pid >= 1_000 && $0.fd == 3 }
        #expect(children.count == 2_000)
        let named = children.filter { $0.path == "/f/3" && $0.kind == "file" }
        // 262,144 / 4,000: the first 65 children hold all their parent's fds; the 66th the 2,209 lowest that are
        // left (and those the 65 took back by using fd 3), later ones as many as the children before them took.
        #expect(named.count == 66, "\(named.count) of \(children.count)")
        #expect(named.allSatisfy { $0.pid < 1_066 } && named.first?.openedNs == 100)
        _ = TextReport.render(a)
        _ = JSONReport.render(a)
    }

    @Test func callbackDurationSumsSaturate() throws {
        // Three threads, each with one callback of ~2^64/3 ns: the per-type total used to wrap or trap.
        let third = UInt64.max / 3 + 2
        var streams: [StreamScript] = []
        for tid: UInt32 in 1...3 {
            var m = StreamScript(pid: 5, tid: tid, startNs: 0)
            m.initResource(UInt64(tid), "Timeout", trigger: 0, at: 0)
            m.before(UInt64(tid), at: 1)
            m.after(UInt64(tid), at: third)
            streams.append(m)
        }
        let path = writeTrace(streams, pid: 5, startNs: 0)
        defer { removeTrace(path) }
        var options = AnalysisOptions()
        options.blockingThresholdNs = 1
        let a = analyzeTrace(try TraceReader(path: path), options: options)
        let timeout = try #require(a.resources.first { $0.type == "Timeout" })
        #expect(timeout.callbacks.count == 3 && timeout.callbacks.totalNs == .max)
        #expect(a.blocking.count == 3 && a.blocking.totalNs == .max)
        #expect(TextReport.render(a).contains("BLOCKING: 3 callbacks"))
    }

    @Test func namesCannotReachTheTerminalRaw() throws {
        // What a hostile program can name itself, its threads and its resource types.
        let title = "\u{1B}]0;pwned\u{07}"
        let red = "\u{1B}[31mred\u{1B}[0m"
        let c1 = "csi\u{9B}2J"
        let bidi = "abc\u{202E}txt.exe"
        var m = StreamScript(pid: 5, tid: 5, startNs: 1_000)
        m.threadName(red, at: 1_000)
        m.initResource(1, c1, trigger: 0, at: 1_000)
        m.initResource(2, bidi, trigger: 1, at: 1_000)
        m.before(2, at: 2_000)
        m.after(2, at: 20_002_000)
        let path = writeTrace([m], pid: 5, startNs: 1_000, program: "./app " + title)
        defer { removeTrace(path) }
        var options = AnalysisOptions()
        options.blockingThresholdNs = 1_000
        let a = analyzeTrace(try TraceReader(path: path), options: options)
        let text = TextReport.render(a)
        let raw = text.unicodeScalars.filter { ($0.value < 0x20 && $0 != "\n") || ($0.value >= 0x7F && $0.value <= 0x9F) || $0 == "\u{202E}" }
        #expect(raw.isEmpty, "raw control characters in the text report: \(raw.map(\.value))")
        #expect(text.contains("./app \\x1b]0;pwned\\x07"))
        #expect(text.contains("\\x1b[31mred\\x1b[0m (tid 5)"))
        #expect(text.contains("csi\\x9b2J") && text.contains("abc\\u{202e}txt.exe"))
        let json = JSONReport.render(a)
        let rawJSON = json.unicodeScalars.filter { ($0.value < 0x20 && $0 != "\n") || ($0.value >= 0x7F && $0.value <= 0x9F) || $0 == "\u{202E}" }
        #expect(rawJSON.isEmpty)
        #expect(json.contains("\\u001b]0;pwned\\u0007") && json.contains("csi\\u009b2J") && json.contains("abc\\u202etxt.exe"))
        // The JSON still says the same names.
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        let trace = parsed["trace"] as? [String: Any]
        #expect(trace?["program"] as? String == "./app " + title)
    }

    @Test func formattingSaturates() {
        #expect(Formatting.percent(1e30).hasSuffix("%"))
        #expect(Formatting.fixed(-1e300, 2).hasPrefix("-"))
        #expect(Formatting.fixed(.infinity, 1) == "n/a")
    }
}
