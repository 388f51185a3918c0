import ImageCore

/// Cookie sessions for the vendor front-ends that log in with a name and a password (Avi `/login`).
/// The session id and the CSRF token are 256-bit random strings; the catalog keeps the SHA-256 of
/// the id only, so every node of a cluster knows a session and a copy of the catalog holds none
/// that can be used. The CSRF token stays the same for the life of the session (Avi's SDK keeps
/// sending the login-time token).
///
/// Each front-end has its own scope, and the scope is part of the stored hash: a session opened by
/// Avi is unknown to ZStack and Danube (and the reverse), so each keeps its own lifetime. Sessions
/// stored before scopes existed match no scope; their users log in again.
public struct LoginSessions: Sendable {
    /// Which front-end's sessions these are.
    public struct Scope: Sendable, Hashable {
        public let name: String
        public init(_ name: String) { self.name = name }
        public static let avi = Scope("avi")
        public static let zstack = Scope("zstack")
        public static let danube = Scope("danube")
    }

    public let accounts: LocalAccounts
    public let scope: Scope
    /// Seconds a session lives (Avi: 24 h).
    public let lifetime: Int64

    public init(accounts: LocalAccounts, scope: Scope, lifetime: Int64 = 86_400) {
        self.accounts = accounts; self.scope = scope; self.lifetime = lifetime
    }

    public struct Opened: Sendable {
        public let sessionId: String
        public let csrfToken: String
        public let principal: Principal
        public let expiresAt: Int64
    }

    /// A new session when the password matches; nil otherwise (the caller answers 401).
    /// Throws `LoginRefused` when throttled or when the password pool is full.
    public func login(name: String, password: String, client: String? = nil) async throws -> Opened? {
        guard let principal = try await accounts.authenticate(name: name, password: password, client: client) else { return nil }
        return try await open(accountName: name, principal: principal)
    }

    /// A session for an account the caller has authenticated. `hexBytes` makes the id that many
    /// random bytes in lower-case hex (ZStack's 32-character uuid form: 16; Danube's 40-character
    /// token: 20); otherwise 256 bits in base64url.
    public func open(accountName: String, principal: Principal, hexBytes: Int? = nil) async throws -> Opened {
        let sessionId = try hexBytes.map { Secrets.hex(try Secrets.randomBytes($0)) } ?? Secrets.base64url(try Secrets.randomBytes(32))
        let csrf = Secrets.base64url(try Secrets.randomBytes(24))
        let now = Timestamp.now()
        let session = LoginSession(idHash: hash(sessionId), accountName: accountName, csrfToken: csrf,
                                   createdAt: now, expiresAt: now + lifetime)
        try await accounts.catalog.insertSession(session)
        AuditTrail.note(principal: principal)
        // Expired sessions go now and then, on logins, so the table does not grow without bound.
        if now % 16 == 0 { _ = try? await accounts.catalog.deleteSessions(expiredBefore: now) }
        return Opened(sessionId: sessionId, csrfToken: csrf, principal: principal, expiresAt: session.expiresAt)
    }

    /// The principal and CSRF token of a live session; nil when unknown, expired or its account is gone.
    public func resume(sessionId: String) async throws -> (principal: Principal, csrfToken: String)? {
        try await resumeWithExpiry(sessionId: sessionId).map { ($0.principal, $0.csrfToken) }
    }

    /// The same, with the session's creation and expiry times.
    public func resumeWithExpiry(sessionId: String) async throws -> (principal: Principal, csrfToken: String, createdAt: Int64, expiresAt: Int64)? {
        guard !sessionId.isEmpty, sessionId.utf8.count <= 128,
              let session = try await accounts.catalog.session(idHash: hash(sessionId)),
              session.expiresAt > Timestamp.now(),
              let account = try await accounts.catalog.account(name: session.accountName) else { return nil }
        AuditTrail.note(principal: account.principal)
        return (account.principal, session.csrfToken, session.createdAt, session.expiresAt)
    }

    public func logout(sessionId: String) async throws {
        // The audit line names whose session ends (a logout needs no other credential).
        if AuditTrail.current != nil { _ = try? await resumeWithExpiry(sessionId: sessionId) }
        _ = try await accounts.catalog.deleteSession(idHash: hash(sessionId))
    }

    /// What the catalog keeps: the scope, then the SHA-256 of the id.
    func hash(_ sessionId: String) -> String { "sha256$\(scope.name)$" + Secrets.sha256Hex(sessionId) }

    /// Compares a presented CSRF token with the session's without leaking where they differ.
    public static func csrfMatches(_ presented: String?, _ expected: String) -> Bool {
        guard let presented else { return false }
        return Secrets.constantTimeEqual(Array(presented.utf8), Array(expected.utf8))
    }
}
