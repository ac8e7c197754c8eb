// The file header and the chunk header: fixed little-endian layouts (see docs/trace-format.md).

/// Constants of the file layout (docs/trace-format.md).
public enum TraceFileFormat {
    /// The file's first 8 bytes: "ASYNCTRC".
    public static let magic: [UInt8] = Array("ASYNCTRC".utf8)
    /// The first 4 bytes of every chunk header: "ATCK" little-endian (the reader resynchronises on it after damage).
    public static let chunkMagic: UInt32 = 0x4B43_5441  // "ATCK" little-endian
    /// The version this build writes. The reader accepts 1...currentVersion.
    public static let currentVersion: UInt16 = 13
    /// Bytes of a chunk header (`ChunkHeader.store(to:)`).
    public static let chunkHeaderSize = 80
    /// The program string in the file header is cut to this many UTF-8 bytes (at a scalar boundary).
    public static let maxProgramBytes = 4096
    /// A chunk's payload is never larger than this (the reader uses it to reject garbage).
    public static let maxPayloadBytes = 16 << 20
    /// The name (comm) the in-process recorder gives its writer thread, by which a report tells it from the
    /// program's threads.
    public static let recorderWriterThreadName = "asynctrace-wr"
}

/// The file header: format version, the recording process, its start times and its program.
public struct FileHeader: Equatable, Sendable {
    /// The format version the file was written in (1...`TraceFileFormat.currentVersion` when read).
    public var version: UInt16
    /// The pid of the recording process.
    public var pid: UInt32
    /// When recording started, CLOCK_MONOTONIC ns (the clock of every event time).
    public var monotonicStartNs: UInt64
    /// When recording started, CLOCK_REALTIME ns (the wall-clock time of `monotonicStartNs`).
    public var realtimeStartNs: UInt64
    /// The recorded program's command line (at most `TraceFileFormat.maxProgramBytes` bytes when encoded).
    public var program: String

    /// A header; `version` defaults to the one this build writes.
    public init(
        version: UInt16 = TraceFileFormat.currentVersion, pid: UInt32, monotonicStartNs: UInt64,
        realtimeStartNs: UInt64, program: String
    ) {
        self.version = version
        self.pid = pid
        self.monotonicStartNs = monotonicStartNs
        self.realtimeStartNs = realtimeStartNs
        self.program = program
    }

    // magic[8] version:u16 headerLength:u16 pid:u32 mono:u64 real:u64 programLength:u16 program crc32c:u32
    /// The header's bytes: magic, version, length, pid, both start times, the program (cut to
    /// `TraceFileFormat.maxProgramBytes` at a scalar boundary) and a CRC32C of all of it.
    public func encode() -> [UInt8] {
        // Cut at a scalar boundary so a long program line never ends in half a UTF-8 sequence.
        var prog: [UInt8] = []
        for scalar in program.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if prog.count + bytes.count > TraceFileFormat.maxProgramBytes { break }
            prog.append(contentsOf: bytes)
        }
        var b = TraceFileFormat.magic
        b.appendLE(version)
        b.appendLE(UInt16(8 + 2 + 2 + 4 + 8 + 8 + 2 + prog.count + 4))
        b.appendLE(pid)
        b.appendLE(monotonicStartNs)
        b.appendLE(realtimeStartNs)
        b.appendLE(UInt16(prog.count))
        b.append(contentsOf: prog)
        b.appendLE(CRC32C.checksum(b))
        return b
    }

    /// Why `decode(_:)` rejected the bytes.
    public enum DecodeError: Error, Equatable, Sendable {
        /// The bytes end before the header does (or are empty).
        case tooShort
        /// The bytes do not start with `TraceFileFormat.magic`.
        case notATrace
        /// A version newer than this build reads.
        case unsupportedVersion(UInt16)
        /// Version 0, a length that does not match, or a checksum mismatch.
        case corrupt
    }

    /// Decodes a header from the start of `bytes`; returns it and its length.
    public static func decode(_ bytes: UnsafeRawBufferPointer) -> Result<(FileHeader, Int), DecodeError> {
        guard bytes.count >= 8 else { return .failure(bytes.isEmpty ? .tooShort : .notATrace) }
        guard Array(bytes[0..<8]) == TraceFileFormat.magic else { return .failure(.notATrace) }
        guard bytes.count >= 34 else { return .failure(.tooShort) }
        let p = bytes.baseAddress!
        let version: UInt16 = loadLE(p, 8, as: UInt16.self)
        guard version >= 1 else { return .failure(.corrupt) }
        guard version <= TraceFileFormat.currentVersion else { return .failure(.unsupportedVersion(version)) }
        let length = Int(loadLE(p, 10, as: UInt16.self))
        let progLen = Int(loadLE(p, 32, as: UInt16.self))
        guard length == 38 + progLen else { return .failure(.corrupt) }
        guard bytes.count >= length else { return .failure(.tooShort) }
        let crc: UInt32 = loadLE(p, length - 4, as: UInt32.self)
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<(length - 4)])) == crc else {
            return .failure(.corrupt)
        }
        let program = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[34..<(34 + progLen)]), as: UTF8.self)
        let h = FileHeader(
            version: version, pid: loadLE(p, 12, as: UInt32.self),
            monotonicStartNs: loadLE(p, 16, as: UInt64.self),
            realtimeStartNs: loadLE(p, 24, as: UInt64.self), program: program)
        return .success((h, length))
    }
}

/// Flags of a chunk header.
public struct ChunkFlags: OptionSet, Sendable {
    /// The flag bits.
    public let rawValue: UInt16
    /// Flags from their bits (unknown bits are kept).
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// Events from the eBPF probes (timestamps already in ns; ticks == ns).
    public static let kernel = ChunkFlags(rawValue: 1)
    /// The last chunk of its stream (thread exit or recorder stop).
    public static let final = ChunkFlags(rawValue: 2)
    /// Not events: `asynctrace record`'s note, written after the recording, of what could not be written
    /// to the file (disk full, I/O error). Its payload is an ``UnwrittenNote``; it belongs to no stream.
    public static let unwrittenNote = ChunkFlags(rawValue: 4)
}

/// What the recorders could not write to a trace file (their chunks failed with ENOSPC or EIO): the
/// payload of an `unwrittenNote` chunk. Such losses never reach the file by their nature, so `record`
/// keeps a little disk space in reserve and spends it on this note at the end.
public struct UnwrittenNote: Equatable, Sendable {
    /// Events of the program's own streams (the in-process recorders) that were not written.
    public var userEvents: UInt64
    /// Events of the kernel stream that were not written.
    public var kernelEvents: UInt64
    /// The first write error (an errno value; 0 if unknown).
    public var errno: Int32
    /// Processes whose recorder ended without writing its buffers (`_exit`, SIGKILL): the events their threads
    /// held are lost, how many is unknown. 0 in notes written before this field existed.
    public var processesNotFlushed: UInt64
    /// The signal that ended the traced program (0: it exited, or it is not known).
    public var programSignal: Int32

    /// A note of `userEvents` + `kernelEvents` events not written, the first write error being `errno`;
    /// `processesNotFlushed` recorders that lost an unknown number; the program ended by `programSignal` (0: none).
    public init(userEvents: UInt64, kernelEvents: UInt64, errno: Int32, processesNotFlushed: UInt64 = 0, programSignal: Int32 = 0) {
        self.userEvents = userEvents
        self.kernelEvents = kernelEvents
        self.errno = errno
        self.processesNotFlushed = processesNotFlushed
        self.programSignal = programSignal
    }

    /// The payload's size: user events, kernel events (UInt64 LE each), errno (Int32 LE), 4 bytes zero,
    /// processes not flushed (UInt64 LE), the program's signal (Int32 LE), 4 bytes zero.
    public static let payloadSize = 40
    /// The payload of notes written before `processesNotFlushed` and `programSignal` (still read).
    static let firstPayloadSize = 24

    /// The complete chunk (header with its CRC, then the payload), ready for one `write()`.
    public func encodeChunk(pid: UInt32, atNs ns: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: TraceFileFormat.chunkHeaderSize + Self.payloadSize)
        bytes.withUnsafeMutableBytes { b in
            let p = b.baseAddress!
            let payload = p + TraceFileFormat.chunkHeaderSize
            storeLE(userEvents, payload, 0)
            storeLE(kernelEvents, payload, 8)
            storeLE(errno, payload, 16)
            storeLE(processesNotFlushed, payload, 24)
            storeLE(programSignal, payload, 32)
            var h = ChunkHeader(
                flags: [.kernel, .final, .unwrittenNote], payloadLength: UInt32(Self.payloadSize), eventCount: 0, pid: pid,
                tid: 0, sequence: 0, startNs: ns, endNs: ns, startTicks: ns, endTicks: ns, droppedCumulative: 0)
            h.store(to: p)
            h.crc = ChunkHeader.computeCRC(
                header: UnsafeRawPointer(p), payload: UnsafeRawBufferPointer(start: payload, count: Self.payloadSize))
            h.store(to: p)
        }
        return bytes
    }

    /// The note in an `unwrittenNote` chunk's payload; nil if the payload is too short. A 24-byte payload
    /// (an older note) has no processes not flushed and no signal.
    public static func decode(_ payload: UnsafeRawBufferPointer) -> UnwrittenNote? {
        guard payload.count >= firstPayloadSize, let p = payload.baseAddress else { return nil }
        let extended = payload.count >= payloadSize
        return UnwrittenNote(
            userEvents: loadLE(p, 0, as: UInt64.self), kernelEvents: loadLE(p, 8, as: UInt64.self),
            errno: loadLE(p, 16, as: Int32.self),
            processesNotFlushed: extended ? loadLE(p, 24, as: UInt64.self) : 0,
            programSignal: extended ? loadLE(p, 32, as: Int32.self) : 0)
    }
}

/// Every chunk holds events of one stream (one thread of one process, or the kernel stream).
/// Event timestamps are tick deltas; ticks map linearly onto CLOCK_MONOTONIC ns through the
/// two calibration points the header carries (start and end), so the recorder can read the TSC.
public struct ChunkHeader: Equatable, Sendable {
    /// Kernel stream or not, final chunk of its stream or not.
    public var flags: ChunkFlags
    /// Bytes of payload after the header.
    public var payloadLength: UInt32
    /// Events in the payload, `stringDef`s included.
    public var eventCount: UInt32
    /// The stream's process id.
    public var pid: UInt32
    /// The stream's thread id (0 for a kernel stream).
    public var tid: UInt32
    /// The chunk's number in its stream, one more than the previous chunk's: a gap means chunks are missing.
    public var sequence: UInt64
    /// Calibration point: the chunk's start, CLOCK_MONOTONIC ns.
    public var startNs: UInt64
    /// Calibration point: the chunk's end (its last event or later), CLOCK_MONOTONIC ns.
    public var endNs: UInt64
    /// The writer's tick count at `startNs`.
    public var startTicks: UInt64
    /// The writer's tick count at `endNs`.
    public var endTicks: UInt64
    /// Events this stream has dropped so far, including any before this chunk.
    public var droppedCumulative: UInt64
    /// CRC32C of the header (this field zero) and the payload.
    public var crc: UInt32

    /// A header from its fields (`crc` is usually computed later with `computeCRC(header:payload:)`).
    public init(
        flags: ChunkFlags = [], payloadLength: UInt32 = 0, eventCount: UInt32 = 0, pid: UInt32, tid: UInt32,
        sequence: UInt64, startNs: UInt64, endNs: UInt64, startTicks: UInt64, endTicks: UInt64,
        droppedCumulative: UInt64, crc: UInt32 = 0
    ) {
        self.flags = flags
        self.payloadLength = payloadLength
        self.eventCount = eventCount
        self.pid = pid
        self.tid = tid
        self.sequence = sequence
        self.startNs = startNs
        self.endNs = endNs
        self.startTicks = startTicks
        self.endTicks = endTicks
        self.droppedCumulative = droppedCumulative
        self.crc = crc
    }

    /// Whether the chunk belongs to a kernel stream (`ChunkFlags.kernel`).
    public var isKernel: Bool { flags.contains(.kernel) }

    /// Writes the 80-byte header (CRC field included as given) at `p`.
    public func store(to p: UnsafeMutableRawPointer) {
        storeLE(TraceFileFormat.chunkMagic, p, 0)
        storeLE(UInt16(TraceFileFormat.chunkHeaderSize), p, 4)
        storeLE(flags.rawValue, p, 6)
        storeLE(payloadLength, p, 8)
        storeLE(eventCount, p, 12)
        storeLE(pid, p, 16)
        storeLE(tid, p, 20)
        storeLE(sequence, p, 24)
        storeLE(startNs, p, 32)
        storeLE(endNs, p, 40)
        storeLE(startTicks, p, 48)
        storeLE(endTicks, p, 56)
        storeLE(droppedCumulative, p, 64)
        storeLE(crc, p, 72)
        storeLE(UInt32(0), p, 76)
    }

    /// Reads a header; nil if the magic or the size field is wrong. The CRC is checked separately.
    public static func load(from p: UnsafeRawPointer) -> ChunkHeader? {
        guard loadLE(p, 0, as: UInt32.self) == TraceFileFormat.chunkMagic,
            loadLE(p, 4, as: UInt16.self) == UInt16(TraceFileFormat.chunkHeaderSize)
        else { return nil }
        return ChunkHeader(
            flags: ChunkFlags(rawValue: loadLE(p, 6, as: UInt16.self)),
            payloadLength: loadLE(p, 8, as: UInt32.self), eventCount: loadLE(p, 12, as: UInt32.self),
            pid: loadLE(p, 16, as: UInt32.self), tid: loadLE(p, 20, as: UInt32.self),
            sequence: loadLE(p, 24, as: UInt64.self), startNs: loadLE(p, 32, as: UInt64.self),
            endNs: loadLE(p, 40, as: UInt64.self), startTicks: loadLE(p, 48, as: UInt64.self),
            endTicks: loadLE(p, 56, as: UInt64.self), droppedCumulative: loadLE(p, 64, as: UInt64.self),
            crc: loadLE(p, 72, as: UInt32.self))
    }

    /// The CRC covers the header (with its CRC field zero) and the payload.
    public static func computeCRC(header: UnsafeRawPointer, payload: UnsafeRawBufferPointer) -> UInt32 {
        var tmp = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        return withUnsafeMutableBytes(of: &tmp) { t in
            t.baseAddress!.copyMemory(from: header, byteCount: TraceFileFormat.chunkHeaderSize)
            storeLE(UInt32(0), t.baseAddress!, 72)
            let c = CRC32C.update(0, UnsafeRawBufferPointer(rebasing: t[0..<TraceFileFormat.chunkHeaderSize]))
            return CRC32C.update(c, payload)
        }
    }

    /// Whether the two calibration points are in order (end at or after start, in ns and in ticks).
    /// Writers guarantee it; a chunk that breaks it passed its checksum but cannot be placed in time.
    public var hasOrderedClock: Bool { endNs >= startNs && endTicks >= startTicks }

    /// Maps a tick value of this chunk onto CLOCK_MONOTONIC ns. Saturates (never traps) on any header:
    /// a clock running backwards maps every tick to `startNs`, a time past `UInt64.max` ns to `UInt64.max`.
    @inline(__always)
    public func nanoseconds(forTicks ticks: UInt64) -> UInt64 {
        if startTicks == startNs && endTicks == endNs { return ticks }  // kernel chunks: ticks are ns
        guard endTicks > startTicks, endNs >= startNs, ticks >= startTicks else { return startNs }
        let off = Double(ticks - startTicks) * (Double(endNs - startNs) / Double(endTicks - startTicks))
        return Self.adding(startNs, off.rounded())
    }

    /// `base + offset` for a non-negative Double offset, saturating at `UInt64.max` (NaN adds nothing).
    @inline(__always)
    public static func adding(_ base: UInt64, _ offset: Double) -> UInt64 {
        guard offset > 0 else { return base }  // also NaN
        guard offset < 18_446_744_073_709_551_616.0 else { return .max }
        let (sum, overflow) = base.addingReportingOverflow(UInt64(offset))
        return overflow ? .max : sum
    }
}
