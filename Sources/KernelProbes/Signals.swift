import CKernelProbes

/// SIGINT, SIGTERM and SIGHUP while recording: forwarded to the program, or just noted.
package enum RecordingSignals {
    /// Catches SIGINT, SIGTERM and SIGHUP from now on. With a pid they are forwarded to it when
    /// another process sent them (a terminal's Ctrl-C already reached the program, which shares
    /// the terminal's process group).
    package static func catchSignals(forwardingTo pid: Int32? = nil) {
        kp_catch_signals(pid ?? 0)
    }

    /// The last signal caught, 0 if none.
    package static var last: Int32 { kp_last_signal() }
}
