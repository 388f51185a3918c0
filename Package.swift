// swift-tools-version:6.2
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "imaged",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "imaged", targets: ["imaged"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        // The domain: images, principals, policy, the Catalog protocol and ImageService.
        .target(name: "ImageCore", dependencies: [
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // The embedded catalog: SQLite through GRDB, WAL, migrations.
        .target(name: "CatalogSQLite", dependencies: [
            "ImageCore",
            .product(name: "GRDB", package: "GRDB.swift"),
            // The raw C API, to decode hot rows without GRDB's generic per-column conversions.
            .product(name: "GRDBSQLite", package: "GRDB.swift"),
        ], swiftSettings: strict),
        // Principals from credentials (static token file for now; Keystone later).
        .target(name: "Identity", dependencies: ["ImageCore"], swiftSettings: strict),
        // The OpenStack Image API v2 front-end.
        .target(name: "OpenStackAPI", dependencies: [
            "ImageCore", "Identity",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ], swiftSettings: strict),
        // Composition root: configuration -> stores -> service -> front-ends.
        .target(name: "Server", dependencies: [
            "ImageCore", "CatalogSQLite", "Identity", "OpenStackAPI",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .executableTarget(name: "imaged", dependencies: [
            "Server",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: strict),
        .testTarget(name: "ImageCoreTests", dependencies: ["ImageCore"], swiftSettings: strict),
        .testTarget(name: "CatalogSQLiteTests", dependencies: [
            "CatalogSQLite", "ImageCore", .product(name: "GRDB", package: "GRDB.swift"),
        ], swiftSettings: strict),
        .testTarget(name: "OpenStackAPITests", dependencies: [
            "Server", "OpenStackAPI", "ImageCore", "CatalogSQLite", "Identity",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ], swiftSettings: strict),
    ]
)
