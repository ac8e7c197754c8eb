// Process titles (processTitle, format 11): a multi-process server's processes named by the titles they set
// (postgres' checkpointer, a client backend), in THREADS, JSON and HTML; a crafted title stays bounded and escaped.
import Foundation
import Testing
import TraceFormat
import TraceAnalyses
import TraceReader
import TraceReports

private let T: UInt64 = 1_000_000_000
private func ms(_ v: Double) -> UInt64 { T + UInt64((v * 1_000_000).rounded()) }

@Suite struct ProcessTitleTests {
    /// postmaster 700 (no title: its own command line) forks 701 (checkpointer) and 702 (a backend, later
    /// exec'd: its title ended); 703 never set one.
    private func postgresTrace() -> String {
        var k = KernelScript(pid: 700, startNs: T)
        k.threadName(tid: 700, "postgres", at: T)
        for (i, child) in [701, 702, 703].enumerated() {
            let at = ms(1 + Double(i))
            k.processFork(child: UInt32(child), at: at)
            k.threadName(tid: UInt32(child), "postgres", at: at, pid: UInt32(child))
        }
        k.processTitle(pid: 701, "postgres: 15/main: checkpointer", at: ms(5))
        k.processTitle(pid: 702, "postgres: 15/main: alice db 127.0.0.1(5432) SELECT", at: ms(6))
        for pid: UInt32 in [700, 701, 702, 703] {
            k.add(at: ms(10)) { $0.syscall(pid: pid, tid: pid, nr: 0, fd: 5, size: 8, ret: 8, enter: ms(9), exit: ms(10)) }
        }
        return writeTrace([k.stream()], pid: 700, startNs: T, program: "/usr/lib/postgresql/15/bin/postgres -D /srv")
    }

    @Test func titlesNameTheProcessesInThreadsAndJSON() throws {
        let path = postgresTrace()
        defer { removeTrace(path) }
        let a = analyzeTrace(try TraceReader(path: path))
        #expect(a.titledProcesses.map(\.pid) == [701, 702])
        #expect(a.titledProcesses.first?.ppid == 700 && a.titledProcesses.first?.program == "postgres")
        #expect(a.threadName(pid: 701, tid: 701) == "postgres: 15/main: checkpointer")
        #expect(a.threadName(pid: 700, tid: 700) == "postgres" && a.threadName(pid: 703, tid: 703) == "postgres")
        let text = TextReport.render(a)
        #expect(text.contains("postgres: 15/main: checkpointer (tid 701)"), "\(text)")
        #expect(text.contains("postgres: 15/main: alice db 127.0.0.1(5432) SELECT (tid 702)"), "\(text)")
        #expect(text.contains("    postgres: 15/main: checkpointer (pid 701, postgres, child of 700)"), "\(text)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(JSONReport.render(a).utf8)) as? [String: Any])
        let titles = try #require(json["process_titles"] as? [[String: Any]])
        #expect(titles.count == 2)
        #expect(titles.first?["pid"] as? Int == 701 && titles.first?["ppid"] as? Int == 700)
        #expect(titles.first?["program"] as? String == "postgres" && titles.first?["title"] as? String == "postgres: 15/main: checkpointer")
    }

    @Test func anEmptyTitleEndsOne() throws {
        var k = KernelScript(pid: 710, startNs: T)
        k.threadName(tid: 710, "sh", at: T)
        k.processFork(child: 711, at: ms(1))
        k.threadName(tid: 711, "sh", at: ms(1), pid: 711)
        k.processTitle(pid: 711, "sh: worker", at: ms(2))
        k.processTitle(pid: 711, "", at: ms(3))  // it exec'd: its command line again
        k.add(at: ms(5)) { $0.syscall(pid: 711, tid: 711, nr: 0, fd: 5, size: 8, ret: 8, enter: ms(4), exit: ms(5)) }
        let path = writeTrace([k.stream()], pid: 710, startNs: T)
        defer { removeTrace(path) }
        let a = analyzeTrace(try TraceReader(path: path))
        #expect(a.titledProcesses.isEmpty && a.threadName(pid: 711, tid: 711) == "sh")
    }

    /// A crafted title of any length and bytes (terminal escapes, newlines, NUL, a bidi override) is cut to a
    /// bounded line and printed escaped in the text report, valid in JSON.
    @Test func aHostileTitleIsBoundedAndPrintedSafely() throws {
        let evil = "\u{1b}[2J\u{1b}]0;pwned\u{07}line\nbreak\r\u{0}\u{202e}" + String(repeating: "x", count: 100_000) + "\u{1b}[0m"
        var k = KernelScript(pid: 720, startNs: T)
        k.threadName(tid: 720, "srv", at: T)
        k.processFork(child: 721, at: ms(1))
        k.threadName(tid: 721, "srv", at: ms(1), pid: 721)
        k.threadName(tid: 722, "srv-pool", at: ms(1), pid: 721)
        k.processTitle(pid: 721, evil, at: ms(2))
        for tid: UInt32 in [721, 722] {
            k.add(at: ms(5)) { $0.syscall(pid: 721, tid: tid, nr: 0, fd: 5, size: 8, ret: 8, enter: ms(4), exit: ms(5)) }
        }
        let path = writeTrace([k.stream()], pid: 720, startNs: T)
        defer { removeTrace(path) }
        let a = analyzeTrace(try TraceReader(path: path))
        let title = try #require(a.titledProcesses.first?.title)
        #expect(title.utf8.count <= TitledProcess.maxTitleBytes && title.hasSuffix("…"))
        let text = TextReport.render(a)
        #expect(!text.contains("\u{1b}") && !text.contains("\u{0}") && !text.contains("\u{202e}") && !text.contains("\u{07}"))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.allSatisfy { $0.utf8.count < 2_000 }, "a line of \(lines.map(\.utf8.count).max() ?? 0) bytes")
        // Its other thread: "comm in title", escaped the same way.
        #expect(text.contains("srv-pool in "), "\(text)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(JSONReport.render(a).utf8)) as? [String: Any])
        let titles = try #require(json["process_titles"] as? [[String: Any]])
        #expect((titles.first?["title"] as? String)?.hasPrefix("\u{1b}[2J") == true)
    }
}
