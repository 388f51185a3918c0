import Crypto
import Foundation
import HummingbirdTesting
import ImageCore
import Server
import Testing

/// Two named stores (`--store fast=file --store archive=file`): discovery, uploads choosing a store,
/// copy-image between them (verified, all-or-nothing), downloads and deletes across stores.
@Suite struct MultiStoreTests {
    static func configure(_ c: inout ServerConfig) {
        c.stores = [("fast", .file(nil)), ("archive", .file(nil))]
    }

    func inStore(_ api: API, _ store: String, _ id: String) -> Bool {
        FileManager.default.fileExists(atPath: api.imaged.dataDirectory + "/stores/\(store)/images/\(id)")
    }

    /// Runs the queued task the way the server's runner does.
    func runTask(_ api: API) async throws {
        let claimed = try #require(try await api.imaged.catalog.claimTask(owner: "t", now: Timestamp.now(), leaseSeconds: 30))
        await api.imaged.runner.execute(claimed)
    }

    @Test func discoveryListsTheStores() async throws {
        try await withAPI(configure: Self.configure) { api in
            let stores = try await api.call(.get, "/v2/info/stores")
            #expect(stores.status == .ok)
            let list = try #require(stores["stores"]?.arrayValue)
            #expect(list.compactMap { $0["id"]?.stringValue } == ["fast", "archive"])
            #expect(list[0]["default"] == .bool(true) && list[1]["default"] == nil)
            #expect(list[1]["description"]?.stringValue?.contains("/stores/archive") == true)
            let info = try await api.call(.get, "/v2/info/import")
            #expect(info["import-methods"]?["value"] == .array([.string("glance-direct"), .string("web-download"), .string("copy-image")]))
        }
    }

    @Test func uploadsGoToTheDefaultOrTheNamedStore() async throws {
        try await withAPI(configure: Self.configure) { api in
            let data = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let a = try await api.create(DataAPITests.rawImage)
            #expect(try await api.upload(a, data).status == .noContent)
            #expect(try await api.show(a)["stores"] == .string("fast"))
            #expect(inStore(api, "fast", a) && !inStore(api, "archive", a))

            let b = try await api.create(DataAPITests.rawImage)
            #expect(try await api.upload(b, data, headers: ["X-Image-Meta-Store": "archive"]).status == .noContent)
            #expect(try await api.show(b)["stores"] == .string("archive"))
            #expect(!inStore(api, "fast", b) && inStore(api, "archive", b))
            #expect(try await api.call(.get, "/v2/images/\(b)/file").bytes == data)

            let c = try await api.create(DataAPITests.rawImage)
            let unknown = try await api.upload(c, data, headers: ["X-Image-Meta-Store": "tape"])
            #expect(unknown.status == .badRequest && unknown.text.contains("Store for identifier tape not found"))
            #expect(try await api.status(c) == "queued")
            // stores is the service's to write.
            #expect(try await api.patch(a, #"[{"op":"replace","path":"/stores","value":"archive"}]"#).status == .forbidden)
        }
    }

    @Test func copyImageAddsAStoreWhileTheImageStaysActive() async throws {
        try await withAPI(configure: Self.configure) { api in
            let data = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
            let id = try await api.create(DataAPITests.rawImage)
            #expect(try await api.upload(id, data).status == .noContent)
            let path = "/v2/images/\(id)/import"
            let noStores = try await api.call(.post, path, json: #"{"method":{"name":"copy-image"}}"#)
            #expect(noStores.status == .badRequest && noStores.text.contains("stores"))
            let already = try await api.call(.post, path, json: #"{"method":{"name":"copy-image"},"stores":["fast"]}"#)
            #expect(already.status == .conflict)

            #expect(try await api.call(.post, path, json: #"{"method":{"name":"copy-image"},"stores":["archive"]}"#).status == .accepted)
            let during = try await api.show(id)
            #expect(during["status"] == .string("active") && during["os_glance_importing_to_stores"] == .string("archive"))
            #expect(try await api.call(.get, "/v2/images/\(id)/file").bytes == data)
            try await runTask(api)

            let after = try await api.show(id)
            #expect(after["stores"] == .string("archive,fast"))  // sorted, as Glance shows it
            #expect(after["os_glance_importing_to_stores"] == .string("") && after["os_glance_import_task"] == nil)
            #expect(after["os_glance_failed_import"] == .string(""))
            #expect(inStore(api, "fast", id) && inStore(api, "archive", id))
            let task = try #require(try await api.call(.get, "/v2/images/\(id)/tasks")["tasks"]?.arrayValue.first)
            #expect(task["status"] == .string("success"))
            // Both copies are the same bytes; a delete removes them from every store.
            let archived = try Data(contentsOf: URL(fileURLWithPath: api.imaged.dataDirectory + "/stores/archive/images/\(id)"))
            #expect(Array(archived) == data)
            #expect(try await api.call(.delete, "/v2/images/\(id)").status == .noContent)
            #expect(!inStore(api, "fast", id) && !inStore(api, "archive", id))
        }
    }

    /// A source blob that no longer matches the catalog's digests is never copied: the task fails,
    /// the image stays active in its store, the failure is recorded.
    @Test func copyOfCorruptDataFailsAndWritesNothing() async throws {
        try await withAPI(configure: Self.configure) { api in
            let data = (0..<30_000).map { UInt8(truncatingIfNeeded: $0 &* 3) }
            let id = try await api.create(DataAPITests.rawImage)
            #expect(try await api.upload(id, data).status == .noContent)
            var corrupt = data
            corrupt[100] ^= 0xff
            try Data(corrupt).write(to: URL(fileURLWithPath: api.imaged.dataDirectory + "/stores/fast/images/\(id)"))
            #expect(try await api.call(.post, "/v2/images/\(id)/import",
                                       json: #"{"method":{"name":"copy-image"},"all_stores":true}"#).status == .accepted)
            try await runTask(api)
            let image = try await api.show(id)
            #expect(image["status"] == .string("active") && image["stores"] == .string("fast"))
            #expect(image["os_glance_failed_import"] == .string("archive"))
            #expect(image["os_glance_importing_to_stores"] == .string("") && image["os_glance_import_task"] == nil)
            #expect(!inStore(api, "archive", id))
            let task = try #require(try await api.call(.get, "/v2/images/\(id)/tasks")["tasks"]?.arrayValue.first)
            #expect(task["status"] == .string("failure"))
        }
    }

    @Test func glanceDirectIntoEveryStore() async throws {
        try await withAPI(configure: Self.configure) { api in
            let data = (0..<40_000).map { UInt8(truncatingIfNeeded: $0 &* 5) }
            let id = try await api.create(DataAPITests.rawImage)
            #expect(try await api.call(.put, "/v2/images/\(id)/stage", bytes: data, contentType: "application/octet-stream").status == .noContent)
            #expect(try await api.call(.post, "/v2/images/\(id)/import",
                                       json: #"{"method":{"name":"glance-direct"},"stores":["archive","fast"]}"#).status == .accepted)
            try await runTask(api)
            let image = try await api.show(id)
            #expect(image["status"] == .string("active") && image["stores"] == .string("archive,fast"))
            #expect(image["checksum"]?.stringValue == hexDigest(Insecure.MD5.hash(data: data)))
            #expect(inStore(api, "fast", id) && inStore(api, "archive", id))
            #expect(!FileManager.default.fileExists(atPath: api.imaged.dataDirectory + "/stores/fast/staging/\(id)"))
        }
    }
}
