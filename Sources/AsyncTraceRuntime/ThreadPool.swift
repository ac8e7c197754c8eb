// The thread pool for work that blocks (file system, getaddrinfo, user work), as libuv's:
// UV_THREADPOOL_SIZE threads (default 4, 1...1024), shared by every loop of the process, started
// on first use. Work runs on a pool thread; its completion is posted back to the submitting loop,
// which runs it in the poll phase (eventfd wakeup) as a callback of the request's resource.
#if canImport(Glibc)
import Glibc
#endif
@_spi(Runtime) import AsyncHooks

final class ThreadPool: @unchecked Sendable {
    static let shared = ThreadPool(size: ThreadPool.configuredSize())

    static func configuredSize() -> Int {
        guard let v = getenv("UV_THREADPOOL_SIZE").flatMap({ Int(String(cString: $0)) }) else { return 4 }
        return min(max(v, 1), 1024)
    }

    let size: Int
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var queue = RingQueue<@Sendable () -> Void>()
    private var started = false

    init(size: Int) {
        self.size = size
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    func submit(_ work: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(mutex)
        if !started {
            started = true
            for _ in 0..<size { startThread() }
        }
        queue.push(work)
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    private func startThread() {
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        var t = pthread_t()
        let me = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(
            &t, &attr,
            { arg in
                let pool = Unmanaged<ThreadPool>.fromOpaque(arg!).takeRetainedValue()
                pool.workerLoop()
                return nil
            }, me)
        pthread_attr_destroy(&attr)
        if rc != 0 {
            Unmanaged<ThreadPool>.fromOpaque(me).release()
            RuntimeProcess.writeStderr("asynctrace: thread pool: pthread_create failed (\(rc))\n")
        }
    }

    private func workerLoop() {
        // Pool threads never take signals meant for a loop's signalfd.
        var all = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_BLOCK, &all, nil)
        while true {
            pthread_mutex_lock(mutex)
            while queue.isEmpty { pthread_cond_wait(condition, mutex) }
            let work = queue.pop()!
            pthread_mutex_unlock(mutex)
            work()
        }
    }
}

extension ResourceType {
    /// A promise-based fs request (Node's fs/promises).
    public static let fsReqPromise = ResourceType("FSREQPROMISE")
}

extension EventLoop {
    /// Runs `work` on the thread pool, then `completion` on this loop (poll phase) as a callback of a
    /// new resource of `type` (init now, destroy after the completion). Keeps the loop alive meanwhile.
    public func queueWork<T: Sendable>(
        type: ResourceType = .workerWrap,
        _ work: @escaping @Sendable () throws -> T,
        completion: @escaping (Result<T, any Error>) throws -> Void
    ) {
        let ctx = AsyncResourceContext(type: type)
        retainRequest()
        let done = UncheckedBox(completion)
        ThreadPool.shared.submit { [self] in
            let result: Result<T, any Error>
            do { result = .success(try work()) } catch { result = .failure(error) }
            postRemote { [self] in
                releaseRequest()
                invoke(ctx) { try done.value(result) }
                ctx.emitDestroy()
            }
        }
    }

    /// `queueWork` as a promise.
    public func queueWork<T: Sendable>(type: ResourceType = .workerWrap, _ work: @escaping @Sendable () throws -> T) -> Promise<T> {
        let (p, r) = Promise<T>.withResolver()
        queueWork(type: type, work) { result in
            switch result {
            case .success(let v): r.resolve(v)
            case .failure(let e): r.reject(e)
            }
        }
        return p
    }
}

/// libuv's uv_queue_work on this thread's loop.
public func queueWork<T: Sendable>(
    _ work: @escaping @Sendable () throws -> T,
    completion: @escaping (Result<T, any Error>) throws -> Void
) {
    EventLoop.current.queueWork(work, completion: completion)
}
