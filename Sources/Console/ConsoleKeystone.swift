import Foundation
import Identity
import ImageCore

/// Keystone sign-in for the console, when imaged runs in Keystone mode: the user's own project-scoped
/// token, as Horizon holds one. The session is the token itself, sealed (AES-GCM, the servers' secret
/// key) in the cookie with the session's CSRF token and end: every node opens it with the same key
/// and validates the token through the Keystone cache, with nothing stored in the catalog. Logout
/// revokes the token in Keystone, so a copied cookie dies with it.
public struct ConsoleKeystone: Sendable {
    public let authenticator: KeystoneAuthenticator
    public let sealer: SecretSealer
    /// What the login form proposes (Keystone's default domain is named "Default").
    public var defaultDomain = "Default"

    public init(authenticator: KeystoneAuthenticator, sealer: SecretSealer) {
        self.authenticator = authenticator; self.sealer = sealer
    }

    /// What a Keystone console cookie holds.
    struct Sealed: Equatable {
        let token: String
        let csrf: String
        let expiresAt: Int64
    }

    static let cookiePrefix = "ks1."
    static let sealContext = "imaged-console-session"

    func seal(_ s: Sealed) throws -> String {
        let plain = JSONValue.object([("t", .string(s.token)), ("c", .string(s.csrf)), ("e", .int(s.expiresAt))]).serialized
        return Self.cookiePrefix + (try sealer.seal(plain, context: Self.sealContext))
    }

    /// nil for anything not sealed by this site's key, malformed or past its end.
    func open(_ cookie: String, now: Int64 = Timestamp.now()) -> Sealed? {
        guard cookie.hasPrefix(Self.cookiePrefix), cookie.utf8.count <= 4096,
              let plain = sealer.open(String(cookie.dropFirst(Self.cookiePrefix.count)), context: Self.sealContext),
              let doc = try? JSONValue.parse(plain), let token = doc["t"]?.stringValue, let csrf = doc["c"]?.stringValue,
              case .int(let end)? = doc["e"], end > now else { return nil }
        return Sealed(token: token, csrf: csrf, expiresAt: end)
    }
}

extension WebConsole {
    /// The Keystone login: throttled like a local one (per user and domain at the client's address),
    /// then a token from Keystone; the session lasts as long as the token, at most the console's lifetime.
    func keystoneLogin(_ keystone: ConsoleKeystone, form: [String: String], client: String?) async throws -> (cookie: String, maxAge: Int64)? {
        let user = form["username"] ?? "", password = form["password"] ?? ""
        let project = String((form["project"] ?? "").trimmingSpacesForConsole)
        var domain = String((form["domain"] ?? "").trimmingSpacesForConsole)
        if domain.isEmpty { domain = keystone.defaultDomain }
        guard let issued = try await sessions.accounts.throttle.attempt(name: "keystone:\(domain)/\(user)", client: client, {
            try await keystone.authenticator.issueUserToken(user: user, password: password, project: project, domain: domain)
        }) else { return nil }
        let now = Timestamp.now()
        let end = min(now + options.sessionLifetime, Int64(issued.expiresAt))
        let sealed = ConsoleKeystone.Sealed(token: issued.token, csrf: Secrets.base64url(try Secrets.randomBytes(24)), expiresAt: end)
        AuditTrail.note("console.login", by: issued.principal)
        return (try keystone.seal(sealed), max(1, end - now))
    }

    /// The session a Keystone cookie stands for, while its token is valid.
    func keystoneSession(_ keystone: ConsoleKeystone, cookie: String) async throws -> Session? {
        guard let sealed = keystone.open(cookie),
              let principal = try await keystone.authenticator.principal(forToken: sealed.token, serviceToken: nil) else { return nil }
        AuditTrail.note(principal: principal)
        return Session(id: cookie, principal: principal, csrf: sealed.csrf, keystoneToken: sealed.token)
    }
}
