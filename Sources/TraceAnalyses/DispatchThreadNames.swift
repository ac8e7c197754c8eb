/// Dispatch's worker threads on Linux are named by the last 15 bytes of their root queue's label (all the
/// kernel keeps of a thread name): Swift's cooperative pool (`com.apple.root.default-qos`, the global
/// executor's queue) showed as `oot.default-qos`, a queue's serial work and the main queue's as
/// `-qos.overcommit`. The report gives the label back; the six overcommit roots share one tail, so theirs
/// keeps the QoS unknown.
package enum DispatchThreadNames {
    static let labels: [String: String] = [
        "maintenance-qos": "com.apple.root.maintenance-qos",
        ".background-qos": "com.apple.root.background-qos",
        "oot.utility-qos": "com.apple.root.utility-qos",
        "oot.default-qos": "com.apple.root.default-qos",
        "r-initiated-qos": "com.apple.root.user-initiated-qos",
        "interactive-qos": "com.apple.root.user-interactive-qos",
        "-qos.overcommit": "com.apple.root.…-qos.overcommit",
    ]

    /// The root queue's label for a name that is Dispatch's cut of it, else the name itself.
    package static func expanded(_ name: String) -> String { labels[name] ?? name }
}
