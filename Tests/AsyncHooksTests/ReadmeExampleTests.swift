import Testing
import AsyncHooks

// README's "Making your own code traceable" example, kept compiling and true.
private let requestID = AsyncLocal<String>()

private final class Job: Sendable {
    let resource = AsyncResource("MYJOB")
    func complete(_ body: @escaping () -> Void) {
        resource.runInScope(body)
        resource.emitDestroy()
    }
}

extension AsyncHooksTests {
    @Test func readmeExampleWorksAsDescribed() {
        let seen = LockedValue<[String]>([])
        requestID.run("req-42") {
            let job = Job()
            job.complete {
                seen.withLock { $0.append(requestID.current ?? "nil") }
                #expect(executionAsyncID() == job.resource.asyncID)
            }
        }
        #expect(seen.withLock { $0 } == ["req-42"])
    }
}
