import CatalogSQLite
import Foundation
import ImageCore
import Testing
@testable import Identity

@Suite struct LocalAccountTests {
    @Test func passwordRecordsVerifyOnlyTheirPassword() throws {
        let record = try PasswordHash.make("correct horse", iterations: 1000)
        let parts = record.split(separator: "$")
        #expect(parts.count == 4 && parts[0] == "pbkdf2-sha256-sha512hex" && parts[1] == "1000")
        #expect(!record.contains("correct horse"))
        #expect(PasswordHash.verify("correct horse", against: record))
        #expect(!PasswordHash.verify("correct horsf", against: record))
        #expect(!PasswordHash.verify("", against: record))
        // Same password, fresh salt: a different record.
        #expect(try PasswordHash.make("correct horse", iterations: 1000) != record)
        // Tampered or foreign records never verify.
        #expect(!PasswordHash.verify("correct horse", against: record.replacingOccurrences(of: "$1000$", with: "$1001$")))
        #expect(!PasswordHash.verify("correct horse", against: "md5$x$y$z"))
        #expect(!PasswordHash.verify("correct horse", against: "pbkdf2-sha256$0$AA==$AA=="))
        #expect(!PasswordHash.verify("correct horse", against: "garbage"))
        #expect(PasswordHash.defaultIterations >= 600_000)
    }

    /// ZStack logs in with the SHA-512 hex of the password: the same record verifies it, and only it.
    @Test func recordsVerifyTheSHA512FormToo() throws {
        let record = try PasswordHash.make("correct horse", iterations: 1000)
        let hex = Secrets.sha512Hex("correct horse")
        #expect(hex.count == 128 && hex.hasPrefix("56b6"))  // sha512("correct horse"), as hashlib computes it
        #expect(PasswordHash.verify(sha512Hex: hex, against: record))
        #expect(PasswordHash.verify(sha512Hex: hex.uppercased(), against: record))
        #expect(!PasswordHash.verify(sha512Hex: Secrets.sha512Hex("correct horsf"), against: record))
        #expect(!PasswordHash.verify(sha512Hex: "correct horse", against: record))
        // The hex is not a clear password that verifies (it would double-hash).
        #expect(!PasswordHash.verify(hex, against: record))
        // A record made over the clear password (before SHA-512 records) verifies clear passwords only.
        let legacy = try legacyRecord("correct horse")
        #expect(PasswordHash.isLegacy(legacy) && !PasswordHash.isLegacy(record))
        #expect(PasswordHash.verify("correct horse", against: legacy))
        #expect(!PasswordHash.verify(sha512Hex: hex, against: legacy))
    }

    /// The pre-SHA-512 record layout, for upgrade tests.
    func legacyRecord(_ password: String, iterations: UInt32 = 1000) throws -> String {
        let salt = try Secrets.randomBytes(16)
        let key = try PasswordHash.derive(password, salt: salt, iterations: iterations)
        return "pbkdf2-sha256$\(iterations)$\(Data(salt).base64EncodedString())$\(Data(key).base64EncodedString())"
    }

    @Test func aClearPasswordLoginRewritesALegacyRecord() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imaged-acc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try SQLiteCatalog(path: dir + "/catalog.sqlite")
        let accounts = LocalAccounts(catalog: catalog, iterations: 1000)
        var account = try await accounts.create(name: "old", project: "p1", roles: ["member"], password: nil)
        account.passwordHash = try legacyRecord("old-password")
        try await catalog.updateAccount(account)
        let hex = Secrets.sha512Hex("old-password")
        #expect(try await accounts.authenticate(name: "old", passwordSHA512: hex) == nil)
        #expect(try await accounts.authenticate(name: "old", password: "old-password")?.userId == account.userId)
        let stored = try await catalog.account(name: "old")?.passwordHash ?? ""
        #expect(stored.hasPrefix("pbkdf2-sha256-sha512hex$1000$"))
        let (found, principal) = try #require(try await accounts.authenticate(name: "old", passwordSHA512: hex))
        #expect(found.name == "old" && principal.projectId == "p1")
        #expect(try await accounts.authenticate(name: "old", passwordSHA512: Secrets.sha512Hex("wrong")) == nil)
        #expect(try await accounts.authenticate(name: "nobody", passwordSHA512: hex) == nil)
    }

    /// RFC 6070-style vector for PBKDF2-HMAC-SHA256 (password "password", salt "salt", 1 iteration).
    @Test func pbkdf2MatchesTheStandardVector() throws {
        let key = try PasswordHash.derive("password", salt: Array("salt".utf8), iterations: 1, length: 32)
        #expect(Secrets.hex(key) == "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b")
        let k2 = try PasswordHash.derive("password", salt: Array("salt".utf8), iterations: 4096, length: 32)
        #expect(Secrets.hex(k2) == "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a")
    }

    @Test func accountsKeysAndWhatTheCatalogKeeps() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imaged-acc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try SQLiteCatalog(path: dir + "/catalog.sqlite")
        let accounts = LocalAccounts(catalog: catalog, iterations: 2000)
        let password = "pw-\(UUID().uuidString)"
        let a = try await accounts.create(name: "ops", project: "p1", roles: ["Member", "member"], password: password)
        #expect(a.roles == ["member"] && a.projectId == "p1" && a.userId.count == 32)
        await #expect(throws: ImageError.self) { _ = try await accounts.create(name: "ops", project: "p2", roles: ["reader"], password: nil) }
        await #expect(throws: IdentityError.self) { _ = try await accounts.create(name: "bad name", project: "p", roles: ["reader"], password: nil) }
        await #expect(throws: IdentityError.self) { _ = try await accounts.create(name: "x", project: "p", roles: [], password: nil) }
        await #expect(throws: IdentityError.self) { _ = try await accounts.create(name: "y", project: "p", roles: ["reader"], password: "short") }

        let p = try #require(try await accounts.authenticate(name: "ops", password: password))
        #expect(p.userId == a.userId && p.projectId == "p1" && p.roles == ["member", "reader"] && p.userName == "ops")
        #expect(try await accounts.authenticate(name: "ops", password: password + "x") == nil)
        #expect(try await accounts.authenticate(name: "nobody", password: password) == nil)

        let (keyId, secret) = try await accounts.createKey(accountName: "ops")
        #expect(keyId.hasPrefix("imk_") && secret.count == 43)
        let viaKey = APIKeyAuthenticator(accounts: accounts)
        #expect(try await viaKey.principal(forToken: "\(keyId):\(secret)")?.userId == a.userId)
        // A forged secret differs in its last character (never equal to the real one by chance).
        let forgedLast: Character = secret.last == "A" ? "B" : "A"
        #expect(try await viaKey.principal(forToken: "\(keyId):\(secret.dropLast())\(forgedLast)") == nil)
        #expect(try await viaKey.principal(forToken: "imk_00:\(secret)") == nil)
        #expect(try await viaKey.principal(forToken: secret) == nil)

        try await accounts.setPassword(name: "ops", password: "a-new-password")
        #expect(try await accounts.authenticate(name: "ops", password: password) == nil)
        #expect(try await accounts.authenticate(name: "ops", password: "a-new-password") != nil)

        // Neither the passwords nor the secret are anywhere in the database files.
        for file in try FileManager.default.contentsOfDirectory(atPath: dir) {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + file))
            for needle in [password, "a-new-password", secret] {
                #expect(bytes.range(of: Data(needle.utf8)) == nil, "\(needle) found in \(file)")
            }
        }

        #expect(try await catalog.deleteAPIKey(id: keyId))
        #expect(try await viaKey.principal(forToken: "\(keyId):\(secret)") == nil)
        #expect(try await catalog.deleteAccount(name: "ops"))
        #expect(try await accounts.authenticate(name: "ops", password: "a-new-password") == nil)
    }
}

/// The console's account administration: admins only, the CLI's rules, secrets shown once.
@Suite struct AccountAdministrationTests {
    @Test func onlyAnAdminManagesAccountsAndNobodyDeletesTheirOwn() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imaged-adm-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try SQLiteCatalog(path: dir + "/catalog.sqlite")
        let admin = AccountAdministration(accounts: LocalAccounts(catalog: catalog, iterations: 1000))
        let root = Principal(userId: "u0", projectId: "admin", roles: ["admin"], userName: "root")
        let member = Principal(userId: "u1", projectId: "p1", roles: ["member"], userName: "mia")
        func refused(_ work: () async throws -> Void) async -> String? {
            do { try await work(); return nil } catch let r as AccountAdministration.Refused { return r.description } catch { return "\(error)" }
        }
        #expect(await refused { _ = try await admin.list(by: member) } == "Only an admin may manage accounts.")
        #expect(await refused { _ = try await admin.create(name: "x", project: "p", role: "member", password: nil, by: member) } != nil)
        #expect(try await catalog.accounts().isEmpty)

        let created = try await admin.create(name: "carol", project: "p-c", role: "reader", password: "long-enough", by: root)
        #expect(created.roles == ["reader"] && created.passwordHash != nil)
        #expect(await refused { _ = try await admin.create(name: "carol", project: "p-c", role: "reader", password: nil, by: root) }
            == "An account named carol exists already.")
        #expect(await refused { _ = try await admin.create(name: "bad name", project: "p", role: "member", password: nil, by: root) }?
            .hasPrefix("Account name 'bad name' must be") == true)
        #expect(await refused { _ = try await admin.create(name: "dave", project: "p", role: "owner", password: nil, by: root) }
            == "The role must be admin, member or reader.")
        #expect(await refused { _ = try await admin.create(name: "erin", project: "p", role: "member", password: "short", by: root) } != nil)

        let key = try await admin.createKey(accountName: "carol", by: root)
        let listed = try await admin.list(by: root)
        #expect(listed.map(\.account.name) == ["carol"] && listed[0].keys.map(\.keyId) == [key.keyId] && listed[0].hasPassword)
        #expect(!listed[0].keys[0].secretHash.contains(key.secret))
        #expect(await refused { _ = try await admin.createKey(accountName: "nobody", by: root) } == "There is no account named nobody.")
        #expect(await refused { try await admin.deleteKey(id: key.keyId, by: member) } != nil)
        try await admin.deleteKey(id: key.keyId, by: root)
        #expect(try await catalog.apiKeys(accountName: "carol").isEmpty)

        _ = try await admin.create(name: "root", project: "admin", role: "admin", password: nil, by: root)
        #expect(await refused { try await admin.delete(name: "root", by: root) } == "You cannot delete the account you are logged in with.")
        try await admin.delete(name: "carol", by: root)
        #expect(try await catalog.account(name: "carol") == nil)
        #expect(await refused { try await admin.delete(name: "carol", by: root) } == "There is no account named carol.")
    }
}
