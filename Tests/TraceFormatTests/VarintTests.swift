import Testing
@testable import TraceFormat

@Suite struct VarintTests {
    @Test func roundTripsBoundaries() {
        let values: [UInt64] = [0, 1, 127, 128, 255, 16383, 16384, UInt64(UInt32.max), UInt64.max - 1, UInt64.max]
        for v in values {
            var bytes: [UInt8] = []
            appendVarint(v, to: &bytes)
            #expect(bytes.count == varintSize(v))
            bytes.withUnsafeBytes { raw in
                var c = ByteCursor(raw)
                #expect(c.readVarint() == v)
                #expect(c.isAtEnd)
            }
        }
    }

    @Test func zigzagRoundTrips() {
        for v: Int64 in [0, 1, -1, 63, -64, Int64.max, Int64.min] {
            #expect(unzigzag(zigzag(v)) == v)
        }
        #expect(zigzag(-1) == 1)
        #expect(zigzag(1) == 2)
    }

    @Test func truncatedVarintIsRejected() {
        let bytes: [UInt8] = [0x80, 0x80]
        bytes.withUnsafeBytes { raw in
            var c = ByteCursor(raw)
            #expect(c.readVarint() == nil)
        }
    }

    @Test func crc32cKnownVector() {
        // RFC 3720 B.4: 32 bytes of zeros -> 0x8A9136AA
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }
}
