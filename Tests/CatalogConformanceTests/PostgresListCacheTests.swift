@testable import CatalogPostgres
import Foundation
import ImageCore
import Logging
import Testing

/// PostgreSQL answers a list page read before from `ListPageCache` while the catalog's revision has
/// not moved. These tests write the ways a real cluster writes (this node, another node on the same
/// database, an operator's SQL) and check each list that follows sees the write.
@Suite(.enabled(if: Backend.postgresURL != nil, "IMAGED_TEST_POSTGRES_URL is not set"))
struct PostgresListCacheTests {
    static let adminScope = ImageListQuery.Scope(isAdmin: true, projectId: "p1", visibility: .all, memberStatuses: nil)
    static let byCreated = [ImageListQuery.Sort(.createdAt, .asc), .init(.id, .asc)]

    /// Two nodes on one fresh schema.
    static func withTwoNodes(_ body: (PostgresCatalog, PostgresCatalog) async throws -> Void) async throws {
        let t = try await Backend.postgres.make()
        let a = try #require(t.catalog as? PostgresCatalog)
        var logger = Logger(label: "test.postgres.b")
        logger.logLevel = .warning
        let b = try await PostgresCatalog.open(a.location, logger: logger)
        do {
            try await body(a, b)
        } catch {
            b.close()
            await t.cleanup()
            throw error
        }
        b.close()
        await t.cleanup()
    }

    static func names(_ catalog: PostgresCatalog, _ query: ImageListQuery) async throws -> [String] {
        try await catalog.listImages(query).map { $0.name ?? "-" }
    }

    @Test func aPageReadAgainIsAnsweredFromTheCacheUntilAWriteCommits() async throws {
        try await Self.withTwoNodes { a, _ in
            let images = (0..<5).map { makeImage($0, name: "n\($0)", created: Int64(100 + $0)) }
            for image in images { try await a.insertImage(image) }
            let query = ImageListQuery(scope: Self.adminScope, sort: Self.byCreated, limit: 3)

            // Read once: only remembered as offered. Read twice: kept. Then answered from the cache.
            #expect(try await Self.names(a, query) == ["n0", "n1", "n2"])
            #expect(try await Self.names(a, query) == ["n0", "n1", "n2"])
            let before = a.listPages.hits.load(ordering: .relaxed)
            #expect(before == 0)
            #expect(try await Self.names(a, query) == ["n0", "n1", "n2"])
            #expect(a.listPages.hits.load(ordering: .relaxed) == before + 1, "the same page, nothing written: a hit")

            _ = try await a.updateImage(id: images[1].id) { image, _ in image.name = "renamed" }
            #expect(try await Self.names(a, query) == ["n0", "renamed", "n2"])
            #expect(a.listPages.hits.load(ordering: .relaxed) == before + 1, "a write moved the revision: read again")
            #expect(try await Self.names(a, query) == ["n0", "renamed", "n2"])
            #expect(a.listPages.hits.load(ordering: .relaxed) == before + 2)

            // Another page of the same list is its own entry.
            var next = query
            next.marker = images[2]
            #expect(try await Self.names(a, next) == ["n3", "n4"])
        }
    }

    @Test func writesFromAnotherNodeAndFromPlainSQLAreSeenByTheNextList() async throws {
        try await Self.withTwoNodes { a, b in
            let first = makeImage(1, name: "first", created: 100)
            try await a.insertImage(first)
            let query = ImageListQuery(scope: Self.adminScope, sort: Self.byCreated, limit: 10)
            for _ in 0..<3 { #expect(try await Self.names(a, query) == ["first"]) }
            #expect(a.listPages.hits.load(ordering: .relaxed) == 1)

            // Another node inserts.
            try await b.insertImage(makeImage(2, name: "second", created: 200))
            #expect(try await Self.names(a, query) == ["first", "second"])

            // An operator's SQL, outside imaged's write paths (bumping the row's version, as every write
            // must: rows are decoded again only when their version or updated_at moves).
            _ = try await b.rows("UPDATE images SET name = 'by-sql', version = version + 1 WHERE id = $1", [.text(first.id)])
            // It does not wait out the nodes' leases as imaged's writes do: seen once they have run out.
            try await Task.sleep(for: a.lease.commitWait)
            #expect(try await Self.names(a, query) == ["by-sql", "second"])

            // A rolled-back write moves nothing that a list could see.
            let hits = a.listPages.hits.load(ordering: .relaxed)
            do {
                try await b.transaction { c -> Void in
                    _ = try await b.rows("UPDATE images SET name = 'rolled-back', version = version + 1 WHERE id = $1", [.text(first.id)], on: c)
                    throw CancellationError()
                }
            } catch is CancellationError {}
            #expect(try await Self.names(a, query) == ["by-sql", "second"])
            #expect(a.listPages.hits.load(ordering: .relaxed) == hits + 1, "a rollback leaves the revision alone")

            // Membership decides a project's shared list: another node accepting shows the image.
            var shared = makeImage(3, owner: "p1", name: "shared", created: 300)
            shared.visibility = .shared
            try await a.insertImage(shared)
            let asP2 = ImageListQuery(scope: .init(isAdmin: false, projectId: "p2", visibility: .default, memberStatuses: [.accepted]),
                                      sort: Self.byCreated, limit: 10)
            #expect(try await Self.names(a, asP2) == [])
            try await b.insertMember(ImageMember(imageId: shared.id, memberId: "p2", status: .pending, createdAt: 1, updatedAt: 1))
            #expect(try await Self.names(a, asP2) == [])
            try await b.updateMember(ImageMember(imageId: shared.id, memberId: "p2", status: .accepted, createdAt: 1, updatedAt: 2))
            #expect(try await Self.names(a, asP2) == ["shared"])
            #expect(try await Self.names(a, asP2) == ["shared"])
            _ = try await b.deleteMember(imageId: shared.id, memberId: "p2")
            #expect(try await Self.names(a, asP2) == [])
        }
    }

    /// Writers on two nodes and listers at once: every write commits (the revision rows add no
    /// deadlock or serialization error), and a list that starts after the last write returned shows
    /// every write.
    @Test func concurrentWritersOnTwoNodesAndListers() async throws {
        try await Self.withTwoNodes { a, b in
            let images = (0..<16).map { makeImage($0, name: "v0", created: Int64(100 + $0)) }
            for image in images { try await a.insertImage(image) }
            let query = ImageListQuery(scope: Self.adminScope, sort: Self.byCreated, limit: 16)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for round in 1...5 {
                    for (i, image) in images.enumerated() {
                        let node = (i + round) % 2 == 0 ? a : b
                        group.addTask {
                            let written = try await node.updateImage(id: image.id) { img, _ in
                                img.name = "v\(max(round, Int(img.name?.dropFirst() ?? "0") ?? 0))"
                            }
                            #expect(written != nil)
                            // This writer's own write is in any list it starts now, on either node.
                            let listed = try await (i % 2 == 0 ? a : b).listImages(query)
                            let mine = listed.first { $0.id == image.id }
                            #expect((Int(mine?.name?.dropFirst() ?? "0") ?? 0) >= round)
                        }
                    }
                }
                for _ in 0..<20 { group.addTask { _ = try await a.listImages(query) } }
                try await group.waitForAll()
            }
            #expect(try await Self.names(a, query) == Array(repeating: "v5", count: 16))
            #expect(try await Self.names(b, query) == Array(repeating: "v5", count: 16))
        }
    }

    /// GET by id: a row read at the latest revision is answered from the cache after one check of the
    /// revision. Writes on this node, on another node and in plain SQL, to this image or any other,
    /// move the revision, and the next GET reads the row again.
    @Test func aGETIsAnsweredFromTheCacheOnlyWhileNothingWasWritten() async throws {
        try await Self.withTwoNodes { a, b in
            let image = makeImage(1, name: "v1", created: 100)
            try await a.insertImage(image)
            func hits() -> Int { a.revisionHits.load(ordering: .relaxed) }
            // First read: cached with its revision (a read by id needs no second read to get in); the
            // next ones: answered after the check.
            #expect(try await a.image(id: image.id)?.name == "v1")
            #expect(hits() == 0)
            #expect(try await a.image(id: image.id) == a.decodeCache.get(image.id))
            #expect(try await a.image(id: image.id)?.name == "v1")
            #expect(hits() == 2)

            // Another node renames it: read again, then cached at the new revision.
            _ = try await b.updateImage(id: image.id) { i, _ in i.name = "v2" }
            #expect(try await a.image(id: image.id)?.name == "v2")
            #expect(hits() == 2)
            #expect(try await a.image(id: image.id)?.name == "v2")
            #expect(hits() == 3)

            // A write to another image moves the revision as well.
            let other = makeImage(2, name: "other", created: 200)
            try await b.insertImage(other)
            #expect(try await a.image(id: image.id)?.name == "v2")
            #expect(hits() == 3)
            #expect(try await a.image(id: image.id)?.name == "v2")
            #expect(hits() == 4)

            // This node's own write.
            _ = try await a.updateImage(id: image.id) { i, _ in i.name = "v3" }
            #expect(try await a.image(id: image.id)?.name == "v3")
            #expect(hits() == 4)

            // Plain SQL (bumping the version, as every write must).
            _ = try await b.rows("UPDATE images SET name = 'by-sql', version = version + 1 WHERE id = $1", [.text(image.id)])
            try await Task.sleep(for: a.lease.commitWait)  // once a's lease has run out (plain SQL does not wait it out)
            #expect(try await a.image(id: image.id)?.name == "by-sql")

            // A list reads rows with the revision too: once a row is cached, a GET after a list is answered.
            let query = ImageListQuery(scope: Self.adminScope, sort: Self.byCreated, limit: 10)
            for _ in 0..<2 { _ = try await a.listImages(query) }
            let beforeGET = hits()
            #expect(try await a.image(id: other.id)?.name == "other")
            #expect(hits() == beforeGET + 1)

            // Deleted on another node: gone at the next GET.
            _ = try await b.rows("DELETE FROM images WHERE id = $1", [.text(other.id)])
            try await Task.sleep(for: a.lease.commitWait)
            #expect(try await a.image(id: other.id) == nil)
            #expect(hits() == beforeGET + 1)
        }
    }

    /// Writers on two nodes and readers GETting on both at once: a GET started after a write returned
    /// sees that write (or a later one), on either node, whatever the cache holds.
    @Test func concurrentWritersAndGETsOnTwoNodes() async throws {
        try await Self.withTwoNodes { a, b in
            let images = (0..<8).map { makeImage($0, name: "v0", created: Int64(100 + $0)) }
            for image in images { try await a.insertImage(image) }
            // Warm both nodes' caches so GETs take the revision path.
            for node in [a, b] { for _ in 0..<3 { for image in images { _ = try await node.image(id: image.id) } } }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for round in 1...5 {
                    for (i, image) in images.enumerated() {
                        let writer = (i + round) % 2 == 0 ? a : b
                        let reader = (i + round) % 3 == 0 ? a : b
                        group.addTask {
                            _ = try await writer.updateImage(id: image.id) { img, _ in
                                img.name = "v\(max(round, Int(img.name?.dropFirst() ?? "0") ?? 0))"
                            }
                            let read = try await reader.image(id: image.id)
                            #expect((Int(read?.name?.dropFirst() ?? "0") ?? 0) >= round)
                        }
                    }
                }
                for _ in 0..<40 { group.addTask { for image in images { _ = try await a.image(id: image.id) } } }
                try await group.waitForAll()
            }
            for node in [a, b] {
                for image in images { #expect(try await node.image(id: image.id)?.name == "v5") }
            }
            #expect(a.revisionHits.load(ordering: .relaxed) + b.revisionHits.load(ordering: .relaxed) > 0)
        }
    }

    /// The lease, on two nodes with a one-second one (so the test does not depend on the machine's
    /// speed): a check answers for the GETs after it without another; a write through imaged returns
    /// only once the lease is out, so the other node's next GET sees it; plain SQL does not wait, and is
    /// seen once the lease has run out; past half the lease a GET starts the next check itself.
    @Test func aCheckAnswersForTheLeaseAndImagedWritesWaitItOut() async throws {
        try await Self.withTwoNodes { setup, _ in
            var location = setup.location
            location.readLease = .seconds(1)
            let a = try await PostgresCatalog.open(location)
            let b = try await PostgresCatalog.open(location)
            defer { a.close(); b.close() }
            let image = makeImage(1, name: "v1", created: 100)
            try await b.insertImage(image)

            #expect(try await a.image(id: image.id)?.name == "v1")  // read, cached
            #expect(try await a.image(id: image.id)?.name == "v1")  // one check
            let checks = a.revisionChecks.load(ordering: .relaxed)
            #expect(checks == 1)
            for _ in 0..<20 { #expect(try await a.image(id: image.id)?.name == "v1") }
            #expect(a.revisionChecks.load(ordering: .relaxed) == checks, "answered by the lease, no check")
            #expect(a.revisionHits.load(ordering: .relaxed) == 21)

            // Another node's write returns only after the lease: the next GET here checks and sees it.
            let clock = ContinuousClock()
            let took = try await clock.measure {
                _ = try await b.updateImage(id: image.id) { i, _ in i.name = "v2" }
            }
            #expect(took >= b.lease.commitWait)
            #expect(try await a.image(id: image.id)?.name == "v2")
            #expect(a.revisionChecks.load(ordering: .relaxed) > checks)

            // A write that changes nothing commits nothing, and does not wait.
            let unchanged = try await clock.measure { _ = try await b.updateImage(id: image.id) { i, _ in i.name = "v2" } }
            #expect(unchanged < b.lease.length)

            // Plain SQL does not wait: within the lease, this node still answers what it checked last...
            #expect(try await a.image(id: image.id)?.name == "v2")
            _ = try await a.revision()  // a check started just now vouches, for a whole second
            _ = try await b.rows("UPDATE images SET name = 'by-sql', version = version + 1 WHERE id = $1", [.text(image.id)])
            #expect(try await a.image(id: image.id)?.name == "v2", "plain SQL within the lease: not seen yet")
            // ...and sees it once the lease has run out.
            try await Task.sleep(for: a.lease.commitWait)
            #expect(try await a.image(id: image.id)?.name == "by-sql")

            // Past half the lease, a GET is answered at once and starts the next check for the ones after.
            #expect(try await a.image(id: image.id)?.name == "by-sql")  // checked: the lease starts
            let before = a.revisionChecks.load(ordering: .relaxed)
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await a.image(id: image.id)?.name == "by-sql")
            let deadline = ContinuousClock.now + .seconds(5)
            while a.revisionChecks.load(ordering: .relaxed) == before, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(a.revisionChecks.load(ordering: .relaxed) == before + 1, "one check started ahead of need")
        }
    }

    /// Lists of many shapes (filters of 1 to 12 names), unprepared (no room on any connection), then
    /// prepared: the same answers either way, typed parameters included (text, bigint, boolean, NULL).
    @Test func listsOfManyShapesAnswerTheSamePreparedOrNot() async throws {
        try await Self.withTwoNodes { a, _ in
            var images: [Image] = []
            for i in 0..<12 {
                var image = makeImage(i, name: "s\(i)", created: Int64(100 + i))
                image.isProtected = i % 2 == 0
                images.append(image)
                try await a.insertImage(image)
            }
            let noProject = ImageListQuery.Scope(isAdmin: true, projectId: nil, visibility: .default, memberStatuses: nil)
            for round in 0..<2 {
                a.preparedPerConnection.store(round == 0 ? 0 : 64, ordering: .relaxed)
                for n in 1...12 {
                    var query = ImageListQuery(scope: n % 3 == 0 ? noProject : Self.adminScope, sort: Self.byCreated, limit: 20)
                    query.filters = [.oneOf(.name, (0..<n).map { "s\($0)" }), .isProtected(true), .int(.size, .gte, 0)]
                    let expected = images.prefix(n).filter { $0.isProtected && ($0.size ?? -1) >= 0 }.map(\.name)
                    #expect(try await a.listImages(query).map(\.name) == expected, "round \(round), \(n) names")
                }
                let prepared = a.preparedLists.withLock { $0.values.reduce(0) { $0 + $1.bySQL.count } }
                #expect(round == 0 ? prepared == 0 : prepared >= 12, "round \(round): \(prepared) prepared")
            }
        }
    }
}

/// The page cache's own rules, without a database.
@Suite struct ListPageCacheTests {
    /// The cache is bounded: a stream of pages read once drops old ones, and a page read again survives.
    @Test func thePageCacheKeepsWhatIsReadAgainWithinItsBounds() {
        let cache = ListPageCache(capacity: 8, imageCapacity: 1_000)
        let hot = ListPageCache.Key(sql: "hot", values: [])
        cache.keep(hot, .init(revision: 1, images: []))
        #expect(cache.page(hot) == nil, "offered once: not kept")
        cache.keep(hot, .init(revision: 1, images: []))
        for i in 0..<100 {
            for _ in 0..<2 { cache.keep(.init(sql: "cold", values: [.int(Int64(i))]), .init(revision: 1, images: []) ) }
            #expect(cache.page(hot)?.revision == 1, "read again after \(i) others")
        }
        #expect(cache.page(.init(sql: "cold", values: [.int(99)]))?.revision == 1)
        #expect(cache.page(.init(sql: "cold", values: [.int(0)])) == nil)
        // An older read never replaces a newer page.
        cache.keep(hot, .init(revision: 5, images: []))
        cache.keep(hot, .init(revision: 3, images: []))
        #expect(cache.page(hot)?.revision == 5)
    }

    /// Keys of one statement with other values, or one value with another statement, are other pages.
    @Test func keysAreTheStatementAndItsValues() {
        let a = ListPageCache.Key(sql: "q", values: [.int(1), .text("x")])
        #expect(a == ListPageCache.Key(sql: "q", values: [.int(1), .text("x")]))
        #expect(a.hashValue == ListPageCache.Key(sql: "q", values: [.int(1), .text("x")]).hashValue)
        for other in [ListPageCache.Key(sql: "q", values: [.int(2), .text("x")]), .init(sql: "q", values: [.text("1"), .text("x")]),
                      .init(sql: "r", values: [.int(1), .text("x")]), .init(sql: "q", values: [.int(1)])] {
            #expect(a != other)
        }
    }
}

/// The lease's own rules, on made-up instants.
@Suite struct RevisionLeaseTests {
    @Test func aCheckAnswersForItsRevisionUntilTheLeaseRunsOut() {
        let lease = RevisionLease(length: .milliseconds(10))
        let t0 = ContinuousClock.now
        #expect(lease.answer(for: 7, now: t0) == .unknown, "no check yet")
        lease.record(7, startedAt: t0)
        #expect(lease.answer(for: 7, now: t0 + .milliseconds(3)) == .current(refresh: false))
        #expect(lease.answer(for: 7, now: t0 + .milliseconds(6)) == .current(refresh: true), "past half: check ahead")
        #expect(lease.answer(for: 7, now: t0 + .milliseconds(10)) == .current(refresh: true))
        #expect(lease.answer(for: 7, now: t0 + .microseconds(10_001)) == .unknown, "run out")
        #expect(lease.answer(for: 8, now: t0 + .milliseconds(1)) == .unknown, "another revision: check")
        // Measured from when the check started, not when it answered; a check that started earlier
        // and answered later does not replace a later-started one.
        lease.record(8, startedAt: t0 + .milliseconds(5))
        lease.record(7, startedAt: t0 + .milliseconds(4))
        #expect(lease.answer(for: 8, now: t0 + .milliseconds(9)) == .current(refresh: false))
        #expect(lease.answer(for: 7, now: t0 + .milliseconds(9)) == .unknown)
        // Writers wait the lease and an eighth more, for clocks that run at different rates.
        #expect(lease.commitWait == .microseconds(11_250))
    }

    @Test func aZeroLeaseChecksEveryReadAndWritersDoNotWait() {
        let lease = RevisionLease(length: .zero)
        let t0 = ContinuousClock.now
        lease.record(7, startedAt: t0)
        #expect(lease.answer(for: 7, now: t0) == .unknown)
        #expect(lease.commitWait == .zero)
    }

    @Test func oneReadAtATimeStartsTheCheckAhead() {
        let lease = RevisionLease(length: .milliseconds(10))
        #expect(lease.claimRefresh())
        #expect(!lease.claimRefresh())
        lease.refreshEnded()
        #expect(lease.claimRefresh())
    }
}
