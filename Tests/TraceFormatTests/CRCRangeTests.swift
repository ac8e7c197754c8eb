// The reader checks candidate chunks in damaged bytes from prefix CRCs (ChunkSearch): the identity it
// relies on, raw(0, F[a..<b]) = P(b) ^ zeroShift(P(a), b - a), must hold for every length.
import Testing
@testable import TraceFormat

@Suite struct CRCRangeTests {
    private func bytes(_ n: Int, seed: UInt64) -> [UInt8] {
        var x = seed
        return (0..<n).map { _ in
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: x >> 56)
        }
    }

    private func raw(_ state: UInt32, _ b: ArraySlice<UInt8>) -> UInt32 {
        b.withUnsafeBytes { CRC32C.rawUpdate(state, $0) }
    }

    @Test(arguments: [0, 1, 7, 8, 255, 256, 257, 4_096, 65_537, 300_001])
    func zeroShiftIsTheRegisterOverZeroBytes(length: Int) {
        let zeros = [UInt8](repeating: 0, count: length)
        for state: UInt32 in [0, 1, 0xFFFF_FFFF, 0x1234_5678, 0x8000_0000] {
            #expect(CRC32C.zeroShift(state, count: UInt32(length)) == raw(state, zeros[...]))
        }
    }

    @Test func anyRangesChecksumFollowsFromThePrefixesAtItsEnds() {
        let f = bytes(200_000, seed: 42)
        let prefix = { (k: Int) in self.raw(0, f[0..<k]) }
        for (a, b) in [(0, 0), (0, 1), (3, 3), (5, 80), (80, 81), (1_000, 60_000), (17, 199_999), (123_456, 200_000)] {
            let fromPrefixes = prefix(b) ^ CRC32C.zeroShift(prefix(a), count: UInt32(b - a))
            #expect(fromPrefixes == raw(0, f[a..<b]), "range \(a)..<\(b)")
            // And so the finished CRC32C of the range, from any running CRC before it.
            let c: UInt32 = 0xDEAD_BEEF
            let direct = f[a..<b].withUnsafeBytes { CRC32C.update(c, $0) }
            #expect(~(CRC32C.zeroShift(~c ^ prefix(a), count: UInt32(b - a)) ^ prefix(b)) == direct)
        }
    }
}
