import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageCore
import Synchronization
import Testing
@testable import Identity

/// A scripted Keystone for the client's unit tests (the end-to-end suite runs the real one):
/// issues service tokens for one service user and validates a table of user tokens.
final class ScriptedKeystone: Sendable {
    struct State {
        var valid: [String: (project: String, roles: [String], expires: String)] = [:]
        var expired: Set<String> = []
        var serviceTokens: Set<String> = []
        var issued = 0
        var validations = 0
        var lastAllowExpired = false
    }
    let state = Mutex(State())

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/v3/auth/tokens") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 16)
            let doc = try JSONValue.parse(body.readableBytesView)
            let user = doc["auth"]?["identity"]?["password"]?["user"]
            guard user?["name"] == .string("imaged"), user?["password"] == .string("service-secret") else {
                return Response(status: .unauthorized)
            }
            let token = self.state.withLock { s -> String in
                s.issued += 1
                let t = "svc-\(s.issued)"
                s.serviceTokens.insert(t)
                return t
            }
            return Response(status: .created, headers: [HTTPField.Name("X-Subject-Token")!: token, .contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: #"{"token":{"expires_at":"2099-01-01T00:00:00.000000Z"}}"#)))
        }
        router.get("/v3/auth/tokens") { request, _ -> Response in
            let auth = request.headers[HTTPField.Name("X-Auth-Token")!] ?? ""
            let subject = request.headers[HTTPField.Name("X-Subject-Token")!] ?? ""
            let allowExpired = request.uri.query?.contains("allow_expired=1") == true
            let answer = self.state.withLock { s -> (HTTPResponse.Status, String) in
                s.validations += 1
                s.lastAllowExpired = allowExpired
                guard s.serviceTokens.contains(auth) else { return (.unauthorized, "") }
                var entry = s.valid[subject]
                if entry == nil, allowExpired, s.expired.contains(subject) {
                    entry = ("pa", ["member"], "2000-01-01T00:00:00.000000Z")
                }
                guard let e = entry else { return (.notFound, "") }
                let roles = e.roles.map { #"{"id":"r-\#($0)","name":"\#($0)"}"# }.joined(separator: ",")
                return (.ok, #"{"token":{"expires_at":"\#(e.expires)","user":{"id":"u-\#(subject)","name":"n-\#(subject)","domain":{"id":"default","name":"Default"}},"project":{"id":"\#(e.project)","name":"proj-\#(e.project)","domain":{"id":"default"}},"roles":[\#(roles)]}}"#)
            }
            return Response(status: answer.0, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: answer.1)))
        }
        return router
    }
}

func withKeystone(_ test: @Sendable (ScriptedKeystone, Int) async throws -> Void) async throws {
    let keystone = ScriptedKeystone()
    let app = Application(router: keystone.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    try await app.test(.live) { client in try await test(keystone, client.port!) }
}

func authenticator(_ port: Int, cache: Double = 300) -> KeystoneAuthenticator {
    var c = KeystoneConfig(authURL: "http://127.0.0.1:\(port)/v3/", username: "imaged", password: "service-secret", projectName: "service")
    c.cacheSeconds = cache
    return KeystoneAuthenticator(config: c)
}

@Suite struct KeystoneAuthenticatorTests {
    @Test func validTokenBecomesAPrincipalAndIsCached() async throws {
        try await withKeystone { ks, port in
            ks.state.withLock { $0.valid["t1"] = ("pa", ["Member"], "2099-01-01T00:00:00Z") }
            let auth = authenticator(port)
            let p = try #require(try await auth.principal(forToken: "t1"))
            #expect(p.userId == "u-t1" && p.userName == "n-t1" && p.projectId == "pa" && p.projectName == "proj-pa")
            #expect(p.domainId == "default")
            #expect(p.roles == ["member", "reader"])   // lower-cased, implied reader added
            // Concurrent and repeated lookups reuse the one validation.
            try await withThrowingTaskGroup(of: Principal?.self) { g in
                for _ in 0..<200 { g.addTask { try await auth.principal(forToken: "t1") } }
                for try await q in g { #expect(q == p) }
            }
            #expect(ks.state.withLock { $0.validations } == 1)
            #expect(ks.state.withLock { $0.issued } == 1)
        }
    }

    @Test func unknownTokensAreRefusedAndRefusalsAreCachedToo() async throws {
        try await withKeystone { ks, port in
            let auth = authenticator(port)
            let refused98 = try await auth.principal(forToken: "nope")
            #expect(refused98 == nil)
            let refused99 = try await auth.principal(forToken: "nope")
            #expect(refused99 == nil)
            let refused100 = try await auth.principal(forToken: "")
            #expect(refused100 == nil)
            #expect(ks.state.withLock { $0.validations } == 1)
        }
    }

    @Test func revocationIsSeenOnceTheCacheTTLPasses() async throws {
        try await withKeystone { ks, port in
            ks.state.withLock { $0.valid["t2"] = ("pa", ["reader"], "2099-01-01T00:00:00Z") }
            let auth = authenticator(port, cache: 1)
            let v112 = try await auth.principal(forToken: "t2")
            #expect(v112 != nil)
            _ = ks.state.withLock { $0.valid.removeValue(forKey: "t2") }
            let v114 = try await auth.principal(forToken: "t2")   // still cached
            #expect(v114 != nil)
            try await Task.sleep(for: .milliseconds(1200))
            let refused113 = try await auth.principal(forToken: "t2")
            #expect(refused113 == nil)
        }
    }

    @Test func cacheNeverOutlivesTheTokensExpiry() async throws {
        try await withKeystone { ks, port in
            let soon = Timestamp.format(Timestamp.now() + 4)
            ks.state.withLock { $0.valid["t3"] = ("pa", ["member"], soon) }
            let auth = authenticator(port, cache: 300)
            let v126 = try await auth.principal(forToken: "t3")
            #expect(v126 != nil)
            try await Task.sleep(for: .milliseconds(5100))
            // Keystone would now answer 404; the cache must not keep saying yes for 300 s.
            _ = ks.state.withLock { $0.valid.removeValue(forKey: "t3") }
            let refused126 = try await auth.principal(forToken: "t3")
            #expect(refused126 == nil)
        }
    }

    @Test func aRevokedServiceTokenIsReplacedOnce() async throws {
        try await withKeystone { ks, port in
            ks.state.withLock { $0.valid["t4"] = ("pa", ["member"], "2099-01-01T00:00:00Z") }
            let auth = authenticator(port)
            let v139 = try await auth.principal(forToken: "t4")
            #expect(v139 != nil)
            ks.state.withLock { $0.serviceTokens.removeAll() }   // Keystone forgot our token
            ks.state.withLock { $0.valid["t5"] = ("pb", ["member"], "2099-01-01T00:00:00Z") }
            let v142 = try await auth.principal(forToken: "t5")
            #expect(v142?.projectId == "pb")
            #expect(ks.state.withLock { $0.issued } == 2)
        }
    }

    @Test func serviceTokenWithServiceRoleVouchesForAnExpiredUserToken() async throws {
        try await withKeystone { ks, port in
            ks.state.withLock { s in
                s.valid["nova"] = ("service", ["service"], "2099-01-01T00:00:00Z")
                s.valid["plain"] = ("pb", ["member"], "2099-01-01T00:00:00Z")
                s.expired.insert("old-user")
            }
            let auth = authenticator(port)
            let refused150 = try await auth.principal(forToken: "old-user")
            #expect(refused150 == nil)
            let refused151 = try await auth.principal(forToken: "old-user", serviceToken: "plain")   // no service role
            #expect(refused151 == nil)
            #expect(!ks.state.withLock { $0.lastAllowExpired })
            let p = try await auth.principal(forToken: "old-user", serviceToken: "nova")
            #expect(p?.projectId == "pa")
            #expect(p?.roles.contains("service") == true)  // Glance's service_roles, for role:service rules
            #expect(ks.state.withLock { $0.lastAllowExpired })
            let vouchedByPlain = try await auth.principal(forToken: "nova", serviceToken: "plain")
            #expect(vouchedByPlain?.userId != nil && vouchedByPlain?.roles.contains("member") == false)
            let refused156 = try await auth.principal(forToken: "old-user", serviceToken: "forged")
            #expect(refused156 == nil)
        }
    }

    @Test func wrongServiceCredentialsAndUnreachableKeystoneAre503() async throws {
        try await withKeystone { _, port in
            var c = KeystoneConfig(authURL: "http://127.0.0.1:\(port)", username: "imaged", password: "wrong", projectName: "service")
            c.cacheSeconds = 300
            let auth = KeystoneAuthenticator(config: c)
            await #expect(throws: ImageError(.unavailable, "The identity service refused imaged's service credentials (HTTP 401).")) {
                _ = try await auth.principal(forToken: "t")
            }
        }
        var c = KeystoneConfig(authURL: "http://127.0.0.1:9", username: "imaged", password: "x", projectName: "service")
        c.requestTimeout = .seconds(2)
        await #expect(throws: ImageError(.unavailable, "The identity service is unreachable.")) {
            _ = try await KeystoneAuthenticator(config: c).principal(forToken: "t")
        }
    }

    @Test func baseURLNormalisation() {
        for url in ["http://k:5000", "http://k:5000/", "http://k:5000/v3", "http://k:5000/v3/"] {
            #expect(KeystoneConfig(authURL: url, username: "", password: "", projectName: "").baseURL == "http://k:5000")
        }
    }
}

/// glance-download's lookup in a token's service catalog (Keystone v3 shape).
@Suite struct KeystoneCatalogTests {
    @Test func findsTheImageEndpointOfARegionAndInterface() throws {
        let catalog = try JSONValue.parse(#"""
            [{"type":"identity","endpoints":[{"region_id":"RegionTwo","interface":"public","url":"http://ks"}]},
             {"type":"image","endpoints":[{"region_id":"RegionOne","region":"RegionOne","interface":"public","url":"http://one:9292"},
                                          {"region_id":"RegionTwo","region":"RegionTwo","interface":"internal","url":"http://two-int:9292"},
                                          {"region_id":"RegionTwo","region":"RegionTwo","interface":"public","url":"http://two:9292/"}]}]
            """#)
        #expect(KeystoneAuthenticator.imageEndpoint(in: catalog, region: "regiontwo", interface: "public") == "http://two:9292")
        #expect(KeystoneAuthenticator.imageEndpoint(in: catalog, region: "RegionTwo", interface: "internal") == "http://two-int:9292")
        #expect(KeystoneAuthenticator.imageEndpoint(in: catalog, region: "RegionThree", interface: "public") == nil)
        #expect(KeystoneAuthenticator.imageEndpoint(in: catalog, region: "RegionTwo", interface: "admin") == nil)
        #expect(KeystoneAuthenticator.imageEndpoint(in: nil, region: "RegionTwo", interface: "public") == nil)
    }
}
