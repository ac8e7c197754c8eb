// The byte layer under a Socket: plain send/read by default, or a protocol such as TLS that does its
// own I/O on the fd (AsyncTraceTLS). A transport's I/O runs inside the socket's I/O resource
// (its TLSWRAP), so the kernel reads and writes it makes are attributed to that resource.

/// What one transport operation did.
public enum TransportResult {
    /// `n` bytes moved (for `handshake`: done).
    case bytes(Int)
    /// Nothing can move now; wait for the fd to be readable (and writable, when `wantWrite`).
    case wouldBlock(wantWrite: Bool)
    /// The peer ended the stream cleanly.
    case endOfStream
    /// The operation failed (the socket is destroyed with this error).
    case failed(NetError)
}

/// The byte layer under a `Socket`: plain reads and writes by default, or a protocol such as TLS doing its
/// own I/O on the fd, inside the socket's I/O resource.
public protocol SocketTransport: AnyObject {
    /// Advances the handshake; `.bytes` when it is complete.
    func handshake(fd: Int32) -> TransportResult
    /// Reads up to `count` decoded bytes into `buffer`.
    func read(fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int) -> TransportResult
    /// Writes up to `count` bytes from `buffer` (encoding them as the protocol does).
    func write(fd: Int32, from buffer: UnsafeRawPointer, count: Int) -> TransportResult
    /// Says goodbye at the protocol level before the socket shuts its writing side (TLS close_notify).
    func shutdown(fd: Int32)
    /// Releases the transport's state; the socket closes the fd itself.
    func close()
    /// Input already read from the fd but not yet returned by `read` (epoll cannot see it).
    var hasBufferedInput: Bool { get }
}
