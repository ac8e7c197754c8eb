// asynctrace's Node adapter, preloaded by `asynctrace record` (NODE_OPTIONS=--require ...) into every
// node process and worker thread it starts. It turns Node's own async_hooks events (init, before, after,
// destroy; promises only with --node-promises) into compact binary batches for the recorder, which
// writes them into the trace with TraceFormat's writer: this file defines the batch protocol, not the
// trace format (Sources/NodeRecording/NodeBatchProtocol.swift reads it; docs/node.md describes it).
//
// Cost matters more than elegance here: every hook runs on the application's thread. Events go into a
// preallocated Float64Array (one typed store per field, no allocation); one batch is at most PIPE_BUF
// (4096) bytes so a write(2) to the recorder's FIFO is atomic among all writers; only `before` and
// `after` read the clock (init, destroy and fd events take the thread's previous time, as the Swift
// recorder does).
'use strict';
(function asynctracePreload() {
  const fifoPath = process.env.ASYNCTRACE_NODE_FIFO;
  if (!fifoPath) return;
  const fs = require('fs');
  const asyncHooks = require('async_hooks');
  const { performance } = require('perf_hooks');
  let workerThreads = null;
  try { workerThreads = require('worker_threads'); } catch { /* very old node */ }
  const isMain = !workerThreads || workerThreads.isMainThread;
  const nodeThreadId = workerThreads ? workerThreads.threadId : 0;
  const mode = process.env.ASYNCTRACE_NODE_MODE || 'default';
  const withPromises = mode === 'promises';
  const sitesMode = process.env.ASYNCTRACE_NODE_SITES || 'on';  // on (budgeted) | all | off
  const withSites = sitesMode !== 'off';

  let fd;
  try {
    // O_NONBLOCK: opening fails at once (ENXIO) if the recorder is gone, instead of hanging.
    fd = fs.openSync(fifoPath, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK | fs.constants.O_CLOEXEC);
    if (!fs.fstatSync(fd).isFIFO()) { fs.closeSync(fd); return; }
  } catch {
    return;  // not recording (recorder gone or path unusable): the program runs untraced
  }

  // This thread's ids: Node does not expose the OS thread id; /proc/thread-self is "PID/task/TID".
  let pid = process.pid, tid = process.pid;
  try {
    const parts = fs.readlinkSync('/proc/thread-self').split('/');
    pid = Number(parts[0]); tid = Number(parts[2]);
  } catch { /* keep process.pid */ }
  // Async ids count from 1 in every worker, but the trace keys resources by process: a worker's ids
  // are moved to their own range (threadId * 2^32 + id), the main thread's stay as Node prints them.
  const idBase = isMain ? 0 : nodeThreadId * 4294967296;
  // A worker's first resources are triggered by its root (execution id 1 or 2 at this point), which is no
  // resource; the WORKER that started the thread is, in the parent thread: the parent's preload passes its
  // id (in the parent's range) through the worker's environment data, cloned when the Worker is made.
  // The same data carries the worker's batch buffer, shared with the parent (below).
  const ENV_KEY = 'asynctrace:parent-worker';
  let rootTrigger = -1, parentWorker = -1, sharedBuffer = null, sharedOffset = 0, inheritedPool = null;
  let inheritedSlot = -1, inheritedGeneration = -1;
  if (!isMain) {
    try {
      const w = workerThreads.getEnvironmentData(ENV_KEY);
      if (w && typeof w.parent === 'number' && w.parent > 0) { parentWorker = w.parent; rootTrigger = asyncHooks.executionAsyncId(); }
      if (w && w.pool instanceof SharedArrayBuffer && Number.isInteger(w.slot) && Number.isInteger(w.generation)) {
        inheritedPool = w.pool; inheritedSlot = w.slot; inheritedGeneration = w.generation;
      } else if (w && w.buffer instanceof SharedArrayBuffer) sharedBuffer = w.buffer;
    } catch { /* no environment data (node < 15.12): triggers stay the worker's root */ }
  }

  // Batch layout (float64 slots): header, then records. See NodeBatchProtocol.swift.
  const BATCH_BYTES = 4096, SLOTS = BATCH_BYTES / 8, HEADER = 8;
  const MAGIC = 0x4154_4e42;  // "ATNB"
  const K_INIT = 1, K_BEFORE = 2, K_AFTER = 3, K_DESTROY = 4, K_PROMISE_RESOLVE = 5, K_FD = 6,
        K_STRING = 7, K_CLOCK = 8, K_THREAD = 9, K_PROCESS = 10, K_END = 11, K_UNCAUGHT = 12, K_SITE = 13,
        K_AFTER_DESTROY = 14, K_LOST = 15, K_REF = 16, K_EXIT_CALLED = 17, K_POOL_SIZE = 18,
        K_SITE_OVER_BUDGET = 19, K_SOCKET = 20;
  // The records every callback makes are packed, one slot shorter: the first slot -(id * 8 + code) holds the
  // kind and the async id (ids stay below 2^50: worker ranges are threadId * 2^32), then the other fields.
  const P_BEFORE = 1, P_AFTER = 2, P_AFTER_DESTROY = 3, P_DESTROY = 4, P_INIT = 5;
  const MAX_RECORD = 4 + 256;  // the longest record (a string of at most 256 code units)
  // Room kept free in every batch for the batch write's own events (init, fd, before, its type name).
  const LIMIT = SLOTS - 48;
  // A worker's batch lives in memory shared with the threads above it (SHARED_BYTES: the batch, then CONTROL
  // int32s), so that what the worker has not written when it is stopped (terminate(), process.exit() in the
  // main thread or in a worker above it: no exit handler runs in it, nor in the workers it started) is
  // written by a thread above it, which takes it after the thread ended, or at its own exit (see takeBatch).
  // The header is kept current for that: slot 5 (slots used) after every record, slots 3-4 after every write.
  // The buffers of a process's workers, at any depth, are slots of one pool the top thread made and every
  // worker hands down (MAX_POOL_SLOTS; fewer if ASYNCTRACE_NODE_POOL_SLOTS says so when the top thread starts
  // its first worker, as a test does; a worker started when all are in use gets a buffer of its own, shared
  // with its parent only), so the main thread's exit reaches all of them, also the workers of a stopped worker.
  const CONTROL = 8, SHARED_BYTES = BATCH_BYTES + CONTROL * 4, MAX_POOL_SLOTS = 1024;
  let poolSlots = 0;
  const C_SEQUENCE = 0,  // the batch's sequence, published with each write
        C_CLAIM = 1,     // 1: the worker took the buffer (once: a stale one inherited is not reused)
        C_STATE = 2,     // pool slots: 1 in use (allocated by the parent), 2 being allocated, 0 free
        C_PARENT = 3,    // pool slots: the parent's slot + 1 (0: the thread that made the pool)
        C_GENERATION = 4,  // pool slots: counts allocations (a copy spanning a reuse is made again)
        C_CLOSING = 5,   // 1: a thread above is about to end this one (process.exit), 2: terminate(): record nothing more
        C_IN_HOOK = 6,   // > 0 while this thread's hooks run (plain stores; see closeBelow)
        C_CLOSED = 7;    // 1: this thread saw C_CLOSING and stopped recording
  let shared = null, pool = null, mySlot = -1;
  if (inheritedPool !== null && inheritedPool.byteLength % SHARED_BYTES === 0 &&
      inheritedPool.byteLength <= MAX_POOL_SLOTS * SHARED_BYTES && inheritedSlot >= 0 &&
      inheritedSlot < inheritedPool.byteLength / SHARED_BYTES) {
    const control = new Int32Array(inheritedPool, inheritedSlot * SHARED_BYTES + BATCH_BYTES, CONTROL);
    if (Atomics.load(control, C_GENERATION) === inheritedGeneration && Atomics.compareExchange(control, C_CLAIM, 0, 1) === 0) {
      shared = control; pool = inheritedPool; mySlot = inheritedSlot; poolSlots = pool.byteLength / SHARED_BYTES;
      sharedBuffer = inheritedPool; sharedOffset = inheritedSlot * SHARED_BYTES;
    }
  } else if (sharedBuffer !== null && sharedBuffer.byteLength === SHARED_BYTES) {
    const control = new Int32Array(sharedBuffer, BATCH_BYTES, CONTROL);
    if (Atomics.compareExchange(control, C_CLAIM, 0, 1) === 0) shared = control;
  }
  // This thread's control words (the main thread's are its own: nobody closes it).
  const own = shared !== null ? shared : new Int32Array(CONTROL);
  const buf = shared !== null ? new Float64Array(sharedBuffer, sharedOffset, SLOTS) : new Float64Array(SLOTS);
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, BATCH_BYTES);
  let pos = HEADER, sequence = 0, dropped = 0, pendingEvents = 0, enabled = true, pipeOpen = true;
  let chainMs = -1;  // the last after's time while it was a tick's and nothing came after it; -1: none (below)
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  // A per-thread nonce (header slot 7, doubled; +1 marks a batch its parent took): the recorder tells a
  // thread's batches from those of a later thread with the same pid/tid, and sees a batch twice only once.
  const nonce = 1 + Math.floor(Math.random() * 0x3fff_ffff);
  buf[0] = MAGIC; buf[1] = pid; buf[2] = tid; buf[3] = 0; buf[4] = 0; buf[5] = HEADER; buf[6] = nodeThreadId;
  buf[7] = nonce * 2;

  // Each batch write is itself recorded as a callback of a resource of its own (init, fd, before ...
  // write ... after, destroy), so the kernel attributes the write(2) to it and not to the application
  // callback it happened in, and the per-fd table names the FIFO's fd.
  const FLUSH_ID = idBase + 4294967295;
  const FLUSH_TYPE = 'asynctrace (batch write)';
  let flushTypeIndex = -1;
  let tailOnly = false;  // the batch holds nothing but the previous write's after/destroy
  // bare: no write callback around this write (the thread's last batch, whose end would never be sent; or
  // a lone tail sent by the timer while idle).
  function writeBatch(bare) {
    if (pos === HEADER || (tailOnly && pos === HEADER + 5 && !bare)) return;
    if (bare) {
      // (Nothing to open.)
    } else if (flushTypeIndex < 0) {
      flushTypeIndex = typeIndex.size;
      typeIndex.set(FLUSH_TYPE, flushTypeIndex);
      putStringUnchecked(K_STRING, flushTypeIndex, FLUSH_TYPE);
    }
    if (!bare) {
      buf[pos] = K_INIT; buf[pos + 1] = FLUSH_ID; buf[pos + 2] = 0; buf[pos + 3] = flushTypeIndex;
      buf[pos + 4] = K_FD; buf[pos + 5] = FLUSH_ID; buf[pos + 6] = fd;
      buf[pos + 7] = K_BEFORE; buf[pos + 8] = performance.now(); buf[pos + 9] = FLUSH_ID;
      pos += 10;
      pendingEvents += 3;
    }
    buf[0] = MAGIC; buf[1] = pid; buf[2] = tid; buf[3] = sequence; buf[4] = dropped; buf[5] = pos;
    buf[6] = nodeThreadId; buf[7] = nonce * 2;
    const outcome = writeFully(bytes, pos * 8);
    // No call between these stores (V8 stops a terminated thread only at a call or a loop's back edge): the
    // parent sees either this batch whole, unsent or sent (then the recorder skips it as seen), or the next.
    if (outcome === WRITE_FULL) dropped += pendingEvents;
    pos = HEADER; buf[5] = HEADER;
    sequence++; buf[3] = sequence; buf[4] = dropped;
    if (shared !== null) Atomics.store(shared, C_SEQUENCE, sequence);
    if (outcome === WRITE_GONE) { enabled = false; pipeOpen = false; }
    pendingEvents = 0;
    tailOnly = false;
    chainMs = -1;  // the write came between: the next callback reads the clock
    if (bare) return;
    tailOnly = true;
    pendingEvents = 2;
    buf[pos] = K_AFTER; buf[pos + 1] = performance.now(); buf[pos + 2] = FLUSH_ID;
    buf[pos + 3] = K_DESTROY; buf[pos + 4] = FLUSH_ID;
    pos += 5; buf[5] = pos;
  }

  // A full pipe means the recorder is behind: wait for it a little (50 us at a time at first, at most
  // ~1 s in all), then give up (the caller drops the batch and counts its events), rather than block the
  // application.
  const WRITE_OK = 0, WRITE_FULL = 1, WRITE_GONE = 2;
  function writeFully(data, n) {
    let waitedMs = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        fs.writeSync(fd, data, 0, n);
        return WRITE_OK;
      } catch (e) {
        if (e.code === 'EAGAIN' && waitedMs < 1000) {
          const ms = attempt < 20 ? 0.05 : 1;
          Atomics.wait(sleeper, 0, 0, ms);
          waitedMs += ms;
          continue;
        }
        return e.code === 'EAGAIN' ? WRITE_FULL : WRITE_GONE;  // EPIPE/EBADF: the recorder is gone
      }
    }
  }

  function putString(kind, index, text) {
    if (pos + MAX_RECORD > LIMIT) writeBatch();
    putStringUnchecked(kind, index, text);
  }
  function putStringUnchecked(kind, index, text) {
    const s = String(text);
    const n = Math.min(s.length, 256);
    buf[pos] = kind; buf[pos + 1] = index; buf[pos + 2] = n;
    for (let i = 0; i < n; i++) buf[pos + 3 + i] = s.charCodeAt(i);
    pos += 3 + n; buf[5] = pos;
  }

  // Node's type names, interned per thread (a string record the first time each is seen), with what init
  // does for each type in typeFlags (an array read instead of Set lookups per init).
  const typeIndex = new Map();
  const F_FREQUENT = 1, F_FD = 2, F_WORKER = 4, F_TICK = 8, F_FILEHANDLE = 16, F_CLOSE_REQUEST = 32, F_TIMEOUT = 64,
        F_POOL = 128;
  const typeFlags = new Uint8Array(65536);
  // Node's one-shot requests that run on libuv's thread pool (as the report's PoolWaitTracker.runsOnThePool): fs,
  // a FileHandle's close, dns.lookup, crypto's jobs. One whose callback comes late waited for the pool, and the
  // report names it and those ahead of it, by their sites.
  function runsOnThePool(type) {
    if (type === 'FSREQCALLBACK' || type === 'FSREQPROMISE' || type === 'FILEHANDLECLOSEREQ' ||
        type === 'GETADDRINFOREQWRAP' || type === 'GETNAMEINFOREQWRAP') return true;
    return type !== 'HTTPCLIENTREQUEST' && /^[A-Z0-9]+REQUEST$/.test(type);
  }
  // Pool requests with a captured site, until their first callback: one that came BLOCKING_MS or more after the
  // request sends its site then (its callback itself is short: the slow-callback rule would not).
  const poolRequests = new Set();
  const MAX_POOL_REQUESTS = 4096;
  function typeID(type) {
    let i = typeIndex.get(type);
    if (i === undefined) {
      i = typeIndex.size;
      typeIndex.set(type, i);
      putString(K_STRING, i, type);
      if (i < typeFlags.length) {
        typeFlags[i] = (FREQUENT_TYPES.has(type) ? F_FREQUENT : 0) | (FD_TYPES.has(type) ? F_FD : 0) |
          (type === 'WORKER' ? F_WORKER : 0) | (type === 'TickObject' ? F_TICK : 0) |
          (type === 'FILEHANDLE' ? F_FILEHANDLE : 0) | (type === 'FILEHANDLECLOSEREQ' ? F_CLOSE_REQUEST : 0) |
          (type === 'Timeout' ? F_TIMEOUT : 0) | (runsOnThePool(type) ? F_POOL : 0);
      }
    }
    return i;
  }

  // Clock: performance.now() (ms since this thread's time origin, no allocation) mapped to
  // CLOCK_MONOTONIC ns (process.hrtime is uv_hrtime, CLOCK_MONOTONIC: the kernel probes' clock) by an
  // offset measured here, the tightest of a few back-to-back readings.
  function clockRecord() {
    let best = Infinity, offset = 0;
    for (let i = 0; i < 5; i++) {
      const a = performance.now();
      const h = Number(process.hrtime.bigint());
      const b = performance.now();
      if (b - a < best) { best = b - a; offset = h - (a + b) / 2 * 1e6; }
    }
    if (pos + 3 > LIMIT) writeBatch();
    buf[pos] = K_CLOCK; buf[pos + 1] = Math.round(offset); buf[pos + 2] = performance.now(); pos += 3; buf[5] = pos;
  }

  let threadName = isMain ? 'main' : 'worker ' + nodeThreadId;
  try {
    const comm = fs.readFileSync('/proc/thread-self/comm', 'latin1').trim();
    if (comm) threadName = comm + (isMain ? '' : ' (worker ' + nodeThreadId + ')');
  } catch { /* keep the default */ }
  clockRecord();
  putString(K_THREAD, 0, threadName);
  if (isMain) {
    putString(K_PROCESS, process.ppid, process.argv.join(' '));
  }

  // Handles whose fd is not known yet at init (accepted sockets get theirs after the wrap exists).
  // (The handles with an `fd` getter; a UDP socket gets its fd when bound. A FileHandle's is read at the next
  // hook too, never in init: reading it there can crash node. Its reads run on the pool, outside callbacks,
  // so the fd table is what ties them to it.)
  const FD_TYPES = new Set(['TCPWRAP', 'TCPSERVERWRAP', 'PIPEWRAP', 'PIPESERVERWRAP', 'TTYWRAP', 'UDPWRAP', 'FILEHANDLE']);
  const pendingFD = new Map();
  function handleFD(resource) {
    try {
      const h = resource && (resource._handle || resource);
      const f = h && h.fd;
      return typeof f === 'number' ? f : -1;
    } catch { return -1; }
  }
  function putFD(id, f) {
    if (pos + 3 > LIMIT) writeBatch();
    buf[pos] = K_FD; buf[pos + 1] = id; buf[pos + 2] = f; pos += 3; buf[5] = pos;
    pendingEvents++;
  }
  function resolvePendingFDs() {
    for (const [id, resource] of pendingFD) {
      const f = handleFD(resource);
      if (f >= 0) {
        putFD(id, f); pendingFD.delete(id);
        if (handedOverIPC) putSocketAddresses(id, resource);
      }
    }
  }
  // A process that can be handed sockets over IPC (a cluster worker, child.send(message, socket)) receives their
  // fds in a recvmsg: the kernel probes saw no accept or connect for them and know no address. The socket says
  // its own, "local->peer" as the probes write them (two syscalls per socket, only in such processes).
  const handedOverIPC = isMain && typeof process.send === 'function';
  function putSocketAddresses(id, resource) {
    const h = resource && (resource._handle || resource);
    if (!h || typeof h.getsockname !== 'function' || typeof h.getpeername !== 'function') return;
    const side = (a) => {
      let address = String(a.address);
      if (address.startsWith('::ffff:') && address.includes('.')) address = address.slice(7);  // v4-mapped
      return (address.includes(':') ? '[' + address + ']' : address) + ':' + a.port;
    };
    try {
      const local = {}, peer = {};
      if (h.getsockname(local) !== 0 || typeof local.address !== 'string') return;
      const text = side(local) + (h.getpeername(peer) === 0 && typeof peer.address === 'string' ? '->' + side(peer) : '');
      putString(K_SOCKET, id, text);
      pendingEvents++;
    } catch { /* not an inet socket */ }
  }

  // Creation sites: where each resource was made, from a stack captured at init (raw: V8 formats it only
  // when .stack is read). Only a site that may be shown is formatted and sent: that of a resource whose
  // callback ran long, of one still alive after LONG_LIVED_MS (servers, intervals, sockets: what keeps a
  // process alive, also when it is killed by a signal), and of every resource still alive at exit (open
  // at exit). Resources made per tick or per await (TickObject, PROMISE) get none: the capture (a few µs)
  // would cost more than the resource.
  const FREQUENT_TYPES = new Set(['PROMISE', 'TickObject', 'Microtask']);
  // ... except a thread's first ticks: the start-up code that makes servers often defers through them
  // (listen with a host, connect), and a resource node's own code makes there is placed by them (below).
  let tickSitesLeft = 256;
  // The capture costs more than a Timeout or an Immediate itself (11-12 µs each inside an HTTP server under
  // load here: V8 rebuilds the inlined frames of optimized code): by default each thread captures the first
  // FIRST_PER_TYPE resources of every type (start-up code: servers, intervals, what leaks), then at most
  // SITES_PER_TICK per 100 ms (a budget refilled by the batch timer: ~200 per second, ~0.25 % of a busy
  // thread; 100 per 100 ms cost ~1.2 %). `all` (record --node-all-sites) captures every one.
  const FIRST_PER_TYPE = 64, SITES_PER_TICK = 20;
  const capturedOfType = new Int32Array(1024);
  let siteBudget = SITES_PER_TICK;
  const SITE_FRAMES = 8;        // enough to get past node's own frames (net.Server.listen: 5 of them)
  const MAX_SITES = 65536;      // live resources with a site not yet sent
  const SLOW_CALLBACK_MS = 1;
  const BLOCKING_MS = 10;       // the report's default blocking threshold
  const LONG_LIVED_MS = 1000;
  const liveSites = new Map();  // id -> holder of the captured stack (and its time)
  // Sites already sent of resources still alive (a server, once it lived a second): the parents of the sites
  // of what they cause later. Without them, the connections a server accepted after its first second were
  // 'created at connectionListenerInternal (node:_http_server:675)', with no user frame of the server.
  const sentSites = new Map();
  const MAX_SENT_SITES = 4096;
  const beforeMs = new Float64Array(64);
  const runningIds = new Float64Array(64);  // the raw async ids of the callbacks running (innermost last)
  // The holder keeps its trigger's (while that is alive, i.e. when made in its callback): a resource that
  // node's own code made (an accepted connection, a timer of the http module) is placed by the user code
  // of the resources that led to it, as an async stack trace would.
  function captureSite(id, triggerId) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = SITE_FRAMES;
    const parent = liveSites.get(triggerId);
    const holder = { t: performance.now(), parent: parent !== undefined || sentSites.size === 0 ? parent : sentSites.get(triggerId), stack: undefined };
    try { Error.captureStackTrace(holder, init); } catch { /* frozen Error */ }
    Error.stackTraceLimit = limit;
    liveSites.set(id, holder);
  }
  // "fn (file:line:col)" lines: the first frames outside node's own code and this file; when node's own
  // code made the resource, its first such frame, then the user frames of the nearest trigger with some.
  const preloadFile = __filename;
  const HOOK_FRAME = /emitInit(Native|Script)|initAsyncResource|^new (Timeout|Immediate) /;
  function frames(holder) {
    let text;
    try { text = holder.stack; } catch { return null; }
    if (typeof text !== 'string') return null;
    const user = [], internal = [];
    const lines = text.split('\n');
    for (let i = 1; i < lines.length; i++) {
      let l = lines[i].trim();
      if (!l.startsWith('at ')) continue;
      l = l.slice(3);
      if (l.includes(preloadFile) || HOOK_FRAME.test(l)) continue;
      // V8's builtins (`Array.reduce (<anonymous>)`, `new Promise (<anonymous>)`) are no place in the
      // program: child_process's pipes were 'created at Array.reduce ← startChild (app.js:2)'.
      if (l.endsWith('(<anonymous>)') || l.endsWith('(native)')) continue;
      if (l.includes('(node:') || l.startsWith('node:')) { if (internal.length < 1) internal.push(l); } else user.push(l);
    }
    return { user, internal };
  }
  function siteText(holder) {
    const own = frames(holder);
    if (own === null) return '';
    let list = own.user;
    if (list.length === 0) {
      list = own.internal.slice();
      for (let h = holder.parent, depth = 0; h !== undefined && depth < 4; h = h.parent, depth++) {
        const f = frames(h);
        if (f !== null && f.user.length) { list.push(...f.user); break; }
      }
    }
    let out = '';
    for (const f of list) {
      if (out.length + f.length + 1 > 256) break;
      out += (out ? '\n' : '') + f;
    }
    return out;
  }
  function sendSite(id) {
    const holder = liveSites.get(id);
    if (holder === undefined) return false;
    liveSites.delete(id);
    const text = siteText(holder);
    if (text) { putString(K_SITE, id, text); pendingEvents++; }
    if (sentSites.size < MAX_SENT_SITES) sentSites.set(id, holder);
    return true;
  }
  // The last resources made without a site because the budget was spent: one whose callback then runs long is
  // said to be such (the report says why it names no site, rather than nothing).
  const BUDGET_SKIPPED_MASK = 1023;
  const budgetSkipped = new Float64Array(BUDGET_SKIPPED_MASK + 1);
  let budgetSkips = 0;
  function sendSiteOrWhyNot(id) {
    if (sendSite(id) || budgetSkips === 0) return;
    const n = Math.min(budgetSkips, BUDGET_SKIPPED_MASK + 1);
    for (let i = 0; i < n; i++) {
      if (budgetSkipped[i] !== id) continue;
      if (pos + 3 > LIMIT) writeBatch();
      buf[pos] = K_SITE_OVER_BUDGET; buf[pos + 1] = id; buf[pos + 2] = 0;
      pos += 3; buf[5] = pos;
      pendingEvents++;
      return;
    }
  }
  // Sites of resources alive for a while (called with each timed batch; the map is in creation order).
  function sendLongLivedSites(nowMs) {
    for (const [id, holder] of liveSites) {
      if (nowMs - holder.t < LONG_LIVED_MS) break;
      sendSite(id);
    }
  }

  // Worker threads this thread started (WORKER id -> the batch memory shared with it), and below them, in the
  // pool, theirs. A worker's preload keeps its batch there; when the worker has ended (its WORKER's exit
  // callback, terminate() included: its own workers ended with it) or this thread exits, what it and the
  // workers below it had not written is taken from there and written here. A copy is consistent when the
  // worker's published sequence (and the slot's generation) did not change while it was made (the worker may
  // still run); the recorder skips what it already has of a batch (same thread nonce and sequence), so taking
  // a batch that the worker writes later, or that it had written just before it was stopped, or that another
  // thread took too, duplicates nothing.
  const MAX_CHILDREN = 4096;
  const children = new Map();
  let taken = null;  // the copy (allocated at the first worker)
  const slots = [];  // views of the pool's slots, made when first used
  let nextSlot = 0;
  let poolWords = null;  // the whole pool's int32s: the scans read the control words without views per slot
  // The index in poolWords of slot i's control word w.
  function wordOf(i, w) { return i * (SHARED_BYTES / 4) + BATCH_BYTES / 4 + w; }
  function slotAt(i) {
    let v = slots[i];
    if (v === undefined) {
      v = { slot: i, generation: -1, batch: new Float64Array(pool, i * SHARED_BYTES, SLOTS),
            control: new Int32Array(pool, i * SHARED_BYTES + BATCH_BYTES, CONTROL) };
      slots[i] = v;
    }
    return v;
  }
  // A free slot of the pool for a worker this thread starts (made at the first one if this thread is the
  // top), or null when all are in use.
  function allocateSlot() {
    if (pool === null) {
      if (mySlot !== -1) return null;
      const n = Number(process.env.ASYNCTRACE_NODE_POOL_SLOTS);
      poolSlots = Number.isInteger(n) && n >= 1 && n < MAX_POOL_SLOTS ? n : MAX_POOL_SLOTS;
      try { pool = new SharedArrayBuffer(poolSlots * SHARED_BYTES); } catch { return null; }
    }
    if (poolWords === null) poolWords = new Int32Array(pool);
    for (let k = 0; k < poolSlots; k++) {
      const i = (nextSlot + k) % poolSlots;
      if (Atomics.compareExchange(poolWords, wordOf(i, C_STATE), 0, 2) !== 0) continue;
      const v = slotAt(i), c = v.control;
      nextSlot = i + 1;
      v.generation = Atomics.add(c, C_GENERATION, 1) + 1;
      v.batch[5] = 0;
      for (const w of [C_SEQUENCE, C_CLAIM, C_CLOSING, C_IN_HOOK, C_CLOSED]) Atomics.store(c, w, 0);
      Atomics.store(c, C_PARENT, mySlot + 1);
      Atomics.store(c, C_STATE, 1);  // in use, with its parent set: seen by the scans from now on
      return v;
    }
    return null;
  }
  // The slot and every one below it (their threads have ended): nothing left to take, free for reuse.
  function release(v) {
    for (const below of slotsBelow(v.slot)) { below.batch[5] = 0; Atomics.store(below.control, C_STATE, 0); }
    if (Atomics.load(v.control, C_GENERATION) !== v.generation) return;
    v.batch[5] = 0;
    Atomics.store(v.control, C_STATE, 0);
  }
  // The pool's slots in use by workers below `ancestor` (a slot; -1: this pool's top thread), at any depth.
  function slotsBelow(ancestor) {
    const out = [];
    if (pool === null) return out;
    if (poolWords === null) poolWords = new Int32Array(pool);
    for (let i = 0; i < poolSlots; i++) {
      if (Atomics.load(poolWords, wordOf(i, C_STATE)) !== 1) continue;
      let p = Atomics.load(poolWords, wordOf(i, C_PARENT)) - 1;
      for (let steps = 0; p !== ancestor && p >= 0 && p < poolSlots && steps < poolSlots; steps++) {
        p = Atomics.load(poolWords, wordOf(p, C_PARENT)) - 1;
      }
      if (p === ancestor) out.push(slotAt(i));
    }
    return out;
  }
  // Every buffer below this thread: its workers' (pool slots or their own) and, at any depth, theirs.
  function everyBelow() {
    const out = slotsBelow(mySlot);
    for (const child of children.values()) if (child.slot < 0) out.push(child);
    return out;
  }
  function shareWithWorker(workerId, handle) {
    let data = { parent: workerId, buffer: null };
    if (children.size < MAX_CHILDREN) {
      let child = allocateSlot();
      if (child !== null) {
        data = { parent: workerId, buffer: null, pool, slot: child.slot, generation: child.generation };
      } else {
        const sab = new SharedArrayBuffer(SHARED_BYTES);
        child = { slot: -1, generation: 0, batch: new Float64Array(sab, 0, SLOTS), control: new Int32Array(sab, BATCH_BYTES, CONTROL) };
        data.buffer = sab;
      }
      children.set(workerId, child);
      watchStop(handle, workerId, child);
    }
    try { workerThreads.setEnvironmentData(ENV_KEY, data); } catch { /* an old node */ }
  }
  // worker.terminate() (the handle's stopThread): V8 stops the worker at its next call or loop, also inside a
  // hook, where no `finally` runs then, so its C_IN_HOOK may stay up until its slot is freed. Its slot and
  // those below it (stopped with it) are marked (C_CLOSING 2): each stops recording at its next hook, and
  // a thread closing them waits for them only briefly (see closeBelow).
  function watchStop(handle, workerId, child) {
    const stop = handle && handle.stopThread;
    if (typeof stop !== 'function') return;
    try {
      handle.stopThread = function asynctraceStopThread() {
        // (Not once it has ended: its slot may be another worker's by now.)
        if (children.get(workerId) !== child) return stop.apply(this, arguments);
        const stopped = child.slot >= 0 ? slotsBelow(child.slot) : [];
        stopped.push(child);
        for (const v of stopped) Atomics.compareExchange(v.control, C_CLOSING, 0, 2);
        return stop.apply(this, arguments);
      };
    } catch { /* a frozen handle: such a worker is waited for as any other */ }
  }
  function takeBatch(child) {
    if (!pipeOpen) return;
    if (taken === null) taken = new Float64Array(SLOTS);
    for (let attempt = 0; attempt < 16; attempt++) {
      const generation = Atomics.load(child.control, C_GENERATION);
      const sequence = Atomics.load(child.control, C_SEQUENCE);
      const used = child.batch[5];
      if (!(used > HEADER && used <= SLOTS && used === Math.floor(used))) return;  // nothing unwritten
      taken.set(child.batch.subarray(0, used));
      // It wrote meanwhile, or the slot was freed and given to another worker: copy again.
      if (Atomics.load(child.control, C_SEQUENCE) !== sequence || Atomics.load(child.control, C_GENERATION) !== generation) continue;
      taken[0] = MAGIC; taken[3] = sequence; taken[5] = used; taken[7] = taken[7] + 1;  // marked as taken
      const outcome = writeFully(new Uint8Array(taken.buffer, 0, used * 8), used * 8);
      if (outcome === WRITE_GONE) { pipeOpen = false; enabled = false; }
      // The recorder was behind for ~1 s: these events are lost, and counted on the worker's stream.
      if (outcome === WRITE_FULL) putLost(taken[2], eventsIn(taken, HEADER, used));
      return;
    }
  }
  // A worker of this thread ended (its WORKER's exit callback: node has joined its thread): its batch and
  // those of the workers below it, which node stopped with it.
  function childEnded(id, child) {
    children.delete(id);
    takeBatch(child);
    if (child.slot < 0) return;
    for (const below of slotsBelow(child.slot)) takeBatch(below);
    release(child);
  }
  function takeAllWorkerBatches() {
    for (const v of everyBelow()) takeBatch(v);
  }
  function putLost(threadTid, count) {
    if (pos + 3 > LIMIT) writeBatch();
    buf[pos] = K_LOST; buf[pos + 1] = threadTid; buf[pos + 2] = count; pos += 3; buf[5] = pos;
  }
  // The events a batch's records make in the trace (what a lost batch loses).
  function eventsIn(b, from, to) {
    let n = 0;
    for (let i = from; i < to; n++) {
      const k = b[i];
      if (k === K_INIT) i += 4;
      else if (k === K_BEFORE || k === K_AFTER || k === K_FD) i += 3;
      else if (k === K_AFTER_DESTROY) { i += 3; n++; }
      else if (k < 0) {
        const code = (-k) % 8;
        i += code === P_INIT ? 3 : code === P_DESTROY ? 1 : 2;
        if (code === P_AFTER_DESTROY) n++;
      }
      else if (k === K_DESTROY || k === K_PROMISE_RESOLVE) i += 2;
      else if (k === K_REF || k === K_EXIT_CALLED || k === K_POOL_SIZE || k === K_SITE_OVER_BUDGET) i += 3;
      else if (k === K_THREAD || k === K_PROCESS || k === K_UNCAUGHT || k === K_SITE || k === K_SOCKET) i += 3 + b[i + 2];
      else if (k === K_STRING) { i += 3 + b[i + 2]; n--; }
      else if (k === K_CLOCK || k === K_LOST) { i += 3; n--; }
      else if (k === K_END) { i += 2; n--; }
      else return n + 1;  // not a record: at least one event
    }
    return n;
  }

  // Our own flush timer is created with the hooks seeing it; its id is skipped.
  let ownTimerID = -1, creatingOwnTimer = false;

  // A clock read costs ~70-130 ns here (clock_gettime through the VM's TSC), two per callback, and 10 of the
  // ~11 callbacks of an HTTP request are ticks. Node's tick queue runs its ticks back to back (after(A),
  // then before(B) of the next queued tick, with no microtasks or native code between them: those run only
  // once the queue is empty, and a tick queued after A ended has its init in between). So a tick's before
  // that follows a tick's after with nothing recorded in between takes that after's time: ~100 ns of
  // Node's queue code count to the next tick, which makes no syscall there. Only while ours is the only after
  // hook (a program's own after hook runs after ours and may make syscalls). tickIds holds a live tick's raw
  // id at slot id & TICK_MASK (no false match; a tick whose slot was reused just reads the clock).
  const TICK_MASK = 4095;
  const tickIds = new Float64Array(TICK_MASK + 1);
  let hookCounts = null, kAfterCount = -1;  // Node's async_hook_fields and its kAfter index, when found

  function init(asyncId, type, triggerAsyncId, resource) {
    if (creatingOwnTimer) { ownTimerID = asyncId; return; }
    if (!enabled) return;
    chainMs = -1;
    // Room for the record, and for the type's string record only when the type is new (reserving
    // MAX_RECORD on every init cut batches to ~1.6 KB instead of 4 KB: 2.5x the writes).
    let t = typeIndex.get(type);
    if (t === undefined) {
      if (pos + 3 + MAX_RECORD > LIMIT) writeBatch();
      t = typeID(type);
    } else if (pos + 3 > LIMIT) writeBatch();
    const trigger = triggerAsyncId <= rootTrigger ? parentWorker : idBase + triggerAsyncId;
    buf[pos] = -((idBase + asyncId) * 8 + P_INIT); buf[pos + 1] = trigger; buf[pos + 2] = t;
    pos += 3; buf[5] = pos;
    pendingEvents++;
    // (A type past the flags' range, never seen in practice: sites as for any other, no fd, not a worker.)
    const flags = t < 65536 ? typeFlags[t] : 0;
    if ((flags & F_TICK) !== 0) tickIds[asyncId & TICK_MASK] = asyncId;
    if (withSites && liveSites.size < MAX_SITES) {
      if ((flags & F_FREQUENT) === 0) {
        let captured = true;
        if (t < 1024 && capturedOfType[t] < FIRST_PER_TYPE) { capturedOfType[t]++; captureSite(idBase + asyncId, trigger); }
        else if (siteBudget > 0 || sitesMode === 'all') { siteBudget--; captureSite(idBase + asyncId, trigger); }
        else { captured = false; budgetSkipped[budgetSkips++ & BUDGET_SKIPPED_MASK] = idBase + asyncId; }
        if (captured && (flags & F_POOL) !== 0 && poolRequests.size < MAX_POOL_REQUESTS) poolRequests.add(idBase + asyncId);
      } else if ((flags & F_TICK) !== 0 && tickSitesLeft > 0) { tickSitesLeft--; captureSite(idBase + asyncId, trigger); }
    }
    if ((flags & F_WORKER) !== 0 && workerThreads) shareWithWorker(idBase + asyncId, resource);
    // Never read the fd here: init runs inside the handle's constructor, before the stream behind
    // its `fd` getter exists (reading it crashes Node). The next before/after asks.
    if ((flags & F_FD) !== 0 && pendingFD.size < 256) pendingFD.set(idBase + asyncId, resource);
    if ((flags & F_FILEHANDLE) !== 0 && openFileHandles.size < 4096) openFileHandles.set(asyncId, resource);
    if ((flags & F_CLOSE_REQUEST) !== 0 && closeRequests.size < 4096) closeRequests.add(asyncId);
    // Node's own timers (socket and http timeouts: setUnrefTimeout) are made unref'd; any other resource starts ref'd.
    if ((flags & F_TIMEOUT) !== 0 && typeof resource.hasRef === 'function' && resource.hasRef() === false) putRef(idBase + asyncId, 0);
    if ((flags & F_POOL) !== 0 && !poolSizeSent) putPoolSize(idBase + asyncId);
  }
  // The pool's size as libuv reads it when it starts the pool, at the process's first request (the program may set
  // UV_THREADPOOL_SIZE in process.env before): atoi(), 0 -> 1, past 1024 (a negative one too, as unsigned) -> 1024.
  let poolSizeSent = false;
  function putPoolSize(id) {
    poolSizeSent = true;
    let threads = 4;
    const text = process.env.UV_THREADPOOL_SIZE;
    if (text !== undefined) {
      const n = parseInt(text, 10);
      threads = !(n !== 0 && Number.isFinite(n)) ? 1 : n < 0 || n > 1024 ? 1024 : n;
    }
    if (pos + 3 > LIMIT) writeBatch();
    buf[pos] = K_POOL_SIZE; buf[pos + 1] = id; buf[pos + 2] = threads;
    pos += 3; buf[5] = pos;
    pendingEvents++;
  }
  // Whether a handle or timer keeps the process alive (ref'd) decides what held a process that was killed or
  // called process.exit(): recorded when it changes (below), so that it is known at any end.
  function putRef(id, refed) {
    chainMs = -1;
    if (pos + 3 > LIMIT) writeBatch();
    buf[pos] = K_REF; buf[pos + 1] = id; buf[pos + 2] = refed ? 1 : 0;
    pos += 3; buf[5] = pos;
    pendingEvents++;
  }
  // fs.promises FileHandles: Node destroys one when it is garbage collected, not when it is closed, so
  // every file a program read with readFile() or open()/close() was 'open at exit' (what kept the process
  // alive, or leaked). At the end of a close request's callback (FILEHANDLECLOSEREQ), the handles whose fd
  // is gone (negative) are recorded as destroyed, and Node's own destroy at their collection is skipped.
  // One never closed stays open until Node destroys it.
  const openFileHandles = new Map();  // raw async id -> the native FileHandle
  const closeRequests = new Set();
  function closedFileHandles() {
    for (const [asyncId, handle] of openFileHandles) {
      let fd = 0;
      try { fd = handle.fd; } catch { continue; }
      if (typeof fd !== 'number' || fd >= 0) continue;
      openFileHandles.delete(asyncId);
      takenDestroys.add(asyncId);
      recordDestroy(asyncId);
    }
  }
  // Resources made before this preload ran have no init: a worker's parentPort and the ports it got in its
  // workerData (deserialized before preloads run), whose callbacks are most of a worker pool's work. At
  // their first callback they get one, with the type named by their class (MessagePort: MESSAGEPORT, as
  // Node's own init names it) and the WORKER as trigger; ids up to earlierIdLimit were given out before.
  let earlierIdLimit = -1, providers = null;
  const announcedEarlier = new Set();
  function announceEarlier(asyncId) {
    if (announcedEarlier.size >= 1024) return;
    announcedEarlier.add(asyncId);
    let type = null, resource = null;
    try {
      resource = asyncHooks.executionAsyncResource();
      const name = resource && resource.constructor && resource.constructor.name;
      if (typeof name === 'string' && name !== 'Object') {
        const upper = name.toUpperCase();
        if (providers[upper] !== undefined) type = upper;
        else if (providers[upper + 'WRAP'] !== undefined) type = upper + 'WRAP';
        else if (name === 'Timeout' || name === 'Immediate') type = name;
      }
    } catch { /* unnamed: stays untracked */ }
    if (type === null) return;
    const t = typeID(type);
    if (pos + 3 > LIMIT) writeBatch();
    buf[pos] = -((idBase + asyncId) * 8 + P_INIT); buf[pos + 1] = parentWorker > 0 ? parentWorker : 0; buf[pos + 2] = t;
    pos += 3; buf[5] = pos;
    pendingEvents++;
    if (t < 65536 && (typeFlags[t] & F_FD) !== 0 && pendingFD.size < 256) pendingFD.set(idBase + asyncId, resource);
  }
  function before(asyncId) {
    if (asyncId === ownTimerID || !enabled) return;
    if (poolRequests.size !== 0 && poolRequests.delete(idBase + asyncId)) {
      const holder = liveSites.get(idBase + asyncId);
      if (holder !== undefined && performance.now() - holder.t >= BLOCKING_MS) sendSite(idBase + asyncId);
    }
    if (asyncId <= earlierIdLimit && !announcedEarlier.has(asyncId)) announceEarlier(asyncId);
    // A WORKER's callback is its exit (run after its thread ended): write what the worker had not.
    if (children.size !== 0) { const c = children.get(idBase + asyncId); if (c !== undefined) childEnded(idBase + asyncId, c); }
    if (pendingFD.size !== 0) resolvePendingFDs();
    if (pos + 2 > LIMIT) writeBatch();
    const t = chainMs >= 0 && tickIds[asyncId & TICK_MASK] === asyncId ? chainMs : performance.now();
    chainMs = -1;
    if (depth < beforeMs.length) { beforeMs[depth] = t; runningIds[depth] = asyncId; }
    depth++;
    buf[pos] = -((idBase + asyncId) * 8 + P_BEFORE); buf[pos + 1] = t;
    pos += 2; buf[5] = pos;
    pendingEvents++;
  }
  // A batch also goes out from the first `after` 10 ms after the previous one: a worker stopped by
  // terminate() runs no exit handler, so this bounds what it can take with it.
  let lastWriteMs = 0;
  // Where the last after record ends, in which batch: destroy merges with it when nothing came between.
  let lastAfterEnd = -1, lastAfterBatch = -1;
  // Callbacks open on this thread: the preload itself runs inside one in a worker, whose after()
  // has no before() here.
  let depth = 0;
  // The outermost callback that ended last, and the site of the last resource destroyed in or after its
  // callback: an unhandled rejection is reported after the callback it came out of (uncaughtExceptionMonitor).
  let lastOuterAfter = 0, lastDestroyedId = 0, lastDestroyedSite;
  function after(asyncId) {
    if (asyncId === ownTimerID || !enabled || depth === 0) return;
    depth--;
    if (depth === 0) lastOuterAfter = asyncId;
    if (pos + 2 > LIMIT) writeBatch();
    const t = performance.now();
    if (pendingDestroy === asyncId) {
      // Destroyed in its own callback's end (a tick, an immediate, a one-shot timer): one after+destroy record.
      pendingDestroy = -1;
      buf[pos] = -((idBase + asyncId) * 8 + P_AFTER_DESTROY); buf[pos + 1] = t;
      pos += 2; buf[5] = pos;
      pendingEvents += 2;
    } else {
      buf[pos] = -((idBase + asyncId) * 8 + P_AFTER); buf[pos + 1] = t;
      pos += 2; buf[5] = pos;
      lastAfterEnd = pos; lastAfterBatch = sequence;
      pendingEvents++;
    }
    // (A batch write below resets it.)
    chainMs = tickIds[asyncId & TICK_MASK] === asyncId && hookCounts !== null && hookCounts[kAfterCount] === 1 ? t : -1;
    if (pendingFD.size !== 0) resolvePendingFDs();
    if (closeRequests.size !== 0 && closeRequests.delete(asyncId)) closedFileHandles();
    if (t - lastWriteMs >= 10) { lastWriteMs = t; writeBatch(); }
    // A callback that ran long (it may be the report's blocking callback): where its resource was made. After
    // the flush, so that a worker terminated right now (it may have just posted its result) loses at most the
    // site, never the callback's own events.
    if ((liveSites.size !== 0 || budgetSkips !== 0) && t - beforeMs[depth] >= SLOW_CALLBACK_MS) {
      sendSiteOrWhyNot(idBase + asyncId);
      // One that blocked the loop (10 ms, the report's default threshold) is the report's subject: its site goes
      // out now (a write per such callback), not with the next batch, which a process killed now (a cluster
      // worker's kill(), SIGTERM) never sends.
      if (t - beforeMs[depth] >= BLOCKING_MS && pos !== HEADER) { lastWriteMs = t; writeBatch(); }
    }
  }
  function destroy(asyncId) {
    if (asyncId === ownTimerID || !enabled) return;
    // Already recorded when Node's JavaScript queued it (below), queued only for the program's own hooks.
    if (takenDestroys.size !== 0 && takenDestroys.delete(asyncId)) return;
    recordDestroy(asyncId);
  }
  function recordDestroy(asyncId) {
    const id = idBase + asyncId;
    chainMs = -1;
    if (children.size !== 0) children.delete(id);
    if (pendingFD.size !== 0) pendingFD.delete(id);
    if (poolRequests.size !== 0) poolRequests.delete(id);
    if (liveSites.size !== 0) {
      // (Destroyed in its own callback, before its after(): a one-shot timer, a tick.)
      if (asyncId === lastOuterAfter || (depth === 1 && runningIds[0] === asyncId)) {
        lastDestroyedId = asyncId; lastDestroyedSite = liveSites.get(id);
      }
      liveSites.delete(id);
    }
    if (sentSites.size !== 0) sentSites.delete(id);
    if (openFileHandles.size !== 0) openFileHandles.delete(asyncId);
    if (closeRequests.size !== 0) closeRequests.delete(asyncId);
    pendingEvents++;
    // A resource destroyed right after its callback: the after record just written becomes an
    // after+destroy (one record, 2 slots and a bounds check less).
    if (lastAfterEnd === pos && lastAfterBatch === sequence && buf[pos - 2] === -(id * 8 + P_AFTER)) {
      buf[pos - 2] = -(id * 8 + P_AFTER_DESTROY);
      return;
    }
    if (pos + 1 > LIMIT) writeBatch();
    buf[pos] = -(id * 8 + P_DESTROY);
    pos += 1; buf[5] = pos;
  }
  // The destroy a callback's own resource queued in its end, recorded with its after (raw async id; -1: none).
  let pendingDestroy = -1;
  function flushPendingDestroy() {
    if (pendingDestroy === -1) return;
    const id = pendingDestroy;
    pendingDestroy = -1;
    recordDestroy(id);
  }
  // Destroys of the resources Node's JavaScript manages (ticks, immediates, timers, AsyncResource) go through
  // the binding's queueDestroyAsyncId: a call into C++ that queues the id, and later, from a native
  // immediate, a call back into JavaScript per id to run the destroy hooks. Taken here instead: recorded at
  // once (a tick's, an immediate's or a fired timer's with its after, as one record), and queued for Node
  // only when another destroy hook (the program's own) needs it. Saves two crossings per resource; 10 of
  // the ~11 resources of an HTTP request are ticks and timers.
  const takenDestroys = new Set();
  function takeDestroy(asyncId) {
    if (depth !== 0 && depth <= runningIds.length && runningIds[depth - 1] === asyncId) {
      flushPendingDestroy();
      pendingDestroy = asyncId;
    } else {
      recordDestroy(asyncId);
    }
  }
  function takeQueuedDestroy(asyncWrap, queueDestroy, hookFields, kDestroyField) {
    return function queueDestroyAsyncId(asyncId) {
      if (enabled && asyncId !== ownTimerID && typeof asyncId === 'number') {
        if (shared === null) {
          takeDestroy(asyncId);
        } else {
          enter();
          try { takeDestroy(asyncId); } finally { own[C_IN_HOOK]--; }
        }
        if (!(hookFields[kDestroyField] > 1)) return;  // ours is the only destroy hook
        if (takenDestroys.size < 65536) takenDestroys.add(asyncId);
      }
      return queueDestroy.call(asyncWrap, asyncId);
    };
  }
  function promiseResolve(asyncId) {
    if (!enabled) return;
    chainMs = -1;
    if (pos + 2 > LIMIT) writeBatch();
    buf[pos] = K_PROMISE_RESOLVE; buf[pos + 1] = idBase + asyncId;
    pos += 2; buf[5] = pos;
    pendingEvents++;
  }

  // A worker's hooks mark themselves as running in its control words (C_IN_HOOK) and stop at C_CLOSING (see
  // closeBelow); the main thread's run bare (nothing above it closes it).
  function frozen() {
    // A thread above is about to end this one (process.exit() there): record nothing more, write what is not
    // written yet (also what that thread's copy may have missed), and wait for node to stop the thread (a
    // thread being stopped leaves Atomics.wait at once).
    enabled = false;
    if (pipeOpen && pos > HEADER) writeBatch(true);
    Atomics.store(own, C_CLOSED, 1);
    Atomics.notify(own, C_CLOSED);
    for (;;) Atomics.wait(own, C_CLOSING, 1);
  }
  // (One wrapper per hook rather than one made by a function: each call site inside stays monomorphic.)
  function enter() {
    own[C_IN_HOOK]++;
    if (own[C_CLOSING] !== 0 && enabled) frozen();
  }
  function markedInit(asyncId, type, triggerAsyncId, resource) {
    enter();
    try { init(asyncId, type, triggerAsyncId, resource); } finally { own[C_IN_HOOK]--; }
  }
  function markedBefore(asyncId) {
    enter();
    try { before(asyncId); } finally { own[C_IN_HOOK]--; }
  }
  function markedAfter(asyncId) {
    enter();
    try { after(asyncId); } finally { own[C_IN_HOOK]--; }
  }
  function markedDestroy(asyncId) {
    enter();
    try { destroy(asyncId); } finally { own[C_IN_HOOK]--; }
  }
  function markedPromiseResolve(asyncId) {
    enter();
    try { promiseResolve(asyncId); } finally { own[C_IN_HOOK]--; }
  }
  // The rare ones (exit, the batch timer, uncaught exceptions).
  function marked(hook) {
    if (shared === null) return hook;
    return function markedHook(a) {
      enter();
      try { return hook(a); } finally { own[C_IN_HOOK]--; }
    };
  }
  const callbacks = shared === null ? { init, before, after, destroy } :
    { init: markedInit, before: markedBefore, after: markedAfter, destroy: markedDestroy };
  if (withPromises) callbacks.promiseResolve = shared === null ? promiseResolve : markedPromiseResolve;
  asyncHooks.createHook(callbacks).enable();
  let asyncWrap = null;
  const saved = process.noDeprecation;
  try {
    process.noDeprecation = true;  // process.binding('async_wrap') warns (DEP0111)
    asyncWrap = process.binding('async_wrap');
  } catch { /* a Node without the binding */ } finally {
    process.noDeprecation = saved;
  }
  if (asyncWrap !== null && asyncWrap.async_id_fields instanceof Float64Array && asyncWrap.constants &&
      typeof asyncWrap.constants.kAsyncIdCounter === 'number' && asyncWrap.Providers && typeof asyncWrap.Providers === 'object') {
    providers = asyncWrap.Providers;
    earlierIdLimit = asyncWrap.async_id_fields[asyncWrap.constants.kAsyncIdCounter];
  }
  if (!withPromises && asyncWrap !== null) {
    // Enabling any async hook makes Node install V8 promise hooks (an init/before/after call per
    // promise, the expensive part on await-heavy code). The default mode does without promises: remove them again
    // (Node puts them back by itself if the program enables a hook of its own, e.g. AsyncLocalStorage).
    try {
      asyncWrap.setPromiseHooks(undefined, undefined, undefined, undefined);
    } catch { /* promises stay hooked (and are recorded) */ }
  }
  if (asyncWrap !== null && asyncWrap.async_hook_fields instanceof Uint32Array && asyncWrap.constants &&
      typeof asyncWrap.constants.kAfter === 'number') {
    hookCounts = asyncWrap.async_hook_fields; kAfterCount = asyncWrap.constants.kAfter;
  }
  if (asyncWrap !== null && typeof asyncWrap.queueDestroyAsyncId === 'function' && asyncWrap.async_hook_fields instanceof Uint32Array &&
      asyncWrap.constants && typeof asyncWrap.constants.kDestroy === 'number') {
    try {
      asyncWrap.queueDestroyAsyncId = takeQueuedDestroy(asyncWrap, asyncWrap.queueDestroyAsyncId, asyncWrap.async_hook_fields,
        asyncWrap.constants.kDestroy);
    } catch { /* read-only: Node queues them, the destroy hook records them */ }
  }

  // A callback that throws: its resource and message, before Node reports it.
  process.on('uncaughtExceptionMonitor', marked((err) => {
    if (!enabled) return;
    const id = asyncHooks.executionAsyncId();
    // Where the resource whose callback threw was made: the report names it with the error.
    if (liveSites.size !== 0) sendSite(idBase + id);
    // Outside every callback (a rejection no handler caught): where the last callback's resource was made.
    if (id <= 1 && lastOuterAfter > 1) {
      const holder = liveSites.get(idBase + lastOuterAfter);
      if (holder !== undefined) sendSite(idBase + lastOuterAfter);
      else if (lastDestroyedId === lastOuterAfter && lastDestroyedSite !== undefined) {
        const text = siteText(lastDestroyedSite);
        if (text) { putString(K_SITE, idBase + lastOuterAfter, text); pendingEvents++; }
      }
    }
    putString(K_UNCAUGHT, idBase + id, err && err.stack ? String(err.stack).split('\n')[0] : String(err));
  }));

  creatingOwnTimer = true;
  const timer = setInterval(marked(() => {
    if (!enabled) return;
    siteBudget = SITES_PER_TICK;
    if (liveSites.size !== 0) sendLongLivedSites(performance.now());
    // Idle since the last write (only its own after/destroy pending): those go out bare, so that a program
    // killed while idle (Ctrl-C, SIGTERM, record --duration) does not leave that write's callback open in
    // the trace, reported as blocking the loop until the process's last event.
    writeBatch(tailOnly && pos === HEADER + 5);
  }), 100);
  creatingOwnTimer = false;
  timer.unref();
  // ref()/unref() of timers (Timeout.prototype) and of every libuv handle (HandleWrap's prototype, shared by
  // TCP, Pipe, TTY, UDP, Process, Signal, ...): a change of what keeps the process alive, recorded as it
  // happens (no JavaScript runs when a signal kills the process). A call that changes nothing records nothing.
  const refChanged = marked((idAndState) => {
    if (enabled) putRef(Math.floor(idAndState / 2), idAndState % 2 === 1);
  });
  function watchRefs(proto, asyncIdOf) {
    if (proto === null || typeof proto !== 'object' || typeof proto.hasRef !== 'function') return;
    for (const name of ['ref', 'unref']) {
      const original = proto[name];
      if (typeof original !== 'function') return;
      const wrapped = function () {
        if (!enabled || this === timer) return original.apply(this, arguments);
        let was;
        try { was = this.hasRef(); } catch { return original.apply(this, arguments); }
        const result = original.apply(this, arguments);
        let now = was, id = -1;
        try { now = this.hasRef(); id = asyncIdOf(this); } catch { /* not ours to record */ }
        if (now !== was && typeof now === 'boolean' && Number.isInteger(id) && id > 0) refChanged((idBase + id) * 2 + (now ? 1 : 0));
        return result;
      };
      Object.defineProperty(wrapped, 'name', { value: name });
      try { proto[name] = wrapped; } catch { /* read-only: ref state stays unknown */ }
    }
  }
  const asyncIdSymbol = Object.getOwnPropertySymbols(timer).find((sym) => sym.description === 'asyncId');
  if (asyncIdSymbol !== undefined) watchRefs(Object.getPrototypeOf(timer), (t) => t[asyncIdSymbol]);
  try {
    const wasQuiet = process.noDeprecation;
    process.noDeprecation = true;  // process.binding warns (DEP0111)
    let proto;
    try { proto = process.binding('tcp_wrap').TCP.prototype; } finally { process.noDeprecation = wasQuiet; }
    while (proto !== null && !Object.prototype.hasOwnProperty.call(proto, 'hasRef')) proto = Object.getPrototypeOf(proto);
    watchRefs(proto, (handle) => handle.getAsyncId());
  } catch { /* no tcp_wrap binding: handles' ref state stays unknown */ }
  // process.exit() ends the process whatever is still ref'd: the report says so, and in which callback.
  const originalExit = process.exit;
  if (isMain && typeof originalExit === 'function') {
    const exitCalled = marked((id) => {
      if (!enabled) return;
      if (pos + 3 > LIMIT) writeBatch();
      buf[pos] = K_EXIT_CALLED; buf[pos + 1] = id; buf[pos + 2] = 0;
      pos += 3; buf[5] = pos;
      pendingEvents++;
    });
    process.exit = function exit() {
      exitCalled(idBase + asyncHooks.executionAsyncId());
      return originalExit.apply(this, arguments);
    };
  }
  process.on('exit', marked(() => {
    if (!enabled) return;
    // Workers still running are stopped after this without an exit handler of theirs: take what they have
    // not written (again at process.reallyExit, below, closer to the moment they are stopped).
    if (children.size !== 0) takeAllWorkerBatches();
    flushPendingDestroy();
    for (const id of Array.from(liveSites.keys())) sendSite(id);  // what is open at exit
    if (pos + 2 > LIMIT) writeBatch();
    buf[pos] = K_END; buf[pos + 1] = 0; pos += 2;
    writeBatch(true);
    enabled = false;
  }));
  // The last JavaScript of this thread before node stops every worker below it, which run no handler of their
  // own then: they record nothing after this, so that all they recorded can be taken now. Each worker sees
  // C_CLOSING at its next hook, writes its batch and waits for node to stop it; one inside a hook now is
  // waited for (it may be writing into a full pipe: ~1 s at most); one that runs no hook (a callback
  // spinning) records nothing more. The hooks mark themselves with plain stores (~1 ns), not a fence: the
  // 1 ms pause after setting C_CLOSING orders them (a store buffer holds a store for nanoseconds).
  let closed = false;
  function closeBelow() {
    if (children.size === 0 || !pipeOpen) return;
    const below = everyBelow();
    for (const v of below) Atomics.compareExchange(v.control, C_CLOSING, 0, 1);
    // (process.exit(): closed at the end of 'exit', then only taken again at reallyExit.)
    if (!closed) {
      closed = true;
      Atomics.wait(sleeper, 0, 0, 1);
      const start = performance.now();
      for (const v of below) {
        // One being stopped by terminate() may have been stopped inside a hook: given 200 ms, not 2 s.
        const deadline = start + (Atomics.load(v.control, C_CLOSING) === 2 ? 200 : 2000);
        while (Atomics.load(v.control, C_IN_HOOK) > 0 && Atomics.load(v.control, C_CLOSED) === 0 && performance.now() < deadline) {
          Atomics.wait(v.control, C_CLOSED, 0, 1);
        }
      }
    }
    for (const v of below) takeBatch(v);
    if (pos > HEADER) writeBatch(true);  // losses counted while taking
  }
  // process.exit() calls process.reallyExit after the 'exit' handlers (the program's own, which may run for a
  // while, and may wait for workers); a thread that ends by itself (its loop empty: workers unref'd) runs no
  // JavaScript after its 'exit' event, whose end is caught in process.emit.
  const reallyExit = process.reallyExit;
  if (typeof reallyExit === 'function' && workerThreads) {
    process.reallyExit = function asynctraceReallyExit(code) {
      closeBelow();
      return reallyExit.apply(this, arguments);
    };
  }
  const emit = process.emit;
  if (typeof emit === 'function' && workerThreads) {
    process.emit = function asynctraceEmit(event) {
      const result = emit.apply(this, arguments);
      if (event === 'exit' && process._exiting === true) closeBelow();  // not an 'exit' a program emits itself
      return result;
    };
  }
})();
