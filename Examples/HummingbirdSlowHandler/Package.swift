// swift-tools-version: 6.0
// Issue 16's "done when" scenario: a Hummingbird server with one slow handler (a blocking file read),
// recorded with `asynctrace record`. A package of its own (Hummingbird's first build takes minutes): run it
// with tools/hummingbird-scenario.sh, which builds it, records it under load and checks the report.
import PackageDescription

let package = Package(
    name: "HummingbirdSlowHandler",
    dependencies: [
        .package(name: "AsyncTraceNIO", path: "../../Adapters/AsyncTraceNIO"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
    ],
    targets: [
        .executableTarget(
            name: "hummingbird-slow-handler",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncTraceServer", package: "AsyncTraceNIO"),
            ])
    ],
    swiftLanguageModes: [.v6]
)
