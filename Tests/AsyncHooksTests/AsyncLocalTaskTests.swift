// AsyncLocal follows Swift's own structure: child tasks, async let and group tasks inherit its values
// (as @TaskLocal values), detached tasks do not, and an async run or async resource scope covers awaits.
import AsyncHooks
import Testing

private let requestID = AsyncLocal<String>()

@Suite struct AsyncLocalTaskTests {
    @Test func childTasksAsyncLetAndGroupTasksInheritTheValue() async {
        let seen: [String?] = await requestID.run("r-1") {
            async let fromAsyncLet = Task.detached { requestID.current }.value  // detached: not inherited
            async let direct = { requestID.current }()
            let unstructured = await Task { requestID.current }.value
            let fromGroup = await withTaskGroup(of: String?.self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        await Task.yield(); return requestID.current
                    }
                }
                var all: [String?] = []
                for await v in group { all.append(v) }
                return all
            }
            return [await fromAsyncLet, await direct, unstructured] + fromGroup
        }
        #expect(seen == [nil, "r-1", "r-1", "r-1", "r-1", "r-1"])
        #expect(requestID.current == nil)
    }

    @Test func syncRunIsInheritedByTasksCreatedInside() async {
        let task = requestID.run("sync") {
            Task {
                await Task.yield(); return requestID.current
            }
        }
        #expect(await task.value == "sync")
        #expect(requestID.current == nil)
    }

    @Test func asyncRunCoversAwaitsAndNests() async throws {
        try await requestID.run("outer") {
            try await Task.sleep(nanoseconds: 1_000_000)
            #expect(requestID.current == "outer")
            await requestID.run("inner") {
                await Task.yield()
                #expect(requestID.current == "inner")
            }
            #expect(requestID.current == "outer")
        }
        #expect(requestID.current == nil)
    }

    @Test func asyncResourceScopeHoldsItsContextAcrossAwaits() async throws {
        let resource = requestID.run("created-with") { AsyncResource("AsyncScope") }
        let values: [String?] = try await resource.runInScope {
            let before = requestID.current
            try await Task.sleep(nanoseconds: 2_000_000)
            let child = await Task { requestID.current }.value
            return [before, requestID.current, child]
        }
        #expect(values == ["created-with", "created-with", "created-with"])
    }

    @Test func callbacksInsideARunKeepTheirResourcesContext() {
        let early = requestID.run("early") { AsyncResource("Early") }
        requestID.run("late") {
            early.runInScope { #expect(requestID.current == "early") }
            #expect(requestID.current == "late")
        }
    }
}
