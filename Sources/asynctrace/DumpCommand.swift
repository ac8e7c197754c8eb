// `asynctrace dump`: asks a flight recorder (`record --flight-recorder`) to write its window now.
import ArgumentParser
import CRecorderSupport
import TraceFlight
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

struct DumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Make a flight recorder write the window it keeps to a trace file.",
        discussion: """
            PID is the recorder's (the `asynctrace record --flight-recorder` process) or the program's it \
            records, or that of any process the program started. The recorder writes the dump next to its -o \
            path with the UTC time in the name and prints the path; this command waits for it (about 0.3 s: the \
            program's last events are included) and prints the same line. Sending SIGUSR1 to the recorder does \
            the same without an answer.

            Only the user who started the recording (under sudo: the invoking user) or root may ask, and this \
            command believes only a recorder run by you or root. The dump request carries nothing but the \
            request: where and how the file is written is the recorder's -o, never the asker's.

            With --segments DIR (a recorder run with --keep-on-disk DIR that was killed, so its window's segment \
            files stayed): makes a trace of the segments in DIR (-o, default asynctrace-recovered-<recorder pid>.atrace; \
            never overwritten), as a dump would have been. What a live recorder restates at a dump's start but \
            only kept in memory (the kernel's threads and fds from before the window, resources created before it) \
            is not in the segments; streams start where their first kept chunk does. A segment's end cut by the \
            kill is left out and said.

            Exit status: 0 the dump was written; 1 no flight recorder found for PID, or the dump failed.
            """
    )

    @Option(help: "The recorder's pid, or the traced program's (or a process it started).")
    var pid: Int32?

    @Option(help: "Make a trace of the window segments a killed recorder left in this directory (--keep-on-disk).")
    var segments: String?

    @Option(help: "With --segments: the recorder whose segments to read (default: the one with the newest segment).")
    var recorder: Int32?

    @Option(name: .shortAndLong, help: "With --segments: the trace file to write (never overwritten).")
    var output: String?

    @Option(help: "How long to wait for the dump (default 30s).")
    var timeout: String = "30s"

    func validate() throws {
        if (pid == nil) == (segments == nil) {
            throw ValidationError("give --pid PID (a running recorder) or --segments DIR (a killed one's window)")
        }
        if segments == nil && (recorder != nil || output != nil) { throw ValidationError("--recorder and -o go with --segments") }
    }

    func run() throws {
        if let segments { return try recover(segments) }
        guard let pid, pid > 0 else { throw ValidationError("--pid must be a process id") }
        guard let fd = findRecorder() else {
            note(
                "no flight recorder found for process \(pid): is it recorded with `asynctrace record --flight-recorder` "
                    + "(and is that recorder yours)?")
            throw ExitCode(1)
        }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(min((Quantities.duration(timeout) ?? 30_000_000_000) / 1_000_000_000, 3600)) + 1, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var answer: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while answer.count < 64 << 10 {
            let n = recv(fd, &buf, buf.count, 0)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            answer += buf[0..<n]
        }
        // The recorder's line, shown as text only (no terminal control characters from a socket).
        let text = String(decoding: answer.filter { $0 == 10 || ($0 >= 32 && $0 != 127) }, as: UTF8.self)
        guard !text.isEmpty else {
            note("the flight recorder did not answer within \(timeout)")
            throw ExitCode(1)
        }
        let line = text.hasSuffix("\n") ? String(text.dropLast()) : text
        print(line.hasPrefix("asynctrace: ") ? String(line.dropFirst("asynctrace: ".count)) : line)
        if !line.contains("wrote ") { throw ExitCode(1) }
    }

    /// The recorder listening for `pid` as the traced program, or as itself; else for an ancestor
    /// of `pid` as the traced program (a process the program started). Only a recorder run by us
    /// or root is believed.
    private func findRecorder() -> Int32? { FlightAddress.connectToRecorder(for: pid!, live: false) }

    /// --segments: the window a killed recorder left on disk, written as a dump.
    private func recover(_ directory: String) throws {
        let r: FlightSegmentFiles.Recovered
        do {
            r = try FlightSegmentFiles.recover(directory: directory, recorderPid: recorder)
        } catch {
            note(error.description)
            throw ExitCode(1)
        }
        if !r.otherRecorders.isEmpty {
            note(
                "\(directory) also holds segments of recorder\(r.otherRecorders.count == 1 ? "" : "s") \(r.otherRecorders.map(String.init).joined(separator: ", ")) (--recorder PID reads those)"
            )
        }
        if !r.skipped.isEmpty { note("not read (not a regular file of a segment's size): \(r.skipped.joined(separator: ", "))") }
        let path = output ?? "asynctrace-recovered-\(r.recorderPid).atrace"
        var created: Int32 = 0
        var why: UnsafePointer<CChar>?
        let fd = trace_open_output(path, 0, 0, nil, &created, &why)
        guard fd >= 0, created == 1 else {
            if fd >= 0 { close(fd) }
            note(
                "cannot create \(path): "
                    + (created == 0 && fd >= 0
                        ? "it exists (a dump is never overwritten)" : why.map { String(cString: $0) } ?? String(cString: strerror(errno))))
            throw ExitCode(1)
        }
        defer { close(fd) }
        let h = r.header
        let now = max(r.lastNs, h.monotonicStartNs)
        do {
            let s = try FlightDump.write(
                to: fd, ring: r.ring, rootPid: h.pid, program: h.program, nowNs: now,
                realtimeNowNs: h.realtimeStartNs &+ (now &- h.monotonicStartNs), kernelState: nil)
            let plural = r.segments == 1 ? "" : "s"
            let span = Double((s.endNs &- s.startNs) / 100_000_000) / 10
            let kib = s.bytes >> 10
            print("wrote \(path) (\(r.segments) segment\(plural) of recorder \(r.recorderPid): \(s.events) events, \(kib) KiB, the last \(span) s)")
            if r.unreadableBytes > 0 {
                note("\(r.unreadableBytes) bytes at the ends of segments were not whole chunks (cut by the kill) and were left out")
            }
        } catch {
            note("\(path): \(error.description)")
            throw ExitCode(1)
        }
    }
}

private func note(_ message: String) {
    let line = "asynctrace: " + message + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}
