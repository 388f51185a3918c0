import AsyncHTTPClient
import Foundation
import ImageCore
import NIOCore

/// A person's password login through Keystone (the web console's "Keystone" sign-in, as Horizon's):
/// a project-scoped token issued by Keystone, and its revocation at logout.
extension KeystoneAuthenticator {
    public struct UserToken: Sendable {
        public let token: String
        public let principal: Principal
        /// Seconds since 1970.
        public let expiresAt: Double
    }

    /// `POST /v3/auth/tokens` with the password method, scoped to `project` in `domain` (the user's
    /// domain too). nil when Keystone refuses the credentials (401); unreachable or other answers
    /// are `.unavailable`. The token's validation is cached as a lookup's would be.
    /// A domain written `default` (any case) is the default domain's id; anything else is a name.
    public func issueUserToken(user: String, password: String, project: String, domain: String) async throws -> UserToken? {
        let domainRef: JSONValue = domain.lowercased() == "default"
            ? .object([("id", .string("default"))]) : .object([("name", .string(domain))])
        let body = JSONValue.object([("auth", .object([
            ("identity", .object([
                ("methods", .array([.string("password")])),
                ("password", .object([("user", .object([
                    ("name", .string(user)), ("domain", domainRef), ("password", .string(password)),
                ]))])),
            ])),
            ("scope", .object([("project", .object([("name", .string(project)), ("domain", domainRef)]))])),
        ]))])
        let (response, bytes) = try await issueToken(body)
        switch response.status.code {
        case 201:
            guard let token = response.headers.first(name: "X-Subject-Token"),
                  let doc = try? JSONValue.parse(bytes.readableBytesView), let t = doc["token"], let principal = Self.principal(from: t) else {
                throw ImageError(.unavailable, "The identity service issued a token without a user.")
            }
            let now = Date().timeIntervalSince1970
            let expires = t["expires_at"]?.stringValue.flatMap(Timestamp.parse).map(Double.init) ?? now + 3600
            state.withLock { s in
                s.cache[Key(token: token, allowExpired: false)] = .done(Validated(principal: principal, until: min(now + config.cacheSeconds, expires)))
            }
            return UserToken(token: token, principal: principal, expiresAt: expires)
        case 400, 401, 403, 404:
            // Wrong password, unknown user, project or domain, or no role on the project: all the same to the caller.
            return nil
        default:
            logger.error("keystone refused a user login", metadata: ["status": "\(response.status.code)"])
            throw ImageError(.unavailable, "The identity service could not log you in (HTTP \(response.status.code)).")
        }
    }

    /// Revokes a user's token (`DELETE /v3/auth/tokens`, the token authorizing its own revocation) and
    /// forgets its cached validation on this node. Best effort: a logout never fails on it.
    public func revokeUserToken(_ token: String) async {
        state.withLock { s in
            s.cache[Key(token: token, allowExpired: false)] = nil
            s.cache[Key(token: token, allowExpired: true)] = nil
        }
        var request = HTTPClientRequest(url: config.baseURL + "/v3/auth/tokens")
        request.method = .DELETE
        request.headers.add(name: "X-Auth-Token", value: token)
        request.headers.add(name: "X-Subject-Token", value: token)
        if let response = try? await execute(request) { _ = try? await collect(response) }
    }
}
