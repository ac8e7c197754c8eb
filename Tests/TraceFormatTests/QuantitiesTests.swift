// One reading of durations and sizes for every flag and environment variable (issue 13, item 12).
import Testing
import TraceFormat

@Suite struct QuantitiesTests {
    @Test func durations() {
        #expect(Quantities.duration("10ms") == 10_000_000)
        #expect(Quantities.duration("250us") == 250_000 && Quantities.duration("250µs") == 250_000)
        #expect(Quantities.duration("1.5s") == 1_500_000_000 && Quantities.duration("800ns") == 800)
        #expect(Quantities.duration("2m") == 120_000_000_000 && Quantities.duration("2min") == 120_000_000_000)
        #expect(Quantities.duration("1h") == 3_600_000_000_000 && Quantities.duration("0") == 0)
        #expect(Quantities.duration(" 5s ") == 5_000_000_000)
    }

    @Test("durations that are ambiguous, negative, not finite or too long are refused, never trapped on")
    func badDurations() {
        for t in [
            "10", "", "s", "-1s", "1e20", "1e20s", "18446744073s", "nan", "nans", "infs", "1e400ms", "0x10s", "1..2s",
            "9223372037s", "+5s",
        ] {
            #expect(Quantities.duration(t) == nil, "\(t)")
        }
        #expect(Quantities.duration("9223372036s") != nil)
    }

    @Test func sizes() {
        #expect(Quantities.byteSize("4096") == 4096 && Quantities.byteSize("512K") == 512 << 10)
        #expect(Quantities.byteSize("16M") == 16 << 20 && Quantities.byteSize("64MiB") == 64 << 20)
        #expect(Quantities.byteSize("64mib") == 64 << 20 && Quantities.byteSize("2GB") == 2 << 30)
        #expect(Quantities.byteSize("1T") == 1 << 40)
        for t in ["", "M", "-1", "1.5M", "99999999999999999999", "16777216T", "16Q", "0x10"] {
            #expect(Quantities.byteSize(t) == nil, "\(t)")
        }
    }
}
