// Fixed-width little-endian fields of the file and chunk headers.

@inline(__always)
func storeLE<T: FixedWidthInteger>(_ v: T, _ p: UnsafeMutableRawPointer, _ offset: Int) {
    p.storeBytes(of: v.littleEndian, toByteOffset: offset, as: T.self)
}

@inline(__always)
func loadLE<T: FixedWidthInteger>(_ p: UnsafeRawPointer, _ offset: Int, as: T.Type) -> T {
    T(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: T.self))
}

extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
}
