// libFuzzer target for the reading side: every input is read as a trace file and put through what
// `report` (text, JSON) does, and through one of the views of `export` (every format), `flamegraph` and
// `report --html`. Built by tools/fuzz.sh (swiftc -sanitize=fuzzer), not by `swift build`: a fuzz target
// has no main of its own.
//
// Mutations rarely keep a chunk's CRC32C right, so each input is also read a second time with every
// checksum recomputed: that reaches the decoder and the analyses with contents a checksum vouches for.
import TraceAnalyses
import TraceExports
import TraceFormat
import TraceReader
import TraceReports
#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) private var traceFD: Int32 = -1
nonisolated(unsafe) private var outputDirectory = ""

private func setUp() {
    guard traceFD < 0 else { return }
    // /dev/shm: the input is rewritten for every run, so keep it in memory.
    let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
    var template = Array("\(base)/asynctrace-fuzz-XXXXXX".utf8CString)
    let dir = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    precondition(dir != nil, "mkdtemp failed")
    outputDirectory = String(cString: dir!)
    traceFD = open(tracePath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    precondition(traceFD >= 0, "cannot create the input file")
}

private var tracePath: String { outputDirectory + "/input.atrace" }

private func store(_ bytes: UnsafeRawBufferPointer) {
    _ = ftruncate(traceFD, 0)
    var done = 0
    while done < bytes.count {
        let n = pwrite(traceFD, bytes.baseAddress! + done, bytes.count - done, off_t(done))
        precondition(n > 0, "pwrite to the memfd failed")
        done += n
    }
}

/// What `report` does for every input, and one of the views behind `export`, `flamegraph` and
/// `report --html`, picked by the input's hash: every view of every input cost ~18 ms (54 inputs/s),
/// which kept a run far from the million inputs the hardening issue asks for. The pick is a function of
/// the bytes, so libFuzzer sees the same path for the same input, and across a run every view gets its
/// share of inputs.
private func readEverything(view: Int) {
    guard let reader = try? TraceReader(path: tracePath) else { return }
    var options = AnalysisOptions()
    options.top = 5
    options.blockingThresholdNs = 1_000
    let analysis = analyzeTrace(reader, options: options)
    _ = TextReport.render(analysis)
    _ = JSONReport.render(analysis)
    let formats = ExportFormat.allCases
    let flamegraphs = StackGrouping.allCases.flatMap { g in StackWeight.allCases.map { (g, $0) } }
    let views = formats.count + flamegraphs.count + 2
    switch view % views {
    case let v where v < formats.count:
        _ = try? TraceExport.run(
            reader: reader, format: formats[v], outputPath: outputDirectory + "/export",
            grouping: .causal, weight: .wall)
    case let v where v < formats.count + flamegraphs.count:
        let (grouping, weight) = flamegraphs[v - formats.count]
        _ = try? Flamegraph.write(
            reader: reader, to: outputDirectory + "/flamegraph.svg", grouping: grouping, weight: weight)
    case formats.count + flamegraphs.count:
        _ = HTMLReport.render(reader: reader, options: options)
    default:
        // One stream alone, through the copying iterator.
        if !reader.streams.isEmpty {
            let it = reader.events(streams: [reader.streams.count - 1])
            while it.next() != nil {}
        }
    }
}

/// FNV-1a of the input: which view it goes through.
private func viewOf(_ bytes: UnsafeRawBufferPointer) -> Int {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes {
        h = (h ^ UInt64(b)) &* 0x100_0000_01b3
    }
    return Int(truncatingIfNeeded: h >> 1)
}

/// `bytes` with the file header's and every chunk's CRC32C recomputed (chunks found by walking the
/// framing, and by scanning for the chunk magic where it breaks).
private func withChecksumsFixed(_ input: UnsafeRawBufferPointer) -> [UInt8]? {
    var b = [UInt8](input)
    guard b.count >= 38, Array(b[0..<8]) == TraceFileFormat.magic else { return nil }
    let headerLength = Int(b[10]) | Int(b[11]) << 8
    var pos = headerLength
    if headerLength >= 38 && headerLength <= b.count {
        let crc = b.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<(headerLength - 4)])) }
        for i in 0..<4 { b[headerLength - 4 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
    } else {
        pos = 8
    }
    let size = TraceFileFormat.chunkHeaderSize
    while pos + size <= b.count {
        let isChunk = b[pos] == 0x41 && b[pos + 1] == 0x54 && b[pos + 2] == 0x43 && b[pos + 3] == 0x4B
        let length = Int(b[pos + 8]) | Int(b[pos + 9]) << 8 | Int(b[pos + 10]) << 16 | Int(b[pos + 11]) << 24
        guard isChunk, length <= b.count - pos - size else {
            pos += 1
            continue
        }
        let crc = b.withUnsafeBytes { p in
            ChunkHeader.computeCRC(
                header: p.baseAddress! + pos,
                payload: UnsafeRawBufferPointer(rebasing: p[(pos + size)..<(pos + size + length)]))
        }
        for i in 0..<4 { b[pos + 72 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
        pos += size + length
    }
    return b
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    setUp()
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let view = viewOf(input)
    store(input)
    readEverything(view: view)
    if let fixed = withChecksumsFixed(input) {
        fixed.withUnsafeBytes { store($0) }
        readEverything(view: view &+ 1)
    }
    return 0
}
