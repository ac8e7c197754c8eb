// swift-tools-version: 6.0
// The swift-distributed-tracing bridge, in a package of its own so the root package's default build and
// tests stay free of its dependency (tools/test.sh builds and tests it in a separate step).
import PackageDescription

let package = Package(
    name: "AsyncTraceTracing",
    products: [
        .library(name: "AsyncTraceTracing", targets: ["AsyncTraceTracing"])
    ],
    dependencies: [
        .package(name: "asynctrace", path: "../.."),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.0"),
    ],
    targets: [
        .target(
            name: "AsyncTraceTracing",
            dependencies: [
                .product(name: "AsyncHooks", package: "asynctrace"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]),
        .testTarget(
            name: "AsyncTraceTracingTests",
            dependencies: [
                "AsyncTraceTracing",
                .product(name: "AsyncHooks", package: "asynctrace"),
                .product(name: "AsyncTraceRecorder", package: "asynctrace"),
                .product(name: "AsyncTraceConcurrency", package: "asynctrace"),
                .product(name: "TraceReader", package: "asynctrace"),
                .product(name: "TraceAnalyses", package: "asynctrace"),
                .product(name: "TraceReports", package: "asynctrace"),
                .product(name: "TraceExports", package: "asynctrace"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
