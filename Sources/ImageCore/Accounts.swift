/// A local account (for the vendor front-ends' logins and API keys). Only hashes are stored:
/// `passwordHash` is a PBKDF2 record, API key secrets are SHA-256 digests (see Identity).
public struct LocalAccount: Sendable, Equatable {
    public var name: String
    public var userId: String
    public var projectId: String
    public var roles: [String]
    public var passwordHash: String?
    public var createdAt: Int64
    public var updatedAt: Int64

    public init(name: String, userId: String, projectId: String, roles: [String], passwordHash: String?,
                createdAt: Int64, updatedAt: Int64) {
        self.name = name; self.userId = userId; self.projectId = projectId; self.roles = roles
        self.passwordHash = passwordHash; self.createdAt = createdAt; self.updatedAt = updatedAt
    }

    public var principal: Principal {
        Principal(userId: userId, projectId: projectId, roles: roles, userName: name, projectName: projectId)
    }
}

public struct APIKeyRecord: Sendable, Equatable {
    public var keyId: String
    public var accountName: String
    public var secretHash: String
    public var createdAt: Int64

    public init(keyId: String, accountName: String, secretHash: String, createdAt: Int64) {
        self.keyId = keyId; self.accountName = accountName; self.secretHash = secretHash; self.createdAt = createdAt
    }
}

/// A vendor API login session (Avi `/login`). Only a hash of the session id is stored, so a copy of
/// the catalog does not hold usable sessions; the CSRF token stays the same for the session's life.
public struct LoginSession: Sendable, Equatable {
    public var idHash: String
    public var accountName: String
    public var csrfToken: String
    public var createdAt: Int64
    public var expiresAt: Int64

    public init(idHash: String, accountName: String, csrfToken: String, createdAt: Int64, expiresAt: Int64) {
        self.idHash = idHash; self.accountName = accountName; self.csrfToken = csrfToken
        self.createdAt = createdAt; self.expiresAt = expiresAt
    }
}

/// Failed logins counted under one throttle key (an account name at a client address, or an
/// address), for the login back-off. Times are milliseconds since 1970, so a 1 s lock is exact.
public struct LoginFailures: Sendable, Equatable {
    public var key: String
    public var failures: Int64
    public var lastFailure: Int64

    public init(key: String, failures: Int64, lastFailure: Int64) {
        self.key = key; self.failures = failures; self.lastFailure = lastFailure
    }
}

/// Storage of local accounts and API keys (both catalogs implement it).
public protocol AccountCatalog: Sendable {
    /// Throws `ImageError.conflict` when the name exists.
    func insertAccount(_ account: LocalAccount) async throws
    func account(name: String) async throws -> LocalAccount?
    func accounts() async throws -> [LocalAccount]
    /// Throws `ImageError.notFound` when the account does not exist.
    func updateAccount(_ account: LocalAccount) async throws
    /// Deletes the account and its API keys.
    func deleteAccount(name: String) async throws -> Bool
    func insertAPIKey(_ key: APIKeyRecord) async throws
    func apiKey(id: String) async throws -> APIKeyRecord?
    func apiKeys(accountName: String) async throws -> [APIKeyRecord]
    func deleteAPIKey(id: String) async throws -> Bool
    /// Sessions live in the catalog so that every node of a cluster knows them.
    func insertSession(_ session: LoginSession) async throws
    func session(idHash: String) async throws -> LoginSession?
    func deleteSession(idHash: String) async throws -> Bool
    /// Removes sessions that expired before `time`; returns how many.
    func deleteSessions(expiredBefore time: Int64) async throws -> Int
    /// The login failures counted under these keys (a key with none is left out). In the catalog so
    /// that every node of a cluster throttles on the same counts.
    func loginFailures(keys: [String]) async throws -> [LoginFailures]
    /// One more failure at `time` under each key, counted atomically (two nodes never lose one); a
    /// key whose last failure is before `forgetBefore` starts again at one. Returns the new counts.
    func recordLoginFailure(keys: [String], at time: Int64, forgetBefore: Int64) async throws -> [LoginFailures]
    /// Forgets a key's failures (a successful login).
    func clearLoginFailures(key: String) async throws
    /// Removes keys whose last failure is before `time`; returns how many.
    func deleteLoginFailures(before time: Int64) async throws -> Int
}
