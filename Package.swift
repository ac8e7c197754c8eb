// swift-tools-version: 6.0
// The module list follows the data flow:
//   app -> AsyncHooks -> AsyncTraceRecorder -> trace file <- KernelProbes
//   trace file -> TraceReader -> TraceAnalyses -> TraceReports / TraceExports (views; TraceText formats
//   numbers and JSON strings for both; TraceSymbols names sampled code)
// TraceFormat is the only module shared by the recording and the reading side.
import PackageDescription

let package = Package(
    name: "asynctrace",
    products: [
        .library(name: "AsyncHooks", targets: ["AsyncHooks"]),
        .library(name: "AsyncTraceRecorder", targets: ["AsyncTraceRecorder"]),
        .library(name: "AsyncTraceRuntime", targets: ["AsyncTraceRuntime"]),
        .library(name: "AsyncTraceHTTP", targets: ["AsyncTraceHTTP"]),
        .library(name: "AsyncTraceTLS", targets: ["AsyncTraceTLS"]),
        .library(name: "AsyncTraceConcurrency", targets: ["AsyncTraceConcurrency"]),
        // The library `asynctrace record` injects (LD_PRELOAD) into programs that link libswift_Concurrency.so.
        .library(name: "AsyncTraceConcurrencyPreload", type: .dynamic, targets: ["AsyncTraceConcurrencyPreload"]),
        .library(name: "TraceFormat", targets: ["TraceFormat"]),
        .library(name: "TraceReader", targets: ["TraceReader"]),
        .library(name: "TraceAnalyses", targets: ["TraceAnalyses"]),
        .library(name: "TraceReports", targets: ["TraceReports"]),
        .library(name: "TraceExports", targets: ["TraceExports"]),
        .library(name: "KernelProbes", targets: ["KernelProbes"]),
        .executable(name: "asynctrace", targets: ["asynctrace"]),
        .executable(name: "asynctrace-examples", targets: ["asynctrace-examples"]),
        .executable(name: "asynctrace-bench", targets: ["asynctrace-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
    ],
    targets: [
        // --- shared: the file format (spec table, varints, chunk framing, CRC32C) ---
        .target(name: "TraceFormat"),

        // --- recording side: in every traced app's hot path; no Foundation, no packages ---
        .target(name: "CAsyncHooksSupport"),
        .target(name: "AsyncHooks", dependencies: ["CAsyncHooksSupport"]),
        .target(name: "CRecorderSupport"),
        .target(name: "AsyncTraceRecorder", dependencies: ["AsyncHooks", "TraceFormat", "CRecorderSupport"]),
        // A flight recorder's window of chunks and its dumps (record --flight-recorder).
        .target(name: "TraceFlight", dependencies: ["AsyncHooks", "TraceFormat", "CRecorderSupport"]),

        // --- Swift Concurrency as hook events: in-process (install()) or injected by `record` ---
        .target(name: "CAsyncTraceConcurrency"),
        .target(name: "AsyncTraceConcurrency", dependencies: ["AsyncHooks", "CAsyncTraceConcurrency"]),
        .target(name: "CAsyncTraceConcurrencyPreload", dependencies: ["CAsyncTraceConcurrency"]),
        .target(
            name: "AsyncTraceConcurrencyPreload",
            dependencies: ["AsyncTraceConcurrency", "AsyncTraceRecorder", "CAsyncTraceConcurrencyPreload"]),

        // --- the runtime: a libuv/Node-style loop on epoll that emits the hooks ---
        .target(name: "CRuntimeSystem"),
        // It emits events and never starts a recorder: the application decides (see asynctrace-examples).
        .target(name: "AsyncTraceRuntime", dependencies: ["AsyncHooks", "CRuntimeSystem"]),

        // --- protocols over the runtime's sockets ---
        .target(name: "AsyncTraceHTTP", dependencies: ["AsyncTraceRuntime", "AsyncHooks"]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .target(name: "AsyncTraceTLS", dependencies: ["AsyncTraceRuntime", "AsyncHooks", "COpenSSL"]),

        // --- kernel side: eBPF skeleton + libbpf loader (C), Swift API over it ---
        // bpf/syscall_event.h reaches both sides through a symlink in CKernelProbes/include
        // (a headerSearchPath is not seen by Swift clients of the module).
        .target(
            name: "CKernelProbes",
            linkerSettings: [.linkedLibrary("bpf"), .linkedLibrary("elf"), .linkedLibrary("z")]
        ),
        .target(name: "KernelProbes", dependencies: ["CKernelProbes", "TraceFormat"]),
        // --- the Node adapter: a preload script (async_hooks) and the recorder's end of its FIFO ---
        .target(
            name: "NodeRecording", dependencies: ["TraceFormat"],
            resources: [.embedInCode("asynctrace-preload.js")]),

        // --- reading side ---
        .target(name: "TraceReader", dependencies: ["TraceFormat"]),
        // Names the code in CPU samples (ELF symbols, Node perf maps, kallsyms) at read time.
        .target(name: "TraceSymbols", dependencies: ["TraceReader", "TraceFormat"]),
        // Synthetic traces for the export benchmark and tests (neither side of the product uses it).
        .target(name: "TraceFixtures", dependencies: ["TraceFormat"]),
        // No unsafe flags (SwiftPM refuses them in dependencies): the hot class properties of the export
        // pass are marked @exclusivity(unchecked) one by one instead.
        .target(name: "TraceExports", dependencies: ["TraceReader", "TraceFormat", "TraceAnalyses", "TraceReports", "TraceSymbols", "TraceText"]),
        .target(name: "TraceAnalyses", dependencies: ["TraceReader", "TraceFormat", "TraceSymbols"]),
        .target(name: "TraceReports", dependencies: ["TraceAnalyses", "TraceReader", "TraceFormat", "TraceSymbols", "TraceText"]),
        // Number formatting and JSON string quoting for every view (reports and exports alike).
        .target(name: "TraceText"),

        // --- executables ---
        .executableTarget(
            name: "asynctrace",
            dependencies: [
                "TraceReader", "TraceAnalyses", "TraceReports", "TraceText", "KernelProbes", "TraceFormat", "TraceExports", "TraceSymbols",
                "CRecorderSupport", "TraceFlight",
                "NodeRecording",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "asynctrace-examples", dependencies: ["AsyncTraceRuntime", "AsyncTraceHTTP", "AsyncTraceTLS", "AsyncTraceRecorder", "AsyncHooks"]),
        // An application with its own copy of AsyncHooks and no recorder (ConcurrencyTests record it).
        .executableTarget(name: "asynctrace-embedded-fixture", dependencies: ["AsyncHooks"]),
        // Child processes for the recorder's crash tests.
        .executableTarget(name: "asynctrace-fixtures", dependencies: ["AsyncHooks", "AsyncTraceRecorder", "CAsyncHooksSupport"]),
        // The classic Node event-loop lessons, for the runtime's tests and README.
        .executableTarget(name: "asynctrace-lessons", dependencies: ["AsyncTraceRuntime", "AsyncTraceRecorder"]),
        .executableTarget(
            name: "asynctrace-bench",
            dependencies: [
                "AsyncHooks", "AsyncTraceRecorder", "CRecorderSupport", "TraceFormat", "TraceReader", "KernelProbes",
                "AsyncTraceRuntime", "AsyncTraceHTTP", "CRuntimeSystem", "NodeRecording",
                "TraceExports", "TraceAnalyses", "TraceFixtures", "TraceSymbols", "TraceReports", "TraceText",
            ]
        ),

        // --- tests ---
        .testTarget(name: "TraceFormatTests", dependencies: ["TraceFormat"]),
        .testTarget(name: "AsyncHooksTests", dependencies: ["AsyncHooks"]),
        .testTarget(
            name: "RecorderTests",
            dependencies: ["AsyncTraceRecorder", "AsyncHooks", "TraceReader", "TraceFormat", "CRecorderSupport", "asynctrace-fixtures"]
        ),
        .testTarget(name: "TraceSymbolsTests", dependencies: ["TraceSymbols"]),
        .testTarget(name: "TraceReaderTests", dependencies: ["TraceReader", "TraceFormat"], exclude: ["Golden"]),
        // The example scenarios and the CLI are exec'd by the tests (recorded, exported, validated).
        .testTarget(
            name: "TraceExportsTests",
            dependencies: [
                "TraceExports", "TraceAnalyses", "TraceReader", "TraceFormat", "TraceFixtures", "TraceSymbols",
                "asynctrace-examples", "asynctrace",
            ],
            exclude: ["Fixtures", "validators"]),
        .testTarget(
            name: "TraceAnalysesTests", dependencies: ["TraceAnalyses", "TraceReports", "TraceText", "TraceReader", "TraceFormat", "TraceSymbols"]),
        .testTarget(
            name: "RuntimeTests",
            dependencies: ["LoopTestSupport", "AsyncTraceRuntime", "AsyncHooks", "TraceReader", "TraceFormat", "asynctrace-lessons"]),
        .testTarget(
            name: "NetTests",
            dependencies: [
                "LoopTestSupport", "AsyncTraceRuntime", "AsyncTraceHTTP", "AsyncTraceTLS", "AsyncHooks",
                "TraceReader", "TraceAnalyses", "asynctrace-examples",
            ],
            exclude: ["Fixtures"]),
        .testTarget(
            name: "KernelProbesTests",
            dependencies: [
                "KernelProbes", "TraceReader", "TraceFormat", "TraceSymbols", "kernel-groundtruth", "kernel-threads-groundtruth", "asynctrace",
                "asynctrace-fixtures", "asynctrace-examples", "TraceFlight",
            ]),
        // `asynctrace record node …`: real node, real kernel (the CLI is exec'd); the preload protocol's writer.
        .testTarget(name: "NodeTests", dependencies: ["asynctrace", "NodeRecording", "TraceReader", "TraceFormat"]),
        // Swift Concurrency on the real runtime: fixture programs compiled by the tests, recorded by the CLI.
        .testTarget(
            name: "ConcurrencyTests", dependencies: ["asynctrace", "TraceReader", "TraceFormat", "asynctrace-embedded-fixture"],
            exclude: ["Fixtures"]),
        // Issue 6's acceptance runs: the real CLI recording the real examples.
        .testTarget(name: "AcceptanceTests", dependencies: ["asynctrace", "asynctrace-examples"]),
        // The known syscall sequence the kernel probe tests record (an executable, so it is exec'd).
        .executableTarget(name: "kernel-groundtruth", path: "Tests/KernelGroundTruth"),
        // Threads that sleep, wait, burn CPU and read for known times; one fd number reused (scheduler/fd tests).
        .executableTarget(name: "kernel-threads-groundtruth", path: "Tests/KernelThreadsGroundTruth"),
        // Shared by RuntimeTests and NetTests (not a product).
        .target(name: "LoopTestSupport", dependencies: ["AsyncTraceRuntime"], path: "Tests/LoopTestSupport"),
    ],
    swiftLanguageModes: [.v6]
)
