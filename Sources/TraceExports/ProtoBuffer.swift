// Protocol-buffer wire encoding by hand: varints, fixed64 and length-delimited fields.
// Messages are built inside-out in scratch buffers and copied into their parent with a length prefix.

struct ProtoBuffer: ~Copyable {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int = 4096) {
        self.capacity = capacity
        base = .allocate(capacity: capacity)
    }

    deinit { base.deallocate() }

    mutating func reset() { count = 0 }

    /// Drops everything after the first `n` bytes (a stack of nested encodings shares one buffer).
    mutating func truncate(to n: Int) { count = min(count, max(0, n)) }

    /// Appends bytes as they are (an encoding made elsewhere).
    mutating func append(_ p: UnsafePointer<UInt8>, _ n: Int) {
        guard n > 0 else { return }
        reserve(n)
        (base + count).update(from: p, count: n)
        count += n
    }

    @inline(__always)
    mutating func append(_ s: StaticString) { append(s.utf8Start, s.utf8CodeUnitCount) }

    /// Ids as bytes, most significant first (OTLP's trace and span ids; W3C's hex reads the same way).
    @inline(__always)
    mutating func id64(_ field: UInt32, _ v: UInt64) {
        tag(field, 2)
        rawVarint(8)
        bigEndianWord(v)
    }

    @inline(__always)
    mutating func id128(_ field: UInt32, _ hi: UInt64, _ lo: UInt64) {
        tag(field, 2)
        rawVarint(16)
        bigEndianWord(hi)
        bigEndianWord(lo)
    }

    @inline(__always)
    private mutating func bigEndianWord(_ v: UInt64) {
        reserve(8)
        UnsafeMutableRawPointer(base + count).storeBytes(of: v.bigEndian, as: UInt64.self)
        count += 8
    }

    @inline(__always)
    private mutating func reserve(_ n: Int) {
        if count + n <= capacity { return }
        var c = capacity * 2
        while c < count + n { c *= 2 }
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        p.update(from: base, count: count)
        base.deallocate()
        base = p
        capacity = c
    }

    @inline(__always)
    mutating func rawVarint(_ v: UInt64) {
        reserve(10)
        var v = v
        while v >= 0x80 {
            base[count] = UInt8(truncatingIfNeeded: v) | 0x80
            count += 1
            v >>= 7
        }
        base[count] = UInt8(v)
        count += 1
    }

    @inline(__always)
    mutating func tag(_ field: UInt32, _ wireType: UInt32) { rawVarint(UInt64(field << 3 | wireType)) }

    @inline(__always)
    mutating func varint(_ field: UInt32, _ v: UInt64) {
        tag(field, 0)
        rawVarint(v)
    }

    /// int32/int64 fields: negative values as 10-byte two's complement (not zigzag).
    @inline(__always)
    mutating func int(_ field: UInt32, _ v: Int64) { varint(field, UInt64(bitPattern: v)) }

    @inline(__always)
    mutating func bool(_ field: UInt32, _ v: Bool) { varint(field, v ? 1 : 0) }

    @inline(__always)
    mutating func fixed64(_ field: UInt32, _ v: UInt64) {
        tag(field, 1)
        reserve(8)
        var x = v.littleEndian
        withUnsafeBytes(of: &x) { (base + count).update(from: $0.baseAddress!.assumingMemoryBound(to: UInt8.self), count: 8) }
        count += 8
    }

    mutating func bytes(_ field: UInt32, _ p: UnsafePointer<UInt8>, _ n: Int) {
        tag(field, 2)
        rawVarint(UInt64(n))
        reserve(n)
        (base + count).update(from: p, count: n)
        count += n
    }

    mutating func string(_ field: UInt32, _ s: String) {
        var s = s
        s.withUTF8 { bytes(field, $0.baseAddress ?? UnsafePointer(base), $0.count) }
    }

    /// Appends `inner` as a length-delimited field.
    @inline(__always)
    mutating func message(_ field: UInt32, _ inner: borrowing ProtoBuffer) {
        bytes(field, inner.base, inner.count)
    }
}
