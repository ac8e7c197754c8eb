// Node's libuv thread pool (fs, crypto, dns.lookup and close work: UV_THREADPOOL_SIZE threads, 4 by default) runs its
// requests in the order they were queued. A request queued behind slow work (pbkdf2 calls, many file reads) gets its
// callback late though its own work is short, and nothing else says why: the loop idles meanwhile. With n requests
// ahead of it at its creation and k threads, it starts when n - k + 1 of them have completed (their callbacks: the
// loop learns of a completion then, so a little later than the thread took the next request).
import TraceSymbols

/// One request that waited for the requests queued before it in Node's thread pool.
public struct PoolWait: Sendable {
    /// The process id.
    public var pid: UInt32
    /// The request's async id.
    public var asyncID: UInt64
    /// Its type name (`FSREQCALLBACK`, `PBKDF2REQUEST`, `GETADDRINFOREQWRAP`, …).
    public var type: String
    /// When it was created, i.e. queued (CLOCK_MONOTONIC ns).
    public var queuedAtNs: UInt64
    /// From its creation to the completion that gave it a thread (ns): the time it waited for the pool.
    public var queueNs: UInt64
    /// From then to its callback (ns): its own run, and the loop's delay in getting to it.
    public var runNs: UInt64
    /// The pool's threads (UV_THREADPOOL_SIZE as the process saw it at its first pool request; 4, libuv's default,
    /// when the trace does not say).
    public var poolThreads: Int
    /// The requests queued before it and not yet completed at its creation.
    public var aheadAtQueueing: Int
    /// The requests it waited for (those ahead whose completions gave it a thread), by type and creation site,
    /// most first.
    public var ahead: [PoolWaitAhead] = []
    /// Where it was created, innermost first; empty where the trace does not say.
    public var createdAt: [CodeFrame] = []
    /// Trigger path from the root cause to it.
    public var causalChain: [String] = []
    /// The async ids of the requests ahead (at most `PoolWaitTracker.remembered`), for naming their sites.
    var aheadKeys: [(asyncID: UInt64, type: String)] = []
}

/// Requests queued before a `PoolWait`'s, of one type and creation site.
public struct PoolWaitAhead: Sendable {
    /// Their type name.
    public var type: String
    /// How many completed while the request waited.
    public var count: Int
    /// Where they were created, innermost first; empty where the trace does not say.
    public var createdAt: [CodeFrame] = []
}

/// The pool waits of a trace: the longest (`AnalysisOptions.top`), and all of them counted.
public struct PoolWaitSummary: Sendable {
    /// Requests whose queue time reached the blocking threshold.
    public var count: UInt64 = 0
    /// Their queue times, summed (ns).
    public var queueNsTotal: UInt64 = 0
    /// The longest queue times first.
    public var longest: [PoolWait] = []
}

struct PoolWaitTracker {
    /// Completions remembered per process to find the requests ahead of one (the pool's recent past): a request
    /// behind more than these is not listed.
    static let remembered = 1024
    /// Async ids of the requests waited for kept per listed wait (the rest are counted in its `ahead`).
    static let aheadNamed = 64
    /// Requests followed at once; beyond, new ones are not (counted in `notFollowed`).
    static let maxPending = 1 << 16
    private struct Pending {
        var initNs: UInt64
        var seq: UInt64
        var type: Int32
        var ahead: Int
    }
    private struct Completion {
        var ns: UInt64
        var seq: UInt64
        var asyncID: UInt64
        var type: Int32
    }
    private var pending = FastMap<ResourceKey, Pending>(capacity: 64)
    private var completions: [UInt32: [Completion]] = [:]
    private var isPoolType: [Bool?] = []
    /// pid -> requests pending in its pool.
    private var pendingInProcess: [UInt32: Int] = [:]
    /// pid -> its pool's threads, from the preload's `threadpool_size=` attribute.
    private var poolSize: [UInt32: Int] = [:]
    private var seq: UInt64 = 0
    private(set) var waits: [PoolWait] = []
    private(set) var count: UInt64 = 0
    private(set) var queueNsTotal: UInt64 = 0
    private(set) var notFollowed: UInt64 = 0
    let thresholdNs: UInt64
    let top: Int

    init(thresholdNs: UInt64, top: Int) {
        self.thresholdNs = max(thresholdNs, 1)
        self.top = max(top, 1)
    }

    /// Node's one-shot requests that run on libuv's thread pool: fs callbacks and promises, a FileHandle's close,
    /// dns.lookup()/lookupService(), and crypto's jobs (`PBKDF2REQUEST`, `SCRYPTREQUEST`, `RANDOMBYTESREQUEST`, …;
    /// not the http client's `HTTPCLIENTREQUEST`). zlib streams are long-lived resources whose writes use the pool
    /// without a resource each: not followed.
    static func runsOnThePool(_ type: String) -> Bool {
        switch type {
        case "FSREQCALLBACK", "FSREQPROMISE", "FILEHANDLECLOSEREQ", "GETADDRINFOREQWRAP", "GETNAMEINFOREQWRAP": return true
        case "HTTPCLIENTREQUEST": return false
        default: return type.hasSuffix("REQUEST") && type.allSatisfy { $0.isUppercase || $0.isNumber }
        }
    }

    mutating func initResource(_ key: ResourceKey, type: Int32, typeName: (Int32) -> String, ns: UInt64) {
        let t = Int(type)
        guard t >= 0 else { return }
        if t >= isPoolType.count { isPoolType += repeatElement(nil, count: t + 1 - isPoolType.count) }
        let pool = isPoolType[t] ?? Self.runsOnThePool(typeName(type))
        isPoolType[t] = pool
        guard pool else { return }
        guard pending.count < Self.maxPending else {
            notFollowed &+= 1
            return
        }
        seq &+= 1
        let ahead = pendingInProcess[key.pid] ?? 0
        if pendingInProcess[key.pid] != nil || pendingInProcess.count < ThreadTracker.maxThreads { pendingInProcess[key.pid] = ahead + 1 }
        pending.set(key, Pending(initNs: ns, seq: seq, type: type, ahead: ahead))
    }

    /// A `threadpool_size=N` attribute: the process's pool has N threads.
    mutating func attribute(_ key: ResourceKey, text: String) -> Bool {
        guard text.hasPrefix("threadpool_size=") else { return false }
        if let n = Int(text.dropFirst("threadpool_size=".count)), (1...1024).contains(n),
            poolSize[key.pid] == nil, poolSize.count < ThreadTracker.maxThreads
        {
            poolSize[key.pid] = n
        }
        return true
    }

    private mutating func leftThePool(_ pid: UInt32) {
        if let n = pendingInProcess[pid] { pendingInProcess[pid] = max(0, n - 1) }
    }

    /// A resource's callback begins: a followed request's first one is its completion.
    mutating func callback(_ key: ResourceKey, ns: UInt64, typeName: (Int32) -> String) {
        guard pending.count > 0, let p = pending.remove(key) else { return }
        leftThePool(key.pid)
        var done = completions[key.pid] ?? []
        let threads = poolSize[key.pid] ?? 4
        // It got a thread when fewer than `threads` of those ahead of it were left: at the (ahead - threads + 1)th of
        // their completions (in time order: those queued before it, completed since it was queued).
        let needed = p.ahead - threads + 1
        var waitedFor: [Completion] = []
        if needed > 0 {
            var i = done.count
            while i > 0 && done[i - 1].ns >= p.initNs { i -= 1 }
            for c in done[i...] where c.seq < p.seq {
                waitedFor.append(c)
                if waitedFor.count == needed { break }
            }
        }
        if needed > 0, waitedFor.count == needed, let gotThread = waitedFor.last?.ns,
            gotThread.subtractingSaturated(p.initNs) >= thresholdNs
        {
            let queue = gotThread.subtractingSaturated(p.initNs)
            count &+= 1
            queueNsTotal = queueNsTotal.addingSaturated(queue)
            if waits.count < top || queue > waits[waits.count - 1].queueNs {
                let w = PoolWait(
                    pid: key.pid, asyncID: key.asyncID, type: typeName(p.type), queuedAtNs: p.initNs, queueNs: queue,
                    runNs: ns.subtractingSaturated(gotThread), poolThreads: threads, aheadAtQueueing: p.ahead,
                    aheadKeys: waitedFor.suffix(Self.aheadNamed).map { ($0.asyncID, typeName($0.type)) })
                let at = waits.firstIndex { $0.queueNs < queue } ?? waits.count
                waits.insert(w, at: at)
                if waits.count > top { waits.removeLast() }
            }
        }
        if done.count >= Self.remembered { done.removeFirst() }
        done.append(Completion(ns: ns, seq: p.seq, asyncID: key.asyncID, type: p.type))
        if completions[key.pid] != nil || completions.count < ThreadTracker.maxThreads { completions[key.pid] = done }
    }

    /// A request destroyed without a callback (cancelled, or its process ended) is no longer pending.
    mutating func destroyed(_ key: ResourceKey) {
        if pending.count > 0, pending.remove(key) != nil { leftThePool(key.pid) }
    }
}
