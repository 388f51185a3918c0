import CatalogSQL
import GRDB
import ImageCore

/// Local accounts and API keys. These rows are never cached in memory, so `imaged account …`
/// may change them while a server runs on the same data directory (SQLite serializes writers).
extension SQLiteCatalog {
    static let accountColumns = CatalogColumns.accounts

    static func account(_ row: Row) throws -> LocalAccount {
        LocalAccount(name: row[0], userId: row[1], projectId: row[2], roles: try DocumentColumns.decodeTags(row[3]),
                     passwordHash: row[4], createdAt: row[5], updatedAt: row[6])
    }

    public func insertAccount(_ a: LocalAccount) async throws {
        try await pool.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM accounts WHERE name = ? OR user_id = ?", arguments: [a.name, a.userId]) == true {
                throw ImageError.conflict("Account \(a.name) already exists.")
            }
            try db.execute(sql: "INSERT INTO accounts (\(Self.accountColumns)) VALUES (?,?,?,?,?,?,?)",
                           arguments: [a.name, a.userId, a.projectId, DocumentColumns.encodeTags(a.roles), a.passwordHash,
                                       a.createdAt, a.updatedAt])
        }
    }

    public func account(name: String) async throws -> LocalAccount? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.accountColumns) FROM accounts WHERE name = ?", arguments: [name]).map(Self.account)
        }
    }

    public func accounts() async throws -> [LocalAccount] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.accountColumns) FROM accounts ORDER BY name").map(Self.account)
        }
    }

    public func updateAccount(_ a: LocalAccount) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE accounts SET project_id = ?, roles = ?, password_hash = ?, updated_at = ? WHERE name = ?",
                           arguments: [a.projectId, DocumentColumns.encodeTags(a.roles), a.passwordHash, a.updatedAt, a.name])
            if db.changesCount != 1 { throw ImageError.notFound("Account \(a.name) not found.") }
        }
    }

    public func deleteAccount(name: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM api_keys WHERE account_name = ?", arguments: [name])
            try db.execute(sql: "DELETE FROM accounts WHERE name = ?", arguments: [name])
            return db.changesCount == 1
        }
    }

    public func insertAPIKey(_ k: APIKeyRecord) async throws {
        try await pool.write { db in
            try db.execute(sql: "INSERT INTO api_keys (\(Self.apiKeyColumns)) VALUES (?,?,?,?)",
                           arguments: [k.keyId, k.accountName, k.secretHash, k.createdAt])
        }
    }

    static let apiKeyColumns = CatalogColumns.apiKeys

    static func apiKey(_ row: Row) -> APIKeyRecord {
        APIKeyRecord(keyId: row[0], accountName: row[1], secretHash: row[2], createdAt: row[3])
    }

    public func apiKey(id: String) async throws -> APIKeyRecord? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.apiKeyColumns) FROM api_keys WHERE key_id = ?",
                             arguments: [id]).map(Self.apiKey)
        }
    }

    public func apiKeys(accountName: String) async throws -> [APIKeyRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.apiKeyColumns) FROM api_keys WHERE account_name = ? ORDER BY created_at, key_id",
                             arguments: [accountName]).map(Self.apiKey)
        }
    }

    public func deleteAPIKey(id: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM api_keys WHERE key_id = ?", arguments: [id])
            return db.changesCount == 1
        }
    }

    // MARK: Login sessions

    public func insertSession(_ s: LoginSession) async throws {
        try await pool.write { db in
            try db.execute(sql: "INSERT INTO login_sessions (\(CatalogColumns.sessions)) VALUES (?,?,?,?,?)",
                           arguments: [s.idHash, s.accountName, s.csrfToken, s.createdAt, s.expiresAt])
        }
    }

    public func session(idHash: String) async throws -> LoginSession? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(CatalogColumns.sessions) FROM login_sessions WHERE id_hash = ?", arguments: [idHash])
                .map { LoginSession(idHash: $0[0], accountName: $0[1], csrfToken: $0[2], createdAt: $0[3], expiresAt: $0[4]) }
        }
    }

    public func deleteSession(idHash: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM login_sessions WHERE id_hash = ?", arguments: [idHash])
            return db.changesCount == 1
        }
    }

    public func deleteSessions(expiredBefore time: Int64) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM login_sessions WHERE expires_at < ?", arguments: [time])
            return db.changesCount
        }
    }

    // MARK: Login throttle

    static func loginFailures(_ row: Row) -> LoginFailures { LoginFailures(key: row[0], failures: row[1], lastFailure: row[2]) }

    public func loginFailures(keys: [String]) async throws -> [LoginFailures] {
        guard !keys.isEmpty else { return [] }
        return try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT key, failures, last_failure FROM login_throttle WHERE key IN (\(Self.placeholders(keys.count))) ORDER BY key",
                             arguments: StatementArguments(keys)).map(Self.loginFailures)
        }
    }

    /// SQLite serializes writers, so reading and writing in one write transaction is atomic.
    public func recordLoginFailure(keys: [String], at time: Int64, forgetBefore: Int64) async throws -> [LoginFailures] {
        try await pool.write { db in
            try keys.map { key in
                try db.execute(sql: """
                    INSERT INTO login_throttle (key, failures, last_failure) VALUES (?, 1, ?)
                    ON CONFLICT(key) DO UPDATE SET
                        failures = CASE WHEN last_failure < ? THEN 1 ELSE failures + 1 END,
                        last_failure = MAX(last_failure, excluded.last_failure)
                    """, arguments: [key, time, forgetBefore])
                let row = try Row.fetchOne(db, sql: "SELECT key, failures, last_failure FROM login_throttle WHERE key = ?", arguments: [key])
                return Self.loginFailures(row!)
            }
        }
    }

    public func clearLoginFailures(key: String) async throws {
        try await pool.write { db in try db.execute(sql: "DELETE FROM login_throttle WHERE key = ?", arguments: [key]) }
    }

    public func deleteLoginFailures(before time: Int64) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM login_throttle WHERE last_failure < ?", arguments: [time])
            return db.changesCount
        }
    }
}
