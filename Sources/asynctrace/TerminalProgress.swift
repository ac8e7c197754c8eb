// The CLI's one progress line: on stderr, only when stderr is a terminal (never in pipes, logs
// or CI output), rewritten at most 5 times a second.
#if canImport(Glibc)
import Glibc
#endif

final class TerminalProgress {
    private let label: String
    private let enabled: Bool
    private var lastNs: UInt64 = 0
    private var shown = false

    init(label: String, enabled: Bool = isatty(2) != 0) {
        self.label = label
        self.enabled = enabled
    }

    var isEnabled: Bool { enabled }

    /// "label: 45%", or "label: 45% (detail)".
    func update(_ fraction: Double, detail: String? = nil) {
        guard enabled else { return }
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let now = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
        guard now - lastNs > 200_000_000 || fraction >= 1 else { return }
        lastNs = now
        let pct = Int((min(max(fraction, 0), 1) * 100).rounded(.down))
        writeStderr("\r\(label): \(pct)%" + (detail.map { " (\($0))" } ?? ""))
        shown = true
    }

    /// Clears the progress line.
    func finish() {
        guard enabled && shown else { return }
        writeStderr("\r\u{1B}[K")
        shown = false
    }
}

/// Writes to fd 2 directly (the C `stderr` global is not concurrency-safe in Swift 6).
func writeStderr(_ s: String) {
    var s = s
    s.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
