// swift-tools-version: 6.0
// A Vapor 4 server with one slow handler, recorded with `asynctrace record` (tools/vapor-scenario.sh).
// A package of its own, outside tools/test.sh: Vapor's first debug build takes minutes (docs/nio.md has
// the measured time).
import PackageDescription

let package = Package(
    name: "VaporSlowHandler",
    dependencies: [
        .package(name: "AsyncTraceNIO", path: "../../Adapters/AsyncTraceNIO"),
        .package(url: "https://github.com/vapor/vapor", from: "4.122.0"),
    ],
    targets: [
        .executableTarget(
            name: "vapor-slow-handler",
            dependencies: [
                .product(name: "Vapor", package: "vapor"),
                .product(name: "AsyncTraceServer", package: "AsyncTraceNIO"),
            ])
    ],
    swiftLanguageModes: [.v6]
)
