import ArgumentParser
import Foundation
import ImageCore
import ImageData
import Logging
import Server

/// `imaged migrate`: one installation's catalog and blobs into another backend pair.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Copy every image, blob (digest-verified), member, task, account, API key and quota to another catalog and blob store.",
        discussion: """
            Stop the servers writing to the source first (an embedded source data directory is locked while this runs).
            Interrupted? Run the same command again: what is already copied is skipped.
            Example: imaged migrate --data-dir /var/lib/imaged --to-catalog postgres://imaged@db/imaged --to-blob-store s3:images --s3-endpoint https://rgw:7480
            """)

    @Option(help: "Data directory of the source (its default SQLite catalog and file blobs).") var dataDir = "./imaged-data"
    @Option(help: "Source catalog: sqlite, sqlite:PATH or postgres://…") var fromCatalog = "sqlite"
    @Option(help: "Source blob store: file, file:DIR or s3:BUCKET.") var fromBlobStore = "file"
    @Option(help: "Data directory of the target (for its sqlite and file defaults).") var toDataDir: String?
    @Option(help: "Target catalog: sqlite, sqlite:PATH or postgres://…") var toCatalog: String
    @Option(help: "Target blob store: file, file:DIR or s3:BUCKET.") var toBlobStore: String
    @Option(help: "S3 endpoint (both sides; default AWS_ENDPOINT_URL).") var s3Endpoint: String?
    @Option(help: "S3 signing region (default AWS_REGION or us-east-1).") var s3Region: String?
    @Option(help: "Object name prefix in the source bucket.") var fromS3KeyPrefix = ""
    @Option(help: "Object name prefix in the target bucket.") var toS3KeyPrefix = ""
    @Flag(help: "Virtual-host S3 addressing.") var s3VirtualHost = false
    @Option(help: "Multipart part size in MiB.") var s3PartMib = 16

    func run() async throws {
        var logger = Logger(label: "imaged.migrate")
        logger.logLevel = .notice
        let sourceDir = URL(fileURLWithPath: dataDir).standardizedFileURL.path
        let targetDir = URL(fileURLWithPath: toDataDir ?? dataDir).standardizedFileURL.path
        let fromCatalogLocation = try parse(fromCatalog)
        let toCatalogLocation = try parse(toCatalog)
        let fromBlobs = try blobChoice(fromBlobStore, endpoint: s3Endpoint, region: s3Region, keyPrefix: fromS3KeyPrefix,
                                       virtualHost: s3VirtualHost, partMib: s3PartMib)
        let toBlobs = try blobChoice(toBlobStore, endpoint: s3Endpoint, region: s3Region, keyPrefix: toS3KeyPrefix,
                                     virtualHost: s3VirtualHost, partMib: s3PartMib)
        if fromCatalogLocation == toCatalogLocation, sourceDir == targetDir || fromCatalogLocation.isShared {
            throw ValidationError("source and target catalogs are the same")
        }
        // No server may write to a local source meanwhile (nor to a local target).
        func usesDataDir(_ c: CatalogLocation, _ b: ServerConfig.Blobs) -> Bool {
            if case .sqlite(nil) = c { return true }
            if case .file(nil, _, _) = b { return true }
            return false
        }
        var localDirs: [String] = []
        if usesDataDir(fromCatalogLocation, fromBlobs) { localDirs.append(sourceDir) }
        if usesDataDir(toCatalogLocation, toBlobs), !localDirs.contains(targetDir) { localDirs.append(targetDir) }
        let locks = try localDirs.map { dir in
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            return try DataDirectoryLock(directory: dir)
        }
        let source = Migration.Side(
            catalog: try await fromCatalogLocation.open(dataDir: sourceDir, logger: logger),
            blobs: try makeBlobStore(fromBlobs, dataDir: sourceDir, logger: logger).0)
        let target = Migration.Side(
            catalog: try await toCatalogLocation.open(dataDir: targetDir, logger: logger),
            blobs: try makeBlobStore(toBlobs, dataDir: targetDir, logger: logger).0)
        say("migrate: \(fromCatalogLocation.description) + \(fromBlobStore) -> \(toCatalogLocation.description) + \(toBlobStore)")
        let report = try await Migration(from: source, to: target, logger: logger) { r in
            say("migrate: \(r.images) images so far (\(r.imagesSkipped) already there), \(r.bytesCopied) bytes copied")
        }.run()
        say("migrate: done: \(report)")
        withExtendedLifetime(locks) {}
    }

    /// Unbuffered, so progress shows while it runs (print is block-buffered into a pipe).
    func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

    func parse(_ text: String) throws -> CatalogLocation {
        do { return try CatalogLocation(parsing: text) } catch { throw ValidationError("\(error)") }
    }
}
