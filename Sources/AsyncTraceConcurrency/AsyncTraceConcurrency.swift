// Swift Concurrency as async hooks: each task a resource of type SwiftTask (trigger: the task or
// callback that created it; init when it is first enqueued, destroy when its body completes), each run
// of one of its jobs a before/after on the thread that ran it. Jobs that are not tasks (an actor running
// its queue after a task hopped to it, a continuation, an isolated deinit) are one resource per run.
// The mechanisms, and what each cannot see, are in CAsyncTraceConcurrency/concurrency_hooks.c.
@_spi(Runtime) import AsyncHooks
import CAsyncTraceConcurrency

/// Swift Concurrency as async hooks: each task a SwiftTask resource (its trigger the task or callback that
/// created it), each run of one of its jobs a before/after on the thread that ran it.
public enum AsyncTraceConcurrency {
    /// The resource type of every Swift task.
    public static let taskType = ResourceType("SwiftTask")
    /// A default actor running the jobs queued on it (a task hopped to a busy or idle actor).
    public static let actorJobType = ResourceType("SwiftActorJob")
    /// A continuation resumed as a job of its own.
    public static let continuationJobType = ResourceType("SwiftContinuationJob")
    /// Any other job kind.
    public static let otherJobType = ResourceType("SwiftJob")

    /// The async id a Swift task id is recorded under (task ids and AsyncHooks' own ids never meet).
    public static func asyncID(ofTask taskID: UInt64) -> AsyncID { AsyncID(ATC_TASK_ID_TAG | taskID) }
    /// The Swift task id behind a SwiftTask async id, nil for other ids.
    public static func taskID(of asyncID: AsyncID) -> UInt64? {
        asyncID.rawValue & ATC_TASK_ID_TAG != 0 ? asyncID.rawValue & ~ATC_TASK_ID_TAG : nil
    }
    /// The id of the Swift task running on this thread (nil outside a task).
    public static var currentTaskID: UInt64? {
        let id = atc_current_task_id()
        return id == 0 ? nil : id
    }

    /// Why `install()` failed.
    public enum InstallError: Error, CustomStringConvertible {
        /// Neither `swift_task_enqueueGlobal_hook` nor Dispatch's queue functions were found in this process.
        case hookNotFound
        public var description: String {
            "swift_task_enqueueGlobal_hook or Dispatch's queue functions were not found in this process"
        }
    }

    /// Observes Swift Concurrency from inside the program, for programs `asynctrace record` cannot
    /// inject into (a static stdlib, `-static-stdlib`/`-static-executable`): call it once at start-up,
    /// before the first task. It sees the jobs of the global executor (where tasks, child tasks, async
    /// let and group tasks run); unlike the injected library it does not see jobs of the main actor or
    /// jobs resumed by a timer (after `Task.sleep`). Events go to the enabled hooks (start a recorder,
    /// e.g. `TraceRecorder.startFromEnvironment()`, to write them).
    public static func install() throws {
        setCallbacks()
        guard atc_install_enqueue_hook() == 0 else { throw InstallError.hookNotFound }
    }

    /// For the injected library: the Dispatch interposers do the observing.
    @_spi(Preload) public static func installForPreload() {
        setCallbacks()
        atc_set_preload_active(1)
    }

    /// What the hooks have seen in this process so far.
    public struct Statistics: Sendable, Equatable {
        /// Jobs run (each a before/after pair).
        public var jobsRun: UInt64
        /// Distinct tasks seen (each a SwiftTask resource).
        public var tasksSeen: UInt64
        /// Tasks whose completion was seen (each a destroy).
        public var tasksCompleted: UInt64
        /// Tasks whose completion could not be observed (so no destroy is recorded for them).
        public var tasksWithoutCompletion: UInt64
        /// Task names not recorded: past 4096 distinct names, the rest are counted here instead.
        public var taskNamesNotRecorded: UInt64 = 0
    }

    /// The counters now.
    public static var statistics: Statistics {
        let s = atc_get_statistics()
        return Statistics(
            jobsRun: s.jobsRun, tasksSeen: s.tasksSeen, tasksCompleted: s.tasksCompleted,
            tasksWithoutCompletion: s.tasksUnwrapped,
            taskNamesNotRecorded: TaskAttributes.namesNotRecorded.withLock { $0 })
    }

    static func setCallbacks() {
        // Interned before the hot path.
        _ = (taskType, actorJobType, continuationJobType, otherJobType, TaskAttributes.kinds, TaskAttributes.priorities)
        var cb = atc_callbacks()
        cb.task_init = { id, trigger, flags in
            AsyncHooks.emitInit(AsyncID(id), type: AsyncTraceConcurrency.taskType, triggerAsyncID: AsyncID(trigger))
            if AsyncHooks.isActive { TaskAttributes.emit(AsyncID(id), flags: flags) }
        }
        cb.job_init = { kind, trigger in
            let id = AsyncID.next()
            let type =
                switch kind {
                case 192, 193, 194: AsyncTraceConcurrency.actorJobType  // default actor inline/separate/override
                case 195: AsyncTraceConcurrency.continuationJobType
                default: AsyncTraceConcurrency.otherJobType
                }
            AsyncHooks.emitInit(id, type: type, triggerAsyncID: AsyncID(trigger))
            return id.rawValue
        }
        cb.before = { id, trigger in
            // No frame of its own: a task's AsyncLocal values travel with the task (task-local binding).
            AsyncHooks.enterCallback(AsyncID(id), triggerAsyncID: AsyncID(trigger), frame: nil)
        }
        cb.after = { id in AsyncHooks.leaveCallback(AsyncID(id)) }
        cb.after_and_destroy = { id in
            if AsyncHooks.isActive {
                AsyncHooks.leaveCallbackAndDestroy(AsyncID(id))
            } else {
                AsyncHooks.leaveCallback(AsyncID(id))
            }
        }
        cb.task_complete = { id in AsyncHooks.emitDestroy(AsyncID(id)) }
        cb.task_name = { id, name in
            if AsyncHooks.isActive, let name { TaskAttributes.emitName(AsyncID(id), String(cString: name)) }
        }
        cb.execution_id = { executionAsyncID().rawValue }
        atc_set_callbacks(&cb)
    }
}

/// A task's priority and kind, as resource attributes (interned once).
enum TaskAttributes {
    static let kinds = ["task", "child", "group child", "async let"].map { ResourceAttribute(key: "kind", value: $0) }
    static let priorities: [ResourceAttribute] = (0..<256).map { raw in
        let name =
            switch raw {
            case 0x21: "userInteractive"
            case 0x19: "high"
            case 0x15: "medium"
            case 0x11: "low"
            case 0x09: "background"
            case 0: "unspecified"
            default: "\(raw)"
            }
        return ResourceAttribute(key: "priority", value: name)
    }

    /// Names are interned as attributes (strings the trace defines once); past `maxNames` distinct ones
    /// (a program naming tasks after request ids) the rest are not recorded, and counted.
    static let maxNames = 4096
    static let names = LockedValue<[String: ResourceAttribute]>([:])
    static let namesNotRecorded = LockedValue<UInt64>(0)

    static func emitName(_ id: AsyncID, _ name: String) {
        let attribute: ResourceAttribute? = names.withLock { table in
            if let a = table[name] { return a }
            guard table.count < maxNames else { return nil }
            let a = ResourceAttribute(key: "name", value: name)
            table[name] = a
            return a
        }
        if let attribute {
            AsyncHooks.emitResourceAttribute(id, attribute)
        } else {
            namesNotRecorded.withLock { $0 += 1 }
        }
    }

    static func emit(_ id: AsyncID, flags: UInt32) {
        let kind = flags & (1 << 28) != 0 ? 3 : flags & (1 << 26) != 0 ? 2 : flags & (1 << 24) != 0 ? 1 : 0
        AsyncHooks.emitResourceAttribute(id, kinds[kind])
        AsyncHooks.emitResourceAttribute(id, priorities[Int((flags >> 8) & 0xff)])
    }
}
