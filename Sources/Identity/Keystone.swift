import AsyncHTTPClient
import Foundation
import ImageCore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Where Keystone is and how imaged authenticates to it (a service user, as Glance's
/// `[keystone_authtoken]` section).
public struct KeystoneConfig: Sendable {
    /// Identity endpoint, with or without `/v3` (e.g. `http://keystone:5000/v3`).
    public var authURL: String
    public var username: String
    public var password: String
    public var projectName: String
    public var userDomainId = "default"
    public var projectDomainId = "default"
    /// Seconds a validation result is reused (keystonemiddleware's `token_cache_time`, 300);
    /// never beyond the token's own expiry. A revoked token is refused at the latest after this.
    public var cacheSeconds: Double = 300
    /// Roles that make an `X-Service-Token` able to vouch for an expired user token.
    public var serviceTokenRoles: Set<String> = ["service"]
    public var requestTimeout: TimeAmount = .seconds(10)
    /// Bounds the memory of the cache.
    public var maxCachedTokens = 50_000

    public init(authURL: String, username: String, password: String, projectName: String) {
        self.authURL = authURL; self.username = username; self.password = password; self.projectName = projectName
    }

    /// `http://host:5000` from any of `http://host:5000`, `…/`, `…/v3`, `…/v3/`.
    public var baseURL: String {
        var s = authURL
        while s.hasSuffix("/") { s.removeLast() }
        if s.hasSuffix("/v3") { s.removeLast(3) }
        return s
    }
}

/// Validates `X-Auth-Token` against Keystone v3 as keystonemiddleware does: `GET /v3/auth/tokens`
/// with our own service token and `X-Subject-Token`, results cached (valid and invalid alike)
/// until `cacheSeconds` or the token's expiry, concurrent lookups of one token share one request.
public final class KeystoneAuthenticator: TokenAuthenticator {
    struct Validated: Sendable {
        let principal: Principal?
        /// Wall-clock seconds after which the result must be fetched again.
        let until: Double
    }

    enum Entry {
        case pending(Task<Validated, any Error>)
        case done(Validated)
    }

    /// Cache key: the token as given, and whether an expired token was acceptable (X-Service-Token).
    struct Key: Hashable {
        let token: String
        let allowExpired: Bool
    }

    struct ServiceToken: Sendable {
        let token: String
        let expiresAt: Double
    }

    struct State {
        var cache: [Key: Entry] = [:]
        var serviceToken: ServiceToken?
        var serviceTokenTask: Task<ServiceToken, any Error>?
    }

    let config: KeystoneConfig
    let client: HTTPClient
    let logger: Logger
    let state = Mutex(State())
    /// Validation requests sent to Keystone (for tests and metrics).
    let fetches = Atomic<Int>(0)

    public init(config: KeystoneConfig, client: HTTPClient = .shared, logger: Logger = Logger(label: "imaged.keystone")) {
        self.config = config; self.client = client; self.logger = logger
    }

    public var validationRequests: Int { fetches.load(ordering: .relaxed) }

    public func principal(forToken token: String, serviceToken: String?) async throws -> Principal? {
        guard !token.isEmpty, token.utf8.count <= 8192 else { return nil }
        if let serviceToken, !serviceToken.isEmpty {
            // A service (Nova, Cinder) vouches for the user: its own token must be valid, and with a
            // service role it may present a user token that expired during a long operation.
            guard let service = try await cached(serviceToken, allowExpired: false) else { return nil }
            let serviceRoles = service.roles.intersection(config.serviceTokenRoles)
            // Glance counts the service token's roles (X-Service-Roles) for its `role:service` rules (the
            // locations API, store details): the user's principal carries them for this request.
            guard var user = try await cached(token, allowExpired: !serviceRoles.isEmpty) else { return nil }
            user.roles.formUnion(serviceRoles)
            return user
        }
        return try await cached(token, allowExpired: false)
    }

    enum Lookup {
        case hit(Principal?)
        case wait(Task<Validated, any Error>)
    }

    func cached(_ token: String, allowExpired: Bool) async throws -> Principal? {
        let key = Key(token: token, allowExpired: allowExpired)
        let now = Date().timeIntervalSince1970
        // The warm path answers under the lock, with no task or suspension.
        let lookup: Lookup = state.withLock { s in
            switch s.cache[key] {
            case .done(let v)? where v.until > now:
                return .hit(v.principal)
            case .pending(let t)?:
                return .wait(t)
            default:
                if s.cache.count >= config.maxCachedTokens {
                    s.cache = s.cache.filter { if case .done(let v) = $0.value { v.until > now } else { true } }
                    if s.cache.count >= config.maxCachedTokens { s.cache.removeAll() }
                }
                let t = Task { try await self.validate(token, allowExpired: allowExpired) }
                s.cache[key] = .pending(t)
                return .wait(t)
            }
        }
        let task: Task<Validated, any Error>
        switch lookup {
        case .hit(let principal): return principal
        case .wait(let pending): task = pending
        }
        do {
            let v = try await task.value
            state.withLock { s in
                if case .pending? = s.cache[key] { s.cache[key] = .done(v) }
            }
            return v.principal
        } catch {
            // Failures to reach Keystone are not cached: the next request tries again.
            state.withLock { s in
                if case .pending? = s.cache[key] { s.cache[key] = nil }
            }
            throw error
        }
    }

    // MARK: Keystone calls

    func validate(_ token: String, allowExpired: Bool) async throws -> Validated {
        fetches.add(1, ordering: .relaxed)
        var retried = false
        while true {
            let service = try await serviceToken()
            var url = config.baseURL + "/v3/auth/tokens?nocatalog=1"
            if allowExpired { url += "&allow_expired=1" }
            var request = HTTPClientRequest(url: url)
            request.method = .GET
            request.headers.add(name: "X-Auth-Token", value: service.token)
            request.headers.add(name: "X-Subject-Token", value: token)
            request.headers.add(name: "Accept", value: "application/json")
            let (status, body) = try await send(request)
            let now = Date().timeIntervalSince1970
            switch status {
            case 200:
                guard let doc = try? JSONValue.parse(body.readableBytesView), let t = doc["token"], let principal = Self.principal(from: t) else {
                    throw ImageError(.unavailable, "The identity service returned a token without a user.")
                }
                let expires = t["expires_at"]?.stringValue.flatMap(Timestamp.parse).map(Double.init) ?? now + config.cacheSeconds
                if !allowExpired, expires <= now { return Validated(principal: nil, until: now + config.cacheSeconds) }
                let until = allowExpired ? now + config.cacheSeconds : min(now + config.cacheSeconds, expires)
                return Validated(principal: principal, until: until)
            case 404:
                return Validated(principal: nil, until: now + config.cacheSeconds)
            case 401 where !retried:
                // Our own token was revoked or expired early: get a new one, once.
                retried = true
                state.withLock { $0.serviceToken = nil }
            default:
                logger.error("keystone refused token validation", metadata: ["status": "\(status)"])
                throw ImageError(.unavailable, "The identity service could not validate the token (HTTP \(status)).")
            }
        }
    }

    /// Our service token, fetched once and renewed a minute before it expires.
    func serviceToken() async throws -> ServiceToken {
        let now = Date().timeIntervalSince1970
        let task: Task<ServiceToken, any Error> = state.withLock { s in
            if let t = s.serviceToken, t.expiresAt - 60 > now { return Task { t } }
            if let pending = s.serviceTokenTask { return pending }
            let t = Task { try await self.issueServiceToken() }
            s.serviceTokenTask = t
            return t
        }
        do {
            let t = try await task.value
            state.withLock { s in
                s.serviceToken = t
                s.serviceTokenTask = nil
            }
            return t
        } catch {
            state.withLock { $0.serviceTokenTask = nil }
            throw error
        }
    }

    func issueServiceToken() async throws -> ServiceToken {
        let body = JSONValue.object([("auth", .object([
            ("identity", .object([
                ("methods", .array([.string("password")])),
                ("password", .object([("user", .object([
                    ("name", .string(config.username)),
                    ("domain", .object([("id", .string(config.userDomainId))])),
                    ("password", .string(config.password)),
                ]))])),
            ])),
            ("scope", .object([("project", .object([
                ("name", .string(config.projectName)),
                ("domain", .object([("id", .string(config.projectDomainId))])),
            ]))])),
        ]))])
        let (response, bytes) = try await issueToken(body)
        guard response.status.code == 201, let token = response.headers.first(name: "X-Subject-Token") else {
            // Never log the request: it carries the service password.
            logger.error("keystone refused imaged's service credentials", metadata: ["status": "\(response.status.code)", "user": .string(config.username)])
            throw ImageError(.unavailable, "The identity service refused imaged's service credentials (HTTP \(response.status.code)).")
        }
        let doc = try? JSONValue.parse(bytes.readableBytesView)
        let expires = doc?["token"]?["expires_at"]?.stringValue.flatMap(Timestamp.parse).map(Double.init)
            ?? Date().timeIntervalSince1970 + 3600
        return ServiceToken(token: token, expiresAt: expires)
    }

    /// `POST /v3/auth/tokens` with `body` (an `auth` document); the answer and its body.
    func issueToken(_ body: JSONValue) async throws -> (HTTPClientResponse, ByteBuffer) {
        var request = HTTPClientRequest(url: config.baseURL + "/v3/auth/tokens?nocatalog=1")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body.serialized))
        let response = try await execute(request)
        return (response, try await collect(response))
    }

    func send(_ request: HTTPClientRequest) async throws -> (Int, ByteBuffer) {
        let response = try await execute(request)
        return (Int(response.status.code), try await collect(response))
    }

    func execute(_ request: HTTPClientRequest) async throws -> HTTPClientResponse {
        do {
            return try await client.execute(request, timeout: config.requestTimeout)
        } catch {
            logger.error("keystone unreachable", metadata: ["error": "\(error)"])
            throw ImageError(.unavailable, "The identity service is unreachable.")
        }
    }

    func collect(_ response: HTTPClientResponse) async throws -> ByteBuffer {
        do { return try await response.body.collect(upTo: 4 << 20) } catch {
            throw ImageError(.unavailable, "The identity service sent an unreadable answer.")
        }
    }

    /// The principal a validated token stands for. Image policies are project-scoped (Glance with
    /// scope enforcement): a system- or domain-scoped token keeps its user but gets no roles.
    static func principal(from t: JSONValue) -> Principal? {
        guard let userId = t["user"]?["id"]?.stringValue else { return nil }
        let project = t["project"]
        var roles: [String] = []
        if project != nil, case .array(let rs)? = t["roles"] { roles = rs.compactMap { $0["name"]?.stringValue } }
        return Principal(userId: userId, projectId: project?["id"]?.stringValue, roles: roles,
                         userName: t["user"]?["name"]?.stringValue, projectName: project?["name"]?.stringValue,
                         domainId: t["user"]?["domain"]?["id"]?.stringValue)
    }
}
