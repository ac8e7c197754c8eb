// The Swift Concurrency adapter on the real runtime: a program with a known task tree, compiled with
// `swiftc -O`, recorded by the real `asynctrace record` with no change to the program. The tree is
// described at the top of Fixtures/task_tree.swift.
import Foundation
import Testing
import TraceFormat
import TraceReader

@Suite(.serialized) struct TaskTreeTests {
    @Test func recordedTaskTreeHasEveryTaskWithItsParent() throws {
        let program = try compileFixture("task_tree")
        let trace = scratch("task_tree.atrace")
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let rec = try run([builtExecutable("asynctrace"), "record", "--no-kernel", "-o", trace, "--", program])
        #expect(rec.status == 0, "record failed: \(rec.stderr)")
        #expect(rec.stdout.hasPrefix("task-tree "), "the program's own output: \(rec.stdout)")
        let t = try RecordedTasks(path: trace)

        // 19 tasks, each announced once.
        #expect(t.tasks.count == 19, "tasks: \(t.describe())")
        #expect(t.duplicateInits == 0)
        // Kinds, as the runtime's job flags say.
        #expect(t.ids(kind: "group child").count == 9, "\(t.describe())")
        #expect(t.ids(kind: "async let").count == 6, "\(t.describe())")
        #expect(t.ids(kind: "task").count == 3, "\(t.describe())")  // detached, inner, Task.sleep's helper

        // The parents. The main task is announced when it first creates work (its runs are on the main
        // queue); its trigger is the top level.
        let roots = t.tasks.values.filter { t.tasks[$0.trigger] == nil }
        #expect(roots.count == 1, "one task has no task as its trigger (main): \(t.describe())")
        guard let main = roots.first else { return }
        let childrenOfMain = t.children(of: main.id)
        #expect(childrenOfMain.count == 5, "main's children: 3 group tasks, the detached task, the sleep helper: \(t.describe())")
        let level1 = childrenOfMain.filter { t.tasks[$0]!.kind == "group child" }
        #expect(level1.count == 3)
        for g in level1 {
            let lets = t.children(of: g)
            #expect(lets.count == 2 && lets.allSatisfy { t.tasks[$0]!.kind == "async let" }, "\(t.describe())")
            let grandchildren = lets.map { t.children(of: $0) }.sorted { $0.count < $1.count }
            #expect(grandchildren.map(\.count) == [0, 2], "one async let runs a group of 2: \(t.describe())")
            #expect(grandchildren.last?.allSatisfy { t.tasks[$0]!.kind == "group child" } ?? false)
        }
        let unstructured = childrenOfMain.filter { t.tasks[$0]!.kind == "task" }
        #expect(unstructured.count == 2, "the detached task and the sleep helper: \(t.describe())")
        #expect(unstructured.map { t.children(of: $0).count }.sorted() == [0, 1], "the detached task created one task")
        // Swift 6.2+ task names, read inside each task as it completes: exactly the two named ones.
        let detached = unstructured.first { t.children(of: $0).count == 1 }
        #expect(detached.flatMap { t.tasks[$0]?.name } == "detached-worker", "\(t.describe())")
        #expect(detached.flatMap { t.children(of: $0).first }.flatMap { t.tasks[$0]?.name } == "inner-leaf")
        #expect(t.tasks.values.filter { $0.name != nil }.count == 2, "only the named tasks have names")

        // Every task but main completed (an async main ends the process from inside the main task), and
        // but one whose job the exit cut short on another thread.
        for task in t.tasks.values where task.id != main.id && !t.cutByExit.contains(task.id) {
            #expect(task.destroyed, "no destroy for task \(task.id) (\(task.kind))")
        }
        // Every job ran inside a before/after pair on its thread, after its task's init.
        #expect(t.unbalanced == 0, "before/after mismatches: \(t.unbalanced)")
        // The main task's last run never ends: exit() is called inside it. Jobs running on other threads at
        // that moment may be cut short too, but only as their thread's last callback boundary.
        #expect(t.openAtEnd.filter { $0 != main.id && !t.cutByExit.contains($0) } == [], "callbacks never left")
        #expect(t.cutByExit.count <= 2)
        #expect(t.runsBeforeInit == 0)
        for task in t.tasks.values where task.id != main.id {
            #expect(task.runs >= 1, "task \(task.id) (\(task.kind)) never ran in a recorded callback")
        }
        #expect(t.dropped == 0)
    }
}

/// What a trace says about Swift tasks.
struct RecordedTasks {
    struct Task {
        var id: UInt64
        var trigger: UInt64
        var kind = "?"
        var priority = "?"
        var name: String?
        var destroyed = false
        var runs = 0
    }
    var tasks: [UInt64: Task] = [:]
    var actorJobs = 0
    var duplicateInits = 0
    var unbalanced = 0
    var openAtEnd: [UInt64] = []
    /// Callbacks open at the end whose before was their thread's last event (the process exited meanwhile).
    var cutByExit: Set<UInt64> = []
    var runsBeforeInit = 0
    var dropped: UInt64 = 0

    init(path: String) throws {
        let reader = try TraceReader(path: path)
        dropped = reader.droppedUser
        var stacks: [Int: [UInt64]] = [:]
        var lastBoundaryWasBefore: [Int: Bool] = [:]
        let it = reader.events()
        while let e = it.next() {
            let ev = e.event
            // Only callback boundaries count: a job cut short by exit may still have created a task or
            // named one (init, attribute events) after its before.
            if ev.kind == .before || ev.kind == .after { lastBoundaryWasBefore[e.stream] = ev.kind == .before }
            switch ev.kind {
            case .initResource:
                let id = UInt64(bitPattern: ev.arg(0))
                if ev.text == "SwiftTask" {
                    if tasks[id] != nil { duplicateInits += 1 }
                    tasks[id] = Task(id: id, trigger: UInt64(bitPattern: ev.arg(2)))
                } else if ev.text == "SwiftActorJob" {
                    actorJobs += 1
                }
            case .resourceAttribute:
                let id = UInt64(bitPattern: ev.arg(0))
                let parts = ev.text.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { continue }
                if parts[0] == "kind" { tasks[id]?.kind = parts[1] }
                if parts[0] == "priority" { tasks[id]?.priority = parts[1] }
                if parts[0] == "name" { tasks[id]?.name = parts[1] }
            case .before:
                let id = UInt64(bitPattern: ev.arg(0))
                stacks[e.stream, default: []].append(id)
                if id & (1 << 56) != 0 {
                    if tasks[id] == nil { runsBeforeInit += 1 } else { tasks[id]!.runs += 1 }
                }
            case .after:
                let id = UInt64(bitPattern: ev.arg(0))
                if stacks[e.stream]?.last == id { stacks[e.stream]!.removeLast() } else { unbalanced += 1 }
            case .destroy:
                let id = UInt64(bitPattern: ev.arg(0))
                tasks[id]?.destroyed = true
            default:
                break
            }
        }
        openAtEnd = stacks.values.flatMap { $0 }
        for (stream, stack) in stacks where stack.count == 1 && lastBoundaryWasBefore[stream] == true { cutByExit.insert(stack[0]) }
        // The main task is the one no task created; name it so the kind checks read plainly.
        for (id, t) in tasks where tasks[t.trigger] == nil && t.kind == "task" {
            if tasks.values.contains(where: { $0.trigger == id && $0.kind == "group child" }) { tasks[id]!.kind = "main" }
        }
    }

    func ids(kind: String) -> [UInt64] { tasks.values.filter { $0.kind == kind }.map(\.id) }
    func children(of id: UInt64) -> [UInt64] { tasks.values.filter { $0.trigger == id }.map(\.id) }

    func describe() -> String {
        var lines: [String] = []
        func walk(_ id: UInt64, _ depth: Int) {
            let t = tasks[id]!
            lines.append(
                String(repeating: "  ", count: depth) + "\(id & ~(1 << 56)) \(t.kind) \(t.priority)"
                    + (t.destroyed ? "" : " (no destroy)") + " runs \(t.runs)")
            for c in children(of: id).sorted() { walk(c, depth + 1) }
        }
        for root in tasks.values.filter({ tasks[$0.trigger] == nil }).map(\.id).sorted() { walk(root, 0) }
        return "\n" + lines.joined(separator: "\n") + "\nactor jobs: \(actorJobs)"
    }
}
