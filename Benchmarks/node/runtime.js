// Node peers of the `runtime` benchmark group (Sources/asynctrace-bench/RuntimeBench.swift).
// Same workloads, same sizes; prints one JSON object per line. Usage: node runtime.js [--hooks] [--scale=F] [WORKLOAD...]
// --hooks enables an async_hooks hook with all callbacks (Node's own recording cost).
const { performance } = require('perf_hooks');
const asyncHooks = require('async_hooks');

if (process.argv.includes('--hooks')) {
  let n = 0;
  asyncHooks.createHook({ init() { n++ }, before() { n++ }, after() { n++ }, destroy() { n++ }, promiseResolve() { n++ } }).enable();
}

// --scale=F multiplies every size (the `node` group runs a tenth: trace_events costs ~40 us per op).
const scaleArg = process.argv.find(a => a.startsWith('--scale='));
const scale = scaleArg ? Number(scaleArg.slice(8)) : 1;
const sizes = Object.fromEntries(Object.entries({ immediate: 1_000_000, timeout: 200_000, await: 1_000_000, all: 100_000 })
  .map(([k, v]) => [k, Math.max(1, Math.round(v * scale))]));

function report(name, n, ms) {
  const ns = ms * 1e6 / n;
  console.log(JSON.stringify({ benchmark: name, ns_per_op: ns, ops_per_s: 1e9 / ns, n }));
}

const workloads = [
  ['setImmediate-chain', sizes.immediate, (n, done) => {
    let i = 0;
    function step() { if (++i < n) setImmediate(step); else done(); }
    setImmediate(step);
  }],
  ['setTimeout-0', sizes.timeout, (n, done) => {
    let left = n;
    for (let i = 0; i < n; i++) setTimeout(() => { if (--left === 0) done(); }, 0);
  }],
  ['await-chain', sizes.await, (n, done) => {
    (async () => { let s = 0; for (let i = 0; i < n; i++) s += await Promise.resolve(i); done(); })();
  }],
  ['promise-all', sizes.all, (n, done) => {
    const ps = new Array(n);
    for (let i = 0; i < n; i++) ps[i] = Promise.resolve(i);
    Promise.all(ps).then(() => done());
  }],
];

const only = process.argv.slice(2).filter(a => !a.startsWith('--'));
(async () => {
  for (const [name, n, run] of workloads) {
    if (only.length && !only.includes(name)) continue;
    // Start each workload from a fresh macrotask, as the Swift side starts from a fresh loop run.
    await new Promise(r => setImmediate(r));
    const t0 = performance.now();
    await new Promise(r => run(n, r));
    report(name, n, performance.now() - t0);
  }
})();
