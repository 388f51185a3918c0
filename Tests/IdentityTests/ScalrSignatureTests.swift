import Foundation
import Testing
@testable import Identity

/// Scalr's worked examples (reference §2.4) and each refusal of §2.3.
@Suite struct ScalrSignatureTests {
    static let keyId = "APIK0123456789ABCDEF"
    static let secret = "Zm9vYmFyYmF6cXV4c2VjcmV0a2V5MDEyMzQ1Njc4"
    static let registerBody = #"{"name":"ubuntu-1604-base","cloudPlatform":"ec2","cloudLocation":"us-east-1","cloudImageId":"ami-0a1b2c3d","architecture":"x86_64","os":{"id":"ubuntu-16-04"}}"#

    @Test func theWorkedExamplesVerify() {
        #expect(ScalrSignature.canonicalQuery("cloudPlatform=ec2&maxResults=10&cloudLocation=us-east-1") == "cloudLocation=us-east-1&cloudPlatform=ec2&maxResults=10")
        let sts = ScalrSignature.stringToSign(method: "get", date: "2016-09-26T19:19:12Z", path: "/api/v1beta0/user/2/images/",
                                              query: "cloudPlatform=ec2&maxResults=10&cloudLocation=us-east-1", body: [])
        #expect(String(decoding: sts, as: UTF8.self) == "GET\n2016-09-26T19:19:12Z\n/api/v1beta0/user/2/images/\ncloudLocation=us-east-1&cloudPlatform=ec2&maxResults=10\n")
        #expect(ScalrSignature.sign(secret: Self.secret, method: "GET", date: "2016-09-26T19:19:12Z", path: "/api/v1beta0/user/2/images/",
                                    query: "cloudPlatform=ec2&maxResults=10&cloudLocation=us-east-1", body: [])
                == "V1-HMAC-SHA256 r3VAv5Fl9+GJS2PoNLfWTXRDz0kIKKFpmEAzu8HjFew=")
        #expect(Array(Self.registerBody.utf8).count == 158)
        #expect(ScalrSignature.sign(secret: Self.secret, method: "POST", date: "2016-09-26T19:20:00Z", path: "/api/v1beta0/global/images/",
                                    query: nil, body: Array(Self.registerBody.utf8)) == "V1-HMAC-SHA256 2ZSq8J6f5gus1df2+ZuJHHSTvuRLXHlojDV8YXXFdyU=")
        #expect(ScalrSignature.canonicalQuery("name=my%20image%2Fv1") == "name=my%20image%2Fv1")
        #expect(ScalrSignature.canonicalQuery("name=my+image/v1") == "name=my%20image%2Fv1")
        #expect(ScalrSignature.sign(secret: Self.secret, method: "GET", date: "2016-09-26T19:19:12Z", path: "/api/v1beta0/user/2/images/",
                                    query: "name=my%20image%2Fv1", body: []) == "V1-HMAC-SHA256 AITQkILU41szMlRuMmLWLdwI/4JxAzLX5xWFcjNRCMo=")
        #expect(ScalrSignature.sign(secret: Self.secret, method: "DELETE", date: "2016-09-26T19:25:30Z",
                                    path: "/api/v1beta0/user/2/images/7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d/", query: "deleteFromCloud=true", body: [])
                == "V1-HMAC-SHA256 8G703fXfvAraSzTQAM3rPmDu1DMHsPfNGaSE+WmDqx8=")
        // The last of a repeated name wins.
        #expect(ScalrSignature.canonicalQuery("b=1&a=2&b=3") == "a=2&b=3")
    }

    func verify(keyId: String? = keyId, date: String? = "2016-09-26T19:20:00Z", signature: String?, query: String? = nil,
                body: String = registerBody, now: String = "2016-09-26T19:21:00Z", secret: String = secret) async throws -> String {
        try await ScalrSignature.verify(keyId: keyId, date: date, signature: signature, method: "POST", path: "/api/v1beta0/global/images/",
                                        query: query, body: Array(body.utf8), now: ScalrSignature.parseDate(now)!) { id in
            id == Self.keyId ? secret : nil
        }
    }

    @Test func eachRefusalIsScalrs() async throws {
        let good = "V1-HMAC-SHA256 2ZSq8J6f5gus1df2+ZuJHHSTvuRLXHlojDV8YXXFdyU="
        #expect(try await verify(signature: good) == Self.keyId)
        // Dates with offsets and fractions name the same instant; whitespace in the header is dropped.
        #expect(ScalrSignature.parseDate("2016-09-26T21:20:00+02:00") == ScalrSignature.parseDate("2016-09-26T19:20:00.000Z"))
        await #expect(throws: ScalrSignature.Refusal.unsigned) { _ = try await verify(keyId: nil, signature: good) }
        await #expect(throws: ScalrSignature.Refusal.unsigned) { _ = try await verify(signature: nil) }
        await #expect(throws: ScalrSignature.Refusal.badDate) { _ = try await verify(date: nil, signature: good) }
        await #expect(throws: ScalrSignature.Refusal.badDate) { _ = try await verify(date: "yesterday", signature: good) }
        await #expect(throws: ScalrSignature.Refusal.badPrefix) { _ = try await verify(signature: "V2-HMAC-SHA256 abc") }
        await #expect(throws: ScalrSignature.Refusal.unknownKey) { _ = try await verify(keyId: "APIKNOPE", signature: good) }
        // 300 s is still fine, 301 s is not (either direction).
        #expect(try await verify(signature: good, now: "2016-09-26T19:25:00Z") == Self.keyId)
        await #expect(throws: ScalrSignature.Refusal.expired) { _ = try await verify(signature: good, now: "2016-09-26T19:25:01Z") }
        await #expect(throws: ScalrSignature.Refusal.expired) { _ = try await verify(signature: good, now: "2016-09-26T19:14:59Z") }
        // A wrong secret, a changed body, a different query each fail.
        await #expect(throws: ScalrSignature.Refusal.mismatch) { _ = try await verify(signature: good, secret: Self.secret + "x") }
        await #expect(throws: ScalrSignature.Refusal.mismatch) { _ = try await verify(signature: good, body: Self.registerBody + " ") }
        await #expect(throws: ScalrSignature.Refusal.mismatch) { _ = try await verify(signature: good, query: "a=1") }
    }

    /// Found by Fuzz/FuzzScalr: a date with a long fraction made ICU's parser trap (SIGFPE), killing the server
    /// before any key was looked up. Such dates are refused (400) like any other unreadable date.
    @Test func datesOfEveryShapeAreReadOrRefusedWithoutTrapping() async throws {
        for digits in [34, 35, 40, 100, 1000] {
            let date = "2024-01-01T00:00:00." + String(repeating: "7", count: digits) + "+02:00"
            #expect(ScalrSignature.parseDate(date) == nil)
            await #expect(throws: ScalrSignature.Refusal.badDate) { _ = try await verify(date: date, signature: "V1-HMAC-SHA256 x") }
        }
        let reference = ScalrSignature.parseDate("2016-09-26T19:20:00Z")
        #expect(reference != nil)
        for same in ["2016-09-26T19:20:00.000Z", "2016-09-26T19:20:00.000000Z", "2016-09-26T19:20:00.000000000Z",
                     "2016-09-26T21:20:00+02:00", "2016-09-26T17:20:00.000000-02:00", " 2016-09-26T19:20:00Z "] {
            #expect(ScalrSignature.parseDate(same) == reference, "\(same)")
        }
        for refused in ["2016-09-26T19:20:00.0000000000Z", "2016-09-26T19:20:00.Z", "2016-09-26 19:20:00Z", "2016-09-26T19:20Z",
                        "2016-09-26T19:20:00", "20160-09-26T19:20:00Z", "2016-09-26T19:20:00+2:00", "2016-09-26T19:20:00Zjunk", ""] {
            #expect(ScalrSignature.parseDate(refused) == nil, "\(refused)")
        }
    }

    @Test func sealedSecretsOpenOnlyWithTheirKeyAndId() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sealer-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: IdentityError.self) { _ = try SecretSealer.load(path: dir + "/secret.key", create: false) }
        let sealer = try SecretSealer.load(path: dir + "/secret.key", create: true)
        let mode = try FileManager.default.attributesOfItem(atPath: dir + "/secret.key")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let sealed = try sealer.seal(Self.secret, context: Self.keyId)
        #expect(sealed.hasPrefix("aes256gcm$") && !sealed.contains(Self.secret))
        #expect(try sealer.seal(Self.secret, context: Self.keyId) != sealed)  // fresh nonce every time
        #expect(try SecretSealer.load(path: dir + "/secret.key", create: false).open(sealed, context: Self.keyId) == Self.secret)
        #expect(sealer.open(sealed, context: "APIKOTHER") == nil)
        #expect(try SecretSealer(keyBytes: Array(repeating: 7, count: 32)).open(sealed, context: Self.keyId) == nil)
        #expect(sealer.open("aes256gcm$AAAA", context: Self.keyId) == nil && sealer.open("plain", context: Self.keyId) == nil)
    }
}
