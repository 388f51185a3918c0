import CatalogSQL
import ImageCore
import PostgresNIO

/// Local accounts and API keys; never cached, so `imaged account …` on any node takes effect at once.
extension PostgresCatalog {
    static func account(_ row: PostgresRow) throws -> LocalAccount {
        let (name, userId, projectId, roles, hash, created, updated) = try row.decode((String, String, String, String, String?, Int64, Int64).self)
        return LocalAccount(name: name, userId: userId, projectId: projectId, roles: try DocumentColumns.decodeTags(roles),
                            passwordHash: hash, createdAt: created, updatedAt: updated)
    }

    public func insertAccount(_ a: LocalAccount) async throws {
        do {
            _ = try await rows("INSERT INTO accounts (\(CatalogColumns.accounts)) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                               [.text(a.name), .text(a.userId), .text(a.projectId), .text(DocumentColumns.encodeTags(a.roles)),
                                SQLValue(a.passwordHash), .int(a.createdAt), .int(a.updatedAt)])
        } catch is UniqueViolation {
            throw ImageError.conflict("Account \(a.name) already exists.")
        }
    }

    public func account(name: String) async throws -> LocalAccount? {
        try await rows("SELECT \(CatalogColumns.accounts) FROM accounts WHERE name = $1", [.text(name)]).first.map(Self.account)
    }

    public func accounts() async throws -> [LocalAccount] {
        try await rows("SELECT \(CatalogColumns.accounts) FROM accounts ORDER BY name").map(Self.account)
    }

    public func updateAccount(_ a: LocalAccount) async throws {
        let updated = try await rows("""
            UPDATE accounts SET project_id = $1, roles = $2, password_hash = $3, updated_at = $4 WHERE name = $5 RETURNING 1
            """, [.text(a.projectId), .text(DocumentColumns.encodeTags(a.roles)), SQLValue(a.passwordHash), .int(a.updatedAt), .text(a.name)])
        if updated.isEmpty { throw ImageError.notFound("Account \(a.name) not found.") }
    }

    /// Its API keys go with it (ON DELETE CASCADE).
    public func deleteAccount(name: String) async throws -> Bool {
        try await !rows("DELETE FROM accounts WHERE name = $1 RETURNING 1", [.text(name)]).isEmpty
    }

    public func insertAPIKey(_ k: APIKeyRecord) async throws {
        _ = try await rows("INSERT INTO api_keys (\(CatalogColumns.apiKeys)) VALUES ($1, $2, $3, $4)",
                           [.text(k.keyId), .text(k.accountName), .text(k.secretHash), .int(k.createdAt)])
    }

    static func apiKey(_ row: PostgresRow) throws -> APIKeyRecord {
        let (id, account, hash, created) = try row.decode((String, String, String, Int64).self)
        return APIKeyRecord(keyId: id, accountName: account, secretHash: hash, createdAt: created)
    }

    public func apiKey(id: String) async throws -> APIKeyRecord? {
        try await rows("SELECT \(CatalogColumns.apiKeys) FROM api_keys WHERE key_id = $1", [.text(id)]).first.map(Self.apiKey)
    }

    public func apiKeys(accountName: String) async throws -> [APIKeyRecord] {
        try await rows("SELECT \(CatalogColumns.apiKeys) FROM api_keys WHERE account_name = $1 ORDER BY created_at, key_id",
                       [.text(accountName)]).map(Self.apiKey)
    }

    public func deleteAPIKey(id: String) async throws -> Bool {
        try await !rows("DELETE FROM api_keys WHERE key_id = $1 RETURNING 1", [.text(id)]).isEmpty
    }

    // MARK: Login sessions

    public func insertSession(_ s: LoginSession) async throws {
        _ = try await rows("INSERT INTO login_sessions (\(CatalogColumns.sessions)) VALUES ($1, $2, $3, $4, $5)",
                           [.text(s.idHash), .text(s.accountName), .text(s.csrfToken), .int(s.createdAt), .int(s.expiresAt)])
    }

    public func session(idHash: String) async throws -> LoginSession? {
        try await rows("SELECT \(CatalogColumns.sessions) FROM login_sessions WHERE id_hash = $1", [.text(idHash)]).first.map { row in
            let (h, a, c, created, expires) = try row.decode((String, String, String, Int64, Int64).self)
            return LoginSession(idHash: h, accountName: a, csrfToken: c, createdAt: created, expiresAt: expires)
        }
    }

    public func deleteSession(idHash: String) async throws -> Bool {
        try await !rows("DELETE FROM login_sessions WHERE id_hash = $1 RETURNING 1", [.text(idHash)]).isEmpty
    }

    public func deleteSessions(expiredBefore time: Int64) async throws -> Int {
        try await rows("DELETE FROM login_sessions WHERE expires_at < $1 RETURNING 1", [.int(time)]).count
    }

    // MARK: Login throttle

    static func loginFailures(_ row: PostgresRow) throws -> LoginFailures {
        let (key, failures, last) = try row.decode((String, Int64, Int64).self)
        return LoginFailures(key: key, failures: failures, lastFailure: last)
    }

    public func loginFailures(keys: [String]) async throws -> [LoginFailures] {
        guard !keys.isEmpty else { return [] }
        let params = keys.indices.map { "$\($0 + 1)" }.joined(separator: ", ")
        return try await rows("SELECT key, failures, last_failure FROM login_throttle WHERE key IN (\(params)) ORDER BY key",
                              keys.map { .text($0) }).map(Self.loginFailures)
    }

    /// One upsert per key: the row lock of `ON CONFLICT DO UPDATE` makes concurrent increments from
    /// several nodes add up.
    public func recordLoginFailure(keys: [String], at time: Int64, forgetBefore: Int64) async throws -> [LoginFailures] {
        var out: [LoginFailures] = []
        for key in keys {
            let row = try await rows("""
                INSERT INTO login_throttle (key, failures, last_failure) VALUES ($1, 1, $2)
                ON CONFLICT (key) DO UPDATE SET
                    failures = CASE WHEN login_throttle.last_failure < $3 THEN 1 ELSE login_throttle.failures + 1 END,
                    last_failure = GREATEST(login_throttle.last_failure, EXCLUDED.last_failure)
                RETURNING key, failures, last_failure
                """, [.text(key), .int(time), .int(forgetBefore)])
            if let first = row.first { out.append(try Self.loginFailures(first)) }
        }
        return out
    }

    public func clearLoginFailures(key: String) async throws {
        _ = try await rows("DELETE FROM login_throttle WHERE key = $1", [.text(key)])
    }

    public func deleteLoginFailures(before time: Int64) async throws -> Int {
        try await rows("DELETE FROM login_throttle WHERE last_failure < $1 RETURNING 1", [.int(time)]).count
    }
}
