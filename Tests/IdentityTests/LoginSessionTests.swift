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
        let sessions = LoginSessions(accounts: accounts, scope: .avi, lifetime: 60)

        let missing = try await sessions.login(name: "ops", password: "wrong-pass")
        let unknown = try await sessions.login(name: "nobody", password: "s3cret-pass")
        #expect(missing == nil && unknown == nil)

        let opened = try #require(try await sessions.login(name: "ops", password: "s3cret-pass"))
        #expect(opened.principal.projectId == "infra" && opened.principal.roles.contains("member") && !opened.principal.isAdmin)
        #expect(opened.sessionId.count >= 43 && opened.csrfToken.count >= 32 && opened.sessionId != opened.csrfToken)
        // Only a hash of the id is stored.
        let stored = try #require(try await catalog.session(idHash: sessions.hash(opened.sessionId)))
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
        try await catalog.insertSession(LoginSession(idHash: sessions.hash("old"), accountName: "ops", csrfToken: "c",
                                                     createdAt: 1, expiresAt: Timestamp.now() - 1))
        let old = try await sessions.resume(sessionId: "old")
        #expect(old == nil)

        try await sessions.logout(sessionId: opened.sessionId)
        let afterLogout = try await sessions.resume(sessionId: opened.sessionId)
        #expect(afterLogout == nil)
    }

    /// A session is known only to its own front-end's scope: an Avi sid is not a ZStack or Danube
    /// session (and the reverse), and each scope's lifetime is its own.
    @Test func sessionsAreScopedToTheirFrontEnd() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imaged-scope-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try SQLiteCatalog(path: dir + "/catalog.sqlite")
        let accounts = LocalAccounts(catalog: catalog, iterations: 1000)
        let account = try await accounts.create(name: "ops", project: "infra", roles: ["member"], password: "s3cret-pass")
        let avi = LoginSessions(accounts: accounts, scope: .avi, lifetime: 86_400)
        let zstack = LoginSessions(accounts: accounts, scope: .zstack, lifetime: 7200)
        let danube = LoginSessions(accounts: accounts, scope: .danube, lifetime: 60)

        let aviSid = try #require(try await avi.login(name: "ops", password: "s3cret-pass")).sessionId
        let zsid = try await zstack.open(accountName: "ops", principal: account.principal, hexBytes: 16)
        let token = try await danube.open(accountName: "ops", principal: account.principal, hexBytes: 20)
        #expect(token.expiresAt - Timestamp.now() <= 60 && zsid.expiresAt - Timestamp.now() > 60)

        let aviAtZStack = try await zstack.resume(sessionId: aviSid)
        let aviAtDanube = try await danube.resume(sessionId: aviSid)
        let zsAtAvi = try await avi.resume(sessionId: zsid.sessionId)
        let zsAtDanube = try await danube.resume(sessionId: zsid.sessionId)
        let tokenAtAvi = try await avi.resume(sessionId: token.sessionId)
        let tokenAtZStack = try await zstack.resume(sessionId: token.sessionId)
        #expect(aviAtZStack == nil && aviAtDanube == nil && zsAtAvi == nil && zsAtDanube == nil && tokenAtAvi == nil && tokenAtZStack == nil)
        let own = [try await avi.resume(sessionId: aviSid), try await zstack.resume(sessionId: zsid.sessionId),
                   try await danube.resume(sessionId: token.sessionId)]
        #expect(own.allSatisfy { $0?.principal.userName == "ops" })

        // Another scope's logout does not end a session either.
        try await zstack.logout(sessionId: aviSid)
        let stillThere = try await avi.resume(sessionId: aviSid)
        #expect(stillThere != nil)
        #expect(avi.hash("x") != zstack.hash("x") && avi.hash("x").hasPrefix("sha256$avi$"))
    }
}
