// The registry several copies of AsyncHooks in one process share (CAsyncHooksSupport, ProcessCopies.swift)
// passes Swift values between copies: their layouts are part of the `asynchooks_process_v1` contract. A
// change here must bump the version in that symbol's name (asynchooks_support.h/.c) and these numbers.
@testable @_spi(Recorder) import AsyncHooks
import CAsyncHooksSupport
import Testing

@Suite struct ProcessCopiesTests {
    @Test func layoutsSharedBetweenCopiesArePinned() {
        #expect(MemoryLayout<AsyncHookFastPath>.size == 16 * 8)
        #expect(MemoryLayout<ExecutionStateData>.size == 8 * 8)
        #expect(MemoryLayout<SavedContext>.stride == 3 * 8)
        #expect(MemoryLayout<asynchooks_events>.size == 18 * 8)
        #expect(MemoryLayout<asynchooks_interner>.size == 3 * 8)
    }

    @Test func aLoneCopyIsTheOnlyMemberOfItsRegistry() {
        #expect(AsyncHooks.copiesInProcess == 1)
        // Its ids, span ids and type names are its own: the counters advance, names round-trip.
        let a = AsyncID.next(), b = AsyncID.next()
        #expect(a != b)
        let type = ResourceType("ProcessCopiesTests.Type")
        #expect(type.name == "ProcessCopiesTests.Type")
        #expect(ResourceType("ProcessCopiesTests.Type") == type)
    }
}
