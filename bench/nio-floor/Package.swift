// swift-tools-version:6.2
// The floor under imaged's HTTP stack, for bench/clients.sh: SwiftNIO alone, with imaged's listener
// settings and HTTP/1 codec, answering every request on the event loop (no Hummingbird, no Swift
// concurrency, no imaged code). Not part of the product; built by the bench on demand.
import PackageDescription

let package = Package(
    name: "nio-floor",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
    ],
    targets: [
        .executableTarget(name: "nio-floor", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
    ]
)
