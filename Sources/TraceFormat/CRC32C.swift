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
}
