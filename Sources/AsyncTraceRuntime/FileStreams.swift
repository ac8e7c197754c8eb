// fs.createReadStream / fs.createWriteStream: chunked file I/O on the thread pool with Node's
// backpressure. A read stream reads highWaterMark bytes at a time while flowing; a write stream
// buffers, and `write` returns false once highWaterMark bytes wait, then 'drain' follows.
@_spi(Runtime) import AsyncHooks

/// Node's `fs.ReadStream`: reads the file `highWaterMark` bytes at a time on the thread pool while flowing;
/// each chunk is 'data' (made by `FS.createReadStream`).
public final class ReadStream {
    /// The file's path.
    public let path: String
    /// Bytes read per request.
    public let highWaterMark: Int
    /// 'open': the file was opened (its fd).
    public var onOpen: ((Int32) throws -> Void)?
    /// 'data': the next chunk.
    public var onData: (([UInt8]) throws -> Void)?
    /// 'end': the whole file was read (then 'close').
    public var onEnd: (() throws -> Void)?
    /// 'error': opening or reading failed (then 'close'; without a handler the error is uncaught).
    public var onError: ((any Error) throws -> Void)?
    /// 'close': the file was closed.
    public var onClose: (() throws -> Void)?
    /// Bytes read so far.
    public private(set) var bytesRead = 0
    /// Whether `pause()` stopped the flow.
    public private(set) var isPaused = false
    /// Whether `destroy()` was called.
    public private(set) var isDestroyed = false
    var fd: Int32 = -1
    var reading = false
    var ended = false

    init(path: String, highWaterMark: Int) {
        self.path = path
        self.highWaterMark = highWaterMark
        FS.open(path, "r") { [self] result in
            switch result {
            case .success(let fd):
                if isDestroyed { FS.close(fd) { _ in }; return }
                self.fd = fd
                try onOpen?(fd)
                readMore()
            case .failure(let e):
                // Node's construct callback reports the failure on a nextTick (onConstruct), whose
                // errorOrDestroy then queues 'error' and 'close'.
                EventLoop.current.nextTick { [self] in fail(e) }
            }
        }
    }

    /// Stops reading after the request in flight; `resume()` continues.
    public func pause() { isPaused = true }
    /// Continues reading after `pause()`.
    public func resume() {
        guard isPaused else { return }
        isPaused = false
        readMore()
    }

    /// Stops reading and closes the file ('close' follows; no 'end').
    public func destroy() {
        guard !isDestroyed else { return }
        isDestroyed = true
        closeFile()
    }

    /// Pipes into `destination` with backpressure; ends it at the end.
    @discardableResult
    public func pipe(_ destination: WriteStream) -> WriteStream {
        // Strong captures: an active stream stays alive without the caller holding it; the
        // cycles end when the streams close (their handlers are dropped then).
        onData = { [self] chunk in
            if !destination.write(chunk) {
                pause()
                destination.onDrain = { [self] in resume() }
            }
        }
        onEnd = { destination.end() }
        return destination
    }

    func readMore() {
        guard fd >= 0, !reading, !isPaused, !ended, !isDestroyed else { return }
        reading = true
        FS.read(fd, length: highWaterMark) { [self] result in
            reading = false
            if isDestroyed { return }
            switch result {
            case .success(let chunk) where chunk.isEmpty:
                ended = true
                try onEnd?()
                closeFile()
            case .success(let chunk):
                bytesRead += chunk.count
                try onData?(chunk)
                readMore()
            case .failure(let e):
                fail(e)
            }
        }
    }

    /// Node's errorOrDestroy: the file is closed first, then 'error' and 'close' in one nextTick.
    func fail(_ e: any Error) {
        isDestroyed = true
        closeFile(error: e)
    }

    /// Closes the file (if open), then 'error' (when given) and 'close' on a nextTick (Node's
    /// emitErrorCloseNT after the stream's _destroy). An error with no listener is uncaught, and
    /// 'close' does not follow (Node ends the process there).
    func closeFile(error: (any Error)? = nil) {
        let fd = self.fd
        self.fd = -1
        let emit: Callback = { [self] in
            if let error {
                guard let onError else { dropHandlers(); throw error }
                try onError(error)
            }
            try onClose?()
            dropHandlers()
        }
        if fd < 0 {
            EventLoop.current.nextTick(emit)
            return
        }
        FS.close(fd) { _ in EventLoop.current.nextTick(emit) }
    }

    func dropHandlers() {
        onOpen = nil; onData = nil; onEnd = nil; onError = nil; onClose = nil
    }
}

/// Node's `fs.WriteStream`: buffers writes and writes them in order on the thread pool; `write` returns
/// false once `highWaterMark` bytes wait, and 'drain' follows when they are written (made by `FS.createWriteStream`).
public final class WriteStream {
    /// The file's path.
    public let path: String
    /// Waiting bytes at which `write` returns false.
    public let highWaterMark: Int
    /// 'open': the file was opened (its fd).
    public var onOpen: ((Int32) throws -> Void)?
    /// 'drain': the waiting bytes were written after `write` returned false.
    public var onDrain: (() throws -> Void)?
    /// 'finish': everything was written after `end`.
    public var onFinish: (() throws -> Void)?
    /// 'error': opening or writing failed, or a write after `end` (then 'close'; without a handler it is uncaught).
    public var onError: ((any Error) throws -> Void)?
    /// 'close': the file was closed.
    public var onClose: (() throws -> Void)?
    /// Bytes accepted by `write` and not yet written to the file.
    public private(set) var writableLength = 0
    /// Bytes written to the file so far.
    public private(set) var bytesWritten = 0
    /// Whether `end` was called.
    public private(set) var isEnded = false
    var fd: Int32 = -1
    var pending: [[UInt8]] = []
    var writing = false
    var needDrain = false
    var finished = false
    var failed = false
    var endCallbacks: [() throws -> Void] = []

    init(path: String, flags: String, highWaterMark: Int) {
        self.path = path
        self.highWaterMark = highWaterMark
        FS.open(path, flags) { [self] result in
            switch result {
            case .success(let fd):
                self.fd = fd
                try onOpen?(fd)
                flush()
            case .failure(let e):
                // As the read stream's: the failure goes through Node's onConstruct tick first.
                EventLoop.current.nextTick { [self] in fail(e) }
            }
        }
    }

    /// Queues `chunk`; false once highWaterMark bytes are waiting (wait for onDrain before writing more).
    @discardableResult
    public func write(_ chunk: [UInt8]) -> Bool {
        if isEnded || failed {
            // Node's errorOrDestroy; a stream already failed or finished (destroyed) stays quiet.
            if !failed && !finished {
                fail(RuntimeError.invalidArgument("ERR_STREAM_WRITE_AFTER_END: write after end (\(path))"))
            }
            return false
        }
        pending.append(chunk)
        writableLength += chunk.count
        flush()
        let ok = writableLength < highWaterMark
        if !ok { needDrain = true }
        return ok
    }

    /// Writes `chunk` if given, then finishes: 'finish' once everything is written, then 'close'.
    public func end(_ chunk: [UInt8]? = nil, _ callback: (() throws -> Void)? = nil) {
        if let chunk { write(chunk) }
        if let callback { endCallbacks.append(callback) }
        isEnded = true
        flush()
    }

    func flush() {
        guard fd >= 0, !writing, !failed else { return }
        if pending.isEmpty {
            if isEnded && !finished { finish() }
            return
        }
        writing = true
        let data = pending.count == 1 ? pending[0] : Array(pending.joined())
        pending.removeAll(keepingCapacity: true)
        FS.write(fd, data) { [self] result in
            writing = false
            switch result {
            case .success(let n):
                bytesWritten += n
                writableLength -= data.count
                if needDrain && writableLength == 0 && !isEnded {
                    needDrain = false
                    try onDrain?()
                }
                flush()
            case .failure(let e):
                fail(e)
            }
        }
    }

    /// 'finish' (the end callbacks first) on a nextTick, then the file is closed (Node's autoDestroy)
    /// and 'close' follows on a nextTick.
    func finish() {
        finished = true
        let fd = self.fd
        self.fd = -1
        let loop = EventLoop.current
        loop.nextTick { [self] in
            FS.close(fd) { _ in
                loop.nextTick { [self] in
                    try onClose?(); dropHandlers()
                }
            }
            for cb in endCallbacks { try cb() }
            endCallbacks = []
            try onFinish?()
        }
    }

    func dropHandlers() {
        onOpen = nil; onDrain = nil; onFinish = nil; onError = nil; onClose = nil
    }

    /// Node's errorOrDestroy: the file is closed first (if open), then 'error' and 'close' in one
    /// nextTick; with no 'error' listener the error is uncaught and 'close' does not follow.
    func fail(_ e: any Error) {
        guard !failed else { return }
        failed = true
        let fd = self.fd
        self.fd = -1
        let loop = EventLoop.current
        let emit: Callback = { [self] in
            guard let onError else { dropHandlers(); throw e }
            try onError(e)
            try onClose?()
            dropHandlers()
        }
        if fd < 0 { loop.nextTick(emit) } else { FS.close(fd) { _ in loop.nextTick(emit) } }
    }
}

extension FS {
    /// fs.createReadStream: starts flowing at once (set the handlers right after creating it).
    public static func createReadStream(_ path: String, highWaterMark: Int = 64 << 10) -> ReadStream {
        ReadStream(path: path, highWaterMark: max(highWaterMark, 1))
    }

    /// fs.createWriteStream.
    public static func createWriteStream(_ path: String, flags: String = "w", highWaterMark: Int = 16 << 10) -> WriteStream {
        WriteStream(path: path, flags: flags, highWaterMark: max(highWaterMark, 1))
    }
}
