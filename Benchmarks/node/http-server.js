// Peer of asynctrace-bench `net` (http): a minimal http server on loopback answering every request
// with the same small text body. Prints its port, exits when stdin closes.
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
