// Text and bytes written straight into reserved output memory: no Strings, no capacity check per
// field (the caller reserved room for the whole event with `OutputFile.reserve`).

struct ByteWriter {
    var p: UnsafeMutablePointer<UInt8>

    @inline(__always) init(_ p: UnsafeMutablePointer<UInt8>) { self.p = p }

    @inline(__always)
    mutating func put(_ b: UInt8) {
        p.pointee = b
        p += 1
    }

    @inline(__always)
    mutating func put(_ s: StaticString) {
        copy(UnsafeRawPointer(s.utf8Start), s.utf8CodeUnitCount)
    }

    @inline(__always)
    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        copy(base, bytes.count)
    }

    /// Texts of an event are short: up to 64 bytes go as 8-byte words (the last one overlapping), not
    /// through a call to memmove, which costs more than the copy at these sizes.
    @inline(__always)
    private mutating func copy(_ from: UnsafeRawPointer, _ n: Int) {
        let to = UnsafeMutableRawPointer(p)
        if n >= 8 && n <= 64 {
            var i = 0
            while i + 8 < n {
                to.storeBytes(of: from.loadUnaligned(fromByteOffset: i, as: UInt64.self), toByteOffset: i, as: UInt64.self)
                i += 8
            }
            to.storeBytes(of: from.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self), toByteOffset: n - 8, as: UInt64.self)
        } else if n < 8 {
            for i in 0..<n { p[i] = from.load(fromByteOffset: i, as: UInt8.self) }
        } else {
            to.copyMemory(from: from, byteCount: n)
        }
        p += n
    }

    @inline(__always)
    mutating func put(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { put($0) }
    }

    /// Decimal digits, two at a time from a table, written back to front in place.
    @inline(__always)
    mutating func put(uint v: UInt64) {
        let n = decimalDigits(v)
        var end = p + n
        p = end
        var v = v
        while v >= 100 {
            let r = Int(truncatingIfNeeded: v % 100)
            v /= 100
            end -= 2
            end[0] = twoDigits[2 * r]
            end[1] = twoDigits[2 * r + 1]
        }
        if v >= 10 {
            let r = Int(truncatingIfNeeded: v)
            end -= 2
            end[0] = twoDigits[2 * r]
            end[1] = twoDigits[2 * r + 1]
        } else {
            end -= 1
            end[0] = UInt8(truncatingIfNeeded: v) &+ 48
        }
    }

    @inline(__always)
    mutating func put(int v: Int64) {
        if v < 0 {
            put(UInt8(ascii: "-"))
            put(uint: v == .min ? UInt64(1) << 63 : UInt64(-v))
        } else {
            put(uint: UInt64(v))
        }
    }

    /// ns as µs with three decimals ("12.345"; "12" when whole), the unit of Chrome's trace format.
    @inline(__always)
    mutating func put(microsFromNanos ns: UInt64) {
        put(uint: ns / 1000)
        let frac = Int(truncatingIfNeeded: ns % 1000)
        if frac != 0 {
            p[0] = UInt8(ascii: ".")
            p[1] = UInt8(truncatingIfNeeded: frac / 100) &+ 48
            let r = frac % 100
            p[2] = twoDigits[2 * r]
            p[3] = twoDigits[2 * r + 1]
            p += 4
        }
    }

    /// Lower-case hex without leading zeros.
    @inline(__always)
    mutating func put(hex v: UInt64) {
        let n = max(1, (64 - v.leadingZeroBitCount + 3) / 4)
        for i in 0..<n {
            let d = UInt8(truncatingIfNeeded: v >> UInt64(4 * (n - 1 - i))) & 15
            p[i] = d < 10 ? 48 &+ d : 87 &+ d
        }
        p += n
    }

    // MARK: protocol buffers

    @inline(__always)
    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            p.pointee = UInt8(truncatingIfNeeded: v) | 0x80
            p += 1
            v >>= 7
        }
        p.pointee = UInt8(truncatingIfNeeded: v)
        p += 1
    }
}

/// Digits of `v` in decimal (1 for 0).
@inline(__always)
func decimalDigits(_ v: UInt64) -> Int {
    var n = 1
    var x = v
    while x >= 10_000 {
        x /= 10_000
        n += 4
    }
    if x >= 1000 { return n + 3 }
    if x >= 100 { return n + 2 }
    if x >= 10 { return n + 1 }
    return n
}

/// "00" "01" … "99" (a static string: a constant address, no lazy global).
private let digitPairs: StaticString =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

@inline(__always) var twoDigits: UnsafePointer<UInt8> { digitPairs.utf8Start }
