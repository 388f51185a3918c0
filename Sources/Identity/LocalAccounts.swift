import CDigests
import Foundation
import ImageCore
import NIOPosix

/// Password records: `<scheme>$<iterations>$<salt, base64>$<key, base64>` (the layout Django and
/// passlib use). Verification re-derives with the record's own iteration count, so raising the
/// default later does not invalidate stored passwords.
///
/// New records (`pbkdf2-sha256-sha512hex`) derive from the lower-case hex SHA-512 of the password
/// rather than the password: ZStack's login sends exactly that hex, so one record verifies both a
/// clear password (hashed here first) and ZStack's form. Older `pbkdf2-sha256` records (over the
/// clear password) still verify clear passwords and are rewritten at the next such login.
public enum PasswordHash {
    /// OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256.
    public static let defaultIterations: UInt32 = 600_000
    static let scheme = "pbkdf2-sha256-sha512hex"
    static let legacyScheme = "pbkdf2-sha256"

    public static func make(_ password: String, iterations: UInt32 = defaultIterations) throws -> String {
        let salt = try Secrets.randomBytes(16)
        let key = try derive(Secrets.sha512Hex(password), salt: salt, iterations: iterations)
        return "\(scheme)$\(iterations)$\(Data(salt).base64EncodedString())$\(Data(key).base64EncodedString())"
    }

    public static func verify(_ password: String, against record: String) -> Bool {
        if record.hasPrefix(scheme + "$") { return check(Secrets.sha512Hex(password), record, scheme) }
        return check(password, record, legacyScheme)
    }

    /// ZStack's login: the client already sent the SHA-512 hex. Only new records can tell.
    public static func verify(sha512Hex: String, against record: String) -> Bool {
        guard sha512Hex.utf8.count == 128, sha512Hex.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) || ($0 >= 65 && $0 <= 70) })
        else { return false }
        return check(sha512Hex.lowercased(), record, scheme)
    }

    /// Whether a record predates the SHA-512 form (and should be rewritten).
    public static func isLegacy(_ record: String) -> Bool { !record.hasPrefix(scheme + "$") }

    static func check(_ input: String, _ record: String, _ expectedScheme: String) -> Bool {
        let parts = record.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == expectedScheme, let iterations = UInt32(parts[1]), iterations > 0,
              let salt = Data(base64Encoded: String(parts[2])), let expected = Data(base64Encoded: String(parts[3])),
              !expected.isEmpty, let key = try? derive(input, salt: Array(salt), iterations: iterations, length: expected.count)
        else { return false }
        return Secrets.constantTimeEqual(key, Array(expected))
    }

    static func derive(_ password: String, salt: [UInt8], iterations: UInt32, length: Int = 32) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        let utf8 = Array(password.utf8)
        let ok = utf8.withUnsafeBufferPointer { pw in
            pw.withMemoryRebound(to: CChar.self) { pwc in
                imaged_pbkdf2_sha256(pwc.baseAddress, pwc.count, salt, salt.count, iterations, &out, length)
            }
        }
        guard ok == 1 else { throw IdentityError("PBKDF2 failed in libcrypto") }
        return out
    }
}

public enum Secrets {
    public static func randomBytes(_ n: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        guard imaged_random_bytes(&out, n) == 1 else { throw IdentityError("no randomness from libcrypto") }
        return out
    }

    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// base64url without padding: safe in headers, URLs and shells.
    public static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    public static func sha256Hex(_ text: String) -> String { digestHex(text, IMAGED_SHA256) }
    public static func sha512Hex(_ text: String) -> String { digestHex(text, IMAGED_SHA512) }

    static func digestHex(_ text: String, _ algorithm: Int) -> String {
        guard let d = imaged_digest_new(Int32(algorithm)) else { return "" }
        defer { imaged_digest_free(d) }
        let bytes = Array(text.utf8)
        _ = imaged_digest_update(d, bytes, bytes.count)
        var out = [UInt8](repeating: 0, count: 64)
        let n = imaged_digest_final(d, &out)
        return hex(out.prefix(Int(n)))
    }

    /// Compares without an early exit, so timing does not reveal how much of a secret matched.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool { ConstantTime.equal(a, b) }
}

/// Local accounts and their API keys, kept in the catalog as hashes only.
public struct LocalAccounts: Sendable {
    /// Internal: front-ends read accounts through `account(named:)` and `all()`.
    let catalog: any AccountCatalog
    public let iterations: UInt32
    /// Every password check goes through it (the back-off shared by all front-ends and nodes).
    public let throttle: LoginThrottle
    /// Where derivations run, bounded.
    public let passwords: PasswordPool

    public init(catalog: any AccountCatalog, iterations: UInt32 = PasswordHash.defaultIterations,
                throttle: LoginThrottle.Policy = .init(), passwords: PasswordPool = .shared) {
        self.catalog = catalog; self.iterations = iterations
        self.throttle = LoginThrottle(catalog: catalog, policy: throttle); self.passwords = passwords
    }

    public func account(named name: String) async throws -> LocalAccount? { try await catalog.account(name: name) }

    public func all() async throws -> [LocalAccount] { try await catalog.accounts() }

    /// Names of accounts, projects and roles: 1–64 of `A-Z a-z 0-9 . _ @ -`.
    public static func validName(_ s: String, _ what: String) throws -> String {
        let ok = !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 46 || c == 95 || c == 64 || c == 45
        }
        guard ok else { throw IdentityError("\(what) '\(s)' must be 1 to 64 characters of A-Z a-z 0-9 . _ @ -") }
        return s
    }

    public static let minimumPasswordLength = 8

    public func create(name: String, project: String, roles: [String], password: String?) async throws -> LocalAccount {
        let name = try Self.validName(name, "account name")
        let project = try Self.validName(project, "project")
        let roles = try roles.map { try Self.validName($0.lowercased(), "role") }
        guard !roles.isEmpty else { throw IdentityError("an account needs at least one role (--role admin|member|reader)") }
        var hash: String?
        if let password { hash = try await hashPassword(password) }
        let now = Timestamp.now()
        let account = LocalAccount(name: name, userId: Secrets.hex(try Secrets.randomBytes(16)), projectId: project,
                                   roles: Array(Set(roles)).sorted(), passwordHash: hash, createdAt: now, updatedAt: now)
        try await catalog.insertAccount(account)
        return account
    }

    public func setPassword(name: String, password: String) async throws {
        guard var account = try await catalog.account(name: name) else { throw IdentityError("no account named \(name)") }
        account.passwordHash = try await hashPassword(password)
        account.updatedAt = Timestamp.now()
        try await catalog.updateAccount(account)
    }

    func hashPassword(_ password: String, checkLength: Bool = true) async throws -> String {
        guard !checkLength || password.count >= Self.minimumPasswordLength else {
            throw IdentityError("a password needs at least \(Self.minimumPasswordLength) characters")
        }
        let iterations = iterations
        return try await NIOThreadPool.singleton.runIfActive { try PasswordHash.make(password, iterations: iterations) }
    }

    /// A new API key: the secret is returned once and only its SHA-256 is kept (it is 256 random
    /// bits, so a slow KDF adds nothing).
    public func createKey(accountName: String) async throws -> (keyId: String, secret: String) {
        guard try await catalog.account(name: accountName) != nil else { throw IdentityError("no account named \(accountName)") }
        let keyId = "imk_" + Secrets.hex(try Secrets.randomBytes(10))
        let secret = Secrets.base64url(try Secrets.randomBytes(32))
        try await catalog.insertAPIKey(APIKeyRecord(keyId: keyId, accountName: accountName,
                                                    secretHash: "sha256$" + Secrets.sha256Hex(secret), createdAt: Timestamp.now()))
        return (keyId, secret)
    }

    /// A Scalr API key: id `APIK` + 16 of `[A-Z0-9]`, a 40-character secret (base64 alphabet). The
    /// secret must verify HMACs later, so it is kept sealed under the servers' key, never in clear.
    public func createSigningKey(accountName: String, sealer: SecretSealer) async throws -> (keyId: String, secret: String) {
        guard try await catalog.account(name: accountName) != nil else { throw IdentityError("no account named \(accountName)") }
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        let keyId = "APIK" + String(try Secrets.randomBytes(16).map { alphabet[Int($0) % alphabet.count] })
        let secret = Data(try Secrets.randomBytes(30)).base64EncodedString()
        try await insertSealedKey(keyId: keyId, secret: secret, accountName: accountName, sealer: sealer)
        return (keyId, secret)
    }

    /// A signing key's secret verifies HMACs, so it is kept sealed (openable), not hashed.
    private func insertSealedKey(keyId: String, secret: String, accountName: String, sealer: SecretSealer) async throws {
        try await catalog.insertAPIKey(APIKeyRecord(keyId: keyId, accountName: accountName,
                                                    secretHash: try sealer.seal(secret, context: keyId), createdAt: Timestamp.now()))
    }

    /// A ZStack access key: id `ZSK` + 17 of `[A-Za-z0-9]` (20 characters, as ZStack's AccessKeyID), a
    /// 40-character secret of the same alphabet, kept sealed like a Scalr key's (it verifies HMACs).
    public func createZStackAccessKey(accountName: String, sealer: SecretSealer) async throws -> (keyId: String, secret: String) {
        guard try await catalog.account(name: accountName) != nil else { throw IdentityError("no account named \(accountName)") }
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        func draw(_ n: Int) throws -> String {
            // 248 = 4 × 62: bytes above it are drawn again, so every character is equally likely.
            var out = ""
            while out.count < n {
                for b in try Secrets.randomBytes(n) where b < 248 && out.count < n { out.append(alphabet[Int(b) % alphabet.count]) }
            }
            return out
        }
        let keyId = Self.zstackKeyPrefix + (try draw(17))
        let secret = try draw(40)
        try await insertSealedKey(keyId: keyId, secret: secret, accountName: accountName, sealer: sealer)
        return (keyId, secret)
    }

    public static let zstackKeyPrefix = "ZSK"

    /// The secret and account of a signing key (`APIK…` Scalr keys by default, `ZSK…` ZStack access
    /// keys with that prefix); nil when the key, its account or its seal is unknown.
    public func signingKey(id keyId: String, sealer: SecretSealer, prefix: String = "APIK") async throws -> (secret: String, account: LocalAccount)? {
        guard keyId.hasPrefix(prefix), keyId.utf8.count <= 64, let key = try await catalog.apiKey(id: keyId),
              let secret = sealer.open(key.secretHash, context: keyId),
              let account = try await catalog.account(name: key.accountName) else { return nil }
        // The key is named in the audit line (the caller checks the signature; the core notes the principal).
        AuditTrail.note(keyId: keyId)
        return (secret, account)
    }

    /// The account's principal when the password matches. Throttled per account and address
    /// (`LoginRefused.throttled`); PBKDF2 runs on the bounded pool (`LoginRefused.busy` when full).
    /// `client`: the caller's address, as the front-end's request context knows it.
    public func authenticate(name: String, password: String, client: String? = nil) async throws -> Principal? {
        AuditTrail.note(attemptedUser: name)  // a failed login is audited under the name tried
        return try await throttle.attempt(name: name, client: client) {
            guard let account = try await catalog.account(name: name), let record = account.passwordHash else {
                try await deriveForNothing(password, client: client)
                return nil
            }
            let ok = try await passwords.run(client: client) { PasswordHash.verify(password, against: record) }
            guard ok else { return nil }
            if PasswordHash.isLegacy(record) {
                // Rewritten in the current form, so ZStack's SHA-512 login works for this account from now on.
                var upgraded = account
                upgraded.passwordHash = try await hashPassword(password, checkLength: false)
                try? await catalog.updateAccount(upgraded)
            }
            return account.principal
        }
    }

    /// ZStack's `logInByAccount`: the password arrives as its lower-case SHA-512 hex.
    public func authenticate(name: String, passwordSHA512 hex: String, client: String? = nil) async throws -> (LocalAccount, Principal)? {
        AuditTrail.note(attemptedUser: name)  // a failed login is audited under the name tried
        return try await throttle.attempt(name: name, client: client) {
            guard let account = try await catalog.account(name: name), let record = account.passwordHash else {
                try await deriveForNothing(hex, client: client)
                return nil
            }
            let ok = try await passwords.run(client: client) { PasswordHash.verify(sha512Hex: hex, against: record) }
            return ok ? (account, account.principal) : nil
        }
    }

    /// Same cost as a real check, so response time does not reveal which names exist.
    private func deriveForNothing(_ password: String, client: String?) async throws {
        let iterations = iterations
        _ = try await passwords.run(client: client) { try PasswordHash.derive(password, salt: [0], iterations: iterations) }
    }

    public func authenticate(keyId: String, secret: String) async throws -> Principal? {
        guard keyId.hasPrefix("imk_"), keyId.utf8.count <= 64, let key = try await catalog.apiKey(id: keyId),
              Secrets.constantTimeEqual(Array(("sha256$" + Secrets.sha256Hex(secret)).utf8), Array(key.secretHash.utf8)),
              let account = try await catalog.account(name: key.accountName)
        else { return nil }
        AuditTrail.note(keyId: keyId)
        AuditTrail.note(principal: account.principal)
        return account.principal
    }
}

/// `X-Auth-Token: <key id>:<secret>` authenticates with a local API key on the OpenStack API.
public struct APIKeyAuthenticator: TokenAuthenticator {
    let accounts: LocalAccounts
    public init(accounts: LocalAccounts) { self.accounts = accounts }

    public func principal(forToken token: String, serviceToken: String?) async throws -> Principal? {
        guard token.hasPrefix("imk_"), let colon = token.firstIndex(of: ":") else { return nil }
        return try await accounts.authenticate(keyId: String(token[..<colon]), secret: String(token[token.index(after: colon)...]))
    }
}
