// Writing JSON text straight into an OutputFile: numbers without String allocations, escaped strings.
import TraceText

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

/// Byte strings by small integer id, in one growing block (no array of arrays to retain per use).
struct ByteArena {
    private var storage: UnsafeMutablePointer<UInt8>
    private var used = 0
    private var capacity: Int
    /// By key: the entry's start << 32 | its length (-1: none yet); one load per lookup.
    private var byKey: [Int] = []

    init(capacity: Int = 4096) {
        self.capacity = capacity
        storage = .allocate(capacity: capacity)
    }

    /// Frees the block (the owner calls this from its deinit; the arena is a plain struct for speed).
    func deallocate() { storage.deallocate() }

    /// Lookup slots allocated so far (keys below this need no growth).
    var slots: Int { byKey.count }

    /// The bytes stored for `key`, if any.
    @inline(__always)
    func lookup(_ key: Int) -> UnsafeRawBufferPointer? {
        guard key >= 0 && key < byKey.count else { return nil }
        let e = byKey[key]
        guard e >= 0 else { return nil }
        return UnsafeRawBufferPointer(start: storage + (e >> 32), count: e & 0xFFFF_FFFF)
    }

    @discardableResult
    mutating func store(_ key: Int, _ bytes: [UInt8]) -> UnsafeRawBufferPointer {
        if used + bytes.count > capacity {
            var c = capacity * 2
            while c < used + bytes.count { c *= 2 }
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
            p.update(from: storage, count: used)
            storage.deallocate()
            storage = p
            capacity = c
        }
        bytes.withUnsafeBufferPointer { (storage + used).update(from: $0.baseAddress!, count: $0.count) }
        if key >= byKey.count { byKey.append(contentsOf: repeatElement(-1, count: key - byKey.count + 1)) }
        byKey[key] = used << 32 | bytes.count
        used += bytes.count
        return UnsafeRawBufferPointer(start: storage + used - bytes.count, count: bytes.count)
    }
}

/// JSON-quoted names by name id, computed once each.
struct QuotedNames {
    private var arena = ByteArena()

    func deallocate() { arena.deallocate() }

    @inline(__always)
    mutating func get(_ id: Int, _ names: NameTable) -> UnsafeRawBufferPointer {
        if let b = arena.lookup(id) { return b }
        return arena.store(id, Array(JSONWriter.quote(names[id]).utf8))
    }
}
