// Issue 13: the tick -> ns conversion of a chunk whose header a writer would never produce (valid checksum,
// inconsistent contents) saturates instead of trapping.
import Testing
import TraceFormat

@Suite struct ClockConversionTests {
    private func header(startNs: UInt64, endNs: UInt64, startTicks: UInt64, endTicks: UInt64) -> ChunkHeader {
        ChunkHeader(
            pid: 1, tid: 2, sequence: 0, startNs: startNs, endNs: endNs, startTicks: startTicks, endTicks: endTicks,
            droppedCumulative: 0)
    }

    /// One `before` at `ticks`, decoded by both decoder paths: its timestamp.
    private func decodedTime(_ h: ChunkHeader, ticks: UInt64) -> (UInt64, UInt64) {
        var b = ChunkBuilder(pid: 1, tid: 2, startNs: h.startNs, startTicks: h.startTicks)
        b.beginEvent(.before, ticks: ticks)
        b.putAsyncID(1)
        let payload = b.payload
        return payload.withUnsafeBytes { p in
            var one = ChunkDecoder(header: h, payload: p)
            guard case .success(let e)? = one.next() else { return (0, 0) }
            var batch = ChunkDecoder(header: h, payload: p)
            let events = UnsafeMutablePointer<RawEvent>.allocate(capacity: 4)
            defer { events.deallocate() }
            var lists = EventListBuffer()
            defer { lists.deallocate() }
            var floor: UInt64 = 0
            let n = batch.decodeBatch(into: events, capacity: 4, lists: &lists, floorNs: &floor)
            return (e.timestampNs, n.count == 1 ? events[0].timestampNs : 0)
        }
    }

    @Test func endBeforeStartMapsToTheStart() {
        // endNs < startNs used to make the ns-per-tick ratio ~2^64 and trap converting the product.
        let h = header(startNs: 1_000_000, endNs: 10, startTicks: 100, endTicks: 200)
        #expect(!h.hasOrderedClock)
        #expect(h.nanoseconds(forTicks: 150) == 1_000_000)
        #expect(decodedTime(h, ticks: 150) == (1_000_000, 1_000_000))
    }

    @Test func ticksBeyondTheRangeSaturate() {
        // A huge tick delta in an ordered chunk: the time passes UInt64.max ns.
        let h = header(startNs: UInt64.max - 1_000, endNs: UInt64.max, startTicks: 0, endTicks: 1)
        #expect(h.hasOrderedClock)
        #expect(h.nanoseconds(forTicks: 1 << 62) == .max)
        #expect(decodedTime(h, ticks: 1 << 62) == (.max, .max))
        let steep = header(startNs: 0, endNs: .max, startTicks: 0, endTicks: 1)
        #expect(steep.nanoseconds(forTicks: 3) == .max)
        #expect(decodedTime(steep, ticks: 3) == (.max, .max))
    }

    @Test func saturatingHelpers() {
        #expect(UInt64.max.addingSaturated(1) == .max && UInt64(2).addingSaturated(3) == 5)
        #expect(UInt64(2).subtractingSaturated(3) == 0 && UInt64(1 << 40).multipliedSaturated(1 << 40) == .max)
        #expect(UInt64.clamping(.nan) == 0 && UInt64.clamping(-1) == 0 && UInt64.clamping(1e30) == .max && UInt64.clamping(7.9) == 7)
        #expect(Int.clamping(.nan) == 0 && Int.clamping(1e300) == .max && Int.clamping(-1e300) == .min && Int.clamping(-2.5) == -2)
        #expect(ChunkHeader.adding(.max - 1, 5) == .max && ChunkHeader.adding(7, .nan) == 7 && ChunkHeader.adding(7, .infinity) == .max)
    }
}
