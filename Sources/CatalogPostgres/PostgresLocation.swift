import Foundation
import ImageCore
import PostgresNIO

/// Where the catalog lives: `postgres://USER:PASSWORD@HOST:PORT/DATABASE?schema=S&sslmode=MODE&sslrootcert=FILE&pool=N&keepalive=SECONDS&plan_cache_mode=MODE&read_lease_ms=MS`.
/// `sslmode` as libpq's: `disable`; `prefer` (default) and `require` encrypt without checking the
/// certificate; `verify-ca` checks it against the trust roots; `verify-full` checks the host name too.
/// The trust roots are the system's plus `sslrootcert` (a PEM bundle; else the caller's `caFile`).
/// `host=/run/postgresql` (a socket directory) may replace the host part, as libpq allows.
public struct PostgresLocation: Sendable {
    public var configuration: PostgresClient.Configuration
    /// Tables live in this schema (created when missing); nil: the user's default search path.
    public var schema: String?
    /// The URL without its password, for logs.
    public var redacted: String
    /// How long a revision check answers for the reads after it (`RevisionLease`); every node of a
    /// cluster must use the same. 5 ms by default: imaged's writes return 5.6 ms after their commit.
    public var readLease: Duration = .milliseconds(5)

    public init(url text: String, caFile: String? = nil) throws {
        guard let url = URLComponents(string: text), url.scheme == "postgres" || url.scheme == "postgresql" else {
            throw ImageError.badRequest("not a PostgreSQL URL (postgres://user:password@host:port/database): \(Self.redact(text))")
        }
        let query = Dictionary((url.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        let user = url.percentEncodedUser.flatMap { $0.removingPercentEncoding } ?? "postgres"
        // Kept off command lines: a URL without a password takes PGPASSWORD, as libpq does.
        let password = url.percentEncodedPassword.flatMap { $0.removingPercentEncoding } ?? ProcessInfo.processInfo.environment["PGPASSWORD"]
        var database = String(url.path.drop { $0 == "/" })
        if database.isEmpty { database = user }
        let port = url.port ?? 5432
        var client = PostgresClient.Configuration.TLS.disable
        var verified = TLSConfiguration.makeClientConfiguration()   // full verification
        if let roots = query["sslrootcert"] ?? caFile, !roots.isEmpty {
            guard FileManager.default.isReadableFile(atPath: roots) else {
                throw ImageError.badRequest("sslrootcert '\(roots)' cannot be read")
            }
            verified.additionalTrustRoots = [.file(roots)]
        }
        var encryptedOnly = verified
        encryptedOnly.certificateVerification = .none
        switch query["sslmode"] ?? "prefer" {
        case "disable": client = .disable
        case "prefer", "allow": client = .prefer(encryptedOnly)
        case "require": client = .require(encryptedOnly)
        case "verify-ca":
            verified.certificateVerification = .noHostnameVerification
            client = .require(verified)
        case "verify-full": client = .require(verified)
        case let other: throw ImageError.badRequest("unknown sslmode '\(other)' in the PostgreSQL URL (disable, prefer, require, verify-ca, verify-full)")
        }
        let tls = client
        if let socketDir = query["host"], socketDir.hasPrefix("/") {
            configuration = .init(unixSocketPath: "\(socketDir)/.s.PGSQL.\(port)", username: user, password: password, database: database)
        } else {
            guard let host = url.host, !host.isEmpty else { throw ImageError.badRequest("the PostgreSQL URL names no host") }
            configuration = .init(host: host, port: port, username: user, password: password, database: database, tls: tls)
        }
        if let schema = query["schema"] {
            // Interpolated into DDL and the search path, so only plain identifiers.
            guard schema.range(of: "^[a-z_][a-z0-9_]{0,62}$", options: .regularExpression) != nil else {
                throw ImageError.badRequest("schema must be a lowercase identifier, got '\(schema)'")
            }
            self.schema = schema
            configuration.options.additionalStartupParameters.append(("search_path", schema))
        }
        // The catalog's statements are prepared once per connection, but PostgreSQL's default (`auto`)
        // kept planning a list page on every execution: with sixteen indexes to weigh, planning was
        // close to half of the database's CPU for a page after a random marker, and a generic plan
        // made those lists 15 % faster (same catalog, alternating rounds). The catalog's statements are
        // indexed lookups and indexed, limited scans, whose best plan seldom depends on the values
        // bound. `plan_cache_mode=auto` gives PostgreSQL's own choice back (PostgreSQL 12 or later).
        let planMode = query["plan_cache_mode"] ?? "force_generic_plan"
        guard ["auto", "force_generic_plan", "force_custom_plan"].contains(planMode) else {
            throw ImageError.badRequest("plan_cache_mode must be auto, force_generic_plan or force_custom_plan")
        }
        configuration.options.additionalStartupParameters.append(("plan_cache_mode", planMode))
        if let pool = query["pool"] {
            guard let n = Int(pool), (1...500).contains(n) else { throw ImageError.badRequest("pool must be 1 to 500") }
            configuration.options.maximumConnections = n
        }
        // postgres-nio's pool starts a keep-alive timer each time a connection goes back idle and
        // cancels it when the connection is leased again: three tasks and a sleep, every query. A GET
        // on PostgreSQL ran 11 % faster without it (A/B, same catalog). So keep-alive queries are off
        // unless asked for: a dropped connection is seen when the server closes it, as libpq-based
        // services see it. Connections are not kept open either (`minimumConnections` stays 0),
        // although kept connections pay no idle-timeout timer (GET 0.65 of SQLite against 0.60 with
        // four kept, bench/README): after a database restart, postgres-nio 1.33.2's pool fails its
        // own precondition (`createNewDemandConnectionIfPossible`, minimum ≤ active) on the next lease
        // while the kept ones reconnect, and the process stops (seen in test_chaos).
        configuration.options.keepAliveBehavior = nil
        if let keepalive = query["keepalive"] {
            guard let seconds = Int(keepalive), (0...3_600).contains(seconds) else {
                throw ImageError.badRequest("keepalive must be 0 (off) to 3600 seconds")
            }
            if seconds > 0 { configuration.options.keepAliveBehavior = .init(frequency: .seconds(seconds)) }
        }
        if let lease = query["read_lease_ms"] {
            guard let ms = Int(lease), (0...1_000).contains(ms) else {
                throw ImageError.badRequest("read_lease_ms must be 0 (check on every read) to 1000")
            }
            readLease = .milliseconds(ms)
        }
        redacted = Self.redact(text)
    }

    static func redact(_ text: String) -> String {
        guard var url = URLComponents(string: text), url.password != nil else { return text }
        url.password = "***"
        return url.string ?? "postgres://…"
    }
}
