import Foundation
import ImageCore

/// Turns a request's token into a principal: static tokens, Keystone, local API keys, or a chain.
public protocol TokenAuthenticator: Sendable {
    /// nil when the token is unknown, expired or revoked. `serviceToken` is `X-Service-Token`
    /// (a service acting for the user); authenticators that do not know it ignore it.
    func principal(forToken token: String, serviceToken: String?) async throws -> Principal?
}

extension TokenAuthenticator {
    public func principal(forToken token: String) async throws -> Principal? {
        try await principal(forToken: token, serviceToken: nil)
    }
}

/// Asks each authenticator in turn; the first that knows the token wins. Local ones go first so
/// they never cost a round trip to Keystone.
public struct ChainedAuthenticator: TokenAuthenticator {
    let members: [any TokenAuthenticator]
    public init(_ members: [any TokenAuthenticator]) { self.members = members }

    public func principal(forToken token: String, serviceToken: String?) async throws -> Principal? {
        for m in members {
            if let p = try await m.principal(forToken: token, serviceToken: serviceToken) { return p }
        }
        return nil
    }
}

/// Tokens read once from a JSON file:
/// `{"tokens": [{"token": "…", "user_id": "…", "project_id": "…", "roles": ["member"]}]}`.
public struct StaticTokenAuthenticator: TokenAuthenticator {
    let principals: [String: Principal]

    public init(principals: [String: Principal]) { self.principals = principals }

    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw IdentityError("cannot read token file \(path)")
        }
        let doc: JSONValue
        do { doc = try JSONValue.parse(data) } catch { throw IdentityError("token file \(path): \(error)") }
        guard case .array(let entries)? = doc["tokens"] else {
            throw IdentityError("token file \(path): expected {\"tokens\": [...]}")
        }
        var map: [String: Principal] = [:]
        for (n, e) in entries.enumerated() {
            guard let token = e["token"]?.stringValue, !token.isEmpty, let user = e["user_id"]?.stringValue else {
                throw IdentityError("token file \(path): entry \(n) needs non-empty \"token\" and \"user_id\"")
            }
            var roles: [String] = []
            if case .array(let rs)? = e["roles"] { roles = rs.compactMap(\.stringValue) }
            map[token] = Principal(userId: user, projectId: e["project_id"]?.stringValue, roles: roles)
        }
        principals = map
    }

    public func principal(forToken token: String, serviceToken: String?) async throws -> Principal? {
        token.isEmpty ? nil : principals[token]
    }
}

/// `--no-auth`: every request is an admin of one local project.
public struct NoAuthAuthenticator: TokenAuthenticator {
    public static let principal = Principal(userId: "local-admin", projectId: "local", roles: ["admin"])
    public init() {}
    public func principal(forToken token: String, serviceToken: String?) async throws -> Principal? { Self.principal }
}

public struct IdentityError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
