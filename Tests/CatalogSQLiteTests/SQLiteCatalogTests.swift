@testable import CatalogSQLite
import Foundation
import ImageCore
import CatalogSQL
import GRDB
import GRDBSQLite
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

/// What only the SQLite catalog has; the behaviour both catalogs share is in CatalogConformanceTests.
@Suite struct SQLiteCatalogTests {
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

    /// Entries are found by id alone: ids that differ only in one character, or in case, are
    /// different entries, whatever their hashes.
    @Test func entriesAreKeyedByTheWholeId() {
        let cache = ImageCache(capacity: 100)
        var a = makeImage(1), b = makeImage(2)
        a.id = "6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d4"
        b.id = "6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d5"
        cache.offer(a)
        cache.offer(b)
        #expect(cache.get(a.id)?.id == a.id && cache.get(b.id)?.id == b.id)
        #expect(cache.get(a.id.uppercased()) == nil)
        #expect(cache.get("6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d6") == nil)
        #expect(cache.count == 2)
        guard case .hit(let hit) = cache.lookup(b.id, version: b.version, updatedAt: b.updatedAt) else {
            Issue.record("no hit for \(b.id)")
            return
        }
        #expect(hit.id == b.id)
    }

    @Test func boundedInSizeAndAHotEntrySurvives() {
        let cache = ImageCache(capacity: 10)
        let images = (0..<25).map { makeImage($0) }
        let hot = images[0]
        for image in images {
            cache.offer(image)
            #expect(cache.get(hot.id) == hot)  // read between every insert: never forgotten
            #expect(cache.count <= 10)
        }
        // The newest entries are always there (half the capacity, less the hot entry's place); older
        // ones go in bulk.
        #expect(images[21...].allSatisfy { cache.get($0.id) == $0 })
        #expect(images[1..<10].allSatisfy { cache.get($0.id) == nil })
        // A newer version replaces an entry; an older one never does, in either generation.
        var newer = images[22]
        newer.version += 1
        newer.name = "newer"
        cache.offer(newer)
        var older = images[22]
        older.name = "older"
        cache.offer(older)
        #expect(cache.get(newer.id)?.name == "newer")
        for image in images[5..<10] { cache.offer(image) }  // images[20...] move to the old generation
        cache.offer(older)
        #expect(cache.get(newer.id)?.name == "newer")
        #expect(cache.count <= 10)
    }
}

extension ImageCacheTests {
    /// The estimate counts what an image holds on the heap: strings longer than 15 UTF-8 bytes
    /// (shorter ones are inline), tags and properties, each by its length.
    @Test func footprintFollowsWhatAnImageHolds() {
        var image = makeImage(1)
        image.properties = [:]
        image.tags = []
        image.id = "short"
        let bare = ImageCache.footprint(image)
        #expect(bare > 0)
        image.name = String(repeating: "n", count: 15)
        #expect(ImageCache.footprint(image) == bare)  // inline
        image.name = String(repeating: "n", count: 16)
        let named = ImageCache.footprint(image)
        #expect(named >= bare + 16 + 32)
        image.name = String(repeating: "n", count: 1_000)
        #expect(ImageCache.footprint(image) >= bare + 1_000 + 32)
        image.properties = ["description": String(repeating: "d", count: 4_000)]
        let described = ImageCache.footprint(image)
        #expect(described >= ImageCache.footprint({ var i = image; i.properties = [:]; return i }()) + 4_000 + 64)
        image.tags = (0..<10).map { "tag-number-\($0)-of-ten" }
        #expect(ImageCache.footprint(image) >= described + 10 * (16 + 21))
    }

    /// The cache holds at most its budget of estimated bytes, whatever the number of entries: big
    /// records leave sooner than small ones, and a budget's worth of small ones all stay.
    @Test func boundedByItsBudgetOfBytes() {
        func image(_ i: Int, propertyBytes: Int) -> Image {
            var image = makeImage(i)
            image.properties = ["blob": String(repeating: "x", count: propertyBytes)]
            return image
        }
        let small = (0..<400).map { image($0, propertyBytes: 20) }
        let big = (0..<400).map { image($0, propertyBytes: 20_000) }
        let budget = 40 * ImageCache.footprint(big[0])
        let cache = ImageCache(bytes: budget)
        for record in big {
            cache.offer(record)
            #expect(cache.heldBytes <= budget)
        }
        let bigKept = big.count { cache.get($0.id) != nil }
        #expect(bigKept >= 20 && bigKept <= 40)
        // The same budget keeps every one of the small records, about 20 times more.
        let smallCache = ImageCache(bytes: budget)
        for record in small { smallCache.offer(record) }
        #expect(small.allSatisfy { smallCache.get($0.id) == $0 })
        #expect(smallCache.heldBytes <= budget)
        // Replacing an entry with a newer version counts the new one only.
        var newer = small[0]
        newer.version += 1
        smallCache.offer(newer)
        #expect(smallCache.get(newer.id) == newer)
        #expect(smallCache.heldBytes == small.dropFirst().reduce(0) { $0 + ImageCache.footprint($1) } + ImageCache.footprint(newer))
    }
}

extension ImageCacheTests {
    /// What a catalog does with a row it has read: look it up, and offer it when told to.
    /// Returns whether the cache answered.
    @discardableResult
    func read(_ cache: ImageCache, _ image: Image, since ticket: ImageCache.ReadTicket? = nil) -> Bool {
        let ticket = ticket ?? cache.ticket()
        switch cache.lookup(image.id, version: image.version, updatedAt: image.updatedAt) {
        case .hit(let cached):
            #expect(cached == image)
            return true
        case .miss(let admit):
            if admit { cache.offerRead(image, since: ticket) }
            return false
        }
    }

    /// A row read for the first time is only remembered; the second read caches it, the third hits.
    /// A write's image is cached at once.
    @Test func aReadRowIsCachedOnItsSecondRead() {
        let cache = ImageCache(capacity: 100)
        let row = makeImage(1), written = makeImage(2)
        #expect(!read(cache, row))
        #expect(cache.get(row.id) == nil)
        #expect(!read(cache, row))
        #expect(cache.get(row.id) == row)
        #expect(read(cache, row))
        cache.offer(written)
        #expect(read(cache, written))
        // A newer version read replaces a cached one without waiting for a second read.
        var newer = written
        newer.version += 1
        newer.name = "newer"
        #expect(!read(cache, newer))
        #expect(cache.get(written.id) == newer)
        // Any cached version answers a lookup without one (the SQLite GET: its cache has every write).
        guard case .hit(let got) = cache.lookup(written.id) else { Issue.record("no hit"); return }
        #expect(got == newer)
    }

    /// A read that began before two generations were dropped may hold a row older than a version
    /// written meanwhile and dropped with them: its offer is refused. After one drop it is still taken.
    @Test func aReadOlderThanTwoDroppedGenerationsIsRefused() {
        let cache = ImageCache(capacity: 10)
        let image = makeImage(0)
        read(cache, image)  // seen once: the next read is admitted
        let ticket = cache.ticket()
        for i in 1...5 { cache.offer(makeImage(i)) }  // young reaches 5: one generation dropped
        read(cache, image, since: ticket)
        #expect(cache.get(image.id) == image)
        let other = makeImage(99)
        read(cache, other)
        let late = cache.ticket()
        for i in 6...15 { cache.offer(makeImage(i)) }  // two more drops
        read(cache, other, since: late)
        #expect(cache.get(other.id) == nil)
        read(cache, other)
        #expect(cache.get(other.id) == other)
    }

    /// A row read by id (a GET) is cached on its first read, even right after a walk's first reads
    /// cleared the doorkeeper, and answers the next read by id.
    @Test func aRowReadByIDIsCachedOnItsFirstRead() {
        let cache = ImageCache(capacity: 4 * ImageCache.seenBits)
        // A walk, until the doorkeeper starts again: that is when an eighth of its bits were set, by
        // first reads (remembered, not admitted). A read whose bit was already set (a hash collision)
        // is admitted instead and sets none, so counting reads alone would leave it short, and a later
        // first read would then collide one time in eight.
        var remembered = 0
        var i = 0
        while remembered < ImageCache.seenBits / 8 {
            let walked = makeImage(1_000_000 + i)
            i += 1
            if !read(cache, walked), cache.get(walked.id) == nil { remembered += 1 }
        }
        let row = makeImage(1)
        guard case .miss(admit: true) = cache.lookup(row.id, version: row.version, updatedAt: row.updatedAt, byID: true) else {
            Issue.record("a first read by id was not admitted"); return
        }
        cache.offerRead(row, since: cache.ticket())
        guard case .hit(let got) = cache.lookup(row.id, version: row.version, updatedAt: row.updatedAt, byID: true) else {
            Issue.record("the second read by id missed"); return
        }
        #expect(got == row)
        // The same first read by a list is only remembered.
        let listed = makeImage(2)
        guard case .miss(admit: false) = cache.lookup(listed.id, version: listed.version, updatedAt: listed.updatedAt) else {
            Issue.record("a first read by a list was admitted"); return
        }
    }

    /// Rows read once stay out of the cache but for hash collisions (one bit per id, at most an
    /// eighth of the bits set: ~6 %), and the doorkeeper starts again when that many are set, so it
    /// never comes to admit everything.
    @Test func rowsReadOnceStayOut() {
        let cache = ImageCache(capacity: 4 * ImageCache.seenBits)  // large enough never to drop a generation
        let reads = ImageCache.seenBits / 2  // four fillings of the doorkeeper
        for i in 0..<reads { read(cache, makeImage(i)) }
        #expect(cache.count < reads / 10)
        #expect(cache.count > 0)  // (collisions do admit some: the count is real, not a constant)
    }
}

extension ImageCacheTests {
    /// Rows read again but more of them than the cache holds: once the cache has been full and a
    /// window of lookups hit less than half the time, one second read in eight by a list is
    /// admitted, not each; a read by id still is, on its first read. A small set read often still
    /// gets in, and then hits.
    @Test func aWorkingSetLargerThanTheCacheIsAdmittedOneInEight() {
        let cache = ImageCache(capacity: 200)
        let rows = (0..<2_000).map { makeImage($0) }
        for row in rows { read(cache, row) }  // first reads: remembered only
        // Second reads: the first window (4,096 lookups) is not over, so each is admitted; the
        // cache fills and drops generations, and the window ends with few hits.
        for row in rows { read(cache, row) }
        for row in rows { read(cache, row) }
        // Now thinning: count what a pass over the rows admits.
        let ticketless = cache.ticket()
        var admitted = 0, misses = 0
        for row in rows {
            if case .miss(let admit) = cache.lookup(row.id, version: row.version, updatedAt: row.updatedAt) {
                misses += 1
                if admit { admitted += 1; cache.offerRead(row, since: ticketless) }
            }
        }
        #expect(misses > 1_500)
        #expect(admitted >= misses / ImageCache.thinning - 1 && admitted <= misses / ImageCache.thinning + 1)
        // Still thinning (the window of 4,096 lookups is not over): rows a list meets for the second
        // time are admitted one in eight, rows read by id (GETs) each on its first read.
        let listed = (6_000..<6_040).map { makeImage($0) }, fetched = (7_000..<7_040).map { makeImage($0) }
        func admissions(_ rows: [Image], byID: Bool) -> Int {
            rows.count { row in
                guard case .miss(let admit) = cache.lookup(row.id, version: row.version, updatedAt: row.updatedAt, byID: byID)
                else { return false }
                return admit
            }
        }
        #expect(admissions(fetched, byID: true) == fetched.count)
        // First reads by a list: remembered only (one may collide in the doorkeeper's bits, ~0.2 % each).
        #expect(admissions(listed, byID: false) <= 1)
        let listedAdmitted = admissions(listed, byID: false)
        #expect(listedAdmitted >= listed.count / ImageCache.thinning - 1 && listedAdmitted <= listed.count / ImageCache.thinning + 1)
        // A hot set of ten is in the cache after a few dozen reads each, and answers from it.
        let hot = (5_000..<5_010).map { makeImage($0) }
        for _ in 0..<40 { for row in hot { read(cache, row) } }
        #expect(hot.allSatisfy { read(cache, $0) })
    }
}

/// Tags and properties read from a column's bytes mean what the general JSON parser says they mean.
@Suite struct DocumentColumnsTests {
    func bytes<T>(_ text: String, _ body: (UnsafeBufferPointer<UInt8>) throws -> T) rethrows -> T {
        try Array(text.utf8).withUnsafeBufferPointer(body)
    }

    func generalTags(_ text: String) throws -> [String] {
        guard case .array(let items) = try JSONValue.parse(text) else { throw ImageError(.internal, "not an array") }
        return items.compactMap(\.stringValue)
    }

    func generalProperties(_ text: String) throws -> [String: String] {
        guard case .object(let members) = try JSONValue.parse(text) else { throw ImageError(.internal, "not an object") }
        var out: [String: String] = [:]
        for (k, v) in members { if let s = v.stringValue { out[k] = s } }
        return out
    }

    @Test(arguments: [
        "[]", "[\"bench\"]", "[\"a\",\"b\"]", "[\"a\", \"b\"]", " [ \"x\" ] ", "[\"sn\u{2603}w\"]",
        "[\"q\\\"uote\"]", "[\"tab\\t\"]", "[\"\\u2603\"]", "[1, \"a\"]", "[\"a\", null]", "[\"\"]",
    ])
    func tagsAgree(_ text: String) throws {
        #expect(try bytes(text, DocumentColumns.decodeTags) == (try generalTags(text)))
        #expect(try DocumentColumns.decodeTags(text) == (try generalTags(text)))
    }

    @Test(arguments: [
        "{}", "{\"os_distro\":\"debian\"}", "{\"a\": \"1\", \"b\": \"2\"}", "{\"k\":\"v1\",\"k\":\"v2\"}",
        "{\"quote\\\"d\":\"\u{2603}\"}", "{\"n\":1,\"s\":\"x\"}", "{\"nested\":{\"a\":\"b\"}}", "{\"\":\"\"}",
        "\u{FEFF}{\"bom\":\"x\"}",
    ])
    func propertiesAgree(_ text: String) throws {
        #expect(try bytes(text, DocumentColumns.decodeProperties) == (try generalProperties(text)))
        #expect(try DocumentColumns.decodeProperties(text) == (try generalProperties(text)))
    }

    /// What the general parser refuses is refused from bytes too: a truncated document, trailing
    /// data, a raw control character. Invalid UTF-8 is repaired, as reading the column as a String was.
    @Test func malformedDocumentsAreRefused() throws {
        for text in ["[\"a\"", "[\"a\"] x", "[\"a\u{1}\"]", "{\"a\":\"b\"", "{\"a\" \"b\"}", "[\"a\",]", "{,}"] {
            #expect(throws: (any Error).self) { try bytes(text, DocumentColumns.decodeTags) }
            #expect(throws: (any Error).self) { try bytes(text, DocumentColumns.decodeProperties) }
        }
        let invalidUTF8: [UInt8] = [0x5B, 0x22, 0xFF, 0xFE, 0x22, 0x5D]  // ["\xFF\xFE"]
        #expect(try invalidUTF8.withUnsafeBufferPointer(DocumentColumns.decodeTags) == ["\u{FFFD}\u{FFFD}"])
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
        let statement = ListSQL.build(query, .sqlite)
        let (sql, args) = (statement.sql, SQLiteCatalog.arguments(statement.values))
        #expect(sql.contains("(created_at, id) < (?,?)"))
        let plan = try catalog.readNow { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: args).map { $0["detail"] as String }
        }
        #expect(plan.contains { $0.contains("images_status_created") && $0.contains("(created_at,id)<(?,?)") }, "\(plan)")
    }

    /// A page sorted by any key, either way, walks an index in the list's order: no sort of the
    /// whole catalog (which took 1.6 s at 1M images for size) — for an admin and for a project.
    @Test func everySortKeyWalksAnIndex() async throws {
        let (dir, path) = try temporaryCatalogPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try SQLiteCatalog(path: path)
        try await catalog.insertImage(makeImage(1))
        let scopes = [ImageListQuery.Scope(isAdmin: true, projectId: "p1", visibility: .all, memberStatuses: nil),
                      ImageListQuery.Scope(isAdmin: false, projectId: "p1", visibility: .default, memberStatuses: [.accepted])]
        for scope in scopes {
            for key in ImageListQuery.SortKey.allCases {
                for direction in [SortDirection.asc, .desc] {
                    var request = ImageListRequest()
                    request.sort = [.init(key, direction)]
                    var query = try ImageService.listQuery(request, config: ImageServiceConfig(), by: Principal(userId: "u1", projectId: "p1", roles: scope.isAdmin ? ["admin"] : ["member"]))
                    query.scope = scope
                    let statement = ListSQL.build(query, .sqlite)
                    let args = SQLiteCatalog.arguments(statement.values)
                    let plan = try catalog.readNow { db in
                        try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + statement.sql, arguments: args).map { $0["detail"] as String }
                    }
                    #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(key) \(direction): \(plan)")
                }
            }
        }
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
                        catalog.cache.removeAll()
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

@Suite struct DirectReadersTests {
    /// Reads on our own connections see every committed write, bind each value type, and give way
    /// (nil) instead of waiting when every connection is in use.
    @Test func readsCommittedRowsAndGivesWayWhenAllAreBusy() async throws {
        let (dir, path) = try temporaryCatalogPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try SQLiteCatalog(path: path)
        let image = makeImage(1, name: "first")
        try await catalog.insertImage(image)
        let readers = DirectReaders(path: path, capacity: 1)
        let select = "SELECT name FROM images WHERE id = ? AND protected = ? AND min_ram >= ? AND (? IS NULL)"
        func name() throws -> [String?]? {
            try readers.read { reader in
                try reader.rows(select, [.text(image.id), .bool(false), .int(0), .null]) { st in
                    sqlite3_column_text(st, 0).map { String(cString: $0) }
                }
            }
        }
        #expect(try name() == ["first"])
        _ = try await catalog.updateImage(id: image.id) { $0.name = "second" }
        #expect(try name() == ["second"])
        let nested = try readers.read { _ in try name() }
        #expect(nested == .some(nil))
        #expect(try readers.read { _ in 1 } == 1)
        // A statement error is thrown, and the connection stays usable.
        #expect(throws: ImageError.self) { try readers.read { try $0.rows("SELECT nope FROM images", []) { _ in 0 } } }
        #expect(try name() == ["second"])
    }

    /// A read that outgrows its budget stops with DirectReadOverBudget (a long scan must not hold a
    /// cooperative thread), and the connection serves the next read with a fresh budget.
    @Test func aReadOverItsBudgetStopsAndTheConnectionStaysUsable() async throws {
        let (dir, path) = try temporaryCatalogPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try SQLiteCatalog(path: path)
        let readers = DirectReaders(path: path, capacity: 1, budgetSteps: 5)
        let count = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT count(*) FROM c"
        func counted(_ n: Int) throws -> Int64? {
            try readers.read { try $0.rows(count, [.int(Int64(n))]) { sqlite3_column_int64($0, 0) }.first } ?? nil
        }
        #expect(throws: DirectReadOverBudget.self) { try counted(1_000_000) }
        #expect(try counted(10) == 10)
        #expect(throws: DirectReadOverBudget.self) { try counted(1_000_000) }
        #expect(try counted(100) == 100)
    }

    /// A list whose direct read goes over budget is answered by GRDB's pool with the same rows.
    @Test func aListOverBudgetFallsBackWithTheSameRows() async throws {
        let (dir, path) = try temporaryCatalogPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let normal = try SQLiteCatalog(path: path)
        for i in 0..<300 { try await normal.insertImage(makeImage(i, name: "n\(i % 17)", created: Int64(1_000 + i % 50))) }
        let starved = try SQLiteCatalog(path: path, durability: .full, directReadBudgetSteps: 0)
        let scope = ImageListQuery.Scope(isAdmin: true, projectId: nil, visibility: .all, memberStatuses: nil)
        let queries = [
            ImageListQuery(scope: scope, sort: [.init(.size, .desc), .init(.id, .desc)], limit: 25),
            ImageListQuery(scope: scope, sort: [.init(.name, .asc), .init(.id, .asc)], limit: 40),
            ImageListQuery(scope: scope, filters: [.oneOf(.status, ["queued"])], sort: [.init(.createdAt, .desc), .init(.id, .desc)], limit: 1_000),
        ]
        for query in queries {
            let statement = ListSQL.build(query, .sqlite)
            // The starved catalog's direct read does stop, so its answer comes from the fallback.
            #expect(throws: DirectReadOverBudget.self) {
                try starved.directReaders.read { try $0.rows(statement.sql, statement.values) { _ in 0 } }
            }
            starved.cache.removeAll()
            let expected = try await normal.listImages(query)
            #expect(!expected.isEmpty)
            #expect(try await starved.listImages(query) == expected)
        }
    }
}

