@testable import CatalogPostgres
import CatalogSQLite
import Foundation
import ImageCore
import Logging

/// The catalogs the conformance suite runs against: SQLite always, PostgreSQL when
/// `IMAGED_TEST_POSTGRES_URL` names a database (scripts/test.sh starts one).
enum Backend: String, CustomStringConvertible, CaseIterable, Sendable {
    case sqlite, postgres

    static var postgresURL: String? {
        ProcessInfo.processInfo.environment["IMAGED_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    static var available: [Backend] { postgresURL == nil ? [.sqlite] : [.sqlite, .postgres] }

    var description: String { rawValue }

    /// A fresh, empty catalog: a new SQLite file, or a new PostgreSQL schema.
    func make() async throws -> TestCatalog {
        switch self {
        case .sqlite:
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imaged-conf-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            return TestCatalog(catalog: try SQLiteCatalog(path: dir + "/catalog.sqlite")) {
                try? FileManager.default.removeItem(atPath: dir)
            }
        case .postgres:
            let schema = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
            let location = try PostgresLocation(url: try Self.url(schema: schema))
            var logger = Logger(label: "test.postgres")
            logger.logLevel = .warning
            let catalog = try await PostgresCatalog.open(location, logger: logger)
            return TestCatalog(catalog: catalog) {
                _ = try? await catalog.rows("DROP SCHEMA \(schema) CASCADE")
                catalog.close()
            }
        }
    }

    static func url(schema: String) throws -> String {
        guard let base = postgresURL else { throw ImageError(.internal, "IMAGED_TEST_POSTGRES_URL is not set") }
        return base + (base.contains("?") ? "&" : "?") + "schema=\(schema)"
    }
}

/// A catalog and how to throw it away.
struct TestCatalog: Sendable {
    let catalog: any Catalog
    let cleanup: @Sendable () async -> Void

    /// Runs `body` on a fresh catalog of `backend`, then removes it.
    static func with(_ backend: Backend, _ body: (any Catalog) async throws -> Void) async throws {
        let t = try await backend.make()
        do {
            try await body(t.catalog)
        } catch {
            await t.cleanup()
            throw error
        }
        await t.cleanup()
    }
}

func makeImage(_ i: Int, owner: String = "p1", name: String? = nil, created: Int64 = 1_000) -> Image {
    Image(id: ImageID.generate(), name: name, status: .queued, visibility: .private, owner: owner,
          size: i % 3 == 0 ? nil : Int64(i % 7), createdAt: created, updatedAt: created,
          tags: ["t\(i % 2)"], properties: ["k": "v\(i % 3)", "quote\"d": "\u{2603}"])
}
