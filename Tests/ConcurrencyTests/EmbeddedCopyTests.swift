// An application with its own copy of AsyncHooks and no recorder (Sources/asynctrace-embedded-fixture),
// recorded by the real `asynctrace record`: the injected library's copy and the application's meet in one
// registry, so the application's resources, fd, spans and marks reach the injected recorder, ids come from
// one counter, and a Swift task created inside the application's callback has that callback as trigger
// (the copies share the thread's execution state).
import Foundation
import Testing
import TraceFormat
import TraceReader

@Suite(.serialized) struct EmbeddedCopyTests {
    @Test func applicationCopyReachesTheInjectedRecorder() throws {
        let program = builtExecutable("asynctrace-embedded-fixture")
        let trace = scratch("embedded.atrace")
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let rec = try run([builtExecutable("asynctrace"), "record", "--no-kernel", "-o", trace, "--", program])
        #expect(rec.status == 0, "record failed: \(rec.stderr)")
        #expect(rec.stdout.contains("copies 2\n"), "the application's copy and the injected one share the hooks: \(rec.stdout)")
        // AsyncLocal (the application's copy) while the injected copy runs every job as a callback: inherited
        // by async let and group tasks, kept across awaits, not in a detached task.
        let locals = rec.stdout.split(separator: "\n").first { $0.hasPrefix("locals ") }.map(String.init)
        #expect(
            locals == "locals async-run async-run async-run async-run async-run async-run nil sync-run async-run",
            "\(rec.stdout)")
        let idsLine = rec.stdout.split(separator: "\n").first { $0.hasPrefix("ids ") }.map { $0.split(separator: " ") }
        let ids = try #require(idsLine.map { $0.dropFirst().compactMap { UInt64($0) } })
        try #require(ids.count == 2)

        let reader = try TraceReader(path: trace)
        var works: [UInt64: (trigger: UInt64, fd: Int64?, runs: Int, destroyed: Bool)] = [:]
        var taskTriggers: [UInt64: UInt64] = [:]
        var allInits: [UInt64] = []
        var markContext: UInt64?
        var spanName: String?
        var spanAttributes: [String] = []
        let it = reader.events()
        while let e = it.next() {
            let ev = e.event
            switch ev.kind {
            case .initResource:
                let id = UInt64(bitPattern: ev.arg(0))
                allInits.append(id)
                if ev.text == "EmbeddedWork" { works[id] = (UInt64(bitPattern: ev.arg(2)), nil, 0, false) }
                if ev.text == "SwiftTask" { taskTriggers[id] = UInt64(bitPattern: ev.arg(2)) }
            case .resourceFD:
                works[UInt64(bitPattern: ev.arg(0))]?.fd = ev.arg(1)
            case .before:
                works[UInt64(bitPattern: ev.arg(0))]?.runs += 1
            case .destroy:
                works[UInt64(bitPattern: ev.arg(0))]?.destroyed = true
            case .mark where ev.text == "embedded-mark":
                markContext = UInt64(bitPattern: ev.arg(1))
            case .spanBegin:
                spanName = ev.text
            case .spanAttribute:
                spanAttributes.append(ev.text)
            default:
                break
            }
        }
        #expect(Set(works.keys) == Set(ids), "the application's resources, by the ids it saw: \(works)")
        let work = try #require(works[ids[0]])
        // Created in the async main's first run (a task run since the preload brackets `main`'s own swift_job_run):
        // its trigger is the main task, which the top level started.
        #expect(taskTriggers[work.trigger] == 1, "created in the main task's run: \(work.trigger), tasks \(taskTriggers)")
        #expect(work.fd != nil && work.fd! > 2, "its fd: \(work)")
        #expect(work.runs == 1 && work.destroyed)
        #expect(works[ids[1]]?.destroyed == true)
        #expect(markContext == ids[0], "the mark was made inside the application's callback")
        #expect(spanName == "embedded-span")
        #expect(spanAttributes.contains("copy=application"))
        // The detached task created inside the application's callback: triggered by it (the injected
        // library's task observation reads the execution state the application's copy set).
        #expect(taskTriggers.values.contains(ids[0]), "a task triggered by EmbeddedWork: \(taskTriggers)")
        #expect(Set(allInits).count == allInits.count, "no id given twice across the copies")
        #expect(reader.droppedUser == 0)
    }
}
