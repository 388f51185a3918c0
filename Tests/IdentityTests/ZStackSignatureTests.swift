import Foundation
import Testing
@testable import Identity

@Suite struct ZStackSignatureTests {
    static let date = "Thu, 03 Dec 2026 16:40:00 GMT"
    static let at: Int64 = 1_796_316_000

    @Test func signsMethodDateAndPathWithHMACSHA1() {
        // python: base64(hmac.new(secret, "GET\n<date>\n/v1/images", sha1).digest())
        #expect(ZStackSignature.sign(secret: "kgdTP1ZyE1X9bzGQwaBo", method: "get", date: Self.date, path: "/v1/images")
            == "LHznIRcefmi7bQRvxENFiZOFsvA=")
    }

    @Test func parsesTheDateForms() {
        #expect(ZStackSignature.parseDate(Self.date) == Self.at)
        #expect(ZStackSignature.parseDate("Thu, 03 Dec 2026 16:40:00 UTC") == Self.at)
        #expect(ZStackSignature.parseDate("Fri, 04 Dec 2026 00:40:00 +0800") == Self.at)
        #expect(ZStackSignature.parseDate("Fri, 04 Dec 2026 00:40:00 GMT+08:00") == Self.at)
        #expect(ZStackSignature.parseDate("Thu, 3 Dec 2026 11:40:00 -05:00") == Self.at)
        for bad in ["", "yesterday", "Thu, 03 Dec 2026 16:40:00", "Thu, 03 Foo 2026 16:40:00 GMT", "Thu, 03 Dec 2026 25:40:00 GMT",
                    "Thu, 03 Dec 2026 16:40:00 CEST", "2026-12-03T16:40:00Z", "Thu, 03 Dec 26 16:40:00 GMT", "Thu, 03 Dec 2026 16:40:00 +08"] {
            #expect(ZStackSignature.parseDate(bad) == nil, "\(bad)")
        }
    }

    @Test func readsTheCredential() throws {
        #expect(try ZStackSignature.credential("OAuth abc") == nil)
        let c = try #require(try ZStackSignature.credential("ZStack ZSKabc:c2ln+/=="))
        #expect(c.keyId == "ZSKabc" && c.signature == "c2ln+/==")
        #expect(throws: ZStackSignature.Refusal.malformed) { try ZStackSignature.credential("ZStack ZSKabc") }
        #expect(throws: ZStackSignature.Refusal.malformed) { try ZStackSignature.credential("ZStack :sig") }
    }

    @Test func verifiesInZStacksOrder() async throws {
        let secret = "kgdTP1ZyE1X9bzGQwaBo"
        let good = ZStackSignature.sign(secret: secret, method: "PUT", date: Self.date, path: "/v1/images/x/actions")
        func verify(_ sig: String = good, date: String? = ZStackSignatureTests.date, method: String = "PUT", path: String = "/v1/images/x/actions",
                    now: Int64 = ZStackSignatureTests.at, key: String? = secret) async throws -> String {
            try await ZStackSignature.verify(keyId: "ZSK1", signature: sig, date: date, method: method, path: path, now: now) { _ in key }
        }
        #expect(try await verify() == "ZSK1")
        #expect(try await verify(now: Self.at + 15 * 60) == "ZSK1")
        await #expect(throws: ZStackSignature.Refusal.skewed) { try await verify(now: Self.at + 15 * 60 + 1) }
        await #expect(throws: ZStackSignature.Refusal.skewed) { try await verify(now: Self.at - 16 * 60) }
        await #expect(throws: ZStackSignature.Refusal.badDate) { try await verify(date: nil) }
        await #expect(throws: ZStackSignature.Refusal.badDate) { try await verify(date: "soon") }
        await #expect(throws: ZStackSignature.Refusal.refused) { try await verify(key: nil) }
        await #expect(throws: ZStackSignature.Refusal.refused) { try await verify(method: "GET") }
        await #expect(throws: ZStackSignature.Refusal.refused) { try await verify(path: "/v1/images") }
        await #expect(throws: ZStackSignature.Refusal.refused) { try await verify(String(good.dropLast())) }
    }
}
