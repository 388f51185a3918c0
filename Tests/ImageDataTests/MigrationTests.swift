import BlobStoreFile
@testable import CatalogSQLite
import Crypto
import Foundation
import GRDB
import ImageCore
import NIOCore
import Testing
@testable import ImageData

@Suite struct MigrationTests {
    /// An active image with its real digests, a blob of `bytes`.
    func activeImage(_ node: Node, _ bytes: [UInt8], owner: String = "p") async throws -> Image {
        let now = Timestamp.now()
        let image = Image(id: ImageID.generate(), status: .active, visibility: .shared, owner: owner, containerFormat: "bare",
                          diskFormat: "raw", size: Int64(bytes.count), checksum: Insecure.MD5.hash(data: bytes).hex,
                          osHashAlgo: "sha512", osHashValue: SHA512.hash(data: bytes).hex, createdAt: now, updatedAt: now,
                          tags: ["t"], properties: ["k": "v"])
        try await node.put(BlobKey.image(image.id), bytes)
        try await node.catalog.insertImage(image)
        return image
    }

    func all(_ c: any Catalog) async throws -> [Image] { try await c.exportImages(after: nil, limit: 10_000) }

    @Test func copiesEverythingVerifiedAndResumes() async throws {
        let source = try Node(), target = try Node()
        defer { source.remove(); target.remove() }
        var images: [Image] = []
        var contents: [String: [UInt8]] = [:]
        for i in 0..<7 {
            let bytes = pseudoRandom(10_000 + i * 999, seed: UInt64(i))
            let image = try await activeImage(source, bytes)
            images.append(image)
            contents[image.id] = bytes
        }
        try await source.catalog.insertMember(ImageMember(imageId: images[0].id, memberId: "q", status: .accepted, createdAt: 1, updatedAt: 2))
        let staged = try await source.image(.uploading)
        try await source.put(BlobKey.staging(staged), [9, 9, 9])
        let deleted = try await source.image(.deleted)
        try await source.catalog.setQuotaOverride(project: "p", QuotaLimits(imageCountTotal: 50))
        try await source.catalog.insertAccount(LocalAccount(name: "a", userId: "ua", projectId: "p", roles: ["member"], passwordHash: "x", createdAt: 1, updatedAt: 1))
        try await source.catalog.insertAPIKey(APIKeyRecord(keyId: "imk_a", accountName: "a", secretHash: "h", createdAt: 1))

        // One source blob is corrupt (the last active one in copy order, so some copies precede it):
        // that image fails the digest check and is not written.
        let corrupt = images.max { $0.id < $1.id }!
        try await source.put(BlobKey.image(corrupt.id), pseudoRandom(Int(corrupt.size!), seed: 99))
        let migration = Migration(from: .init(catalog: source.catalog, blobs: source.blobs),
                                  to: .init(catalog: target.catalog, blobs: target.blobs), pageSize: 2)
        await #expect(throws: ImageError.self) { _ = try await migration.run() }
        let corruptRow = try await target.catalog.image(id: corrupt.id)
        let corruptBlob = try await target.blobs.size(key: BlobKey.image(corrupt.id))
        #expect(corruptRow == nil && corruptBlob == nil)
        let partial = try await all(target.catalog).count
        #expect(partial >= 6 && partial < 9)

        // Repaired and run again: the copied part is skipped, the rest completes.
        try await source.put(BlobKey.image(corrupt.id), contents[corrupt.id]!)
        let report = try await migration.run()
        #expect(report.images == 9 && report.imagesSkipped == partial)
        #expect(report.members == 1 && report.accounts == 1 && report.apiKeys == 1 && report.quotas == 1)
        let sourceRows = try await all(source.catalog)
        let targetRows = try await all(target.catalog)
        #expect(sourceRows == targetRows)
        #expect(targetRows.contains { $0.id == deleted && $0.status == .deleted })
        for image in images {
            var copied: [UInt8] = []
            try await target.blobs.read(key: BlobKey.image(image.id), range: nil, chunkSize: 4096) { copied += $0.readableBytesView }
            #expect(Insecure.MD5.hash(data: copied).hex == image.checksum)
        }
        #expect(try await target.blobs.size(key: BlobKey.staging(staged)) == 3)
        #expect(try await target.catalog.members(imageId: images[0].id).map(\.memberId) == ["q"])
        #expect(try await target.catalog.apiKey(id: "imk_a")?.accountName == "a")
        #expect(try await target.catalog.quotaOverride(project: "p") == QuotaLimits(imageCountTotal: 50))
        // A third run has nothing to do.
        let again = try await migration.run()
        #expect(again.imagesSkipped == 9 && again.bytesCopied == 0)
    }

    /// A source catalog can hold two images claiming one name (made before names were decided
    /// inside the write, then given the rule by the v5 migration): the target's write refuses the
    /// second claim, so it is copied without its rule, and the report names it.
    @Test func aClashTheSourceAlreadyHeldIsCopiedWithoutItsRule() async throws {
        let source = try Node(), target = try Node()
        defer { source.remove(); target.remove() }
        let first = try await activeImage(source, [1, 2, 3])
        let second = try await activeImage(source, [4, 5, 6])
        for image in [first, second] {
            _ = try await source.catalog.updateImage(id: image.id) { $0.name = "web" }
        }
        // What the v5 backfill does to images the Avi front-end made: rows written directly.
        try await source.catalog.pool.write { db in
            try db.execute(sql: "UPDATE images SET name_rule = 'name_per_owner'")
        }
        // (Read by listing: the point-read cache does not see writes made around the catalog.)
        let rows = try await all(source.catalog)
        #expect(rows.count == 2 && rows.allSatisfy { $0.nameRule == .namePerOwner && $0.name == "web" })

        let migration = Migration(from: .init(catalog: source.catalog, blobs: source.blobs),
                                  to: .init(catalog: target.catalog, blobs: target.blobs))
        let report = try await migration.run()
        #expect(report.images == 2)
        let copied = try await all(target.catalog)
        #expect(Set(copied.map(\.id)) == [first.id, second.id])
        #expect(copied.allSatisfy { $0.name == "web" })
        let dropped = try #require(report.nameRulesDropped.first)
        #expect(report.nameRulesDropped.count == 1)
        #expect(copied.filter { $0.nameRule == nil }.map(\.id) == [dropped])
        #expect(report.description.contains(dropped))
    }
}

extension Digest {
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}
