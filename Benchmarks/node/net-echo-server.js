// Peer of asynctrace-bench `net` (tcp-echo): a net echo server on loopback. Prints its port, exits
// when stdin closes (the load generator lives in asynctrace-bench, the same for both servers).
const net = require('net');
const server = net.createServer((socket) => {
  socket.on('data', (data) => socket.write(data));
  socket.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
