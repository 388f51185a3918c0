import CatalogSQLite
import Foundation
import ImageCore
import Testing
@testable import Identity

@Suite struct LoginSessionTests {
    @Test func loginResumeLogoutAndWhatTheCatalogKeeps() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imaged-sess-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try SQLiteCatalog(path: dir + "/catalog.sqlite")
        let accounts = LocalAccounts(catalog: catalog, iterations: 1000)
        _ = try await accounts.create(name: "ops", project: "infra", roles: ["member"], password: "s3cret-pass")
        let sessions = LoginSessions(accounts: accounts, lifetime: 60)

        let missing = try await sessions.login(name: "ops", password: "wrong-pass")
        let unknown = try await sessions.login(name: "nobody", password: "s3cret-pass")
        #expect(missing == nil && unknown == nil)

        let opened = try #require(try await sessions.login(name: "ops", password: "s3cret-pass"))
        #expect(opened.principal.projectId == "infra" && opened.principal.roles.contains("member") && !opened.principal.isAdmin)
        #expect(opened.sessionId.count >= 43 && opened.csrfToken.count >= 32 && opened.sessionId != opened.csrfToken)
        // Only a hash of the id is stored.
        let stored = try #require(try await catalog.session(idHash: LoginSessions.hash(opened.sessionId)))
        #expect(stored.idHash != opened.sessionId && !stored.idHash.contains(opened.sessionId))
        #expect(stored.csrfToken == opened.csrfToken && stored.expiresAt == stored.createdAt + 60)

        let resumed = try #require(try await sessions.resume(sessionId: opened.sessionId))
        #expect(resumed.principal == opened.principal && resumed.csrfToken == opened.csrfToken)
        #expect(LoginSessions.csrfMatches(opened.csrfToken, resumed.csrfToken))
        #expect(!LoginSessions.csrfMatches(opened.csrfToken + "x", resumed.csrfToken))
        #expect(!LoginSessions.csrfMatches(nil, resumed.csrfToken))
        let forged = try await sessions.resume(sessionId: opened.sessionId + "x")
        #expect(forged == nil)

        // Expired sessions are not resumed.
        try await catalog.insertSession(LoginSession(idHash: LoginSessions.hash("old"), accountName: "ops", csrfToken: "c",
                                                     createdAt: 1, expiresAt: Timestamp.now() - 1))
        let old = try await sessions.resume(sessionId: "old")
        #expect(old == nil)

        try await sessions.logout(sessionId: opened.sessionId)
        let afterLogout = try await sessions.resume(sessionId: opened.sessionId)
        #expect(afterLogout == nil)
    }
}
