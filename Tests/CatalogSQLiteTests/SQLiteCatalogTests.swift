@testable import CatalogSQLite
import Foundation
import ImageCore
import GRDB
import Testing

func temporaryCatalogPath() throws -> (String, String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imaged-catalog-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return (dir, dir + "/catalog.sqlite")
}

func makeImage(_ i: Int, owner: String = "p1", name: String? = nil, created: Int64 = 1_000) -> Image {
    Image(id: ImageID.generate(), name: name, status: .queued, visibility: .private, owner: owner,
          size: i % 3 == 0 ? nil : Int64(i % 7), createdAt: created, updatedAt: created,
          tags: ["t\(i % 2)"], properties: ["k": "v\(i % 3)", "quote\"d": "\u{2603}"])
}

@Suite struct SQLiteCatalogTests {
    @Test func roundTripsEveryField() async throws {
        let (dir, path) = try temporaryCatalogPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try SQLiteCatalog(path: path)
        let image = Image(id: ImageID.generate(), name: "n", status: .active, visibility: .community, isProtected: true,
                          osHidden: true, owner: "o", containerFormat: "bare", diskFormat: "qcow2", size: 123,
                          virtualSize: 456, minDisk: 1, minRam: 2, checksum: "c", osHashAlgo: "sha512", osHashValue: "h",
                          createdAt: 10, updatedAt: 20, deletedAt: nil, tags: ["a", "b"], properties: ["x": "y", "e": ""])
        try await catalog.insertImage(image)
        #expect(try await catalog.image(id: image.id) == image)
        #expect(try await catalog.image(id: ImageID.generate()) == nil)
    }

    @Test func duplicateIDsConflict() async throws {
        let (dir, path) = try temporaryCatalogPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try SQLiteCatalog(path: path)
        let image = makeImage(1)
        try await catalog.insertImage(image)
        await #expect(throws: ImageError.conflict("An image with identifier \(image.id) already exists.")) {
            try await catalog.insertImage(image)
        }
    }

    /// Group commit: many concurrent inserts, some with ids already taken before, some duplicated
    /// between two concurrent inserts (often in one batch); exactly the duplicates fail.
    @Test func concurrentInsertsWithDuplicates() async throws {
        let (dir, path) = try temporaryCatalogPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try SQLiteCatalog(path: path)
        let existing = makeImage(0)
        try await catalog.insertImage(existing)
        var images = (1...200).map { makeImage($0) }
        for i in images.indices {
            if i % 20 == 1 { images[i].id = images[i - 1].id }   // pairs racing for one id
            if i % 20 == 2 { images[i].id = existing.id }        // id taken before
        }
        let toInsert = images
        let failures = try await withThrowingTaskGroup(of: Int?.self) { group in
            for (i, image) in toInsert.enumerated() {
                group.addTask {
                    do {
                        try await catalog.insertImage(image)
                        return nil
                    } catch let e as ImageError where e.kind == .conflict {
                        return i
                    }
                }
            }
            return try await group.reduce(into: [Int]()) { if let i = $1 { $0.append(i) } }
        }
        // One of each racing pair fails, and every insert of the taken id.
        #expect(failures.filter { $0 % 20 == 2 }.count == 10)
        #expect(failures.filter { $0 % 20 == 0 || $0 % 20 == 1 }.count == 10)
        #expect(failures.count == 20)
        let scope = ImageListQuery.Scope(isAdmin: true, projectId: nil, visibility: .all, memberStatuses: nil)
        let all = try await catalog.listImages(.init(scope: scope, sort: [.init(.id, .asc)], limit: 1000))
        #expect(all.count == 1 + 200 - 20)
        #expect(Set(all.map(\.id)) == Set(images.map(\.id)).union([existing.id]))
    }

    @Test func updatesAreAtomicAndBumpTheVersion() async throws {
        let (dir, path) = try temporaryCatalogPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try SQLiteCatalog(path: path)
        let image = makeImage(1)
        try await catalog.insertImage(image)
        let updated = try await catalog.updateImage(id: image.id) { $0.name = "first" }
        #expect(updated?.name == "first" && updated?.version == 1)
        // A throwing change writes nothing.
        await #expect(throws: ImageError.self) {
            _ = try await catalog.updateImage(id: image.id) { i in
                i.name = "half-done"
                throw ImageError.conflict("no")
            }
        }
        // 50 concurrent increments all land.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 {
                group.addTask { _ = try await catalog.updateImage(id: image.id) { $0.minRam += 1 } }
            }
            try await group.waitForAll()
        }
        let stored = try #require(try await catalog.image(id: image.id))
        #expect(stored.name == "first" && stored.minRam == 50 && stored.version == 51)
        #expect(try await catalog.updateImage(id: ImageID.generate()) { $0.name = "x" } == nil)
    }

    @Test func survivesReopen() async throws {
        let (dir, path) = try temporaryCatalogPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var images: [Image] = []
        do {
            let catalog = try SQLiteCatalog(path: path)
            for i in 0..<20 {
                let image = makeImage(i)
                try await catalog.insertImage(image)
                images.append(image)
            }
        }
        let reopened = try SQLiteCatalog(path: path)
        for image in images { #expect(try await reopened.image(id: image.id) == image) }
    }

    /// Keyset paging returns exactly the in-memory sorted order, page after page, for mixed directions and NULLs.
    @Test(arguments: [
        [ImageListQuery.Sort(.name, .asc)], [ImageListQuery.Sort(.name, .desc)], [ImageListQuery.Sort(.size, .asc)],
        [ImageListQuery.Sort(.size, .desc), ImageListQuery.Sort(.name, .asc)], [ImageListQuery.Sort(.createdAt, .desc)],
    ])
    func keysetPagingMatchesSortedOrder(sort: [ImageListQuery.Sort]) async throws {
        let (dir, path) = try temporaryCatalogPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try SQLiteCatalog(path: path)
        var images: [Image] = []
        for i in 0..<60 {
            let image = makeImage(i, name: i % 5 == 0 ? nil : "n\(i % 4)", created: Int64(1_000 + i % 6))
            try await catalog.insertImage(image)
            images.append(image)
        }
        let fullSort = sort + [.init(.createdAt, sort.last!.direction), .init(.id, sort.last!.direction)]
        let expected = images.sorted { a, b in
            for s in fullSort {
                let (x, y) = (a.sortValue(s.key), b.sortValue(s.key))
                if x == y { continue }
                let less = Self.less(x, y)
                return s.direction == .asc ? less : !less
            }
            return false
        }.map(\.id)
        let scope = ImageListQuery.Scope(isAdmin: true, projectId: "p1", visibility: .all, memberStatuses: nil)
        var seen: [String] = []
        var marker: Image?
        while true {
            let page = try await catalog.listImages(.init(scope: scope, sort: fullSort, limit: 7, marker: marker))
            seen += page.map(\.id)
            guard page.count == 7 else { break }
            marker = page.last
        }
        #expect(seen == expected)
    }

    /// NULL sorts before any value (SQLite's ascending order).
    static func less(_ a: SortValue, _ b: SortValue) -> Bool {
        switch (a, b) {
        case let (.text(x), .text(y)): return x == nil ? y != nil : (y == nil ? false : x! < y!)
        case let (.integer(x), .integer(y)): return x == nil ? y != nil : (y == nil ? false : x! < y!)
        default: return false
        }
    }

    @Test func propertyAndTagFiltersUseBoundValues() async throws {
        let (dir, path) = try temporaryCatalogPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try SQLiteCatalog(path: path)
        var hostile = makeImage(1)
        hostile.properties = ["x' OR '1'='1": "v", "k": "a'); DROP TABLE images; --"]
        hostile.tags = ["'; DELETE FROM images; --"]
        try await catalog.insertImage(hostile)
        try await catalog.insertImage(makeImage(2))
        let scope = ImageListQuery.Scope(isAdmin: true, projectId: nil, visibility: .all, memberStatuses: nil)
        let sort = [ImageListQuery.Sort(.createdAt, .desc), .init(.id, .desc)]
        for filter: ImageListQuery.Filter in [.property("k", "a'); DROP TABLE images; --"), .property("x' OR '1'='1", "v"),
                                              .tag("'; DELETE FROM images; --")] {
            let found = try await catalog.listImages(.init(scope: scope, filters: [filter], sort: sort, limit: 10))
            #expect(found.map(\.id) == [hostile.id])
        }
        #expect(try await catalog.listImages(.init(scope: scope, sort: sort, limit: 10)).count == 2)
        #expect(try await catalog.listImages(.init(scope: scope, filters: [.oneOf(.name, [])], sort: sort, limit: 10)).isEmpty)
    }
}

@Suite struct ImageCacheTests {
    @Test func olderVersionsNeverReplaceNewerOnes() async throws {
        let (dir, path) = try temporaryCatalogPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try SQLiteCatalog(path: path)
        let image = makeImage(1)
        try await catalog.insertImage(image)
        _ = try await catalog.updateImage(id: image.id) { $0.name = "v1" }
        // A reader that fetched version 0 before the write committed offers it late: ignored.
        catalog.cache.offer(image)
        #expect(try await catalog.image(id: image.id)?.name == "v1")
        // Every write is visible to the next read.
        for i in 2...5 {
            _ = try await catalog.updateImage(id: image.id) { $0.name = "v\(i)" }
            #expect(try await catalog.image(id: image.id)?.name == "v\(i)")
        }
    }

    @Test func boundedInSize() {
        let cache = ImageCache(capacity: 10)
        for i in 0..<25 { cache.offer(makeImage(i)) }
        #expect(cache.entries.withLock { $0.count } <= 10)
    }
}

@Suite struct ListPlanTests {
    /// Paging after a marker must be an index range, not a scan of every newer row.
    @Test func markerPagingIsAnIndexRange() async throws {
        let (dir, path) = try temporaryCatalogPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try SQLiteCatalog(path: path)
        let marker = makeImage(1)
        try await catalog.insertImage(marker)
        let scope = ImageListQuery.Scope(isAdmin: true, projectId: "p1", visibility: .default, memberStatuses: nil)
        let query = ImageListQuery(scope: scope, filters: [.oneOf(.status, ["queued"])],
                                   sort: [.init(.createdAt, .desc), .init(.id, .desc)], limit: 25, marker: marker)
        let (sql, args) = ListSQL.build(query)
        #expect(sql.contains("(created_at, id) < (?,?)"))
        let plan = try catalog.readNow { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: args).map { $0["detail"] as String }
        }
        #expect(plan.contains { $0.contains("images_status_created") && $0.contains("(created_at,id)<(?,?)") }, "\(plan)")
    }
}

@Suite struct CatalogStressTests {
    /// Many concurrent point reads (cache misses), lists and writes at once must all finish. With
    /// synchronous point reads this deadlocked (the test then hangs instead of finishing).
    @Test(.timeLimit(.minutes(1)))
    func mixedConcurrentLoadCompletes() async throws {
        let (dir, path) = try temporaryCatalogPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try SQLiteCatalog(path: path)
        var ids: [String] = []
        for i in 0..<300 {
            let image = makeImage(i)
            try await catalog.insertImage(image)
            ids.append(image.id)
        }
        let known = ids
        let scope = ImageListQuery.Scope(isAdmin: true, projectId: nil, visibility: .all, memberStatuses: nil)
        let sort = [ImageListQuery.Sort(.createdAt, .desc), .init(.id, .desc)]
        let finished = try await withThrowingTaskGroup(of: Int.self) { group in
            for t in 0..<256 {
                group.addTask {
                    switch t % 4 {
                    case 0: return try await catalog.listImages(.init(scope: scope, sort: sort, limit: 25)).count > 0 ? 1 : 0
                    case 1:
                        catalog.cache.entries.withLock { $0.removeAll() }
                        return try await catalog.image(id: known[t % known.count]) != nil ? 1 : 0
                    case 2:
                        return try await catalog.updateImage(id: known[t % known.count]) { $0.minRam += 1 } != nil ? 1 : 0
                    default:
                        try await catalog.insertImage(makeImage(t))
                        return 1
                    }
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(finished == 256)
    }
}
