// `asynctrace dump`: asks a flight recorder (`record --flight-recorder`) to write its window now.
import ArgumentParser
import CRecorderSupport
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

            Exit status: 0 the dump was written; 1 no flight recorder found for PID, or the dump failed.
            """
    )

    @Option(help: "The recorder's pid, or the traced program's (or a process it started).")
    var pid: Int32

    @Option(help: "How long to wait for the dump (default 30s).")
    var timeout: String = "30s"

    func run() throws {
        guard pid > 0 else { throw ValidationError("--pid must be a process id") }
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
    private func findRecorder() -> Int32? { FlightAddress.connectToRecorder(for: pid, live: false) }
}

private func note(_ message: String) {
    let line = "asynctrace: " + message + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}
