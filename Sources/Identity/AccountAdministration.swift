import ImageCore

/// What an admin does to local accounts from the web console (the same as `imaged account …` on the
/// command line): every call checks that the caller is an admin, so no page can reach it otherwise.
public struct AccountAdministration: Sendable {
    public let accounts: LocalAccounts
    let catalog: any AccountCatalog

    public init(accounts: LocalAccounts) {
        self.accounts = accounts
        self.catalog = accounts.catalog
    }

    public struct Refused: Error, CustomStringConvertible {
        public let description: String
    }

    /// An account and the ids of its API keys (never a secret or a hash).
    public struct Listed: Sendable, Equatable {
        public let account: LocalAccount
        public let keys: [APIKeyRecord]
        public var hasPassword: Bool { account.passwordHash != nil }
    }

    static func checkAdmin(_ p: Principal) throws {
        guard p.isAdmin else { throw Refused(description: "Only an admin may manage accounts.") }
    }

    public func list(by p: Principal) async throws -> [Listed] {
        try Self.checkAdmin(p)
        var out: [Listed] = []
        for account in try await catalog.accounts().sorted(by: { $0.name < $1.name }) {
            out.append(Listed(account: account, keys: try await catalog.apiKeys(accountName: account.name).sorted { $0.createdAt < $1.createdAt }))
        }
        return out
    }

    /// A new account; names and roles as `imaged account create` checks them, the password at least 8 characters.
    public func create(name: String, project: String, role: String, password: String?, by p: Principal) async throws -> LocalAccount {
        try Self.checkAdmin(p)
        guard ["admin", "member", "reader"].contains(role) else { throw Refused(description: "The role must be admin, member or reader.") }
        if try await catalog.account(name: name) != nil { throw Refused(description: "An account named \(name) exists already.") }
        do {
            return try await accounts.create(name: name, project: project, roles: [role], password: password)
        } catch let e as IdentityError {
            throw Refused(description: e.description.prefix(1).uppercased() + e.description.dropFirst() + ".")
        }
    }

    /// Deletes an account and its API keys. An admin cannot delete their own account (the last admin
    /// would lock everyone out of the console).
    public func delete(name: String, by p: Principal) async throws {
        try Self.checkAdmin(p)
        if p.userName == name { throw Refused(description: "You cannot delete the account you are logged in with.") }
        guard try await catalog.deleteAccount(name: name) else { throw Refused(description: "There is no account named \(name).") }
    }

    /// A new API key; its secret is returned this once and only its hash is kept.
    public func createKey(accountName: String, by p: Principal) async throws -> (keyId: String, secret: String) {
        try Self.checkAdmin(p)
        guard try await catalog.account(name: accountName) != nil else { throw Refused(description: "There is no account named \(accountName).") }
        return try await accounts.createKey(accountName: accountName)
    }

    public func deleteKey(id: String, by p: Principal) async throws {
        try Self.checkAdmin(p)
        guard try await catalog.deleteAPIKey(id: id) else { throw Refused(description: "There is no API key \(id).") }
    }
}
