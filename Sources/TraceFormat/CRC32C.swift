/// CRC32C (Castagnoli), slice-by-8 in software: every chunk and the file header carry one, so damage is
/// found rather than misread. Same polynomial as iSCSI/ext4, so external tools can check it.
public enum CRC32C {
    static let tables: [[UInt32]] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[0][i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 { t[k][i] = (t[k - 1][i] >> 8) ^ t[0][Int(t[k - 1][i] & 0xff)] }
        }
        return t
    }()

    /// Flat copy of the tables for pointer access on the hot path.
    nonisolated(unsafe) static let flat: UnsafeMutablePointer<UInt32> = {
        let p = UnsafeMutablePointer<UInt32>.allocate(capacity: 8 * 256)
        for k in 0..<8 { for i in 0..<256 { p[k * 256 + i] = tables[k][i] } }
        return p
    }()

    /// Continues a running CRC (start with 0) over `bytes`.
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        let t = flat
        var c = ~crc
        var p = bytes.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) }
        var n = bytes.count
        guard var q = p else { return crc }
        while n >= 8 {
            let lo = UInt32(littleEndian: UnsafeRawPointer(q).loadUnaligned(as: UInt32.self)) ^ c
            let hi = UInt32(littleEndian: UnsafeRawPointer(q + 4).loadUnaligned(as: UInt32.self))
            c =
                t[7 * 256 + Int(lo & 0xff)] ^ t[6 * 256 + Int((lo >> 8) & 0xff)]
                ^ t[5 * 256 + Int((lo >> 16) & 0xff)] ^ t[4 * 256 + Int(lo >> 24)]
                ^ t[3 * 256 + Int(hi & 0xff)] ^ t[2 * 256 + Int((hi >> 8) & 0xff)]
                ^ t[1 * 256 + Int((hi >> 16) & 0xff)] ^ t[0 * 256 + Int(hi >> 24)]
            q += 8
            n -= 8
        }
        while n > 0 {
            c = t[Int((c ^ UInt32(q.pointee)) & 0xff)] ^ (c >> 8)
            q += 1
            n -= 1
        }
        p = q
        _ = p
        return ~c
    }

    /// The CRC32C of `bytes` (`update(0, bytes)`).
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 { update(0, bytes) }

    /// The CRC32C of `bytes`.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { update(0, $0) }
    }

    // The CRC register without its pre- and post-inversion is linear over GF(2) in the register and the
    // bytes: raw(s, X) = zeroShift(s, |X|) ^ raw(0, X). So the raw CRC of any byte range follows from raw
    // prefix CRCs at its two ends, raw(0, F[a..<b]) = P(b) ^ zeroShift(P(a), b - a), with no reread of the
    // range: the reader checks candidate chunks this way when it searches damaged bytes (see ChunkSearch).

    /// The raw register after `bytes` starting from raw register `state` (`update` without the inversions).
    @inline(__always)
    package static func rawUpdate(_ state: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        ~update(~state, bytes)
    }

    /// The raw register `state` advanced over `count` zero bytes, in O(log count) table look-ups.
    package static func zeroShift(_ state: UInt32, count: UInt32) -> UInt32 {
        let t = zeroShiftTables
        var v = state
        var n = count
        var k = 0
        while n != 0 {
            if n & 1 != 0 { v = applyShift(t + k * 1024, v) }
            n >>= 1
            k += 1
        }
        return v
    }

    @inline(__always)
    private static func applyShift(_ t: UnsafeMutablePointer<UInt32>, _ v: UInt32) -> UInt32 {
        t[Int(v & 0xff)] ^ t[256 + Int((v >> 8) & 0xff)] ^ t[512 + Int((v >> 16) & 0xff)] ^ t[768 + Int(v >> 24)]
    }

    /// For k in 0..<32, the linear map "advance over 2^k zero bytes" as four 256-entry tables (one per byte
    /// of the register): 128 KiB, built on first use.
    nonisolated(unsafe) static let zeroShiftTables: UnsafeMutablePointer<UInt32> = {
        let t = UnsafeMutablePointer<UInt32>.allocate(capacity: 32 * 1024)
        let t0 = flat
        func oneZeroByte(_ v: UInt32) -> UInt32 { t0[Int(v & 0xff)] ^ (v >> 8) }
        for lane in 0..<4 {
            for b in 0..<256 { t[lane * 256 + b] = oneZeroByte(UInt32(b) << (8 * lane)) }
        }
        for k in 1..<32 {
            let previous = t + (k - 1) * 1024
            for lane in 0..<4 {
                for b in 0..<256 {
                    let v = UInt32(b) << (8 * lane)
                    t[k * 1024 + lane * 256 + b] = applyShift(previous, applyShift(previous, v))
                }
            }
        }
        return t
    }()
}
