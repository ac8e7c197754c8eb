// The batches asynctrace-preload.js sends: what a node thread's hooks recorded, in float64 slots.
// This is a private protocol between the preload and this module (both ship in one binary), not
// the trace format: NodeTraceWriter turns it into trace events with TraceFormat's ChunkBuilder.
//
// One batch = one write(2) of at most PIPE_BUF bytes on the recorder's FIFO, so batches from many
// processes and threads never interleave. Little-endian float64 slots:
//   header (8 slots): magic, pid, tid, sequence (per thread), dropped events so far, slots used
//                     (header included), Node's threadId, nonce × 2 + taken
//   (nonce: random per thread, tells a thread from a later one with the same pid/tid; taken = 1: the
//   batch was taken from a stopped worker's shared memory and written by a thread above it. The recorder
//   processes each thread's (sequence, slot) only once: a batch taken and then written by the worker
//   itself, or written and then taken, adds only the records it did not have.)
//   records: kind, then its fields (below); integers are exact in a float64 up to 2^53.
//   The five records every callback makes also come packed, one slot shorter: a negative first slot
//   -(asyncID × 8 + code) holds the kind and the id, then the other fields in the plain record's order:
//   before/after/after+destroy [p, ms], destroy [p], init [p, triggerAsyncID, type index].
public enum NodeBatchProtocol {
    /// Codes of the packed records (the low 3 bits of the negated first slot).
    public static let packedBefore: UInt64 = 1
    public static let packedAfter: UInt64 = 2
    public static let packedAfterDestroy: UInt64 = 3
    public static let packedDestroy: UInt64 = 4
    public static let packedInit: UInt64 = 5

    public static let magic: Double = 0x4154_4E42  // "ATNB"
    /// The low 32 bits of every thread's batch-write resource id (the preload's FLUSH_ID: the thread's id base
    /// + 2³² − 1), the recorder's own resource around each batch's write(2).
    public static let batchWriteID: UInt64 = 0xFFFF_FFFF
    /// A message the recorder sends itself through the FIFO to end its reading loop.
    public static let stopMagic: Double = 0x4154_4E53  // "ATNS"
    public static let maxBatchBytes = 4096
    public static let headerSlots = 8
    public static let maxStringUnits = 256

    public enum Kind: Int {
        /// asyncID, triggerAsyncID, type index (K_STRING defines it); time = the thread's last.
        case initResource = 1
        /// performance.now() ms, asyncID.
        case before = 2
        /// performance.now() ms, asyncID.
        case after = 3
        /// asyncID.
        case destroy = 4
        /// asyncID.
        case promiseResolve = 5
        /// asyncID, fd.
        case resourceFD = 6
        /// index, length, UTF-16 code units: a type name for K_INIT.
        case string = 7
        /// CLOCK_MONOTONIC ns minus performance.now() in ns (this thread's clock offset), performance.now() ms.
        case clock = 8
        /// 0, length, code units: the thread's name.
        case thread = 9
        /// ppid, length, code units: the process's command line (main thread only).
        case process = 10
        /// 0: the thread is exiting (its last batch).
        case end = 11
        /// asyncID, length, code units: an uncaught exception's first line, thrown in that resource's callback.
        case uncaught = 12
        /// asyncID, length, code units: where the resource was created (V8 frame lines, innermost first);
        /// time = the thread's last. Written as the resource's `created_at=` attribute.
        case site = 13
        /// performance.now() ms, asyncID: an `after` and the resource's `destroy` right behind it (time = the
        /// after's). The preload writes it for a resource destroyed right after its callback (ticks,
        /// immediates, one-shot timers): one record instead of two.
        case afterDestroy = 14
        /// tid, count: a thread of this process (a worker) lost `count` events: a thread above it could not write
        /// what the worker left unwritten when it was stopped. Counted as dropped on that thread's stream.
        case lost = 15
        /// asyncID, 1 or 0: the handle or timer was ref'd or unref'd (it keeps the process alive, or not);
        /// time = the thread's last. Written as the resource's `ref=` attribute. A resource with none is ref'd.
        case refState = 16
        /// asyncID, 0: the program called process.exit() in this resource's callback (the thread's root id: at
        /// its top level); time = the thread's last. Written as the resource's `process_exit=called` attribute.
        case exitCalled = 17
        /// asyncID, threads (1-1024): the thread's first thread-pool request, and the pool's size as libuv reads it
        /// then (UV_THREADPOOL_SIZE). Written as the resource's `threadpool_size=` attribute.
        case threadPoolSize = 18
        /// asyncID, 0: the resource has no site because the thread's site budget was spent when it was made (sent
        /// when its callback ran long). Written as its `created_at_missing=budget` attribute.
        case siteOverBudget = 19
        /// asyncID, length, code units: an inet socket's "local->peer" addresses, as the kernel probes write them,
        /// from a process that can be handed sockets over IPC (the probes saw no accept for those). Written as the
        /// resource's `socket=` attribute.
        case socketAddresses = 20
    }
}
