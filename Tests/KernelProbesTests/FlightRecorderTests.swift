// `asynctrace record --flight-recorder`: the real binary, a real program with stalls, the real kernel.
import Foundation
import KernelProbes
import Testing
import TraceFlight
import TraceFormat
import TraceReader

private func examples() throws -> String {
    guard let exe = builtExecutable("asynctrace-examples") else { throw TestFailure("asynctrace-examples was not built") }
    return exe
}

/// The dumps a recording wrote, from its summary (in order).
private func dumpPaths(_ stderr: String) -> [String] {
    stderr.split(separator: "\n").compactMap { line -> String? in
        guard let r = line.range(of: "asynctrace: wrote ") else { return nil }
        let rest = line[r.upperBound...]
        return rest.range(of: " (the last ").map { String(rest[..<$0.lowerBound]) }
    }
}

/// What a dump holds, read through TraceReader like every command reads it.
private struct DumpContents {
    var reader: TraceReader
    var marks: [(name: String, ns: UInt64)] = []
    /// Callbacks (before -> after on one thread) with their length.
    var longestCallbackNs: UInt64 = 0
    var longestCallbackEndNs: UInt64 = 0
    var longestCallbackID: UInt64 = 0
    var initialized: [UInt64: String] = [:]
    var syscalls = 0
    var nanosleeps = 0
    var threadInfos = 0
    var userEvents = 0
    var firstUserNs: UInt64 = .max

    init(_ path: String) throws {
        reader = try TraceReader(path: path)
        var open: [Int: [(UInt64, UInt64)]] = [:]
        for e in reader.events() {
            switch e.kind {
            case .mark: marks.append((e.event.text, e.timestampNs))
            case .initResource: initialized[e.event.u(0)] = e.event.text
            case .before: open[e.stream, default: []].append((e.timestampNs, e.event.u(0)))
            case .after:
                if let (start, id) = open[e.stream]?.popLast(), e.timestampNs - start > longestCallbackNs {
                    longestCallbackNs = e.timestampNs - start
                    longestCallbackEndNs = e.timestampNs
                    longestCallbackID = id
                }
            case .syscall:
                syscalls += 1
                if e.event.u(2) == 230 { nanosleeps += 1 }  // clock_nanosleep
            case .threadInfo: threadInfos += 1
            default: break
            }
            if !reader.streams[e.stream].isKernel {
                userEvents += 1
                firstUserNs = min(firstUserNs, e.timestampNs)
            }
        }
    }
}

@Suite(.serialized) struct FlightRecorderTests {
    /// A steady load with a 250 ms stall every ~2 s, --dump-on-block 100ms, a 2 s window: each stall
    /// leaves a dump that holds the stall and the second before it, nothing older than the window
    /// (chunk-granular: a chunk is kept while its end is inside), no damage, and `report` reads it.
    @Test func eachStallLeavesADumpOfTheWindowBeforeIt() throws {
        try requireKernel("flight recorder dump-on-block")
        let dir = temporaryPath("flight-block")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let keepNs: UInt64 = 2_000_000_000
        let r = try runCapturing(
            try asynctrace(),
            [
                "record", "--flight-recorder", "--keep", "2s", "--dump-on-block", "100ms",
                "--min-dump-interval", "1s", "-o", dir + "/app.atrace", "--",
                try examples(), "flight-stalls", "7", "2000", "250",
            ], timeout: 90)
        #expect(r.status == 0, "\(r.stderr)")
        let stalls = r.stdout.split(separator: "\n").filter { $0.hasPrefix("stall ") }.count
        let dumps = dumpPaths(r.stderr)
        #expect(stalls == 3, "\(r.stdout)")
        #expect(dumps.count == stalls, "one dump per stall: \(r.stderr)")
        #expect(Set(dumps).count == dumps.count)
        for (i, path) in dumps.enumerated() {
            let d = try DumpContents(path)
            #expect(d.reader.damage.isEmpty, "\(path): \(d.reader.damage.map(\.message))")
            #expect(d.reader.header.monotonicStartNs <= d.reader.firstNs)
            // The stall: its mark and its 250 ms callback, with the kernel's nanosleep.
            #expect(d.marks.contains { $0.name == "stall \(i + 1)" }, "\(path): marks \(d.marks.map(\.name))")
            #expect(d.longestCallbackNs >= 240_000_000, "\(path): longest callback \(d.longestCallbackNs) ns")
            #expect(d.nanosleeps >= 1, "\(path): the kernel stream holds the stall's nanosleep")
            #expect(d.syscalls > 1000, "\(path): the load's writes")
            // The seconds before it, and nothing older than the window (plus one 200 ms hand-over of slack).
            let stallStart = d.longestCallbackEndNs - d.longestCallbackNs
            #expect(stallStart - d.reader.firstNs >= 1_000_000_000, "\(path): \(stallStart - d.reader.firstNs) ns before the stall")
            #expect(
                d.reader.lastNs - d.reader.firstNs <= keepNs + 700_000_000,
                "\(path) spans \(d.reader.lastNs - d.reader.firstNs) ns")
            // Every stream starts decodable: the user thread has its name again, and the stalling
            // timer (created before the window) its init.
            #expect(d.threadInfos >= 1)
            #expect(d.initialized[d.longestCallbackID] == "Timeout", "\(path): \(d.longestCallbackID) has no init")
            let report = try runCapturing(try asynctrace(), ["report", path])
            #expect(report.status == 0, "\(report.stderr)")
            #expect(report.stdout.contains("damage     none"), "\(report.stdout)")
            #expect(report.stdout.contains("250 ms"), "\(report.stdout)")
        }
    }

    /// SIGUSR1, `asynctrace dump` (by the recorder's pid and by the program's), then SIGKILL of the
    /// recorder: every dump written before the kill reads without damage. Memory stays within --keep's size.
    @Test func dumpOnRequestAndSurviveSIGKILL() throws {
        try requireKernel("flight recorder dump on request")
        let dir = temporaryPath("flight-kill")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        nonisolated(unsafe) var answers: [String] = []
        let r = try runCapturing(
            try asynctrace(),
            [
                "record", "--flight-recorder", "--keep", "1MiB", "-o", dir + "/app.atrace", "--",
                try examples(), "flight-stalls", "60", "700", "150",
            ], timeout: 90
        ) { p in
            let recorder = p.processIdentifier
            usleep(2_000_000)
            let byRecorder = try? runCapturing(try asynctrace(), ["dump", "--pid", "\(recorder)"], timeout: 30)
            answers.append(byRecorder?.stdout ?? "")
            let children = (try? String(contentsOfFile: "/proc/\(recorder)/task/\(recorder)/children", encoding: .utf8)) ?? ""
            if let program = children.split(separator: " ").first {
                let byProgram = try? runCapturing(try asynctrace(), ["dump", "--pid", String(program)], timeout: 30)
                answers.append(byProgram?.stdout ?? "")
            }
            kill(recorder, SIGUSR1)
            usleep(1_500_000)
            kill(recorder, SIGKILL)
        }
        #expect(r.reason == .uncaughtSignal && r.status == SIGKILL)
        #expect(answers.count == 2 && answers.allSatisfy { $0.hasPrefix("wrote \(dir)/app-") }, "\(answers)")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".atrace") }.sorted()
        #expect(files.count == 3, "\(files) \(r.stderr)")
        #expect(!files.contains("app.atrace"), "a flight recorder writes no file but its dumps")
        for f in files {
            let path = dir + "/" + f
            let d = try DumpContents(path)
            #expect(d.reader.damage.isEmpty, "\(path): \(d.reader.damage.map(\.message))")
            #expect(d.userEvents > 1000 && d.syscalls > 100, "\(path)")
            // --keep 1MiB: the window and so the dump stay within it (file header and openings aside).
            let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? .max
            #expect(size <= (1 << 20) + 64 << 10, "\(path): \(size) bytes")
            let report = try runCapturing(try asynctrace(), ["report", path])
            #expect(report.status == 0 && report.stdout.contains("damage     none"), "\(report.stdout)")
        }
    }

    /// The program asks for dumps itself (TraceRecorder.dump() after each stall).
    @Test func programAsksForDumps() throws {
        try requireKernel("flight recorder TraceRecorder.dump()")
        let dir = temporaryPath("flight-program")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let r = try runCapturing(
            try asynctrace(),
            [
                "record", "--flight-recorder", "--keep", "5s", "-o", dir + "/app.atrace", "--",
                try examples(), "flight-stalls", "4", "1500", "120", "dump",
            ], timeout: 90)
        #expect(r.status == 0, "\(r.stderr)")
        let dumps = dumpPaths(r.stderr)
        #expect(dumps.count == 2, "\(r.stderr)")
        for path in dumps {
            let d = try DumpContents(path)
            #expect(d.reader.damage.isEmpty)
            #expect(d.longestCallbackNs >= 110_000_000)
        }
    }

    @Test func keepParsesDurationsAndSizes() {
        #expect(FlightLimits.parse("30s") == FlightLimits(keepNs: 30_000_000_000, keepBytes: 1 << 30))
        #expect(FlightLimits.parse("512MiB") == FlightLimits(keepNs: nil, keepBytes: 512 << 20))
        #expect(FlightLimits.parse("10s,64M") == FlightLimits(keepNs: 10_000_000_000, keepBytes: 64 << 20))
        for bad in ["", "0s", "12", "1K", "10s,10s", "10s,1G,2G", "soon", ",", "9999999999999999999999s"] {
            #expect(FlightLimits.parse(bad) == nil, "\(bad)")
        }
    }

    /// Messages that are not whole, checksummed chunks never enter the window.
    @Test func ringRejectsWhatIsNotAChunk() {
        let ring = FlightRing(limits: FlightLimits(keepNs: nil, keepBytes: 1 << 20))
        var b = ChunkBuilder(pid: 1, tid: 1, startNs: 10, startTicks: 10)
        b.beginEvent(.before, ticks: 11)
        b.putAsyncID(5)
        var chunk = b.seal(sequence: 0, endNs: 12, endTicks: 12, droppedCumulative: 0)
        #expect(chunk.withUnsafeBytes { ring.add($0, nowNs: 100) })
        chunk[chunk.count - 1] ^= 1
        #expect(!chunk.withUnsafeBytes { ring.add($0, nowNs: 100) })
        #expect(!chunk.dropLast().withUnsafeBytes { ring.add($0, nowNs: 100) })
        #expect(![UInt8](repeating: 0x41, count: 200).withUnsafeBytes { ring.add($0, nowNs: 100) })
        // The kernel stream is the recorder's own; a program cannot forge it.
        var k = ChunkBuilder(pid: 1, tid: 0, startNs: 10, startTicks: 10)
        k.beginEvent(.processExit, ticks: 11)
        k.putUnsigned(1)
        k.putSigned(0)
        let kernelChunk = k.seal(sequence: 0, endNs: 12, endTicks: 12, droppedCumulative: 0, flags: .kernel)
        #expect(!kernelChunk.withUnsafeBytes { ring.add($0, nowNs: 100) })
        #expect(ring.statistics.rejected == 4 && ring.statistics.chunksKept == 1)
    }
}
