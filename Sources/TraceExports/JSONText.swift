// Writing JSON text straight into an OutputFile: numbers without String allocations, escaped strings.
import TraceReports

extension OutputFile {
    @inline(__always)
    func write(uint v: UInt64) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of room; UInt64 has at most 20 digits
        withUnsafeMutableBytes(of: &digits) { buf in
            var i = 24
            var v = v
            repeat {
                i -= 1
                buf[i] = UInt8(truncatingIfNeeded: v % 10) + 48
                v /= 10
            } while v > 0
            write(buf.baseAddress! + i, count: 24 - i)
        }
    }

    @inline(__always)
    func write(int v: Int64) {
        if v < 0 {
            write(byte: UInt8(ascii: "-"))
            write(uint: v == .min ? UInt64(1) << 63 : UInt64(-v))
        } else {
            write(uint: UInt64(v))
        }
    }

    /// ns as µs with three decimals ("12.345"), the unit of Chrome's trace format.
    @inline(__always)
    func write(microsFromNanos ns: UInt64) {
        write(uint: ns / 1000)
        let frac = ns % 1000
        if frac != 0 {
            write(byte: UInt8(ascii: "."))
            write(byte: UInt8(truncatingIfNeeded: frac / 100) + 48)
            write(byte: UInt8(truncatingIfNeeded: frac / 10 % 10) + 48)
            write(byte: UInt8(truncatingIfNeeded: frac % 10) + 48)
        }
    }
}

/// Escaped names by id, computed once each.
struct QuotedNames {
    private var cache: [[UInt8]?] = []

    mutating func bytes(_ id: Int, _ names: NameTable) -> [UInt8] {
        if id < cache.count, let b = cache[id] { return b }
        if id >= cache.count { cache.append(contentsOf: repeatElement(nil, count: id - cache.count + 1)) }
        let b = Array(JSONWriter.quote(names[id]).utf8)
        cache[id] = b
        return b
    }

    mutating func write(_ id: Int, _ names: NameTable, to out: OutputFile) {
        if id < cache.count, let b = cache[id] {
            b.withUnsafeBytes { out.write($0) }
            return
        }
        bytes(id, names).withUnsafeBytes { out.write($0) }
    }
}
