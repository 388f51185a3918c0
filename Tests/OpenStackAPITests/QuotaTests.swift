import Foundation
import HTTPTypes
import ImageCore
import NIOCore
import Testing

/// Per-project quotas (reference §9): each limit reached exactly, the request past it refused with
/// 413 and nothing written, usage right after deletes.
@Suite struct QuotaTests {
    static let mib = 1 << 20
    static let raw = #"{"name":"q","disk_format":"raw","container_format":"bare"}"#

    func usage(_ api: API, token: String = Tok.alice) async throws -> JSONValue {
        let r = try await api.call(.get, "/v2/info/usage", token: token)
        #expect(r.status == .ok)
        return try #require(r["usage"])
    }

    @Test func imageCountReachedExactlyThenRefused() async throws {
        try await withAPI(configure: { $0.quota.imageCountTotal = 3 }) { api in
            var ids: [String] = []
            for _ in 0..<3 { ids.append(try await api.create()) }
            let refused = try await api.call(.post, "/v2/images", json: "{}")
            #expect(refused.status == .contentTooLarge)
            #expect(refused["message"]?.stringValue?.contains("image_count_total") == true, "\(refused.text)")
            #expect(try await api.listIDs("").count == 3)
            // Another project has its own count.
            #expect(try await api.call(.post, "/v2/images", token: Tok.bob, json: "{}").status == .created)

            var u = try await usage(api)
            #expect(u["image_count_total"] == .object([("limit", .int(3)), ("usage", .int(3))]))
            #expect(try await api.call(.delete, "/v2/images/\(ids[0])").status == .noContent)
            u = try await usage(api)
            #expect(u["image_count_total"]?["usage"] == .int(2))
            #expect(try await api.call(.post, "/v2/images", json: "{}").status == .created)
        }
    }

    /// The check runs inside the write: concurrent creates cannot squeeze past the limit.
    @Test func concurrentCreatesStopExactlyAtTheLimit() async throws {
        try await withAPI(configure: { $0.quota.imageCountTotal = 5 }) { api in
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<24 { group.addTask { try await api.call(.post, "/v2/images", json: "{}").status } }
                return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .created }.count == 5)
            #expect(statuses.filter { $0 == .contentTooLarge }.count == 19)
            #expect(try await api.imaged.catalog.usage(project: "pa").imageCount == 5)
        }
    }

    @Test func storedBytesReachedExactlyThenRefusedAndNothingKept() async throws {
        try await withAPI(configure: { $0.quota.imageSizeTotal = Int64(3 * Self.mib) }) { api in
            var ids: [String] = []
            for i in 0..<3 {
                let id = try await api.create(Self.raw)
                #expect(try await api.upload(id, testBytes(Self.mib, seed: UInt64(i + 1))).status == .noContent)
                ids.append(id)
            }
            var u = try await usage(api)
            #expect(u["image_size_total"] == .object([("limit", .int(3)), ("usage", .int(3))]))

            // One byte more does not fit: refused before anything is written, image queued again.
            let extra = try await api.create(Self.raw)
            let r = try await api.upload(extra, [7])
            #expect(r.status == .contentTooLarge)
            #expect(r["message"]?.stringValue?.contains("image_size_total") == true, "\(r.text)")
            #expect(try await api.status(extra) == "queued")
            #expect(!api.blobExists(extra))
            #expect(try api.temporaries().isEmpty)

            // After a delete the room is back, to the byte.
            #expect(try await api.call(.delete, "/v2/images/\(ids[0])").status == .noContent)
            u = try await usage(api)
            #expect(u["image_size_total"]?["usage"] == .int(2))
            #expect(try await api.upload(extra, testBytes(Self.mib, seed: 9)).status == .noContent)
            #expect(try await api.status(extra) == "active")
            #expect(try await api.imaged.catalog.usage(project: "pa").sizeTotal == Int64(3 * Self.mib))
        }
    }

    /// A stream of unknown length is cut off as soon as it crosses the room left (413), and the
    /// partial data is discarded.
    @Test func streamWithoutLengthIsStoppedAtTheQuota() async throws {
        try await withAPI(configure: { $0.quota.imageSizeTotal = Int64(Self.mib) }) { api in
            let id = try await api.create(Self.raw)
            let chunks = (0..<4).map { ByteBuffer(bytes: testBytes(Self.mib / 2, seed: UInt64($0 + 1))) }
            let body = AsyncThrowingStream<ByteBuffer, any Error> { c in
                for b in chunks { c.yield(b) }
                c.finish()
            }
            let p = Principal(userId: "u-alice", projectId: "pa", roles: ["member"])
            await #expect(throws: ImageError.self) {
                _ = try await api.imaged.data.upload(id: id, declaredSize: nil, body: body, by: p)
            }
            do {
                _ = try await api.imaged.data.upload(id: id, declaredSize: nil, body: AsyncThrowingStream { c in
                    for b in chunks { c.yield(b) }
                    c.finish()
                }, by: p)
            } catch let e as ImageError {
                #expect(e.kind == .payloadTooLarge)
                #expect(e.message.contains("image_size_total"))
            }
            #expect(try await api.status(id) == "queued")
            #expect(!api.blobExists(id))
            #expect(try api.temporaries().isEmpty)
            // Exactly the room fits.
            let exact = AsyncThrowingStream<ByteBuffer, any Error> { c in
                c.yield(chunks[0]); c.yield(chunks[1]); c.finish()
            }
            let done = try await api.imaged.data.upload(id: id, declaredSize: nil, body: exact, by: p)
            #expect(done.status == .active && done.size == Int64(Self.mib))
        }
    }

    @Test func stagedBytesAndUploadingCount() async throws {
        try await withAPI(configure: { $0.quota.imageStageTotal = Int64(2 * Self.mib); $0.quota.imageCountUploading = 2 }) { api in
            func stage(_ id: String, _ bytes: [UInt8]) async throws -> Reply {
                try await api.call(.put, "/v2/images/\(id)/stage", bytes: bytes, contentType: "application/octet-stream")
            }
            let a = try await api.create(Self.raw), b = try await api.create(Self.raw), c = try await api.create(Self.raw)
            #expect(try await stage(a, testBytes(Self.mib, seed: 1)).status == .noContent)
            #expect(try await stage(b, testBytes(Self.mib, seed: 2)).status == .noContent)
            var u = try await usage(api)
            #expect(u["image_stage_total"] == .object([("limit", .int(2)), ("usage", .int(2))]))
            #expect(u["image_count_uploading"] == .object([("limit", .int(2)), ("usage", .int(2))]))

            // Two images are receiving data (staged, not imported): a third may not start.
            let r = try await stage(c, [1])
            #expect(r.status == .contentTooLarge)
            #expect(r["message"]?.stringValue?.contains("image_count_uploading") == true, "\(r.text)")
            #expect(try await api.status(c) == "queued")
            #expect(!api.blobExists(c, staging: true))

            // Deleting a staged image frees both its staged bytes and its upload slot.
            #expect(try await api.call(.delete, "/v2/images/\(a)").status == .noContent)
            u = try await usage(api)
            #expect(u["image_stage_total"]?["usage"] == .int(1))
            #expect(u["image_count_uploading"]?["usage"] == .int(1))
            // Staged bytes are limited on their own: 1 MiB + 1 byte would exceed 2 MiB.
            let tooBig = try await stage(c, testBytes(Self.mib + 1, seed: 3))
            #expect(tooBig.status == .contentTooLarge)
            #expect(tooBig["message"]?.stringValue?.contains("image_stage_total") == true, "\(tooBig.text)")
            #expect(try await stage(c, testBytes(Self.mib, seed: 3)).status == .noContent)
        }
    }

    @Test func perProjectOverrideAndUnlimitedUsage() async throws {
        try await withAPI { api in
            var u = try await usage(api)
            #expect(u["image_count_total"] == .object([("limit", .int(-1)), ("usage", .int(0))]))
            #expect(u.objectKeys == ["image_size_total", "image_stage_total", "image_count_total", "image_count_uploading"])
            try await api.imaged.catalog.setQuotaOverride(project: "pa", QuotaLimits(imageCountTotal: 1))
            try await api.create()
            #expect(try await api.call(.post, "/v2/images", json: "{}").status == .contentTooLarge)
            #expect(try await api.call(.post, "/v2/images", token: Tok.bob, json: "{}").status == .created)
            #expect(try await api.call(.post, "/v2/images", token: Tok.bob, json: "{}").status == .created)
            u = try await usage(api)
            #expect(u["image_count_total"] == .object([("limit", .int(1)), ("usage", .int(1))]))
            // Anonymous callers learn nothing.
            #expect(try await api.call(.get, "/v2/info/usage", token: nil).status == .unauthorized)
        }
    }
}
