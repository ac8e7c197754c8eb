// The classic event-loop lessons in Node, the peers of `asynctrace-lessons <name>` (same output,
// line for line; Tests/RuntimeTests/LessonTests.swift compares them). Usage: node lessons.js NAME DIR
// DIR: a scratch directory for the file lessons.
const fs = require('fs');
const net = require('net');
const dgram = require('dgram');
const childProcess = require('child_process');
const [name, dir] = process.argv.slice(2);
const log = (s) => console.log(s);
const busy = (ms) => { const end = Date.now() + ms; while (Date.now() < end); };
// What ran when: a nextTick, a promise reaction, an immediate (and a 0 ms timer, only where its order
// is deterministic: scheduled from an I/O callback, never from the main module or its ticks).
const markers = (tag, timer) => {
  setImmediate(() => log(tag + ' immediate'));
  process.nextTick(() => log(tag + ' nextTick'));
  Promise.resolve().then(() => log(tag + ' promise'));
  if (timer) setTimeout(() => log(tag + ' timeout'), 0);
};

const lessons = {
  'main-first'() {
    setTimeout(() => log('Should run in 1ms'), 1);
    busy(5);
    log('Will this be printed first?');
  },
  'timers-order'() {
    setTimeout(() => log('A: set first, 100 ms'), 100);
    setTimeout(() => log('B: set second, 10 ms'), 10);
    busy(150);
    setTimeout(() => log('C: set after the block, 1 ms'), 1);
  },
  'file-chain'() {
    fs.readFile(dir + '/a.txt', (err, data) => {
      log('read a.txt');
      setTimeout(() => log('timeout elapsed 1ms'), 1);
      fs.writeFile(dir + '/b.txt', data, () => {
        log('write b.txt');
        setTimeout(() => fs.readFile(dir + '/c.txt', () => log('read c after a second')), 1000);
      });
    });
  },
  'immediate-vs-readfile'() {
    fs.readFile(dir + '/c.txt', () => log('readFile'));
    setImmediate(() => log('setImmediate'));
  },
  'nexttick-order'() {
    setTimeout(() => log('timeout'), 0);
    Promise.resolve().then(() => log('promise'));
    process.nextTick(() => log('nextTick'));
    log('main');
  },
  'async-await'() {
    log('Start Initial phase');
    (async () => {
      log('async function starts');
      const data = await fs.promises.readFile(dir + '/c.txt');
      log('awaited readFile: ' + data.length + ' bytes');
      await new Promise((r) => setTimeout(r, 1));
      log('awaited a timer');
    })();
    process.nextTick(() => log('nextTick'));
    log('End Initial phase');
  },
  'nexttick-starvation'() {
    let ticks = 0;
    setTimeout(() => log('timeout after ' + ticks + ' ticks'), 0);
    setImmediate(() => log('immediate after ' + ticks + ' ticks'));
    fs.readFile(dir + '/c.txt', () => log('readFile after ' + ticks + ' ticks'));
    const again = () => { if (++ticks < 100000) process.nextTick(again); else log('ticks done'); };
    process.nextTick(again);
  },
  'unref'() {
    setTimeout(() => log('unref timer fired'), 1000).unref();
    setTimeout(() => log('ref timer fired'), 10);
    process.on('exit', () => log('loop ended'));
  },
  // 'error' on a nextTick right after the failure, 'close' in the close phase (after immediates).
  'error-refused'() {
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1', () => {
      const port = probe.address().port;
      probe.close(() => {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', (e) => { log('error ' + e.code + ' ' + e.syscall); markers('in error', true); });
        s.on('close', (hadError) => log('close ' + hadError));
      });
    });
  },
  'error-destroy'() {
    const server = net.createServer(() => {});
    server.listen(0, '127.0.0.1', () => {
      const s = net.connect(server.address().port, '127.0.0.1', () => {
        log('connect');
        s.destroy(new Error('boom'));
        markers('after destroy', true);
        server.close();
      });
      s.on('error', (e) => log('error ' + e.message));
      s.on('close', (hadError) => log('close ' + hadError));
    });
  },
  'error-listen-inuse'() {
    const a = net.createServer();
    a.listen(0, () => {
      const b = net.createServer();
      b.on('error', (e) => { log('error ' + e.code + ' ' + e.syscall); a.close(() => log('a close')); });
      b.on('close', () => log('b close (never: it did not listen)'));
      b.listen(a.address().port);
      markers('after listen');
    });
  },
  'error-unix-enoent'() {
    const s = net.connect(dir + '/missing.sock');
    s.on('error', (e) => log('error ' + e.code + ' ' + e.syscall));
    s.on('close', (hadError) => log('close ' + hadError));
    markers('after connect');
  },
  'error-udp'() {
    const a = dgram.createSocket('udp4');
    a.bind(0, '127.0.0.1', () => {
      const b = dgram.createSocket('udp4');
      b.on('error', (e) => { log('bind error ' + e.code + ' ' + e.syscall); b.close(() => log('b close')); });
      b.bind(a.address().port, '127.0.0.1');
      markers('after bind');
      // Broadcast without SO_BROADCAST: EACCES from sendto.
      a.send('x', 9, '255.255.255.255', (e) => { log('send ' + (e && e.code)); a.close(() => log('a close')); });
    });
  },
  'error-spawn'() {
    const c = childProcess.spawn('/nonexistent/program');
    c.on('error', (e) => log('error ' + e.code + ' ' + e.syscall));
    c.on('exit', () => log('exit (never)'));
    c.on('close', (code, signal) => {
      log('close ' + code + ' ' + signal);
      const d = childProcess.spawn('/nonexistent/program', [], { stdio: 'ignore' });
      d.on('error', (e) => log('no stdio: error ' + e.code));
      d.on('close', (code, signal) => log('no stdio: close ' + code + ' ' + signal));
      setImmediate(() => log('no stdio: immediate'));
    });
    markers('after spawn');
  },
  'error-fs-streams'() {
    const r = fs.createReadStream(dir + '/missing.txt');
    r.on('error', (e) => { log('read error ' + e.code); markers('in read error'); });
    r.on('close', () => {
      log('read close');
      const d = fs.createReadStream(dir);  // opens; the first read fails (EISDIR), after the fd closed
      d.on('data', () => log('data (never)'));
      d.on('error', (e) => log('dir error ' + e.code));
      d.on('close', () => {
        log('dir close');
        const w = fs.createWriteStream('/dev/full');
        w.on('error', (e) => log('write error ' + e.code));
        w.on('close', () => log('write close'));
        w.write('x');
      });
    });
    process.nextTick(() => log('after create nextTick'));  // (an immediate here would race the open)
  },
  // A then handler returning a promise: the derived promise settles two microtasks later than with
  // a value (NewPromiseResolveThenableJob, then the adopted promise's reaction).
  'promise-adoption'() {
    Promise.resolve(1).then(() => { log('A returns a promise'); return Promise.resolve(2); }).then((v) => log('A done ' + v));
    Promise.resolve().then(() => log('t1')).then(() => log('t2')).then(() => log('t3')).then(() => log('t4')).then(() => log('t5'));
    new Promise((resolve) => resolve(Promise.resolve(3))).then((v) => log('resolved with a promise: ' + v));
  },
  // process 'beforeExit' (the loop ran out of work; listeners may add more) and 'exit' (once, sync).
  'process-exit'() {
    let rounds = 0;
    process.on('beforeExit', (code) => {
      log('beforeExit ' + code);
      if (++rounds < 3) {
        setTimeout(() => log('timer from beforeExit ' + rounds), 1);
        process.nextTick(() => log('tick from beforeExit'));
      } else {
        process.exitCode = 3;
      }
    });
    process.on('exit', (code) => {
      log('exit ' + code);
      process.nextTick(() => log('tick from exit (never)'));
      setTimeout(() => log('timer from exit (never)'), 0);
    });
    setImmediate(() => log('immediate'));
    log('main');
  },
};

if (!lessons[name]) { console.error('lessons: ' + Object.keys(lessons).join(', ')); process.exit(2); }
lessons[name]();
