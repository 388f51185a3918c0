import Foundation
import ImageCore

/// Why a login was not even tried; each front-end answers it in its own format with `Retry-After`.
public struct LoginRefused: Error, Equatable, Sendable {
    public enum Reason: Sendable, Equatable {
        /// Too many failed logins for this account from this address, or from this address at all.
        case throttled
        /// Every password check slot and the short queue are taken.
        case busy
    }
    public let reason: Reason
    /// Whole seconds to wait (at least 1), for `Retry-After`.
    public let retryAfter: Int

    public init(_ reason: Reason, retryAfter: Int) { self.reason = reason; self.retryAfter = max(1, retryAfter) }
}

/// The back-off rule every password check shares (Avi `/login` and Basic, ZStack and Danube logins).
///
/// Failures are counted under two keys: the account name at the client address, and the address
/// alone. From `threshold` failures on, a key is locked for `baseDelay`, doubling with each further
/// failure up to `maxDelay`, counted from its last failure. Attempts refused while locked are not
/// checked and not counted. A success forgets the account-at-address key only: an attacker who
/// owns one account cannot wash their address's count with it.
///
/// Why not a key for the account alone: anyone could then lock a user out from everywhere by
/// failing on purpose. With these keys, a user keeps logging in from their own address while
/// another address is locked; an attack spread over many addresses is slowed by each address's
/// count and by the bounded password pool instead.
public struct LoginThrottle: Sendable {
    public struct Policy: Sendable, Equatable {
        /// Failures of one account at one address before the first lock.
        public var accountThreshold: Int64 = 5
        /// Failures from one address (every account name, known or not) before the first lock. Higher,
        /// because many users may share an address (NAT, a proxy).
        public var addressThreshold: Int64 = 30
        public var baseDelayMs: Int64 = 1000
        public var maxDelayMs: Int64 = 900_000
        /// A key quiet this long starts again from zero.
        public var forgetAfterMs: Int64 = 3_600_000
        public init() {}

        /// How long a key with `failures` is locked after its last failure (0: not locked).
        public func delay(failures: Int64, threshold: Int64) -> Int64 {
            guard failures >= threshold else { return 0 }
            let doublings = min(failures - threshold, 40)
            return min(baseDelayMs << doublings, maxDelayMs)
        }
    }

    public let catalog: any AccountCatalog
    public let policy: Policy
    /// Milliseconds since 1970; injected so tests can move time.
    let now: @Sendable () -> Int64

    public init(catalog: any AccountCatalog, policy: Policy = .init(),
                now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        self.catalog = catalog; self.policy = policy; self.now = now
    }

    /// The catalog keys: the pair is a SHA-256 (the catalog keeps no typed names, which are sometimes
    /// passwords typed in the wrong field); the address is kept readable for operators.
    static func keys(name: String, client: String) -> (pair: String, address: String) {
        ("p:" + Secrets.sha256Hex(name + "\u{0}" + client), "a:" + client)
    }

    /// Milliseconds until the keys allow a try (nil: allowed now).
    func wait(_ records: [LoginFailures], pair: String, at time: Int64) -> Int64? {
        var until: Int64 = 0
        for r in records where r.lastFailure >= time - policy.forgetAfterMs {
            let threshold = r.key == pair ? policy.accountThreshold : policy.addressThreshold
            until = max(until, r.lastFailure + policy.delay(failures: r.failures, threshold: threshold))
        }
        return until > time ? until - time : nil
    }

    /// Runs `check` (the password check: nil for a wrong password or an unknown name) unless the
    /// keys are locked, then counts its outcome. `client` is the caller's address ("unknown" when
    /// the server cannot tell).
    public func attempt<T: Sendable>(name: String, client: String?, _ check: () async throws -> T?) async throws -> T? {
        let (pair, address) = Self.keys(name: name, client: client ?? "unknown")
        let time = now()
        if let wait = wait(try await catalog.loginFailures(keys: [pair, address]), pair: pair, at: time) {
            throw LoginRefused(.throttled, retryAfter: Int((wait + 999) / 1000))
        }
        guard let result = try await check() else {
            let failedAt = now()
            _ = try await catalog.recordLoginFailure(keys: [pair, address], at: failedAt, forgetBefore: failedAt - policy.forgetAfterMs)
            // Quiet keys go now and then, so the table does not grow without bound.
            if failedAt % 64 == 0 { _ = try? await catalog.deleteLoginFailures(before: failedAt - policy.forgetAfterMs) }
            return nil
        }
        try await catalog.clearLoginFailures(key: pair)
        return result
    }
}
