// swift-tools-version: 6.0
// The SwiftNIO bridge (and AsyncTraceServer: it and the tracing bridge in one call), in a package of its own so
// the root package's default build and tests stay free of swift-nio (tools/test.sh builds and tests it in a
// separate step).
import PackageDescription

let package = Package(
    name: "AsyncTraceNIO",
    products: [
        .library(name: "AsyncTraceNIO", targets: ["AsyncTraceNIO"]),
        // The NIO and tracing bridges in one call (`AsyncTraceBridges.channelHandler()`), for Hummingbird/Vapor.
        .library(name: "AsyncTraceServer", targets: ["AsyncTraceServer"]),
    ],
    dependencies: [
        .package(name: "asynctrace", path: "../.."),
        .package(name: "AsyncTraceTracing", path: "../AsyncTraceTracing"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.0"),
    ],
    targets: [
        // Per-thread state (C __thread variables: the open read scope, the loop's poll bookkeeping).
        .target(name: "CAsyncTraceNIO"),
        .target(
            name: "AsyncTraceNIO",
            dependencies: [
                "CAsyncTraceNIO",
                .product(name: "AsyncHooks", package: "asynctrace"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        .target(
            name: "AsyncTraceServer",
            dependencies: [
                "AsyncTraceNIO",
                .product(name: "AsyncTraceTracing", package: "AsyncTraceTracing"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]),
        // NIO servers the tests and the benchmark record: a TCP echo server and an HTTP/1.1 server.
        .target(
            name: "NIODemoServers",
            dependencies: [
                "AsyncTraceNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        // The servers bare or recording themselves; and the benchmark's driver (load generator on loopback,
        // variants side by side).
        .executableTarget(
            name: "asynctrace-nio-demo",
            dependencies: [
                "AsyncTraceNIO", "NIODemoServers",
                .product(name: "AsyncHooks", package: "asynctrace"),
                .product(name: "AsyncTraceRecorder", package: "asynctrace"),
                .product(name: "AsyncTraceConcurrency", package: "asynctrace"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        // The servers with the one asynctrace line and nothing else (no recorder: `asynctrace record` injects one).
        .executableTarget(
            name: "asynctrace-nio-oneline",
            dependencies: [
                "AsyncTraceNIO", "NIODemoServers",
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        // An HTTP server with a span per request and the one line `AsyncTraceBridges.channelHandler()`.
        .executableTarget(
            name: "asynctrace-nio-bridges",
            dependencies: [
                "AsyncTraceServer",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        .testTarget(
            name: "AsyncTraceNIOTests",
            dependencies: [
                "AsyncTraceNIO",
                "AsyncTraceServer",
                "asynctrace-nio-demo",
                "asynctrace-nio-oneline",
                "asynctrace-nio-bridges",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHooks", package: "asynctrace"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
