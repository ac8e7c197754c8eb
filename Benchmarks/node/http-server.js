// Peer of asynctrace-bench `net` (http): a minimal http server on loopback answering every request
// with the same small text body. Prints its port, exits when stdin closes.
// --hooks: an empty async_hooks hook (init/before/after/destroy; promise hooks removed again, as the
// preload does): what Node's own hook machinery costs, the floor of any async_hooks recorder.
if (process.argv.includes('--hooks')) {
  require('async_hooks').createHook({ init() {}, before() {}, after() {}, destroy() {} }).enable();
  const saved = process.noDeprecation;
  process.noDeprecation = true;
  try { process.binding('async_wrap').setPromiseHooks(undefined, undefined, undefined, undefined); } catch {}
  process.noDeprecation = saved;
}
const http = require('http');
const server = http.createServer((req, res) => {
  req.on('end', () => {
    res.setHeader('Content-Type', 'text/plain');
    res.end('hello world\n');
  });
  req.resume();
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
