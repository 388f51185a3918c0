import ImageCore
import Testing
@testable import ImageData

/// Glance's `validation_data` rules for `POST /v2/images/{id}/locations` and the location policies.
@Suite struct LocationImportTests {
    func data(_ members: [(String, JSONValue)]) -> JSONValue { .object(members) }

    @Test func acceptsTheFourAlgorithmsWithDigestsOfTheirSize() throws {
        for (algo, bytes) in [("md5", 16), ("sha1", 20), ("sha256", 32), ("sha512", 64)] {
            let value = String(repeating: "aB", count: bytes)
            let checked = try LocationImport.validationData(data([("os_hash_algo", .string(algo)), ("os_hash_value", .string(value))]))
            #expect(checked?.algo == algo)
            #expect(checked?.value == value.lowercased())
        }
        #expect(try LocationImport.validationData(nil) == nil)
        #expect(try LocationImport.validationData(.object([])) == nil)
    }

    @Test func refusesWhatGlanceRefuses() {
        let sha256 = String(repeating: "ab", count: 32)
        let bad: [JSONValue] = [
            data([("os_hash_algo", .string("sha512")), ("os_hash_value", .string("dbc9e0f80d131e64b94913a7b40bb5"))]),  // too short
            data([("os_hash_value", .string(String(repeating: "ab", count: 64)))]),  // algo missing
            data([("os_hash_algo", .string("sha256"))]),  // value missing
            data([("os_hash_algo", .string("sha123")), ("os_hash_value", .string(sha256))]),
            data([("os_hash_algo", .string("sha512")), ("os_hash_value", .string(sha256))]),  // size of another algorithm
            data([("os_hash_algo", .string("sha256")), ("os_hash_value", .string(String(repeating: "zz", count: 32)))]),
            data([("os_hash_algo", .string("sha256")), ("os_hash_value", .string(String(repeating: "a", count: 63)))]),  // odd
            data([("os_hash_algo", .string("sha256")), ("os_hash_value", .string(sha256)), ("checksum", .string("x"))]),
            .string("sha256"),
        ]
        for body in bad {
            #expect(throws: ImageError.self, "\(body)") { try LocationImport.validationData(body) }
        }
    }

    @Test func onlyHTTPLocations() {
        #expect(LocationImport.acceptedScheme("http://h/x") && LocationImport.acceptedScheme("HTTPS://h/x"))
        for url in ["file:///etc/passwd", "s3://b/k", "rbd://a/b/c/d", "ftp://h/x", "httpx://h"] {
            #expect(!LocationImport.acceptedScheme(url), "\(url)")
        }
    }

    @Test func policiesFollowGlancesDefaults() {
        let owner = PolicyTarget(owner: "p1")
        let member = Principal(userId: "m", projectId: "p1", roles: ["member"])
        let reader = Principal(userId: "r", projectId: "p1", roles: ["reader"])
        let admin = Principal(userId: "a", projectId: "p2", roles: ["admin"])
        let service = Principal(userId: "nova", projectId: "service", roles: ["service"])
        #expect(Policy.allows(.addImageLocation, member, owner) && Policy.allows(.addImageLocation, service, owner))
        #expect(!Policy.allows(.addImageLocation, admin, owner) && !Policy.allows(.addImageLocation, reader, owner))
        #expect(Policy.allows(.fetchImageLocation, service, owner))
        #expect(!Policy.allows(.fetchImageLocation, admin, owner) && !Policy.allows(.fetchImageLocation, member, owner))
        #expect(Policy.allows(.deleteImageLocation, admin, owner) && !Policy.allows(.deleteImageLocation, member, owner))
        #expect(Policy.allows(.getImageLocation, reader, owner) && !Policy.allows(.getImageLocation, reader, PolicyTarget(owner: "p9")))
        #expect(Policy.allows(.storesInfoDetail, admin) && Policy.allows(.storesInfoDetail, service) && !Policy.allows(.storesInfoDetail, member))
    }
}
