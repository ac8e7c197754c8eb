// The classic event-loop lessons in Node, the peers of `asynctrace-lessons <name>` (same output,
// line for line; Tests/RuntimeTests/LessonTests.swift compares them). Usage: node lessons.js NAME DIR
// DIR: a scratch directory for the file lessons.
const fs = require('fs');
const [name, dir] = process.argv.slice(2);
const log = (s) => console.log(s);
const busy = (ms) => { const end = Date.now() + ms; while (Date.now() < end); };

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
};

if (!lessons[name]) { console.error('lessons: ' + Object.keys(lessons).join(', ')); process.exit(2); }
lessons[name]();
