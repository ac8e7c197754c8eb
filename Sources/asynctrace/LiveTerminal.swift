// The terminal of `asynctrace top`: raw keyboard input, the alternate screen, and the promise to
// give the terminal back as it was on every way out (normal exit, q, SIGINT/SIGTERM/SIGHUP/SIGQUIT,
// and the fatal signals, whose handler restores it before dying with the default action).
#if canImport(Glibc)
import Glibc
#endif

/// Set by the signal handlers; read by the view's loop (async-signal-safe: plain stores only).
nonisolated(unsafe) var liveStopSignal: Int32 = 0
nonisolated(unsafe) var liveResized: Int32 = 0
/// The terminal's settings before raw mode, and whether they must be restored (used by the handlers).
nonisolated(unsafe) var liveSavedTermios = termios()
nonisolated(unsafe) var liveTerminalActive: Int32 = 0
nonisolated(unsafe) var liveRawActive: Int32 = 0

private let leaveScreen: [UInt8] = Array("\u{1B}[?25h\u{1B}[?1049l".utf8)

/// Gives the terminal back (async-signal-safe: tcsetattr and write only).
func liveRestoreTerminal() {
    guard liveTerminalActive != 0 else { return }
    liveTerminalActive = 0
    if liveRawActive != 0 {
        liveRawActive = 0
        _ = tcsetattr(0, TCSAFLUSH, &liveSavedTermios)
    }
    leaveScreen.withUnsafeBytes { _ = write(1, $0.baseAddress, $0.count) }
}

enum LiveTerminal {
    /// Signals that end the view cleanly (the loop notices and leaves through its normal path).
    static func installStopHandlers() {
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
            var sa = sigaction()
            sa.__sigaction_handler.sa_handler = { s in liveStopSignal = s }
            sigemptyset(&sa.sa_mask)
            sa.sa_flags = 0  // no SA_RESTART: poll() returns EINTR at once
            sigaction(sig, &sa, nil)
        }
        var sa = sigaction()
        sa.__sigaction_handler.sa_handler = { _ in liveResized = 1 }
        sigemptyset(&sa.sa_mask)
        sigaction(SIGWINCH, &sa, nil)
        // A crash must not leave the user's terminal raw: restore, then die as the signal would have.
        for sig in [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP] {
            var fatal = sigaction()
            fatal.__sigaction_handler.sa_handler = { s in
                liveRestoreTerminal()
                signal(s, SIG_DFL)
                raise(s)
            }
            sigemptyset(&fatal.sa_mask)
            sigaction(sig, &fatal, nil)
        }
        atexit { liveRestoreTerminal() }
    }

    /// The alternate screen, and raw input if stdin is a terminal (no echo, no line buffering, no signals
    /// from keys: Ctrl-C arrives as a key). Returns whether keys can be read.
    static func enter() -> Bool {
        liveTerminalActive = 1
        writeOut("\u{1B}[?1049h\u{1B}[?25l\u{1B}[H\u{1B}[2J")
        guard isatty(0) != 0, tcgetattr(0, &liveSavedTermios) == 0 else { return false }
        var raw = liveSavedTermios
        raw.c_lflag &= ~tcflag_t(ECHO | ICANON | ISIG | IEXTEN)
        raw.c_iflag &= ~tcflag_t(IXON | ICRNL)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 0
            cc[Int(VTIME)] = 0
        }
        liveRawActive = 1
        guard tcsetattr(0, TCSAFLUSH, &raw) == 0 else {
            liveRawActive = 0
            return false
        }
        return true
    }

    /// Rows and columns of the terminal on stdout (24x80 if it cannot tell).
    static func size() -> (rows: Int, columns: Int) {
        var ws = winsize()
        guard ioctl(1, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_row > 0, ws.ws_col > 0 else { return (24, 80) }
        return (Int(ws.ws_row), Int(ws.ws_col))
    }

    /// Redraws the screen: each line cut to the width, the rest of the screen cleared.
    static func draw(_ lines: [String], rows: Int, columns: Int) {
        var out = "\u{1B}[H"
        for (i, l) in lines.prefix(rows).enumerated() {
            out += cut(l, columns) + "\u{1B}[K" + (i == min(lines.count, rows) - 1 ? "" : "\r\n")
        }
        out += "\u{1B}[J"
        writeOut(out)
    }

    static func cut(_ s: String, _ n: Int) -> String {
        var count = 0
        var end = s.startIndex
        for i in s.indices {
            if count == n { return String(s[s.startIndex..<i]) }
            count += 1
            end = s.index(after: i)
        }
        return String(s[s.startIndex..<end])
    }

    /// Waits up to `ms` for a key (or a signal); returns the bytes typed, empty on timeout.
    static func readKeys(timeoutMs: Int32, keys: Bool, extraFD: Int32 = -1) -> [UInt8] {
        var fds = [
            pollfd(fd: keys ? 0 : -1, events: Int16(POLLIN), revents: 0),
            pollfd(fd: extraFD, events: Int16(POLLIN), revents: 0),
        ]
        let n = poll(&fds, 2, timeoutMs)
        guard keys, n > 0, fds[0].revents & Int16(POLLIN) != 0 else { return [] }
        var buf = [UInt8](repeating: 0, count: 64)
        let got = read(0, &buf, buf.count)
        return got > 0 ? Array(buf[0..<got]) : []
    }
}

/// Writes all of `s` to stdout (fd 1).
func writeOut(_ s: String) {
    var s = s
    s.withUTF8 { b in
        var off = 0
        while off < b.count {
            let n = write(1, b.baseAddress! + off, b.count - off)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            off += n
        }
    }
}
