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
}
