import Crypto
import Foundation
import HTTPTypes
import ImageCore
import Server
import Testing

func testBytes(_ count: Int, seed: UInt64 = 11) -> [UInt8] {
    var x = seed | 1
    return (0..<count).map { _ in
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        return UInt8(truncatingIfNeeded: x)
    }
}

func hexDigest(_ d: some Sequence<UInt8>) -> String { d.map { String(format: "%02x", $0) }.joined() }

extension API {
    func upload(_ id: String, _ data: [UInt8], token: String = Tok.alice, headers: [String: String] = [:]) async throws -> Reply {
        try await call(.put, "/v2/images/\(id)/file", token: token, bytes: data, contentType: "application/octet-stream", headers: headers)
    }

    func blobExists(_ id: String, staging: Bool = false) -> Bool {
        FileManager.default.fileExists(atPath: imaged.dataDirectory + "/blobs/\(staging ? "staging" : "images")/\(id)")
    }

    func temporaries() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: imaged.dataDirectory + "/blobs/.tmp")
    }

    func status(_ id: String) async throws -> String? { try await show(id, token: Tok.admin)["status"]?.stringValue }
}

@Suite struct DataAPITests {
    static let rawImage = #"{"name":"d","disk_format":"raw","container_format":"bare"}"#

    @Test func uploadThenDownloadIdenticalBytesWithDigests() async throws {
        try await withAPI { api in
            let data = testBytes(1_300_001)
            let id = try await api.create(Self.rawImage)
            let put = try await api.upload(id, data)
            #expect(put.status == .noContent, "\(put.text)")
            #expect(put.text.isEmpty)
            let image = try await api.show(id)
            #expect(image["status"] == .string("active"))
            #expect(image["size"] == .int(1_300_001))
            #expect(image["virtual_size"] == .int(1_300_001))
            #expect(image["checksum"]?.stringValue == hexDigest(Insecure.MD5.hash(data: data)))
            #expect(image["os_hash_algo"] == .string("sha512"))
            #expect(image["os_hash_value"]?.stringValue == hexDigest(SHA512.hash(data: data)))

            let get = try await api.call(.get, "/v2/images/\(id)/file")
            #expect(get.status == .ok)
            #expect(get.bytes == data)
            #expect(get.header("Content-Length") == "1300001")
            #expect(get.header("Content-Type") == "application/octet-stream")
            #expect(get.header("Content-MD5") == hexDigest(Insecure.MD5.hash(data: data)))
            // Another project's member can download a public image; a stranger can't see a private one.
            #expect(try await api.call(.get, "/v2/images/\(id)/file", token: Tok.bob).status == .notFound)
            #expect(try await api.call(.get, "/v2/images/\(id)/file", token: Tok.admin).bytes == data)
        }
    }

    @Test func rangesAndTheirErrors() async throws {
        try await withAPI { api in
            let data = testBytes(10_000, seed: 2)
            let id = try await api.create(Self.rawImage)
            #expect(try await api.upload(id, data).status == .noContent)
            let cases: [(String, Range<Int>)] = [("bytes=0-99", 0..<100), ("bytes=9990-", 9990..<10_000),
                                                 ("bytes=-25", 9975..<10_000), ("bytes=5000-99999", 5000..<10_000)]
            for (header, slice) in cases {
                let r = try await api.call(.get, "/v2/images/\(id)/file", headers: ["Range": header])
                #expect(r.status == .partialContent, "\(header)")
                #expect(r.bytes == Array(data[slice]), "\(header)")
                #expect(r.header("Content-Range") == "bytes \(slice.lowerBound)-\(slice.upperBound - 1)/10000", "\(header)")
                #expect(r.header("Content-Length") == String(slice.count))
            }
            let legacy = try await api.call(.get, "/v2/images/\(id)/file", headers: ["Content-Range": "bytes 10-19/*"])
            #expect(legacy.status == .partialContent && legacy.bytes == Array(data[10..<20]))
            #expect(try await api.call(.get, "/v2/images/\(id)/file", headers: ["Range": "bytes=10000-"]).status == .rangeNotSatisfiable)
            #expect(try await api.call(.get, "/v2/images/\(id)/file", headers: ["Range": "bytes=x-y"]).status == .rangeNotSatisfiable)
            // The image is looked up before the range is judged: a missing one is 404 whatever the Range says.
            let missing = try await api.call(.get, "/v2/images/00000000-0000-0000-0000-000000000000/file", headers: ["Range": "bytes=x-y"])
            #expect(missing.status == .notFound)
            // Methods nobody serves are Glance's 405 with Allow, not the router's empty 404.
            for method in [HTTPRequest.Method.options, .trace, HTTPRequest.Method("QUERY")!] {
                let r = try await api.call(method, "/v2/images/\(id)/file")
                #expect(r.status == .methodNotAllowed && r.header("Allow") == "GET, PUT", "\(method)")
            }
            let multi = try await api.call(.get, "/v2/images/\(id)/file", headers: ["Range": "bytes=0-1,5-6"])
            #expect(multi.status == .badRequest)
            #expect(try multi.json["message"]?.stringValue?.contains("Multiple ranges") == true || multi.text.contains("Multiple ranges"))
        }
    }

    @Test func uploadPreconditions() async throws {
        try await withAPI { api in
            // No data yet: 204 on download.
            let id = try await api.create(Self.rawImage)
            let empty = try await api.call(.get, "/v2/images/\(id)/file")
            #expect(empty.status == .noContent && empty.bytes.isEmpty)
            // Wrong media type.
            let wrongType = try await api.call(.put, "/v2/images/\(id)/file", bytes: [1, 2], contentType: "application/json")
            #expect(wrongType.status == .unsupportedMediaType)
            // Formats missing.
            let bare = try await api.create(#"{"name":"noformats"}"#)
            let noFormats = try await api.upload(bare, [1, 2, 3])
            #expect(noFormats.status == .badRequest)
            #expect(noFormats.text.contains("disk_format, container_format must be set"))
            #expect(try await api.status(bare) == "queued")
            // Someone else's image: 404 (invisible); reader role: 403.
            #expect(try await api.upload(id, [1], token: Tok.bob).status == .notFound)
            #expect(try await api.upload(id, [1], token: Tok.reader).status == .forbidden)
            // Active: 409, and the data is unchanged.
            #expect(try await api.upload(id, [1, 2, 3]).status == .noContent)
            let again = try await api.upload(id, [9, 9])
            #expect(again.status == .conflict)
            #expect(try await api.call(.get, "/v2/images/\(id)/file").bytes == [1, 2, 3])
            // A reader can see the image but not download it (Glance's download_image policy).
            #expect(try await api.call(.get, "/v2/images/\(id)/file", token: Tok.reader).status == .forbidden)
            // Bad size header.
            let other = try await api.create(Self.rawImage)
            #expect(try await api.upload(other, [1], headers: ["x-openstack-image-size": "-5"]).status == .badRequest)
            #expect(try await api.upload(other, [1], headers: ["x-openstack-image-size": "abc"]).status == .badRequest)
        }
    }

    @Test func sizeMismatchIs400AndNothingIsKept() async throws {
        try await withAPI { api in
            let id = try await api.create(Self.rawImage)
            let r = try await api.upload(id, testBytes(5000), headers: ["x-openstack-image-size": "6000"])
            #expect(r.status == .badRequest)
            #expect(r.text.contains("6000"))
            let image = try await api.show(id)
            #expect(image["status"] == .string("queued"))
            #expect(image["size"] == .null && image["checksum"] == .null)
            #expect(!api.blobExists(id))
            #expect(try api.temporaries().isEmpty)
            // The image is usable for a correct retry.
            #expect(try await api.upload(id, testBytes(5000)).status == .noContent)
            #expect(try await api.status(id) == "active")
        }
    }

    /// A refused disk image is never published: no blob, image queued, retry possible.
    @Test func formatRefusalIs415AndKeepsNothing() async throws {
        try await withAPI { api in
            let id = try await api.create(#"{"name":"q","disk_format":"qcow2","container_format":"bare"}"#)
            let r = try await api.upload(id, testBytes(100_000))
            #expect(r.status == .unsupportedMediaType)
            #expect(r.text.contains("does not match stream data raw"), "\(r.text)")
            #expect(try await api.status(id) == "queued")
            #expect(!api.blobExists(id))
            #expect(try api.temporaries().isEmpty)
            // Fix the declaration and retry with the same bytes.
            #expect(try await api.patch(id, #"[{"op":"replace","path":"/disk_format","value":"raw"}]"#).status == .ok)
            #expect(try await api.upload(id, testBytes(100_000)).status == .noContent)
            #expect(api.blobExists(id))
        }
    }

    /// Glance lets data be staged before the formats are set; the import then says 409.
    @Test func stagingWithoutFormatsThenImportIs409() async throws {
        try await withAPI { api in
            let id = try await api.create(#"{"name":"s"}"#)
            let staged = try await api.call(.put, "/v2/images/\(id)/stage", bytes: [1, 2, 3], contentType: "application/octet-stream")
            #expect(staged.status == .noContent)
            let r = try await api.call(.post, "/v2/images/\(id)/import", json: #"{"method":{"name":"glance-direct"}}"#)
            #expect(r.status == .conflict)
            #expect(r.text.contains("disk_format and container_format"))
            #expect(try await api.status(id) == "uploading")
        }
    }

    /// A digest the client states (Content-MD5, base64 or hex) must match, or nothing is kept.
    @Test func statedChecksumMismatchIs400AndKeepsNothing() async throws {
        try await withAPI { api in
            let data = testBytes(50_000)
            let md5 = Array(Insecure.MD5.hash(data: data))
            let id = try await api.create(Self.rawImage)
            let wrong = try await api.upload(id, data, headers: ["Content-MD5": hexDigest(Insecure.MD5.hash(data: [1, 2, 3]))])
            #expect(wrong.status == .badRequest)
            #expect(wrong.text.contains("Checksum verification failed"))
            #expect(try await api.status(id) == "queued")
            #expect(!api.blobExists(id))
            #expect(try api.temporaries().isEmpty)
            #expect(try await api.upload(id, data, headers: ["Content-MD5": "not-a-digest"]).status == .badRequest)
            let right = try await api.upload(id, data, headers: ["Content-MD5": Data(md5).base64EncodedString()])
            #expect(right.status == .noContent)
            #expect(try await api.show(id)["checksum"]?.stringValue == hexDigest(md5))
            // Hex works too.
            let other = try await api.create(Self.rawImage)
            #expect(try await api.upload(other, data, headers: ["Content-MD5": hexDigest(md5)]).status == .noContent)
        }
    }

    @Test func sizeCapIs413() async throws {
        try await withAPI(configure: { $0.imageSizeCap = 4096 }) { api in
            let id = try await api.create(Self.rawImage)
            let declared = try await api.upload(id, testBytes(100), headers: ["x-openstack-image-size": "5000"])
            #expect(declared.status == .contentTooLarge)
            let streamed = try await api.upload(id, testBytes(4097))
            #expect(streamed.status == .contentTooLarge)
            #expect(try await api.status(id) == "queued")
            #expect(!api.blobExists(id))
            #expect(try api.temporaries().isEmpty)
            #expect(try await api.upload(id, testBytes(4096)).status == .noContent)
        }
    }

    @Test func sha256WhenConfigured() async throws {
        try await withAPI(configure: { $0.hashAlgorithm = .sha256 }) { api in
            let data = testBytes(70_000)
            let id = try await api.create(Self.rawImage)
            #expect(try await api.upload(id, data).status == .noContent)
            let image = try await api.show(id)
            #expect(image["os_hash_algo"] == .string("sha256"))
            #expect(image["os_hash_value"]?.stringValue == hexDigest(SHA256.hash(data: data)))
        }
    }

    @Test func deactivatedDataIsAdminOnlyAndDeleteRemovesTheBlob() async throws {
        try await withAPI { api in
            let id = try await api.create(Self.rawImage)
            #expect(try await api.upload(id, [1, 2, 3, 4]).status == .noContent)
            #expect(try await api.call(.post, "/v2/images/\(id)/actions/deactivate").status == .noContent)
            let denied = try await api.call(.get, "/v2/images/\(id)/file")
            #expect(denied.status == .forbidden)
            #expect(denied.text.contains("deactivated"))
            #expect(try await api.call(.get, "/v2/images/\(id)/file", token: Tok.admin).bytes == [1, 2, 3, 4])
            #expect(api.blobExists(id))
            #expect(try await api.call(.delete, "/v2/images/\(id)").status == .noContent)
            #expect(!api.blobExists(id))
        }
    }

    @Test func stageThenGlanceDirectImport() async throws {
        try await withAPI { api in
            let data = testBytes(200_000, seed: 4)
            let id = try await api.create(Self.rawImage)
            // Import before staging: 409.
            #expect(try await api.call(.post, "/v2/images/\(id)/import", json: #"{"method":{"name":"glance-direct"}}"#).status == .conflict)
            let staged = try await api.call(.put, "/v2/images/\(id)/stage", bytes: data, contentType: "application/octet-stream")
            #expect(staged.status == .noContent)
            let uploading = try await api.show(id)
            #expect(uploading["status"] == .string("uploading"))
            #expect(uploading["size"] == .int(200_000))
            #expect(api.blobExists(id, staging: true))
            // Staged data is not downloadable; staging twice is refused.
            #expect(try await api.call(.get, "/v2/images/\(id)/file").status == .noContent)
            #expect(try await api.call(.put, "/v2/images/\(id)/stage", bytes: data, contentType: "application/octet-stream").status == .conflict)

            let imported = try await api.call(.post, "/v2/images/\(id)/import", json: #"{"method":{"name":"glance-direct"}}"#,
                                              headers: ["X-OpenStack-Request-ID": "req-import-1"])
            #expect(imported.status == .accepted)
            #expect(imported.text.isEmpty)
            #expect(try await api.status(id) == "importing")
            // A second import while one holds the lock: 409.
            #expect(try await api.call(.post, "/v2/images/\(id)/import", json: #"{"method":{"name":"glance-direct"}}"#).status == .conflict)

            // Run the task the way the server's runner does.
            let claimed = try #require(try await api.imaged.catalog.claimTask(owner: "t", now: Timestamp.now(), leaseSeconds: 30))
            await api.imaged.runner.execute(claimed)

            let image = try await api.show(id)
            #expect(image["status"] == .string("active"))
            #expect(image["checksum"]?.stringValue == hexDigest(Insecure.MD5.hash(data: data)))
            #expect(image["os_glance_import_task"] == nil)
            #expect(try await api.call(.get, "/v2/images/\(id)/file").bytes == data)
            #expect(!api.blobExists(id, staging: true))

            let tasks = try await api.call(.get, "/v2/images/\(id)/tasks")
            #expect(tasks.status == .ok)
            let task = try #require(tasks["tasks"]?.arrayValue.first)
            #expect(task["type"] == .string("api_image_import"))
            #expect(task["status"] == .string("success"))
            #expect(task["request_id"] == .string("req-import-1"))
            #expect(task["image_id"] == .string(id))
            #expect(task["result"]?["image_id"] == .string(id))
            #expect(task["input"]?["import_req"]?["method"]?["name"] == .string("glance-direct"))
            let created = try #require(task["created_at"]?.stringValue)
            #expect(created.hasSuffix(".000000") && !created.hasSuffix("Z"))

            let taskId = try #require(task["id"]?.stringValue)
            let adminView = try await api.call(.get, "/v2/tasks/\(taskId)", token: Tok.admin)
            #expect(adminView.status == .ok)
            #expect(adminView["self"] == .string("/v2/tasks/\(taskId)"))
            #expect(adminView["status"] == .string("success"))
            #expect(try await api.call(.get, "/v2/tasks/\(taskId)").status == .forbidden)
            let del = try await api.call(.delete, "/v2/tasks/\(taskId)", token: Tok.admin)
            #expect(del.status == .methodNotAllowed && del.header("Allow") == "GET")
            let list = try await api.call(.get, "/v2/tasks", token: Tok.admin)
            #expect(list["tasks"]?.arrayValue.first?["input"] == nil)  // stubs
            #expect(list["tasks"]?.arrayValue.first?["id"] == .string(taskId))
        }
    }

    @Test func importRequestValidation() async throws {
        try await withAPI { api in
            let id = try await api.create(Self.rawImage)
            let path = "/v2/images/\(id)/import"
            let bad: [(String, HTTPResponse.Status, String)] = [
                (#"{}"#, .badRequest, "method"),
                (#"{"method":{}}"#, .badRequest, "method.name"),
                (#"{"method":{"name":5}}"#, .badRequest, "string"),
                (#"{"method":{"name":"teleport"}}"#, .badRequest, "Unknown import method"),
                (#"{"method":{"name":"web-download"}}"#, .badRequest, "uri"),
                (#"{"method":{"name":"web-download","uri":"http://127.0.0.1/x"}}"#, .badRequest, "does not pass filtering"),
                (#"{"method":{"name":"web-download","uri":"http://169.254.169.254/latest"}}"#, .badRequest, "does not pass filtering"),
                (#"{"method":{"name":"web-download","uri":"file:///etc/passwd"}}"#, .badRequest, "does not pass filtering"),
                (#"{"method":{"name":"web-download","uri":"http://2130706433/"}}"#, .badRequest, "does not pass filtering"),
                (#"{"method":{"name":"glance-direct"},"all_stores":"yes"}"#, .badRequest, "boolean"),
                (#"{"method":{"name":"glance-direct"},"all_stores_must_succeed":false}"#, .badRequest, "multiple stores"),
                (#"{"method":{"name":"glance-direct"},"stores":["elsewhere"]}"#, .conflict, "Unknown store"),
                (#"[1]"#, .badRequest, "object"),
            ]
            for (body, status, phrase) in bad {
                let r = try await api.call(.post, path, json: body)
                #expect(r.status == status, "\(body): \(r.text)")
                #expect(r.text.contains(phrase), "\(body): \(r.text)")
            }
            #expect(try await api.status(id) == "queued")
            #expect(try await api.call(.get, "/v2/images/\(id)/tasks")["tasks"]?.arrayValue.isEmpty == true)
        }
    }

    @Test func discovery() async throws {
        try await withAPI { api in
            let info = try await api.call(.get, "/v2/info/import")
            #expect(info.status == .ok)
            #expect(info["import-methods"]?["value"] == .array([.string("glance-direct"), .string("web-download")]))
            let stores = try await api.call(.get, "/v2/info/stores")
            #expect(stores.status == .notFound)
            #expect(stores.text.contains("Multi backend is not supported"))
            let created = try await api.call(.post, "/v2/images", json: Self.rawImage)
            #expect(created.header("OpenStack-image-import-methods") == "glance-direct,web-download")
        }
    }
}
