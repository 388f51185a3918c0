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
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        // TLS for the listener (already in the graph through async-http-client and hummingbird).
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
    ],
    targets: [
        // The domain: images, principals, policy, the Catalog protocol and ImageService.
        // ByteBuffer is the data path's currency from socket to disk, so the core speaks it too.
        .target(name: "ImageCore", dependencies: [
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: strict),
        // MD5/SHA-2 through the system OpenSSL (Debian libssl-dev): AVX2 SHA-512 on every x86 CPU.
        .target(name: "CDigests", linkerSettings: [.linkedLibrary("crypto")]),
        // Streaming gzip/xz/zstd/bzip2 decoders (Debian's zlib1g-dev, liblzma-dev, libzstd-dev, libbz2-dev).
        .target(name: "CCompression", linkerSettings: [
            .linkedLibrary("z"), .linkedLibrary("lzma"), .linkedLibrary("zstd"), .linkedLibrary("bz2"),
        ]),
        // Child processes (qemu-img) by posix_spawn, waited for with a timeout that cannot kill a reused pid.
        .target(name: "CChildProcess"),
        // The streaming data path: digests on the fly, size caps, disk-format inspection, import tasks.
        .target(name: "ImageData", dependencies: [
            "ImageCore", "CDigests", "CCompression", "CChildProcess",
            // Counters and gauges of the data path and the task runner (swift-metrics' API only).
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // Linux file calls glibc hides behind _GNU_SOURCE (sync_file_range).
        .target(name: "CFileShims"),
        // Image bytes as files under the data directory: temp name, fsync, rename.
        .target(name: "BlobStoreFile", dependencies: [
            "ImageCore", "CFileShims",
            // Blocking file syscalls run on NIO's thread pool, never on the cooperative pool.
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: strict),
        // Outbound HTTP for imports: the URL guard and a fetcher that re-checks every redirect.
        // Image bytes in an S3 bucket (SigV4 with swift-crypto, multipart uploads over AsyncHTTPClient).
        .target(name: "BlobStoreS3", dependencies: [
            "ImageCore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .target(name: "Outbound", dependencies: [
            "ImageCore", "ImageData",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            // Extra trust roots (--ca-file) for HTTPS imports.
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: strict),
        // What both SQL catalogs share: column lists, the list-query builder, the usage query.
        .target(name: "CatalogSQL", dependencies: ["ImageCore"], swiftSettings: strict),
        // The embedded catalog: SQLite through GRDB, WAL, migrations.
        .target(name: "CatalogSQLite", dependencies: [
            "ImageCore", "CatalogSQL",
            .product(name: "GRDB", package: "GRDB.swift"),
            // The raw C API, to decode hot rows without GRDB's generic per-column conversions.
            .product(name: "GRDBSQLite", package: "GRDB.swift"),
        ], swiftSettings: strict),
        // The scale-out catalog: PostgreSQL through postgres-nio's pooled client; several nodes share it.
        .target(name: "CatalogPostgres", dependencies: [
            "ImageCore", "CatalogSQL",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),
        // Principals from credentials: static tokens, Keystone v3 validation, local accounts and API keys.
        // CDigests gives PBKDF2 and SHA-256 from OpenSSL; AsyncHTTPClient talks to Keystone.
        .target(name: "Identity", dependencies: [
            "ImageCore", "CDigests",
            // HMAC-SHA256 (Scalr's signatures) and AES-GCM (secrets that must be used again).
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // The OpenStack Image API v2 front-end.
        // What every front-end shares: bounded bodies, base URLs, query strings, request ids, page
        // arithmetic, vendor imports with their rollback.
        .target(name: "FrontEndSupport", dependencies: [
            "ImageCore", "ImageData",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ], swiftSettings: strict),
        .target(name: "OpenStackAPI", dependencies: [
            "ImageCore", "ImageData", "Identity", "FrontEndSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ], swiftSettings: strict),
        // The Avi controller's image API: /login sessions with CSRF, the `image` object.
        .target(name: "AviAPI", dependencies: [
            "ImageCore", "ImageData", "Identity", "FrontEndSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
            // `URI`, which Hummingbird does not re-export: the request decoders take query parameters.
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ], swiftSettings: strict),
        // ZStack's REST API (/zstack/v1): account sessions, api-jobs on task rows, backup storages, image APIs.
        .target(name: "ZStackAPI", dependencies: [
            "ImageCore", "ImageData", "Identity", "FrontEndSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
        // Danube Cloud's image API (/api/image/…, tasks, imagestores, snapshot → image) and a read-only IMGAPI.
        .target(name: "DanubeAPI", dependencies: [
            "ImageCore", "ImageData", "Identity", "FrontEndSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
            // `URI`, which Hummingbird does not re-export: the request decoders take query parameters.
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            // MD5 of cb_url's security_token.
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
        // Scalr's API v1beta0 for images: signed requests, scopes, its envelope, the specs scalr-ctl loads.
        .target(name: "ScalrAPI", dependencies: [
            "ImageCore", "ImageData", "Identity", "FrontEndSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ], swiftSettings: strict),
        // Notifications: the core's events to RabbitMQ (AMQP 0-9-1 on SwiftNIO, oslo.messaging's envelope) and webhooks (CloudEvents).
        .target(name: "Notifications", dependencies: [
            "ImageCore", "ImageData",
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // Composition root: configuration -> stores -> service -> front-ends.
        // The web console (/console/): server-rendered pages over ImageService; its stylesheet and script
        // are compiled into the binary (no npm, no CDN).
        .target(name: "Console", dependencies: [
            "ImageCore", "ImageData", "Identity", "FrontEndSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], resources: [.embedInCode("Assets/console.css"), .embedInCode("Assets/console.js")], swiftSettings: strict),
        .target(name: "Server", dependencies: [
            "ImageCore", "ImageData", "CatalogSQLite", "CatalogPostgres", "BlobStoreFile", "BlobStoreS3", "Outbound", "Notifications",
            "Identity", "OpenStackAPI", "AviAPI", "ZStackAPI", "DanubeAPI", "ScalrAPI", "FrontEndSupport", "Console",
            .product(name: "Hummingbird", package: "hummingbird"),
            // /metrics: swift-metrics backed by Prometheus' text format.
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            // The listener's own child channel: TLS with a reloadable certificate, connection limits and deadlines.
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            // Keystone's and S3's client with the extra trust roots of --ca-file.
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ], resources: [
            // Each front-end's OpenAPI 3.1 document, compiled into the binary (served at /openapi/<name>.json).
            .embedInCode("OpenAPI/openstack.json"), .embedInCode("OpenAPI/avi.json"), .embedInCode("OpenAPI/zstack.json"),
            .embedInCode("OpenAPI/danube.json"), .embedInCode("OpenAPI/scalr.json"),
        ], swiftSettings: strict),
        .executableTarget(name: "imaged", dependencies: [
            "Server", "ImageData", "ImageCore", "Identity", "CatalogSQLite", "CatalogPostgres", "BlobStoreS3", "BlobStoreFile", "Outbound", "Notifications",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            // The configuration file (YAML); a maintained parser beats writing one.
            .product(name: "Yams", package: "Yams"),
        ], swiftSettings: strict),
        // Fuzz targets (scripts/fuzz.sh). Built with `-sanitize=fuzzer -DFUZZING` each is a libFuzzer
        // binary (its main runs libFuzzer's driver); a plain build makes each a replayer of the corpus
        // files named on its command line, so the normal build keeps them compiling.
        .target(name: "CFuzzer", path: "Fuzz/CFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzer", "ImageCore"], path: "Fuzz/FuzzSupport", swiftSettings: strict),
        .executableTarget(name: "FuzzJSON", dependencies: ["FuzzSupport", "ImageCore"],
                          path: "Fuzz/FuzzJSON", swiftSettings: strict),
        .executableTarget(name: "FuzzInspector", dependencies: ["FuzzSupport", "ImageData"],
                          path: "Fuzz/FuzzInspector", swiftSettings: strict),
        .executableTarget(name: "FuzzDecoder", dependencies: ["FuzzSupport", "ImageData", "ImageCore",
                                                           .product(name: "NIOCore", package: "swift-nio")],
                          path: "Fuzz/FuzzDecoder", swiftSettings: strict),
        .executableTarget(name: "FuzzOpenStack", dependencies: ["FuzzSupport", "OpenStackAPI", "ImageCore", "CatalogSQL"],
                          path: "Fuzz/FuzzOpenStack", swiftSettings: strict),
        .executableTarget(name: "FuzzAvi", dependencies: [
            "FuzzSupport", "AviAPI", "ImageCore", "FrontEndSupport", .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
        ], path: "Fuzz/FuzzAvi", swiftSettings: strict),
        .executableTarget(name: "FuzzZStack", dependencies: [
            "FuzzSupport", "ZStackAPI", "Identity", "ImageCore", .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], path: "Fuzz/FuzzZStack", swiftSettings: strict),
        .executableTarget(name: "FuzzDanube", dependencies: [
            "FuzzSupport", "DanubeAPI", "ImageCore", .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
        ], path: "Fuzz/FuzzDanube", swiftSettings: strict),
        .executableTarget(name: "FuzzScalr", dependencies: [
            "FuzzSupport", "ScalrAPI", "Identity", "ImageCore", .product(name: "Hummingbird", package: "hummingbird"),
        ], path: "Fuzz/FuzzScalr", swiftSettings: strict),
        // The listener's connection gate and deadlines on the real HTTP/1 codec, on an EmbeddedChannel's virtual clock; the listening socket's accept batches on a real loopback socket.
        .testTarget(name: "ServerTests", dependencies: [
            "Server",
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
        ], swiftSettings: strict),
        .testTarget(name: "ImageCoreTests", dependencies: ["ImageCore"], swiftSettings: strict),
        .testTarget(name: "NotificationsTests", dependencies: [
            "Notifications", "ImageCore", .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: strict),
        .testTarget(name: "ImageDataTests", dependencies: [
            "ImageData", "ImageCore", "BlobStoreFile", "CatalogSQLite",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: strict),
        // One conformance suite, run against every BlobStore driver.
        .testTarget(name: "BlobStoreTests", dependencies: [
            "BlobStoreFile", "BlobStoreS3", "CFileShims", "ImageCore", .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
        .testTarget(name: "IdentityTests", dependencies: [
            "Identity", "ImageCore", "CatalogSQLite",
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ], swiftSettings: strict),
        .testTarget(name: "OutboundTests", dependencies: [
            "Outbound", "ImageCore", "ImageData",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ], swiftSettings: strict),
        .testTarget(name: "CatalogSQLiteTests", dependencies: [
            "CatalogSQLite", "CatalogSQL", "ImageCore", .product(name: "GRDB", package: "GRDB.swift"),
        ], swiftSettings: strict),
        // One catalog suite, run against SQLite and (with IMAGED_TEST_POSTGRES_URL) PostgreSQL.
        .testTarget(name: "CatalogConformanceTests", dependencies: [
            "CatalogSQLite", "CatalogPostgres", "CatalogSQL", "ImageCore", .product(name: "Logging", package: "swift-log"),
            .product(name: "GRDB", package: "GRDB.swift"),
        ], swiftSettings: strict),
        .testTarget(name: "ConsoleTests", dependencies: [
            "Console", "ImageCore", "FrontEndSupport", "Identity", .product(name: "Hummingbird", package: "hummingbird"),
        ], swiftSettings: strict),
        .testTarget(name: "OpenStackAPITests", dependencies: [
            "Server", "OpenStackAPI", "AviAPI", "ZStackAPI", "DanubeAPI", "ScalrAPI", "ImageCore", "ImageData", "CatalogSQLite", "Identity",
            "FrontEndSupport",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            // Digests in tests come from BoringSSL, independent of the server's OpenSSL ones.
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
    ]
)
