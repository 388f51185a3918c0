import CatalogPostgres
import CatalogSQLite
import Foundation
import ImageCore
import Logging

/// Which catalog a process opens: `sqlite` (`<data-dir>/catalog.sqlite`), `sqlite:PATH`, or a
/// PostgreSQL URL (`postgres://user@host:5432/db?schema=imaged`, password from the URL or PGPASSWORD).
public enum CatalogLocation: Sendable, Equatable {
    case sqlite(String?)
    case postgres(String)

    public init(parsing text: String) throws {
        if text == "sqlite" {
            self = .sqlite(nil)
        } else if text.hasPrefix("sqlite:"), text.count > 7 {
            self = .sqlite(String(text.dropFirst(7)))
        } else if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            _ = try PostgresLocation(url: text)
            self = .postgres(text)
        } else {
            throw ConfigError("--catalog must be sqlite, sqlite:PATH or postgres://USER@HOST:PORT/DATABASE")
        }
    }

    /// Several nodes may share this catalog (so nothing may assume this process is the only writer).
    public var isShared: Bool { if case .postgres = self { true } else { false } }

    /// For `imaged serve` on PostgreSQL: the catalog whose connection pool the server runs as a
    /// service of its ServiceGroup (nil for SQLite, which has nothing to run). Nothing connects yet.
    /// `caFile` (`--ca-file`) is trusted for `sslmode=verify-ca|verify-full` unless the URL names `sslrootcert`.
    /// `cacheBytes`: the memory its cache of decoded rows may take (nil: the default, 256 MiB).
    public func pooled(logger: Logger, caFile: String? = nil, cacheBytes: Int? = nil) throws -> PostgresCatalog? {
        guard case .postgres(let url) = self else { return nil }
        return PostgresCatalog(location: try PostgresLocation(url: url, caFile: caFile), logger: logger, cacheBytes: cacheBytes)
    }

    func openSQLite(dataDir: String, durability: SQLiteCatalog.Durability, cacheBytes: Int? = nil) throws -> SQLiteCatalog {
        guard case .sqlite(let path) = self else { throw ConfigError("not a SQLite catalog") }
        if path == nil {
            try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        }
        return try SQLiteCatalog(path: path ?? dataDir + "/catalog.sqlite", durability: durability, cacheBytes: cacheBytes)
    }

    /// Opens (and migrates) the catalog, for tools and tests: a PostgreSQL pool runs until the
    /// catalog is closed. `dataDir` holds the default SQLite file; `cacheBytes` bounds the SQLite
    /// catalog's cache of images (nil: the default, 256 MiB).
    public func open(dataDir: String, durability: SQLiteCatalog.Durability = .full, cacheBytes: Int? = nil,
                     logger: Logger = Logger(label: "imaged.catalog")) async throws -> any Catalog {
        switch self {
        case .sqlite:
            return try openSQLite(dataDir: dataDir, durability: durability, cacheBytes: cacheBytes)
        case .postgres(let url):
            return try await PostgresCatalog.open(try PostgresLocation(url: url), logger: logger)
        }
    }

    public var description: String {
        switch self {
        case .sqlite(let path): "SQLite catalog" + (path.map { " \($0)" } ?? "")
        case .postgres(let url): "PostgreSQL catalog \((try? PostgresLocation(url: url))?.redacted ?? "?")"
        }
    }
}
