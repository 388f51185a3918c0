import Foundation
import ImageCore
import Testing

/// The behaviour every catalog must have, run against each backend (`Backend.available`).
@Suite struct ImageRowConformance {
    @Test(arguments: Backend.available)
    func roundTripsEveryField(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let image = Image(id: ImageID.generate(), name: "n", status: .active, visibility: .community, isProtected: true,
                              osHidden: true, owner: "o", containerFormat: "bare", diskFormat: "qcow2", size: 123,
                              virtualSize: 456, minDisk: 1, minRam: 2, checksum: "c", osHashAlgo: "sha512", osHashValue: "h",
                              createdAt: 10, updatedAt: 20, deletedAt: nil, tags: ["a", "b", "\u{2603}"],
                              properties: ["x": "y", "e": "", "quote\"d": "back\\slash", "nul\u{1}": "ctl\u{7}"],
                              extensions: ["avi": .object([("type", .string("IMAGE_TYPE_SYSTEM")), ("progress", .int(40)),
                                                           ("controller_info", .object([("path", .string("/p")), ("build", .object([("version", .string("30.2.1")), ("build_no", .int(9056))]))])),
                                                           ("events", .array([.null, .bool(true), .double(1.5)]))]),
                                           "zstack": .object([("systemTags", .array([.string("a::b")]))])])
            try await catalog.insertImage(image)
            let stored = try await catalog.image(id: image.id)
            #expect(stored == image)
            let missing = try await catalog.image(id: ImageID.generate())
            #expect(missing == nil)
        }
    }

    @Test(arguments: Backend.available)
    func duplicateIDsConflict(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let image = makeImage(1)
            try await catalog.insertImage(image)
            var deleted = try #require(try await catalog.updateImage(id: image.id) { $0.status = .deleted })
            deleted.name = "reuse"
            let again = deleted
            // Ids are never reused, deleted images included.
            await #expect(throws: ImageError.conflict("An image with identifier \(image.id) already exists.")) {
                try await catalog.insertImage(again)
            }
        }
    }

    /// Many concurrent reads by id (PostgreSQL answers those that arrive together with one query):
    /// each gets its own image or nil, and a read that starts after a write returns sees it.
    @Test(arguments: Backend.available)
    func concurrentReadsByIDEachGetTheirOwnImage(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let images = (1...60).map { makeImage($0) }
            for image in images { try await catalog.insertImage(image) }
            let missing = (0..<20).map { _ in ImageID.generate() }
            let wanted = (images.map(\.id) + missing).shuffled()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (round, id) in (wanted + wanted).enumerated() {
                    group.addTask {
                        if round % 10 == 0, let known = images.first(where: { $0.id == id }) {
                            let renamed = "renamed-\(round)"
                            let written = try await catalog.updateImage(id: known.id) { $0.name = renamed }
                            #expect(written?.name == renamed)
                            // Read after the write returned: the new name or a later write's, never the old one.
                            let read = try await catalog.image(id: known.id)
                            #expect(read?.name?.hasPrefix("renamed-") == true, "\(known.id) read \(read?.name ?? "nil")")
                        } else {
                            let read = try await catalog.image(id: id)
                            #expect(read?.id == (missing.contains(id) ? nil : id))
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    /// Many concurrent inserts, some with ids already taken, some racing for one id: exactly the
    /// duplicates fail.
    @Test(arguments: Backend.available)
    func concurrentInsertsWithDuplicates(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
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
            #expect(failures.filter { $0 % 20 == 2 }.count == 10)
            #expect(failures.filter { $0 % 20 == 0 || $0 % 20 == 1 }.count == 10)
            #expect(failures.count == 20)
            let scope = ImageListQuery.Scope(isAdmin: true, projectId: nil, visibility: .all, memberStatuses: nil)
            let all = try await catalog.listImages(.init(scope: scope, sort: [.init(.id, .asc)], limit: 1000))
            #expect(all.count == 1 + 200 - 20)
            #expect(Set(all.map(\.id)) == Set(images.map(\.id)).union([existing.id]))
        }
    }

    @Test(arguments: Backend.available)
    func updatesAreAtomicAndBumpTheVersion(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let image = makeImage(1)
            try await catalog.insertImage(image)
            let updated = try await catalog.updateImage(id: image.id) { $0.name = "first" }
            #expect(updated?.name == "first" && updated?.version == 1)
            // A change that changes nothing writes nothing.
            let same = try await catalog.updateImage(id: image.id) { $0.name = "first" }
            #expect(same?.version == 1)
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
            let unknown = try await catalog.updateImage(id: ImageID.generate()) { $0.name = "x" }
            #expect(unknown == nil)
        }
    }

    @Test(arguments: Backend.available)
    func imagesWithStatusFindEveryOwner(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            var a = makeImage(1, owner: "p1"); a.status = .saving
            var b = makeImage(2, owner: "p2"); b.status = .importing
            let c = makeImage(3, owner: "p3")
            for i in [a, b, c] { try await catalog.insertImage(i) }
            let found = try await catalog.images(withStatus: [.saving, .importing])
            #expect(Set(found.map(\.id)) == [a.id, b.id])
            let none = try await catalog.images(withStatus: [])
            #expect(none.isEmpty)
        }
    }
}

@Suite struct ListConformance {
    static let sorts: [[ImageListQuery.Sort]] = [
        [.init(.name, .asc)], [.init(.name, .desc)], [.init(.size, .asc)],
        [.init(.size, .desc), .init(.name, .asc)], [.init(.createdAt, .desc)], [.init(.status, .asc), .init(.diskFormat, .desc)],
    ]

    /// Keyset paging returns exactly the in-memory sorted order, page after page, for mixed
    /// directions and NULLs (NULL before any value ascending, after descending, on both engines).
    @Test(arguments: Backend.available, sorts)
    func keysetPagingMatchesSortedOrder(_ backend: Backend, sort: [ImageListQuery.Sort]) async throws {
        try await TestCatalog.with(backend) { catalog in
            var images: [Image] = []
            for i in 0..<60 {
                var image = makeImage(i, name: i % 5 == 0 ? nil : ["n\(i % 4)", "N", "a b", "Z"][i % 4], created: Int64(1_000 + i % 6))
                image.diskFormat = i % 3 == 0 ? nil : ["raw", "qcow2"][i % 2]
                image.status = i % 7 == 0 ? .active : .queued
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
    }

    /// Page-numbered listing (Avi): OFFSET pages walk the same order as keyset paging, and the count
    /// ignores paging but not filters or scope.
    @Test(arguments: Backend.available)
    func offsetPagesAndCounts(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            for i in 0..<23 { try await catalog.insertImage(makeImage(i, owner: i < 20 ? "p1" : "p2", name: "n\(i % 3)", created: Int64(100 + i))) }
            var gone = makeImage(99)
            gone.status = .deleted
            try await catalog.insertImage(gone)
            let scope = ImageListQuery.Scope(isAdmin: false, projectId: "p1", visibility: .default, memberStatuses: [.accepted])
            let sort = [ImageListQuery.Sort(.createdAt, .asc), .init(.id, .asc)]
            let all = try await catalog.listImages(.init(scope: scope, sort: sort, limit: 100)).map(\.id)
            #expect(all.count == 20)
            var paged: [String] = []
            for page in 0..<4 {
                var q = ImageListQuery(scope: scope, sort: sort, limit: 6)
                q.offset = page * 6
                paged += try await catalog.listImages(q).map(\.id)
            }
            #expect(paged == all)
            let count = try await catalog.countImages(.init(scope: scope, sort: [], limit: 0))
            let named = try await catalog.countImages(.init(scope: scope, filters: [.oneOf(.name, ["n1"])], sort: [], limit: 0))
            #expect(count == 20 && named == 7)
        }
    }

    /// NULL sorts before any value; text compares bytewise (as both catalogs store it).
    static func less(_ a: SortValue, _ b: SortValue) -> Bool {
        switch (a, b) {
        case let (.text(x), .text(y)):
            guard let x else { return y != nil }
            guard let y else { return false }
            return Array(x.utf8).lexicographicallyPrecedes(Array(y.utf8))
        case let (.integer(x), .integer(y)): return x == nil ? y != nil : (y == nil ? false : x! < y!)
        default: return false
        }
    }

    @Test(arguments: Backend.available)
    func filtersUseBoundValues(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            var hostile = makeImage(1)
            hostile.properties = ["x' OR '1'='1": "v", "k": "a'); DROP TABLE images; --"]
            hostile.tags = ["'; DELETE FROM images; --"]
            hostile.size = 10
            try await catalog.insertImage(hostile)
            var other = makeImage(2)
            other.size = 20
            other.isProtected = true
            try await catalog.insertImage(other)
            let scope = ImageListQuery.Scope(isAdmin: true, projectId: nil, visibility: .all, memberStatuses: nil)
            let sort = [ImageListQuery.Sort(.createdAt, .desc), .init(.id, .desc)]
            let cases: [(ImageListQuery.Filter, [String])] = [
                (.property("k", "a'); DROP TABLE images; --"), [hostile.id]), (.property("x' OR '1'='1", "v"), [hostile.id]),
                (.property("k", "v2"), [other.id]), (.property("k", "nope"), []),
                (.tag("'; DELETE FROM images; --"), [hostile.id]), (.tag("t0"), [other.id]),
                (.int(.size, .gt, 15), [other.id]), (.int(.size, .lte, 15), [hostile.id]),
                (.isProtected(true), [other.id]), (.oneOf(.id, [hostile.id, "x"]), [hostile.id]), (.oneOf(.name, []), []),
                (.string(.owner, "p1"), Array([other.id, hostile.id].sorted().reversed())),
            ]
            for (filter, expected) in cases {
                let found = try await catalog.listImages(.init(scope: scope, filters: [filter], sort: [.init(.id, .desc)], limit: 10))
                #expect(found.map(\.id) == expected, "\(filter)")
            }
            let all = try await catalog.listImages(.init(scope: scope, sort: sort, limit: 10))
            #expect(all.count == 2)
        }
    }

    /// The console's search: the name contains the text, ignoring ASCII case; `%`, `_` and quotes are plain text.
    @Test(arguments: Backend.available)
    func nameContainsMatchesASubstringIgnoringCase(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let names = ["Debian-12 Cloud", "debian_11", "Ubuntu 24.04", "50% off", "it's", "C:\\images\\win", "nameless"]
            var ids: [String: String] = [:]
            for (i, name) in names.enumerated() {
                var image = makeImage(i + 1)
                image.name = name == "nameless" ? nil : name
                try await catalog.insertImage(image)
                ids[name] = image.id
            }
            let scope = ImageListQuery.Scope(isAdmin: true, projectId: nil, visibility: .all, memberStatuses: nil)
            let cases: [(String, Set<String>)] = [
                ("debian", ["Debian-12 Cloud", "debian_11"]), ("DEBIAN-1", ["Debian-12 Cloud"]), ("_", ["debian_11"]),
                ("%", ["50% off"]), ("'", ["it's"]), ("4.0", ["Ubuntu 24.04"]), ("nothing like it", []),
                ("\\", ["C:\\images\\win"]), ("S\\W", ["C:\\images\\win"]), ("\\%", []),
            ]
            for (text, expected) in cases {
                let found = try await catalog.listImages(.init(scope: scope, filters: [.nameContains(text)], sort: [.init(.id, .desc)], limit: 10))
                #expect(Set(found.map(\.id)) == Set(expected.map { ids[$0]! }), "\(text)")
                let counted = try await catalog.countImages(.init(scope: scope, filters: [.nameContains(text)], sort: [], limit: 0))
                #expect(counted == expected.count, "\(text)")
            }
        }
    }

    /// Who sees what: the scope the service derives from policy, applied by the catalog.
    @Test(arguments: Backend.available)
    func scopesFollowVisibilityAndMembership(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            func image(_ name: String, _ owner: String, _ v: Visibility, hidden: Bool = false, status: ImageStatus = .active) async throws -> Image {
                let i = Image(id: ImageID.generate(), name: name, status: status, visibility: v, osHidden: hidden, owner: owner,
                              createdAt: 1, updatedAt: 1)
                try await catalog.insertImage(i)
                return i
            }
            _ = try await image("pub", "a", .public)
            _ = try await image("com", "a", .community)
            let shared = try await image("shr", "a", .shared)
            let sharedPending = try await image("shr-pending", "a", .shared)
            _ = try await image("priv-a", "a", .private)
            _ = try await image("priv-b", "b", .private)
            _ = try await image("hidden", "b", .public, hidden: true)
            _ = try await image("gone", "b", .public, status: .deleted)
            try await catalog.insertMember(ImageMember(imageId: shared.id, memberId: "b", status: .accepted, createdAt: 1, updatedAt: 1))
            try await catalog.insertMember(ImageMember(imageId: sharedPending.id, memberId: "b", status: .pending, createdAt: 1, updatedAt: 1))
            func names(_ scope: ImageListQuery.Scope, hidden: Bool = false) async throws -> [String] {
                try await catalog.listImages(.init(scope: scope, sort: [.init(.name, .asc), .init(.id, .asc)], osHidden: hidden, limit: 100))
                    .map { $0.name ?? "" }
            }
            let bDefault = try await names(.init(isAdmin: false, projectId: "b", visibility: .default, memberStatuses: [.accepted]))
            #expect(bDefault == ["priv-b", "pub", "shr"])
            let bAll = try await names(.init(isAdmin: false, projectId: "b", visibility: .all, memberStatuses: nil))
            #expect(bAll == ["com", "priv-b", "pub", "shr", "shr-pending"])
            let bShared = try await names(.init(isAdmin: false, projectId: "b", visibility: .only(.shared), memberStatuses: [.pending]))
            #expect(bShared == ["shr-pending"])
            let aPrivate = try await names(.init(isAdmin: false, projectId: "a", visibility: .only(.private), memberStatuses: nil))
            #expect(aPrivate == ["priv-a"])
            let adminDefault = try await names(.init(isAdmin: true, projectId: "b", visibility: .default, memberStatuses: nil))
            #expect(adminDefault == ["priv-a", "priv-b", "pub", "shr", "shr-pending"])
            let adminHidden = try await names(.init(isAdmin: true, projectId: "b", visibility: .all, memberStatuses: nil), hidden: true)
            #expect(adminHidden == ["hidden"])
        }
    }
}

@Suite struct MemberConformance {
    @Test(arguments: Backend.available)
    func membersLifecycle(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let image = makeImage(1)
            try await catalog.insertImage(image)
            let m1 = ImageMember(imageId: image.id, memberId: "p2", status: .pending, createdAt: 5, updatedAt: 5)
            let m2 = ImageMember(imageId: image.id, memberId: "p3", status: .pending, createdAt: 6, updatedAt: 6)
            try await catalog.insertMember(m1)
            try await catalog.insertMember(m2)
            await #expect(throws: ImageError.conflict("Member p2 already exists on image \(image.id).")) {
                try await catalog.insertMember(m1)
            }
            var accepted = m1
            accepted.status = .accepted
            accepted.updatedAt = 9
            try await catalog.updateMember(accepted)
            let one = try await catalog.member(imageId: image.id, memberId: "p2")
            #expect(one == accepted)
            let all = try await catalog.members(imageId: image.id)
            #expect(all == [accepted, m2])
            let removed = try await catalog.deleteMember(imageId: image.id, memberId: "p3")
            let removedAgain = try await catalog.deleteMember(imageId: image.id, memberId: "p3")
            #expect(removed && !removedAgain)
            let left = try await catalog.members(imageId: image.id)
            #expect(left == [accepted])
        }
    }
}

@Suite struct QuotaConformance {
    @Test(arguments: Backend.available)
    func usageCountsByStatus(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let statuses: [(ImageStatus, Int64?)] = [(.active, 100), (.deactivated, 10), (.uploading, 7), (.importing, 3),
                                                     (.saving, 50), (.queued, nil), (.deleted, 1000), (.killed, 1000)]
            for (i, (status, size)) in statuses.enumerated() {
                var image = makeImage(i, owner: "q")
                image.status = status
                image.size = size
                try await catalog.insertImage(image)
            }
            try await catalog.insertImage(makeImage(99, owner: "other"))
            let usage = try await catalog.usage(project: "q")
            // A saving image's size counts as staged: only an open resumable upload sets it (its reserved length).
            #expect(usage == ProjectUsage(imageCount: 6, sizeTotal: 110, stageTotal: 60, uploadingCount: 3))
            let none = try await catalog.usage(project: "nobody")
            #expect(none == ProjectUsage())
        }
    }

    /// The usage page's figures: per project (the same sums as `usage`), and stored bytes grouped by
    /// owner, disk format and stores, largest first; gone and unfinished images are not stored bytes.
    @Test(arguments: Backend.available)
    func usageByProjectAndStoredShares(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let rows: [(String, ImageStatus, String, String?, Int64?)] = [
                ("q", .active, "qcow2", "fast", 100), ("q", .active, "qcow2", "fast", 20), ("q", .deactivated, "raw", nil, 5),
                ("q", .active, "qcow2", "fast,slow", 7), ("q", .queued, "raw", nil, nil), ("q", .deleted, "raw", nil, 1000),
                ("r", .active, "iso", "slow", 300), ("r", .saving, "iso", nil, 40),
            ]
            for (i, (owner, status, format, stores, size)) in rows.enumerated() {
                var image = makeImage(i, owner: owner)
                image.status = status
                image.diskFormat = format
                image.size = size
                if let stores { image.properties[ImageService.storesKey] = stores }
                try await catalog.insertImage(image)
            }
            let all = try await catalog.usageByProject(project: nil)
            #expect(all == ["q": ProjectUsage(imageCount: 5, sizeTotal: 132), "r": ProjectUsage(imageCount: 2, sizeTotal: 300, stageTotal: 40, uploadingCount: 1)])
            #expect(all["q"] == (try await catalog.usage(project: "q")))
            #expect(try await catalog.usageByProject(project: "r") == ["r": all["r"]!])
            #expect(try await catalog.usageByProject(project: "nobody") == [:])

            let shares = try await catalog.storedShares(project: nil)
            #expect(shares == [
                StoredShare(owner: "r", diskFormat: "iso", stores: "slow", images: 1, bytes: 300),
                StoredShare(owner: "q", diskFormat: "qcow2", stores: "fast", images: 2, bytes: 120),
                StoredShare(owner: "q", diskFormat: "qcow2", stores: "fast,slow", images: 1, bytes: 7),
                StoredShare(owner: "q", diskFormat: "raw", stores: "", images: 1, bytes: 5),
            ])
            #expect(try await catalog.storedShares(project: "q") == Array(shares.dropFirst()))
        }
    }

    /// The check runs in the writing transaction: 20 concurrent creates under a limit of 5 images
    /// leave exactly 5, and concurrent size increases never pass the byte limit.
    @Test(arguments: Backend.available)
    func concurrentWritesNeverPassALimit(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<20 {
                    group.addTask {
                        do {
                            try await catalog.insertImage(makeImage(i, owner: "q")) { usage in
                                if try usage("q").imageCount >= 5 { throw ImageError.tooLarge("count") }
                            }
                            return true
                        } catch let e as ImageError where e.kind == .payloadTooLarge {
                            return false
                        }
                    }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 }.count == 5)
            let count = try await catalog.usage(project: "q").imageCount
            #expect(count == 5)

            let scope = ImageListQuery.Scope(isAdmin: true, projectId: nil, visibility: .all, memberStatuses: nil)
            let ids = try await catalog.listImages(.init(scope: scope, sort: [.init(.id, .asc)], limit: 10)).map(\.id)
            let activated = try await withThrowingTaskGroup(of: Bool.self) { group in
                for id in ids {
                    group.addTask {
                        do {
                            _ = try await catalog.updateImage(id: id) { image, usage in
                                let before = try usage("q").sizeTotal
                                image.status = .active
                                image.size = 40
                                if before + 40 > 100 { throw ImageError.tooLarge("bytes") }
                            }
                            return true
                        } catch let e as ImageError where e.kind == .payloadTooLarge {
                            return false
                        }
                    }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(activated.filter { $0 }.count == 2)
            let bytes = try await catalog.usage(project: "q").sizeTotal
            #expect(bytes == 80)
        }
    }

    @Test(arguments: Backend.available)
    func overridesAreSetReplacedAndCleared(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let none = try await catalog.quotaOverride(project: "q")
            #expect(none == nil)
            let limits = QuotaLimits(imageCountTotal: 3, imageSizeTotal: 1 << 40, imageStageTotal: nil, imageCountUploading: 0)
            try await catalog.setQuotaOverride(project: "q", limits)
            let set = try await catalog.quotaOverride(project: "q")
            #expect(set == limits)
            try await catalog.setQuotaOverride(project: "q", QuotaLimits(imageCountTotal: 7))
            let replaced = try await catalog.quotaOverride(project: "q")
            #expect(replaced == QuotaLimits(imageCountTotal: 7))
            try await catalog.setQuotaOverride(project: "q", nil)
            let cleared = try await catalog.quotaOverride(project: "q")
            #expect(cleared == nil)
        }
    }
}

@Suite struct TaskConformance {
    static func task(_ i: Int, created: Int64) -> ImageTask {
        ImageTask(id: "task-\(i)-\(UUID().uuidString)", type: "api_image_import", owner: "p1", imageId: "img-\(i % 3)",
                  userId: "u", requestId: "req-\(i)", input: "{\"n\":\(i)}", createdAt: created, updatedAt: created)
    }

    @Test(arguments: Backend.available)
    func tasksRoundTripAndUpdate(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            var t = Self.task(1, created: 10)
            t.bytesTotal = 99
            t.expiresAt = 77
            try await catalog.insertTask(t)
            await #expect(throws: ImageError.conflict("Task \(t.id) exists.")) { try await catalog.insertTask(t) }
            let stored = try await catalog.task(id: t.id)
            #expect(stored == t)
            let updated = try await catalog.updateTask(id: t.id) { $0.status = .success; $0.result = "{}"; $0.bytesDone = 99 }
            #expect(updated?.status == .success && updated?.bytesDone == 99)
            let reread = try await catalog.task(id: t.id)
            #expect(reread == updated)
            let unknown = try await catalog.updateTask(id: "nope") { $0.message = "x" }
            #expect(unknown == nil)
            let t2 = Self.task(4, created: 20)
            try await catalog.insertTask(t2)
            let ofImage = try await catalog.tasks(imageId: "img-1")
            #expect(ofImage.map(\.id) == [t2.id, t.id])
            let listed = try await catalog.listTasks(limit: 1)
            #expect(listed.map(\.id) == [t2.id])
        }
    }

    /// Only finished tasks whose time to live has passed are removed.
    @Test(arguments: Backend.available)
    func expiredFinishedTasksArePurged(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            var done = Self.task(1, created: 10), failed = Self.task(2, created: 10), young = Self.task(3, created: 10)
            var running = Self.task(4, created: 10), forever = Self.task(5, created: 10)
            done.status = .success; done.expiresAt = 100
            failed.status = .failure; failed.expiresAt = 50
            young.status = .success; young.expiresAt = 500
            running.status = .processing; running.expiresAt = 50  // never purged while it runs
            forever.status = .success
            for t in [done, failed, young, running, forever] { try await catalog.insertTask(t) }
            #expect(try await catalog.deleteTasks(expiredBefore: 200) == 2)
            let purgedDone = try await catalog.task(id: done.id), purgedFailed = try await catalog.task(id: failed.id)
            #expect(purgedDone == nil && purgedFailed == nil)
            for kept in [young, running, forever] { #expect(try await catalog.task(id: kept.id) == kept) }
            #expect(try await catalog.deleteTasks(expiredBefore: 200) == 0)
        }
    }

    /// Claims take pending tasks oldest first, each by one claimer, and take back expired leases only.
    @Test(arguments: Backend.available)
    func eachTaskIsClaimedOnceAndExpiredLeasesAgain(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let tasks = (0..<12).map { Self.task($0, created: Int64(100 + $0)) }
            for t in tasks { try await catalog.insertTask(t) }
            let claims = try await withThrowingTaskGroup(of: [String].self) { group in
                for node in 0..<4 {
                    group.addTask {
                        var mine: [String] = []
                        while let t = try await catalog.claimTask(owner: "node-\(node)", now: 1_000, leaseSeconds: 30) {
                            #expect(t.status == .processing && t.attempts == 1 && t.leaseOwner == "node-\(node)" && t.leaseExpiresAt == 1_030)
                            mine.append(t.id)
                        }
                        return mine
                    }
                }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            #expect(claims.count == 12 && Set(claims) == Set(tasks.map(\.id)))
            // Leases still held: nothing to claim.
            let early = try await catalog.claimTask(owner: "late", now: 1_029, leaseSeconds: 30)
            #expect(early == nil)
            // Renewed one stays; the others expire and are taken over oldest first, attempt 2.
            _ = try await catalog.updateTask(id: tasks[0].id) { $0.leaseExpiresAt = 2_000 }
            _ = try await catalog.updateTask(id: tasks[5].id) { $0.status = .success; $0.leaseOwner = nil; $0.leaseExpiresAt = nil }
            let taken = try #require(try await catalog.claimTask(owner: "survivor", now: 1_031, leaseSeconds: 30))
            #expect(taken.id == tasks[1].id && taken.attempts == 2 && taken.leaseOwner == "survivor")
            var rest: [String] = []
            while let t = try await catalog.claimTask(owner: "survivor", now: 1_031, leaseSeconds: 30) { rest.append(t.id) }
            #expect(rest == tasks[2...].map(\.id).filter { $0 != tasks[5].id })
        }
    }
}

@Suite struct AccountConformance {
    @Test(arguments: Backend.available)
    func accountsAndKeys(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let a = LocalAccount(name: "alice", userId: "u-alice", projectId: "p1", roles: ["reader", "member"],
                                 passwordHash: "pbkdf2$x", createdAt: 1, updatedAt: 1)
            let b = LocalAccount(name: "bob", userId: "u-bob", projectId: "p2", roles: [], passwordHash: nil, createdAt: 2, updatedAt: 2)
            try await catalog.insertAccount(b)
            try await catalog.insertAccount(a)
            await #expect(throws: ImageError.conflict("Account alice already exists.")) { try await catalog.insertAccount(a) }
            var sameUser = b
            sameUser.name = "bob2"
            let clash = sameUser
            await #expect(throws: ImageError.self) { try await catalog.insertAccount(clash) }
            let all = try await catalog.accounts()
            #expect(all == [a, b])
            var changed = a
            changed.roles = ["admin"]
            changed.passwordHash = nil
            changed.updatedAt = 5
            try await catalog.updateAccount(changed)
            let reread = try await catalog.account(name: "alice")
            #expect(reread == changed)
            var ghost = a
            ghost.name = "ghost"
            let missing = ghost
            await #expect(throws: ImageError.notFound("Account ghost not found.")) { try await catalog.updateAccount(missing) }

            let k1 = APIKeyRecord(keyId: "imk_1", accountName: "alice", secretHash: "h1", createdAt: 3)
            let k2 = APIKeyRecord(keyId: "imk_2", accountName: "alice", secretHash: "h2", createdAt: 4)
            let k3 = APIKeyRecord(keyId: "imk_3", accountName: "bob", secretHash: "h3", createdAt: 4)
            for k in [k1, k2, k3] { try await catalog.insertAPIKey(k) }
            let keys = try await catalog.apiKeys(accountName: "alice")
            #expect(keys == [k1, k2])
            let deletedKey = try await catalog.deleteAPIKey(id: "imk_1")
            let k1Gone = try await catalog.apiKey(id: "imk_1")
            #expect(deletedKey && k1Gone == nil)
            // Deleting an account deletes its keys.
            let deleted = try await catalog.deleteAccount(name: "alice")
            let deletedAgain = try await catalog.deleteAccount(name: "alice")
            #expect(deleted && !deletedAgain)
            let k2Gone = try await catalog.apiKey(id: "imk_2")
            let k3Kept = try await catalog.apiKey(id: "imk_3")
            #expect(k2Gone == nil && k3Kept == k3)
        }
    }
}

@Suite struct SessionConformance {
    @Test(arguments: Backend.available)
    func sessionsLiveUntilDeletedExpiredOrTheirAccountGoes(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            for name in ["a", "b"] {
                try await catalog.insertAccount(LocalAccount(name: name, userId: "u-" + name, projectId: "p", roles: ["member"],
                                                             passwordHash: nil, createdAt: 1, updatedAt: 1))
            }
            let s1 = LoginSession(idHash: "h1", accountName: "a", csrfToken: "c1", createdAt: 10, expiresAt: 100)
            let s2 = LoginSession(idHash: "h2", accountName: "a", csrfToken: "c2", createdAt: 10, expiresAt: 200)
            let s3 = LoginSession(idHash: "h3", accountName: "b", csrfToken: "c3", createdAt: 10, expiresAt: 300)
            for s in [s1, s2, s3] { try await catalog.insertSession(s) }
            let read = try await catalog.session(idHash: "h2")
            #expect(read == s2)
            let expired = try await catalog.deleteSessions(expiredBefore: 150)
            let gone = try await catalog.session(idHash: "h1")
            #expect(expired == 1 && gone == nil)
            let deleted = try await catalog.deleteSession(idHash: "h3")
            let deletedAgain = try await catalog.deleteSession(idHash: "h3")
            #expect(deleted && !deletedAgain)
            // An account's sessions end with it.
            _ = try await catalog.deleteAccount(name: "a")
            let orphan = try await catalog.session(idHash: "h2")
            #expect(orphan == nil)
        }
    }

    @Test(arguments: Backend.available)
    func extensionsSurviveUpdatesOfOtherFields(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            var image = makeImage(1)
            image.extensions = ["avi": .object([("uber_bundle", .bool(false)), ("type", .string("IMAGE_TYPE_PATCH"))])]
            try await catalog.insertImage(image)
            let renamed = try await catalog.updateImage(id: image.id) { $0.name = "renamed" }
            #expect(renamed?.extensions == image.extensions)
            _ = try await catalog.updateImage(id: image.id) { $0.extensions["zstack"] = .object([("platform", .string("Linux"))]) }
            let stored = try #require(try await catalog.image(id: image.id))
            #expect(stored.extensions["avi"] == image.extensions["avi"])
            #expect(stored.extensions["zstack"] == .object([("platform", .string("Linux"))]))
        }
    }
}

/// ZStack's recoverable delete on the core: pending_delete rows are listed only when asked for,
/// never readable through the ordinary paths, and recover within the owner's quota.
@Suite struct SoftDeleteConformance {
    @Test(arguments: Backend.available)
    func pendingDeleteIsListedOnlyOnRequest(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            var kept = makeImage(1), soft = makeImage(2), gone = makeImage(3)
            kept.status = .active; soft.status = .pendingDelete; gone.status = .deleted
            for i in [kept, soft, gone] { try await catalog.insertImage(i) }
            let scope = ImageListQuery.Scope(isAdmin: false, projectId: "p1", visibility: .default, memberStatuses: [.accepted])
            var q = ImageListQuery(scope: scope, sort: [.init(.createdAt, .asc), .init(.id, .asc)], limit: 10)
            #expect(try await catalog.listImages(q).map(\.id) == [kept.id])
            #expect(try await catalog.countImages(q) == 1)
            q.includePendingDelete = true
            #expect(Set(try await catalog.listImages(q).map(\.id)) == [kept.id, soft.id])
            #expect(try await catalog.countImages(q) == 2)
        }
    }

    @Test(arguments: Backend.available)
    func softDeleteRecoverExpunge(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            var config = ImageServiceConfig()
            config.quota = QuotaLimits(imageSizeTotal: 100)
            let service = ImageService(catalog: catalog, config: config)
            let owner = Principal(userId: "u1", projectId: "p1", roles: ["member", "reader"])
            let stranger = Principal(userId: "u2", projectId: "p2", roles: ["member", "reader"])
            var image = makeImage(1)
            image.status = .deactivated
            image.size = 60
            try await catalog.insertImage(image)

            // Only the owner's member may delete; the row keeps its data facts and leaves every ordinary read.
            await #expect(throws: ImageError.self) { _ = try await service.softDeleteImage(id: image.id, by: stranger) }
            let soft = try await service.softDeleteImage(id: image.id, by: owner) { $0.extensions["zstack"] = .object([("state", .string("Disabled"))]) }
            #expect(soft.status == .pendingDelete && soft.deletedAt != nil && soft.size == 60)
            await #expect(throws: ImageError.self) { _ = try await service.showImage(id: image.id, by: owner) }
            #expect(try await service.visibleImageOrSoftDeleted(id: image.id, by: owner).extensions["zstack"]?["state"] == .string("Disabled"))
            await #expect(throws: ImageError.self) { _ = try await service.visibleImageOrSoftDeleted(id: image.id, by: stranger) }
            #expect(try await catalog.usage(project: "p1").sizeTotal == 0)

            // While it is deleted another image may use the quota; recovering would then exceed it (413).
            var other = makeImage(2)
            other.status = .active
            other.size = 50
            try await catalog.insertImage(other)
            do {
                _ = try await service.recoverImage(id: image.id, to: .deactivated, by: owner)
                Issue.record("recover past the quota succeeded")
            } catch let e as ImageError {
                #expect(e.kind == .payloadTooLarge)
            }
            _ = try await service.softDeleteImage(id: other.id, by: owner)
            let back = try await service.recoverImage(id: image.id, to: .deactivated, by: owner)
            #expect(back.status == .deactivated && back.deletedAt == nil && back.size == 60)
            await #expect(throws: ImageError.self) { _ = try await service.recoverImage(id: image.id, to: .active, by: owner) }
            await #expect(throws: ImageError.self) { _ = try await service.expungeImage(id: image.id, by: owner) }

            let expunged = try await service.expungeImage(id: other.id, by: owner)
            #expect(expunged.status == .deleted)
            #expect(try await catalog.image(id: other.id)?.status == .deleted)
            await #expect(throws: ImageError.self) { _ = try await service.recoverImage(id: other.id, to: .active, by: owner) }
        }
    }
}
