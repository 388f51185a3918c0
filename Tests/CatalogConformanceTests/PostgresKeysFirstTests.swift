@testable import CatalogPostgres
import CatalogSQL
import Foundation
import ImageCore
import Synchronization
import Testing

/// A PostgreSQL list read keys first (`listByKeys`: ids and versions, then only the rows the cache
/// lacks) answers exactly the page a full read answers, sees writes from anywhere, and gives up
/// rather than mixing two snapshots when a row changes between its two statements.
@Suite(.enabled(if: Backend.postgresURL != nil, "IMAGED_TEST_POSTGRES_URL is not set"))
struct PostgresKeysFirstTests {
    static let adminScope = PostgresListCacheTests.adminScope

    /// The page as one full read answers it (the path lists take when keys first is not worth it).
    static func fullPage(_ catalog: PostgresCatalog, _ query: ImageListQuery) async throws -> [Image] {
        let st = ListSQL.build(query, .postgres, extraColumn: PostgresCatalog.revisionColumn)
        let (rows, binary) = try await catalog.preparedRows(st.sql, st.values)
        return try rows.map { try PostgresCatalog.image($0.makeRandomAccess(), binary: binary) }
    }

    static func keysFirst(_ catalog: PostgresCatalog, _ query: ImageListQuery) async throws -> [Image]? {
        let st = ListSQL.build(query, .postgres, extraColumn: PostgresCatalog.revisionColumn)
        return try await catalog.listByKeys(query, pageKey: ListPageCache.Key(sql: st.sql, values: st.values))
    }

    @Test func pagesReadKeysFirstAreThePagesAFullReadAnswers() async throws {
        try await PostgresListCacheTests.withTwoNodes { a, _ in
            var images: [Image] = []
            for i in 0..<30 {
                var image = makeImage(i, owner: "p\(i % 3)", name: "n\(i)", created: Int64(100 + i / 2))
                image.properties["serial"] = "\(i)"
                try await a.insertImage(image)
                images.append(image)
            }
            // Half the images cached (a GET admits its row), half not: pages mix both.
            for image in images where Int(image.properties["serial"]!)! % 2 == 0 { _ = try await a.image(id: image.id) }
            let queries: [ImageListQuery] = [
                ImageListQuery(scope: Self.adminScope, sort: [.init(.createdAt, .desc), .init(.id, .desc)], limit: 25),
                ImageListQuery(scope: Self.adminScope, sort: [.init(.name, .asc), .init(.id, .asc)], limit: 7),
                {
                    var q = ImageListQuery(scope: Self.adminScope, sort: [.init(.createdAt, .asc), .init(.id, .asc)], limit: 10)
                    q.marker = images[12]
                    return q
                }(),
                ImageListQuery(scope: .init(isAdmin: false, projectId: "p1", visibility: .all, memberStatuses: nil),
                               sort: [.init(.createdAt, .desc), .init(.id, .desc)], limit: 25),
            ]
            let before = a.keysFirst.state.withLock { ($0.rows, $0.hits) }
            for query in queries {
                let full = try await Self.fullPage(a, query)
                #expect(!full.isEmpty)
                let page = try #require(try await Self.keysFirst(a, query))
                #expect(page == full, "\(query.sort)")
                // Read again: the rows met twice are admitted now; the same page.
                #expect(try await Self.keysFirst(a, query) == full)
            }
            let after = a.keysFirst.state.withLock { ($0.rows, $0.hits) }
            #expect(after.0 > before.0 && after.1 > before.1, "the gauge saw rows and hits")
            #expect(after.1 < after.0, "some rows were not cached and were read in full")
        }
    }

    @Test func aRowAnotherNodeChangedSinceItWasCachedIsReadAgain() async throws {
        try await PostgresListCacheTests.withTwoNodes { a, b in
            let images = (0..<5).map { makeImage($0, name: "n\($0)", created: Int64(100 + $0)) }
            for image in images { try await a.insertImage(image) }
            for image in images { _ = try await a.image(id: image.id) }
            let query = ImageListQuery(scope: Self.adminScope, sort: PostgresListCacheTests.byCreated, limit: 5)
            #expect(try await Self.keysFirst(a, query)?.map(\.name) == ["n0", "n1", "n2", "n3", "n4"])

            _ = try await b.updateImage(id: images[3].id) { image, _ in image.tags = ["moved"] }
            let page = try #require(try await Self.keysFirst(a, query))
            #expect(page.map(\.name) == ["n0", "n1", "n2", "n3", "n4"])
            #expect(page[3].tags == ["moved"])
            #expect(page[3].version == images[3].version + 1)
            #expect(page == (try await Self.fullPage(a, query)))
        }
    }

    /// Another node rewrites the rows while one lists them with nothing cached, so every row is read
    /// by a second statement: a page whose rows changed in between is refused (the caller then reads
    /// it in full), and every page answered is one snapshot's: in order, each row at one version.
    @Test func aRowChangedBetweenTheTwoStatementsIsNeverMixedIntoThePage() async throws {
        try await PostgresListCacheTests.withTwoNodes { a, b in
            let images = (0..<12).map { i in
                var image = makeImage(i, created: Int64(100 + i))
                image.name = "n\(image.version)"
                return image
            }
            for image in images { try await b.insertImage(image) }
            let query = ImageListQuery(scope: Self.adminScope, sort: PostgresListCacheTests.byCreated, limit: 12)
            let stop = Atomic<Bool>(false)
            let writer = Task {
                var n = 0
                while !stop.load(ordering: .relaxed) {
                    n += 1
                    // Name and version move together: a page's row must carry the name of its version.
                    for image in images {
                        _ = try await b.updateImage(id: image.id) { changed, _ in changed.name = "n\(changed.version + 1)" }
                    }
                }
                return n
            }
            var refused = 0, answered = 0
            let deadline = ContinuousClock.now + .seconds(20)
            while (refused == 0 || answered == 0) && ContinuousClock.now < deadline {
                a.decodeCache.removeAll()
                if let page = try await Self.keysFirst(a, query) {
                    answered += 1
                    #expect(page.map(\.id) == images.map(\.id))
                    for image in page { #expect(image.name == "n\(image.version)", "\(image.name ?? "-") at version \(image.version)") }
                } else {
                    refused += 1
                }
            }
            stop.store(true, ordering: .relaxed)
            let rounds = try await writer.value
            #expect(rounds > 0)
            #expect(refused > 0, "no page was refused in 20 s of concurrent writes")
            #expect(answered > 0, "no page was answered in 20 s")
        }
    }

    @Test func theGaugeReadsListsInFullWhileMostRowsAreNotCached() {
        let gauge = KeysFirstGauge()
        #expect(gauge.worthTrying(), "nothing known yet: try")
        for _ in 0..<40 { gauge.record(rows: 25, hits: 2) }
        let tries = (0..<160).filter { _ in gauge.worthTrying() }.count
        #expect(tries == 160 / KeysFirstGauge.sampleEvery, "one list in \(KeysFirstGauge.sampleEvery) still samples the cache")
        // The cache warms: the samples see it, and lists go keys first again once the gauge's memory
        // (about `memory` rows, halved as it fills) holds mostly the new pages.
        for _ in 0..<20 { gauge.record(rows: 25, hits: 25) }
        #expect(!gauge.worthTrying() || !gauge.worthTrying(), "a few warm pages do not outweigh the cold ones yet")
        for _ in 0..<60 { gauge.record(rows: 25, hits: 25) }
        #expect((0..<10).allSatisfy { _ in gauge.worthTrying() })
    }
}
