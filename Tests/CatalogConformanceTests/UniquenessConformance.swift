@testable import CatalogPostgres
@testable import CatalogSQLite
import Foundation
import GRDB
import ImageCore
import Testing

/// `NameRule`s are decided inside the catalog's writes, on every backend: concurrent writers of one
/// contested value cannot both win.
@Suite struct UniquenessConformance {
    static func named(_ name: String, owner: String = "p1", rule: NameRule? = .namePerOwner, status: ImageStatus = .queued) -> Image {
        Image(id: ImageID.generate(), name: name, status: status, visibility: .private, owner: owner,
              createdAt: 1_000, updatedAt: 1_000, nameRule: rule)
    }

    /// Inserts every image concurrently; returns how many were refused as duplicates.
    static func insertConcurrently(_ images: [Image], into catalog: any Catalog) async throws -> Int {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for image in images {
                group.addTask {
                    do {
                        try await catalog.insertImage(image)
                        return false
                    } catch let e as ImageError where e.kind == .duplicate {
                        return true
                    }
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
    }

    static func live(_ catalog: any Catalog, name: String) async throws -> [Image] {
        let scope = ImageListQuery.Scope(isAdmin: true, projectId: nil, visibility: .all, memberStatuses: nil)
        return try await catalog.listImages(.init(scope: scope, filters: [.oneOf(.name, [name])], sort: [.init(.id, .asc)], limit: 1000))
    }

    @Test(arguments: Backend.available)
    func sixtyFourConcurrentCreatesOfOneNameLeaveOne(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let racers = (0..<64).map { _ in Self.named("web") }
            let refused = try await Self.insertConcurrently(racers, into: catalog)
            #expect(refused == 63)
            let stored = try await Self.live(catalog, name: "web")
            #expect(stored.count == 1)
            #expect(racers.contains { $0.id == stored.first?.id })
            // Nothing half-created: every refused id is unknown to the catalog.
            for racer in racers where racer.id != stored.first?.id {
                #expect(try await catalog.image(id: racer.id) == nil)
            }
        }
    }

    @Test(arguments: Backend.available)
    func theRuleIsPerOwnerAndOnlyForImagesThatClaimIt(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            try await catalog.insertImage(Self.named("db", owner: "p1"))
            try await catalog.insertImage(Self.named("db", owner: "p2"))                 // another owner
            try await catalog.insertImage(Self.named("db", owner: "p1", rule: nil))      // Glance's free names
            // A claim clashes with any live image of the owner with the name, claimed or not.
            let late = Self.named("db", owner: "p2")
            await #expect(throws: ImageError.self) { try await catalog.insertImage(late) }
            do {
                try await catalog.insertImage(late)
                Issue.record("a second 'db' of p2 was inserted")
            } catch let e as ImageError {
                #expect(e.kind == .duplicate)
                #expect(e.message.contains("'db'"))
            }
            #expect(try await Self.live(catalog, name: "db").count == 3)
            #expect(try await catalog.image(id: late.id) == nil)
        }
    }

    @Test(arguments: Backend.available)
    func renamesRecoveriesAndOwnerChangesAreChecked(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let a = Self.named("a"), b = Self.named("b"), elsewhere = Self.named("a", owner: "p2")
            for image in [a, b, elsewhere] { try await catalog.insertImage(image) }
            // Rename onto a taken name: refused, nothing written.
            await #expect(throws: ImageError.self) { _ = try await catalog.updateImage(id: b.id) { $0.name = "a" } }
            #expect(try await catalog.image(id: b.id)?.name == "b")
            #expect(try await catalog.image(id: b.id)?.version == b.version)
            // Other changes of a holder are not checked again; its own name is its own.
            #expect(try await catalog.updateImage(id: a.id) { $0.minRam = 64 }?.minRam == 64)
            // A change of owner into a project that has the name: refused.
            await #expect(throws: ImageError.self) { _ = try await catalog.updateImage(id: elsewhere.id) { $0.owner = "p1" } }
            // A softly deleted holder frees the name; recovering it while the name is taken again is refused.
            _ = try await catalog.updateImage(id: a.id) { $0.status = .pendingDelete }
            #expect(try await catalog.updateImage(id: b.id) { $0.name = "a" }?.name == "a")
            await #expect(throws: ImageError.self) { _ = try await catalog.updateImage(id: a.id) { $0.status = .active } }
            #expect(try await catalog.image(id: a.id)?.status == .pendingDelete)
            // A deleted holder frees it for good.
            _ = try await catalog.updateImage(id: b.id) { $0.status = .deleted }
            #expect(try await catalog.updateImage(id: a.id) { $0.status = .active }?.status == .active)
        }
    }

    @Test(arguments: Backend.available)
    func concurrentRenamesOntoOneNameLeaveOne(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let images = (0..<16).map { Self.named("n\($0)") }
            for image in images { try await catalog.insertImage(image) }
            let renamed = try await withThrowingTaskGroup(of: Bool.self) { group in
                for image in images {
                    group.addTask {
                        do {
                            _ = try await catalog.updateImage(id: image.id) { $0.name = "target" }
                            return true
                        } catch let e as ImageError where e.kind == .duplicate {
                            return false
                        }
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(renamed == 1)
            #expect(try await Self.live(catalog, name: "target").count == 1)
        }
    }

    static func registration(_ cloudId: String, _ visibility: Visibility, owner: String, location: String? = "us-east-1") -> Image {
        var properties = [NameRule.cloudPlatformKey: "ec2", NameRule.cloudImageIdKey: cloudId]
        if let location { properties[NameRule.cloudLocationKey] = location }
        return Image(id: ImageID.generate(), name: "r-\(cloudId)", visibility: visibility, owner: owner, createdAt: 1, updatedAt: 1,
                     properties: properties, nameRule: .cloudImageInSight)
    }

    @Test(arguments: Backend.available)
    func cloudImagesAreRegisteredOnceInSight(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            try await catalog.insertImage(Self.registration("ami-1", .private, owner: "envA"))
            // Another environment does not see envA's: allowed.
            try await catalog.insertImage(Self.registration("ami-1", .private, owner: "envB"))
            // Another location or cloud id is another image.
            try await catalog.insertImage(Self.registration("ami-1", .private, owner: "envA", location: "eu-west-1"))
            try await catalog.insertImage(Self.registration("ami-1", .private, owner: "envA", location: nil))
            // The same in envA again: refused.
            await #expect(throws: ImageError.self) { try await catalog.insertImage(Self.registration("ami-1", .private, owner: "envA")) }
            // The account (community) sees no environment's registrations: allowed; from then on every environment sees it.
            try await catalog.insertImage(Self.registration("ami-1", .community, owner: "admin"))
            await #expect(throws: ImageError.self) { try await catalog.insertImage(Self.registration("ami-1", .private, owner: "envC")) }
            await #expect(throws: ImageError.self) { try await catalog.insertImage(Self.registration("ami-1", .community, owner: "admin")) }
            // Global (public) sees only public ones.
            try await catalog.insertImage(Self.registration("ami-1", .public, owner: "admin"))
            await #expect(throws: ImageError.self) { try await catalog.insertImage(Self.registration("ami-1", .public, owner: "admin")) }
            // An image that claims nothing never clashes.
            var plain = Self.registration("ami-1", .public, owner: "admin")
            plain.nameRule = nil
            try await catalog.insertImage(plain)
        }
    }

    @Test(arguments: Backend.available)
    func clashingImageAnswersTheSameQuestionOutsideAWrite(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let holder = Self.named("x")
            try await catalog.insertImage(holder)
            let probe = Self.named("x")
            let check = try #require(probe.uniqueness)
            #expect(try await catalog.clashingImage(check, except: probe.id)?.id == holder.id)
            #expect(try await catalog.clashingImage(check, except: holder.id) == nil)
            #expect(try await catalog.clashingImage(try #require(Self.named("x", owner: "p9").uniqueness), except: "") == nil)
        }
    }
}

/// The PostgreSQL half of the suite runs only when a database is configured; this test shows in the
/// report, as skipped, when it is not (scripts/test.sh always configures one).
@Suite struct PostgresAvailability {
    @Test(.enabled(if: Backend.postgresURL != nil, "IMAGED_TEST_POSTGRES_URL is not set: the catalog suite ran on SQLite only"))
    func catalogSuiteRunsOnPostgres() async throws {
        #expect(Backend.available.contains(.postgres))
        try await TestCatalog.with(.postgres) { catalog in
            let missing = try await catalog.image(id: ImageID.generate())
            #expect(missing == nil)
        }
    }
}

/// Neither catalog opens a schema a newer imaged has migrated (it would misread or damage rows).
@Suite struct SchemaVersionConformance {
    @Test func sqliteRefusesANewerSchema() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imaged-schema-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/catalog.sqlite"
        do {
            let catalog = try SQLiteCatalog(path: path)
            try await catalog.insertImage(makeImage(1))
            try await catalog.pool.write { db in
                try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99: from the future')")
            }
        }
        do {
            _ = try SQLiteCatalog(path: path)
            Issue.record("a newer schema was opened")
        } catch let e as CatalogSchemaTooNew {
            #expect(e.unknown == ["v99: from the future"])
            #expect(e.description.contains("newer imaged"))
        }
    }

    @Test(.enabled(if: Backend.postgresURL != nil, "IMAGED_TEST_POSTGRES_URL is not set"))
    func postgresRefusesANewerSchema() async throws {
        let schema = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let location = try PostgresLocation(url: try Backend.url(schema: schema))
        let catalog = try await PostgresCatalog.open(location)
        _ = try await catalog.rows("INSERT INTO imaged_migrations (id, applied_at) VALUES ('v99: from the future', 0)")
        do {
            _ = try await PostgresCatalog.open(location)
            Issue.record("a newer schema was opened")
        } catch let e as CatalogSchemaTooNew {
            #expect(e.unknown == ["v99: from the future"])
        }
        _ = try? await catalog.rows("DROP SCHEMA \(schema) CASCADE")
        catalog.close()
    }
}
