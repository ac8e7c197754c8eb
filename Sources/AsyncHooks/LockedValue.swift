// A value behind a pthread mutex, for the package's few locks (registries, the recorder's chunk queue,
// the loop's cross-thread queue). Not Synchronization.Mutex: on Linux it locks with futexes that
// ThreadSanitizer cannot see (two threads incrementing under Mutex.withLock are reported as a race), so a
// TSan run would flag every locked access; TSan intercepts pthread_mutex_lock and checks these.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

package final class LockedValue<Value>: @unchecked Sendable {
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline var value: Value

    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inlinable
    package func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }

    /// nil without running `body` when another thread holds the lock (for a signal handler, which must
    /// not wait for the thread it interrupted).
    @inlinable
    package func withLockIfAvailable<Result>(_ body: (inout Value) -> Result) -> Result? {
        guard pthread_mutex_trylock(mutex) == 0 else { return nil }
        defer { pthread_mutex_unlock(mutex) }
        return body(&value)
    }
}
