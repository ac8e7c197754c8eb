// Issue 18 items 3 and 4: the OTLP export, checked with OpenTelemetry's published proto (opentelemetry-proto):
// a request recorded through the tracing bridge with a blocking callback inside it, loop stalls, batching,
// deterministic ids, and a real OTLP/HTTP receiver on loopback that answers 503 and drops a connection first.
import Foundation
import Testing
import TraceExports
import TraceFixtures
import TraceFormat
import TraceReader

/// A server's thread: an accept, then a connection's read callback that begins a request span (with W3C ids,
/// as AsyncTraceTracer records them), sleeps 20 ms in a syscall and sets a timer, whose callback ends the span.
enum RequestTrace {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let spanID = "00f067aa0ba902b7"
    static let sleepNr: UInt64 = 35

    static func write(to path: String, spanIDs: (String, String) = (traceID, spanID)) {
        typealias S = Synthetic
        let main: [S.Event] = [
            S.user(.threadInfo, 0, text: "main"),
            S.user(.initResource, 1_000, [2, 0, 1], text: "TCPSERVERWRAP"),
            S.user(.before, 2_000_000, [2]),
            S.user(.initResource, 2_100_000, [3, 0, 2], text: "TCPWRAP"),
            S.user(.after, 2_200_000, [2]),
            S.user(.before, 3_000_000, [3]),
            S.user(.spanBegin, 3_100_000, [1, 0, 3], text: "GET /slow"),
            S.user(.spanAttribute, 3_100_100, [1], text: "trace.id=\(spanIDs.0)"),
            S.user(.spanAttribute, 3_100_200, [1], text: "span.id=\(spanIDs.1)"),
            S.user(.spanAttribute, 3_100_300, [1], text: "kind=server"),
            S.user(.spanAttribute, 3_100_400, [1], text: "http.route=/slow"),
            S.user(.initResource, 24_000_000, [5, 0, 3], text: "Timeout"),
            S.user(.after, 25_000_000, [3]),
            S.user(.before, 26_000_000, [5]),
            S.user(.spanAttribute, 26_500_000, [1], text: "status=ok"),
            S.user(.spanEnd, 27_000_000, [1]),
            S.user(.after, 27_500_000, [5]),
            S.user(.destroy, 28_000_000, [5]),
            S.user(.mark, 40_000_000, [0, 0], text: "done"),
        ]
        // (nr, fd, size, ret, exit, duration): epoll waits around the accept, the 20 ms sleep in the read callback,
        // and a wait that begins only at 30 ms: 2.9 ... 30 ms is a loop stall.
        let calls: [(UInt64, Int64, UInt64, Int64, UInt64, UInt64)] = [
            (232, 9, 64, 1, 1_900_000, 1_000_000),
            (232, 9, 64, 1, 2_900_000, 500_000),
            (sleepNr, -1, 0, 0, 23_200_000, 20_000_000),
            (232, 9, 64, 0, 35_000_000, 5_000_000),
        ]
        var k = ChunkBuilder(pid: S.pid, tid: 0, startNs: S.base, startTicks: S.base)
        for (nr, fd, size, ret, exit, duration) in calls {
            let epoll = SyscallNames.epollWaits.contains(nr)
            k.beginEvent(epoll ? .epollWait : .syscall, ticks: S.base + exit)
            k.putUnsigned(UInt64(S.pid))
            k.putUnsigned(100)
            k.putUnsigned(nr)
            k.putSigned(fd)
            k.putUnsigned(size)
            if epoll {
                k.putSigned(-1)
                k.putSigned(ret)
                k.putUnsigned(duration)
                k.putList([])
            } else {
                k.putSigned(ret)
                k.putUnsigned(duration)
            }
        }
        var bytes = FileHeader(
            pid: S.pid, monotonicStartNs: S.base, realtimeStartNs: 1_765_000_000_000_000_000,
            program: "/usr/bin/server --port 0"
        ).encode()
        bytes += S.userChunk(tid: 100, main)
        bytes += k.seal(sequence: 0, endNs: S.base + 35_000_000, endTicks: S.base + 35_000_000, droppedCumulative: 0, flags: [.kernel, .final])
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { fatalError("cannot write \(path)") }
    }
}

/// Starts a program found on PATH, its output going where ours does; nil if it could not be started.
func spawn(_ args: [String]) -> pid_t? {
    var pid: pid_t = 0
    let argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
    defer { for a in argv { free(a) } }
    return posix_spawnp(&pid, args[0], nil, nil, argv, environ) == 0 ? pid : nil
}

@Suite struct OTLPExportTests {
    let cli = Repo.executable("asynctrace")!

    func spans(_ r: [String: Any]) -> [[String: Any]] { r["list"] as? [[String: Any]] ?? [] }

    @Test func aBlockingCallbackShowsUpInsideTheRequestThatSufferedIt() throws {
        let dir = ScratchDirectory("otlp-request")
        let trace = dir.file("server.atrace")
        RequestTrace.write(to: trace)
        let out = dir.file("server.otlp.pb")
        let summary = try export(trace, .otlp, to: out)
        let r = try validate("otlp_check.py", [out])
        try #require(r["error"] == nil, "\(r["error"] ?? "")")
        let all = spans(r)
        // 3 callbacks, the read callback's part inside the request, the request span, one loop stall.
        #expect(all.count == 6 && summary.spans == 6, "\(all.map { $0["name"] ?? "" })")
        #expect(summary.callbacks == 3 && summary.tracerSpans == 1 && summary.stalls == 1 && summary.blockingCallbacks == 1)

        let request = try #require(all.first { $0["name"] as? String == "GET /slow" })
        #expect(request["trace"] as? String == RequestTrace.traceID && request["span"] as? String == RequestTrace.spanID)
        #expect(request["kind"] as? Int == 2 && request["status"] as? Int == 1)  // SERVER, OK
        #expect((request["attributes"] as? [String: Any])?["http.route"] as? String == "/slow")
        #expect(request["service"] as? String == "server" && request["resource_thread_id"] as? Int == 100)

        let inRequest = all.filter { $0["trace"] as? String == RequestTrace.traceID && $0["parent"] as? String == RequestTrace.spanID }
        let part = try #require(inRequest.first { $0["name"] as? String == "TCPWRAP" }, "\(inRequest)")
        #expect(part["blocking"] as? Bool == true && part["status"] as? Int == 2)
        #expect((part["events"] as? [String]) == [SyscallNames.name(RequestTrace.sleepNr)])
        // The timer the handler set runs inside the request too (its span's context is an ancestor).
        #expect(inRequest.contains { $0["name"] as? String == "Timeout" }, "\(inRequest)")

        // The whole read callback stays in the connection's trace, a child of the accept that created it.
        let accept = try #require(all.first { $0["name"] as? String == "TCPSERVERWRAP" })
        #expect(accept["parent"] as? String == "")
        let read = try #require(all.first { $0["name"] as? String == "TCPWRAP" && $0["trace"] as? String != RequestTrace.traceID })
        #expect(read["trace"] as? String == accept["trace"] as? String && read["parent"] as? String == accept["span"] as? String)
        #expect(read["blocking"] as? Bool == true && (read["events"] as? [String])?.count == 1)
        #expect(((read["attributes"] as? [String: Any])?["thread.id"] as? Int) == 100)

        let stall = try #require(all.first { $0["stall"] as? Bool == true })
        #expect(stall["status"] as? Int == 2 && (stall["links"] as? [Any])?.count ?? 0 >= 2)
        #expect((r["links_outside"] as? Int) == 0)
    }

    @Test func idsAreDeterministicAndBatchesSplitNothing() throws {
        let dir = ScratchDirectory("otlp-batches")
        let trace = dir.file("loop.atrace")
        LoopTrace.write(to: trace, iterations: 300)
        let reader = try TraceReader(path: trace)
        let a = dir.file("a.otlp.pb"), b = dir.file("b.otlp.pb"), c = dir.file("c.otlp.pb")
        let sa = try TraceExport.run(reader: reader, format: .otlp, outputPath: a)
        _ = try TraceExport.run(reader: reader, format: .otlp, outputPath: b)
        var small = OTLPOptions()
        small.maxSpansPerRequest = 7
        let sc = try TraceExport.run(reader: reader, format: .otlp, outputPath: c, otlp: small)
        #expect(FileManager.default.contents(atPath: a) == FileManager.default.contents(atPath: b), "two exports differ")
        #expect(sa.spans == sc.spans && sa.spans >= 600 && sc.requests >= sc.spans / 7, "\(sa.spans) \(sc.spans) \(sc.requests)")
        let ra = try validate("otlp_check.py", [a]), rc = try validate("otlp_check.py", [c])
        try #require(ra["error"] == nil && rc["error"] == nil, "\(ra["error"] ?? "") \(rc["error"] ?? "")")
        let ids = { (r: [String: Any]) in Set(self.spans(r).map { "\($0["trace"]!)/\($0["span"]!)/\($0["parent"]!)" }) }
        #expect(ids(ra) == ids(rc) && ids(ra).count == Int(sa.spans))
    }

    /// A loopback OTLP/HTTP receiver (Python's http.server with opentelemetry-proto): 503 twice, then a dropped
    /// connection, then 200s. Every span arrives exactly once.
    @Test func aLoopbackReceiverGetsEverySpanOnceDespite503AndADroppedConnection() throws {
        let dir = ScratchDirectory("otlp-http")
        let trace = dir.file("loop.atrace")
        LoopTrace.write(to: trace, iterations: 2_000)
        let file = dir.file("file.otlp.pb")
        let expected = try TraceExport.run(reader: try TraceReader(path: trace), format: .otlp, outputPath: file)
        let received = dir.file("received")
        try FileManager.default.createDirectory(atPath: received, withIntermediateDirectories: true)
        // posix_spawn, not Process: Foundation's waitUntilExit was seen to hang here while other tests spawned tools.
        let receiver = try #require(
            spawn([
                "python3", Repo.validator("otlp_receiver.py"), dir.file("port"), received,
                "--fail", "2", "--drop", "1",
            ]))
        defer {
            kill(receiver, SIGKILL)
            var status: Int32 = 0
            waitpid(receiver, &status, 0)
        }
        var port: String?
        for _ in 0..<500 where port == nil {
            port = try? String(contentsOfFile: dir.file("port"), encoding: .utf8)
            if port == nil { usleep(20_000) }
        }
        let p = try #require(port, "the receiver did not start")
        let r = try runTool(
            [cli, "export", trace, "--format", "otlp", "--otlp-endpoint", "http://127.0.0.1:\(p)", "--batch-spans", "500"],
            timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("\(expected.spans) spans in"), "\(r.stderr)")
        let bodies = try FileManager.default.contentsOfDirectory(atPath: received).sorted().map { received + "/" + $0 }
        #expect(bodies.count == Int((expected.spans + 499) / 500), "\(bodies.count) requests")
        let got = try validate("otlp_check.py", bodies)  // fails on any span received twice
        try #require(got["error"] == nil, "\(got["error"] ?? "")")
        let want = try validate("otlp_check.py", [file])
        #expect(got["spans"] as? Int == Int(expected.spans) && want["spans"] as? Int == Int(expected.spans))
        let key = { (s: [String: Any]) in "\(s["trace"]!)/\(s["span"]!)" }
        #expect(Set(spans(got).map(key)) == Set(spans(want).map(key)))
    }

    @Test func endpointArgumentsAreValidatedAndFailuresSayWhatToDo() throws {
        let dir = ScratchDirectory("otlp-args")
        let trace = dir.file("server.atrace")
        RequestTrace.write(to: trace)
        for bad in [
            "https://collector:4318", "ftp://x", "http://", "http://host:0", "http://host:99999", "http://a b",
            "http://user@host:4318", "http://[::1", "http://host:43x8", "http://host/v1/traces\r\nX-Evil: 1",
            "http://" + String(repeating: "a", count: 3000),
        ] {
            let r = try runTool([cli, "export", trace, "--format", "otlp", "--otlp-endpoint", bad])
            #expect(r.status == 64, "\(bad.prefix(40)): \(r.status) \(r.stderr)")
            #expect(r.stderr.contains("--otlp-endpoint"), "\(bad.prefix(40)): \(r.stderr)")
        }
        let wrongFormat = try runTool([cli, "export", trace, "--format", "perfetto", "--otlp-endpoint", "http://127.0.0.1:4318"])
        #expect(wrongFormat.status == 64 && wrongFormat.stderr.contains("--format otlp"), "\(wrongFormat.stderr)")
        #expect(try OTLPEndpoint(parsing: "http://localhost").description == "http://localhost:4318/v1/traces")
        #expect(try OTLPEndpoint(parsing: "http://[::1]:9/otlp/v1/traces").description == "http://[::1]:9/otlp/v1/traces")

        // Nothing listens on port 1: retried for about a second, then a message that says what to do.
        let started = Date()
        let r = try runTool([cli, "export", trace, "--format", "otlp", "--otlp-endpoint", "http://127.0.0.1:1", "--otlp-retry-for", "1s"])
        #expect(r.status == 1 && r.stderr.contains("cannot connect") && r.stderr.contains("Collector"), "\(r.stderr)")
        #expect(Date().timeIntervalSince(started) < 20)
    }

    @Test func craftedSpanIdsAndOddValuesStillGiveWellFormedOutput() throws {
        let dir = ScratchDirectory("otlp-hostile")
        for (i, ids) in [
            ("00000000000000000000000000000000", "0000000000000000"), ("xyz", "12"),
            ("4BF92F3577B34DA6A3CE929D0E0E473G", "00f067aa0ba902b7ffff"), ("", ""),
        ].enumerated() {
            let trace = dir.file("t\(i).atrace")
            RequestTrace.write(to: trace, spanIDs: ids)
            let out = dir.file("t\(i).otlp.pb")
            let s = try export(trace, .otlp, to: out)
            let r = try validate("otlp_check.py", [out])
            #expect(r["error"] == nil && s.spans == 6, "\(ids): \(r["error"] ?? "")")
            #expect(!spans(r).contains { $0["trace"] as? String == ids.0.lowercased() })
        }
    }
}
