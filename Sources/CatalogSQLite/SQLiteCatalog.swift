import CatalogSQL
import Foundation
import GRDB
import GRDBSQLite
import ImageCore
import Synchronization

/// The embedded catalog: one SQLite file in WAL mode, through GRDB.
/// Tags and extra properties are JSON documents in the image row, so one read returns a whole image.
public final class SQLiteCatalog: Catalog {
    public enum Durability: String, Sendable {
        /// fsync on every commit: an acknowledged write survives power loss.
        case full
        /// fsync at checkpoints only: survives a process crash, may lose the last commits on power loss.
        case normal
    }

    let pool: DatabasePool
    let cache: ImageCache
    let inserts: InsertBatcher
    /// Point reads without GRDB's queue hop (see DirectReaders).
    let directReaders: DirectReaders
    /// Quota overrides are read on every create and data write; `imaged quota set` (another
    /// process) changes them, so they are remembered for a few seconds only.
    let quotaCache = TTLCache<String, QuotaLimits?>(seconds: 5)

    /// The memory the image cache takes at most unless told otherwise (256 MiB; `ImageCache`), for
    /// the server's configuration, which cannot name the catalogs' cache type.
    public static let defaultCacheBytes = ImageCache.defaultBytes

    /// `cacheBytes`: the memory the images read and written may take (default `defaultCacheBytes`).
    public convenience init(path: String, durability: Durability = .full, cacheBytes: Int? = nil) throws {
        try self.init(path: path, durability: durability, directReadBudgetSteps: DirectReader.budgetSteps, cacheBytes: cacheBytes)
    }

    /// `directReadBudgetSteps`: how much work (in 1,000s of SQLite VM instructions) a read may do on
    /// a direct connection before it moves to GRDB's reader threads; tests make it tiny.
    init(path: String, durability: Durability, directReadBudgetSteps: Int, cacheBytes: Int? = nil) throws {
        cache = ImageCache(bytes: cacheBytes ?? ImageCache.defaultBytes)
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.maximumReaderCount = 8
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(durability == .full ? "FULL" : "NORMAL")")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        pool = try DatabasePool(path: path, configuration: config)
        // A catalog migrated by a newer imaged may hold rows this binary would misread or damage.
        let unknown = try pool.read { db in
            try db.tableExists("grdb_migrations") ? Set(String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")) : []
        }.subtracting(Self.migrator.migrations)
        if !unknown.isEmpty { throw CatalogSchemaTooNew(catalog: path, unknown: unknown.sorted()) }
        try Self.migrator.migrate(pool)
        inserts = InsertBatcher(pool: pool)
        directReaders = DirectReaders(path: path, capacity: max(4, 2 * ProcessInfo.processInfo.activeProcessorCount),
                                      budgetSteps: directReadBudgetSteps)
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1: images and members") { db in
            try db.execute(sql: """
                CREATE TABLE images (
                    id TEXT PRIMARY KEY NOT NULL,
                    name TEXT,
                    status TEXT NOT NULL,
                    visibility TEXT NOT NULL,
                    protected INTEGER NOT NULL,
                    os_hidden INTEGER NOT NULL,
                    owner TEXT,
                    container_format TEXT,
                    disk_format TEXT,
                    size INTEGER,
                    virtual_size INTEGER,
                    min_disk INTEGER NOT NULL,
                    min_ram INTEGER NOT NULL,
                    checksum TEXT,
                    os_hash_algo TEXT,
                    os_hash_value TEXT,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    deleted_at INTEGER,
                    tags TEXT NOT NULL,
                    properties TEXT NOT NULL,
                    version INTEGER NOT NULL
                );
                CREATE INDEX images_created ON images(created_at, id);
                CREATE INDEX images_status_created ON images(status, created_at, id);
                CREATE INDEX images_owner_created ON images(owner, created_at, id);
                CREATE INDEX images_name ON images(name);
                CREATE INDEX images_updated ON images(updated_at, id);
                CREATE TABLE image_members (
                    image_id TEXT NOT NULL REFERENCES images(id),
                    member_id TEXT NOT NULL,
                    status TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    PRIMARY KEY (image_id, member_id)
                );
                CREATE INDEX image_members_member ON image_members(member_id, status);
                """)
        }
        m.registerMigration("v2: tasks") { db in
            try db.execute(sql: """
                CREATE TABLE tasks (
                    id TEXT PRIMARY KEY NOT NULL,
                    type TEXT NOT NULL,
                    status TEXT NOT NULL,
                    owner TEXT,
                    image_id TEXT,
                    user_id TEXT,
                    request_id TEXT,
                    input TEXT NOT NULL,
                    result TEXT,
                    message TEXT NOT NULL,
                    bytes_done INTEGER NOT NULL,
                    bytes_total INTEGER,
                    attempts INTEGER NOT NULL,
                    lease_owner TEXT,
                    lease_expires_at INTEGER,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    expires_at INTEGER
                );
                CREATE INDEX tasks_image ON tasks(image_id, created_at);
                CREATE INDEX tasks_runnable ON tasks(status, created_at) WHERE status IN ('pending', 'processing');
                """)
        }
        m.registerMigration("v3: local accounts, API keys, project quotas") { db in
            try db.execute(sql: """
                CREATE TABLE accounts (
                    name TEXT PRIMARY KEY NOT NULL,
                    user_id TEXT NOT NULL UNIQUE,
                    project_id TEXT NOT NULL,
                    roles TEXT NOT NULL,
                    password_hash TEXT,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL
                );
                CREATE TABLE api_keys (
                    key_id TEXT PRIMARY KEY NOT NULL,
                    account_name TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
                    secret_hash TEXT NOT NULL,
                    created_at INTEGER NOT NULL
                );
                CREATE INDEX api_keys_account ON api_keys(account_name);
                CREATE TABLE project_quotas (
                    project_id TEXT PRIMARY KEY NOT NULL,
                    image_count_total INTEGER,
                    image_size_total INTEGER,
                    image_stage_total INTEGER,
                    image_count_uploading INTEGER
                );
                """)
        }
        m.registerMigration("v4: vendor extension documents, login sessions") { db in
            try db.execute(sql: """
                ALTER TABLE images ADD COLUMN extensions TEXT NOT NULL DEFAULT '{}';
                CREATE TABLE login_sessions (
                    id_hash TEXT PRIMARY KEY NOT NULL,
                    account_name TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
                    csrf_token TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL
                );
                CREATE INDEX login_sessions_expiry ON login_sessions(expires_at);
                """)
        }
        m.registerMigration("v5: name rules") { db in
            // Images made before through the front-ends whose names are unique keep that rule.
            try db.execute(sql: """
                ALTER TABLE images ADD COLUMN name_rule TEXT;
                UPDATE images SET name_rule = 'name_per_owner'
                    WHERE json_extract(extensions, '$.avi') IS NOT NULL OR json_extract(extensions, '$.danube.owner') IS NOT NULL;
                UPDATE images SET name_rule = 'cloud_image_in_sight' WHERE json_extract(extensions, '$.scalr') IS NOT NULL;
                CREATE INDEX images_owner_name ON images(owner, name);
                """)
        }
        m.registerMigration("v6: login throttle") { db in
            // Failed logins per throttle key (see Identity's LoginThrottle); times in milliseconds.
            try db.execute(sql: """
                CREATE TABLE login_throttle (
                    key TEXT PRIMARY KEY NOT NULL,
                    failures INTEGER NOT NULL,
                    last_failure INTEGER NOT NULL
                );
                CREATE INDEX login_throttle_last ON login_throttle(last_failure);
                """)
        }
        // Kept after "v6" (login throttle): the nodes of a cluster and who writes an upload.
        m.registerMigration("v7: node heartbeats") { db in
            try db.execute(sql: """
                CREATE TABLE nodes (id TEXT PRIMARY KEY, heartbeat_at INTEGER NOT NULL, started_at INTEGER NOT NULL);
                ALTER TABLE images ADD COLUMN writer_node TEXT;
                """)
        }
        // Metadata definitions (Glance's metadefs); contents follow their namespace's renames and deletion.
        m.registerMigration("v8: metadefs") { db in try db.execute(sql: SQLiteCatalog.metadefSchema) }
        // The newest-first walk carries the name: a name search (the console's) reads the index only and
        // fetches just the rows that match, instead of every row of the catalog.
        m.registerMigration("v9: name in the created index") { db in
            try db.execute(sql: """
                DROP INDEX images_created;
                CREATE INDEX images_created ON images(created_at, id, name);
                """)
        }
        // Every sort key walks an index in the list's full order (key, then the created_at and id
        // tie-breakers): without one, a page sorted by size or format sorted the whole catalog
        // (1.6 s at 1M images).
        m.registerMigration("v10: an index per sort key") { db in
            try db.execute(sql: SQLiteCatalog.sortKeyIndexes.joined(separator: ";\n"))
        }
        return m
    }

    static let sortKeyIndexes = [
        "DROP INDEX images_name",
        "CREATE INDEX images_name_created ON images(name, created_at, id)",
        "DROP INDEX images_updated",
        "CREATE INDEX images_updated_created ON images(updated_at, created_at, id)",
        "CREATE INDEX images_size_created ON images(size, created_at, id)",
        "CREATE INDEX images_disk_format_created ON images(disk_format, created_at, id)",
        "CREATE INDEX images_container_format_created ON images(container_format, created_at, id)",
    ]

    static let columns = CatalogColumns.images
    static let selectByID = "SELECT \(columns) FROM images WHERE id = ?"
    static let insertSQL = "INSERT INTO images (\(columns)) VALUES (\(placeholders(CatalogColumns.imageNames.count)))"
    /// Every column but `id`, in column order, then the id.
    static let updateSQL = "UPDATE images SET " + CatalogColumns.imageNames.dropFirst().map { "\($0) = ?" }.joined(separator: ", ") + " WHERE id = ?"

    static func placeholders(_ n: Int) -> String { Array(repeating: "?", count: max(n, 1)).joined(separator: ",") }

    static func arguments(_ values: [SQLValue]) -> StatementArguments {
        StatementArguments(values.map { v -> (any DatabaseValueConvertible)? in
            switch v {
            case .null: nil
            case .text(let s): s
            case .int(let i): i
            case .bool(let b): b
            }
        })
    }

    /// Decodes the current row of a statement selecting `columns`, reading the C API directly.
    static func image(_ st: SQLiteStatement) throws -> Image {
        @inline(__always) func text(_ i: Int32) -> String? {
            guard sqlite3_column_type(st, i) != SQLITE_NULL, let p = sqlite3_column_text(st, i) else { return nil }
            return String(decoding: UnsafeBufferPointer(start: p, count: Int(sqlite3_column_bytes(st, i))), as: UTF8.self)
        }
        /// A document column's bytes, valid until the statement steps again.
        @inline(__always) func bytes(_ i: Int32) -> UnsafeBufferPointer<UInt8>? {
            guard sqlite3_column_type(st, i) != SQLITE_NULL, let p = sqlite3_column_text(st, i) else { return nil }
            return UnsafeBufferPointer(start: p, count: Int(sqlite3_column_bytes(st, i)))
        }
        @inline(__always) func int(_ i: Int32) -> Int64 { sqlite3_column_int64(st, i) }
        @inline(__always) func optInt(_ i: Int32) -> Int64? { sqlite3_column_type(st, i) == SQLITE_NULL ? nil : int(i) }
        guard let id = text(0), let status = text(2).flatMap(ImageStatus.init(rawValue:)),
              let visibility = text(3).flatMap(Visibility.init(rawValue:)) else {
            throw ImageError(.internal, "corrupt image row \(text(0) ?? "?")")
        }
        return Image(
            id: id, name: text(1), status: status, visibility: visibility, isProtected: int(4) != 0, osHidden: int(5) != 0,
            owner: text(6), containerFormat: text(7), diskFormat: text(8), size: optInt(9), virtualSize: optInt(10),
            minDisk: int(11), minRam: int(12), checksum: text(13), osHashAlgo: text(14), osHashValue: text(15),
            createdAt: int(16), updatedAt: int(17), deletedAt: optInt(18),
            tags: try bytes(19).map(DocumentColumns.decodeTags) ?? [],
            properties: try bytes(20).map(DocumentColumns.decodeProperties) ?? [:],
            version: int(21), extensions: try bytes(22).map(DocumentColumns.decodeExtensions) ?? [:],
            nameRule: text(23).flatMap(NameRule.init(rawValue:)), writerNode: text(24))
    }

    /// Decodes a row unless the row cache holds that version of it: a list then skips parsing the
    /// tags, properties and extensions documents (half its CPU) for images read before.
    func imageUsingCache(_ st: SQLiteStatement, since ticket: ImageCache.ReadTicket) throws -> Image {
        guard sqlite3_column_type(st, 0) != SQLITE_NULL, let p = sqlite3_column_text(st, 0) else { return try Self.image(st) }
        let id = String(decoding: UnsafeBufferPointer(start: p, count: Int(sqlite3_column_bytes(st, 0))), as: UTF8.self)
        switch cache.lookup(id, version: sqlite3_column_int64(st, 21), updatedAt: sqlite3_column_int64(st, 17)) {
        case .hit(let cached):
            return cached
        case .miss(let admit):
            let image = try Self.image(st)
            if admit { cache.offerRead(image, since: ticket) }
            return image
        }
    }

    /// Runs a cached SELECT of `columns` and decodes every row.
    static func fetchImages(_ db: Database, sql: String, arguments: StatementArguments,
                            decode: (SQLiteStatement) throws -> Image = image) throws -> [Image] {
        let statement = try db.cachedStatement(sql: sql)
        let cursor = try Row.fetchCursor(statement, arguments: arguments)
        var images: [Image] = []
        while try cursor.next() != nil { images.append(try decode(statement.sqliteStatement)) }
        return images
    }

    /// A synchronous read, for tests and tools only. Never call it from request handling: it blocks
    /// a cooperative thread waiting for a reader, while async reads need those threads to finish
    /// (bench/catalog.sh deadlocked the server that way when point reads used it).
    func readNow<T>(_ block: (Database) throws -> T) throws -> T {
        try pool.read(block)
    }

    /// Concurrent inserts share one transaction (group commit): one commit, and with `full`
    /// durability one fsync, for every insert waiting when the writer becomes free.
    public func insertImage(_ image: Image, check: (@Sendable (UsageReader) throws -> Void)?) async throws {
        try await inserts.insert(image, check: check)
        cache.offer(image)
    }

    public func image(id: String) async throws -> Image? {
        // This process is the only writer of the file (the data dir is locked), so cached rows are current.
        let admit: Bool
        switch cache.lookup(id, byID: true) {
        case .hit(let cached): return cached
        case .miss(let admitted): admit = admitted
        }
        let ticket = cache.ticket()
        let image: Image?
        if let direct = try directReaders.read({ try $0.rows(Self.selectByID, [.text(id)], decode: Self.image).first }) {
            image = direct
        } else {
            image = try await pool.read { db in try Self.fetchImages(db, sql: Self.selectByID, arguments: [id]).first }
        }
        if let image, admit { cache.offerRead(image, since: ticket) }
        return image
    }

    public func updateImage(id: String, _ change: @escaping @Sendable (inout Image, UsageReader) throws -> Void) async throws -> Image? {
        try await pool.write { db -> Image? in
            guard let original = try Self.fetchImages(db, sql: Self.selectByID, arguments: [id]).first else {
                return nil
            }
            var image = original
            try change(&image) { try Self.usage(db, project: $0) }
            image.id = original.id
            guard image != original else { return original }
            if let check = image.uniqueness(changedFrom: original) { try Self.refuseClash(db, check, except: image.id) }
            image.version = original.version + 1
            var values = CatalogColumns.values(image)
            values.append(values.removeFirst())  // id moves to the WHERE clause
            try db.execute(sql: Self.updateSQL, arguments: Self.arguments(values))
            return image
        }.map { image in
            cache.offer(image)
            return image
        }
    }

    /// Writers are serialized, so a check made inside the write is race-free.
    static func clash(_ db: Database, _ check: UniquenessCheck, except id: String) throws -> Image? {
        let st = ListSQL.buildCandidates(check, except: id, .sqlite)
        return try fetchImages(db, sql: st.sql, arguments: arguments(st.values)).first(where: check.clashes)
    }

    static func refuseClash(_ db: Database, _ check: UniquenessCheck, except id: String) throws {
        if try clash(db, check, except: id) != nil { throw check.conflict }
    }

    public func clashingImage(_ check: UniquenessCheck, except id: String) async throws -> Image? {
        try await pool.read { db in try Self.clash(db, check, except: id) }
    }

    public func listImages(_ query: ImageListQuery) async throws -> [Image] {
        let statement = ListSQL.build(query, .sqlite)
        let ticket = cache.ticket()
        let decode: @Sendable (SQLiteStatement) throws -> Image = { [self] st in try imageUsingCache(st, since: ticket) }
        // The SQL text depends only on the query's shape, so statements are reused across requests.
        do {
            if let images = try directReaders.read({ try $0.rows(statement.sql, statement.values, decode: decode) }) { return images }
        } catch is DirectReadOverBudget {}
        let (sql, args) = (statement.sql, Self.arguments(statement.values))
        return try await pool.read { db in try Self.fetchImages(db, sql: sql, arguments: args, decode: decode) }
    }

    public func countImages(_ query: ImageListQuery) async throws -> Int {
        let statement = ListSQL.buildCount(query, .sqlite)
        let (sql, args) = (statement.sql, Self.arguments(statement.values))
        return try await pool.read { db in try Int.fetchOne(db.cachedStatement(sql: sql), arguments: args) ?? 0 }
    }

    public func images(withStatus statuses: [ImageStatus]) async throws -> [Image] {
        guard !statuses.isEmpty else { return [] }
        let sql = "SELECT \(Self.columns) FROM images WHERE status IN (\(Self.placeholders(statuses.count)))"
        return try await pool.read { db in
            try Self.fetchImages(db, sql: sql, arguments: StatementArguments(statuses.map(\.rawValue)))
        }
    }

    public func exportImages(after id: String?, limit: Int) async throws -> [Image] {
        try await pool.read { db in
            try Self.fetchImages(db, sql: "SELECT \(Self.columns) FROM images WHERE id > ? ORDER BY id LIMIT ?",
                                 arguments: [id ?? "", limit])
        }
    }

    // MARK: Usage and quotas

    static let usageSQL = UsageSQL.select(.sqlite)

    static func usage(_ db: Database, project: String) throws -> ProjectUsage {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: usageSQL), arguments: [project]) else { return ProjectUsage() }
        return ProjectUsage(imageCount: row[0], sizeTotal: row[1], stageTotal: row[2], uploadingCount: row[3])
    }

    public func usage(project: String) async throws -> ProjectUsage {
        try await pool.read { db in try Self.usage(db, project: project) }
    }

    public func usageByProject(project: String?) async throws -> [String: ProjectUsage] {
        try await pool.read { db in
            var out: [String: ProjectUsage] = [:]
            let sql = UsageSQL.byProject(.sqlite, one: project != nil)
            for row in try Row.fetchAll(db, sql: sql, arguments: StatementArguments(project.map { [$0] } ?? [])) {
                out[row[0]] = ProjectUsage(imageCount: row[1], sizeTotal: row[2], stageTotal: row[3], uploadingCount: row[4])
            }
            return out
        }
    }

    public func storedShares(project: String?) async throws -> [StoredShare] {
        try await pool.read { db in
            let sql = UsageSQL.storedShares(.sqlite, one: project != nil)
            return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(project.map { [$0] } ?? [])).map { row in
                StoredShare(owner: row[0], diskFormat: row[1], stores: row[2], images: row[3], bytes: row[4])
            }
        }
    }

    public func quotaOverride(project: String) async throws -> QuotaLimits? {
        if let hit = quotaCache.get(project) { return hit }
        let found = try await readQuotaOverride(project: project)
        quotaCache.set(project, found)
        return found
    }

    func readQuotaOverride(project: String) async throws -> QuotaLimits? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT \(CatalogColumns.quotas) FROM project_quotas WHERE project_id = ?
                """, arguments: [project]).map { row in
                QuotaLimits(imageCountTotal: row[0], imageSizeTotal: row[1], imageStageTotal: row[2], imageCountUploading: row[3])
            }
        }
    }

    public func quotaOverrides() async throws -> [String: QuotaLimits] {
        try await pool.read { db in
            var out: [String: QuotaLimits] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT project_id, \(CatalogColumns.quotas) FROM project_quotas") {
                out[row[0]] = QuotaLimits(imageCountTotal: row[1], imageSizeTotal: row[2], imageStageTotal: row[3], imageCountUploading: row[4])
            }
            return out
        }
    }

    public func setQuotaOverride(project: String, _ limits: QuotaLimits?) async throws {
        try await pool.write { db in
            guard let l = limits else {
                try db.execute(sql: "DELETE FROM project_quotas WHERE project_id = ?", arguments: [project])
                return
            }
            try db.execute(sql: """
                INSERT INTO project_quotas (project_id, image_count_total, image_size_total, image_stage_total, image_count_uploading)
                VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (project_id) DO UPDATE SET image_count_total = excluded.image_count_total,
                    image_size_total = excluded.image_size_total, image_stage_total = excluded.image_stage_total,
                    image_count_uploading = excluded.image_count_uploading
                """, arguments: [project, l.imageCountTotal, l.imageSizeTotal, l.imageStageTotal, l.imageCountUploading])
        }
        quotaCache.remove(project)
    }

    // MARK: Members

    static func member(_ row: Row) throws -> ImageMember {
        guard let status = MemberStatus(rawValue: row[2]) else { throw ImageError(.internal, "corrupt member row") }
        return ImageMember(imageId: row[0], memberId: row[1], status: status, createdAt: row[3], updatedAt: row[4])
    }

    public func members(imageId: String) async throws -> [ImageMember] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT \(CatalogColumns.members) FROM image_members
                WHERE image_id = ? ORDER BY created_at, member_id
                """, arguments: [imageId]).map(Self.member)
        }
    }

    public func member(imageId: String, memberId: String) async throws -> ImageMember? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT \(CatalogColumns.members) FROM image_members
                WHERE image_id = ? AND member_id = ?
                """, arguments: [imageId, memberId]).map(Self.member)
        }
    }

    public func insertMember(_ m: ImageMember) async throws {
        do {
            try await pool.write { db in
                try db.execute(sql: "INSERT INTO image_members VALUES (?,?,?,?,?)",
                               arguments: [m.imageId, m.memberId, m.status.rawValue, m.createdAt, m.updatedAt])
            }
        } catch let e as DatabaseError where e.resultCode == .SQLITE_CONSTRAINT {
            throw ImageError.conflict("Member \(m.memberId) already exists on image \(m.imageId).")
        }
    }

    public func updateMember(_ m: ImageMember) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE image_members SET status = ?, updated_at = ? WHERE image_id = ? AND member_id = ?",
                           arguments: [m.status.rawValue, m.updatedAt, m.imageId, m.memberId])
        }
    }

    public func deleteMember(imageId: String, memberId: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM image_members WHERE image_id = ? AND member_id = ?", arguments: [imageId, memberId])
            return db.changesCount == 1
        }
    }
}

/// Group commit for image inserts. Callers wait on a continuation; one drain loop at a time takes
/// every pending insert and runs them in a single write transaction. A duplicate id fails only its
/// own statement (SQLite aborts the statement, not the transaction).
final class InsertBatcher: Sendable {
    typealias Check = @Sendable (UsageReader) throws -> Void
    typealias Waiter = (image: Image, check: Check?, continuation: CheckedContinuation<Void, any Error>)
    struct State {
        var waiting: [Waiter] = []
        var draining = false
    }

    let pool: DatabasePool
    let state = Mutex(State())
    /// Bounds one transaction (and so the latency of its first waiter).
    static let maxBatch = 256

    init(pool: DatabasePool) { self.pool = pool }

    func insert(_ image: Image, check: Check?) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let startDrain = state.withLock { s -> Bool in
                s.waiting.append((image, check, continuation))
                if s.draining { return false }
                s.draining = true
                return true
            }
            if startDrain { Task { await self.drain() } }
        }
    }

    private func drain() async {
        while true {
            let batch = state.withLock { s -> [Waiter] in
                let n = min(s.waiting.count, Self.maxBatch)
                if n == 0 { s.draining = false }
                let taken = Array(s.waiting.prefix(n))
                s.waiting.removeFirst(n)
                return taken
            }
            if batch.isEmpty { return }
            let entries = batch.map { ($0.image, $0.check) }
            do {
                let outcomes = try await pool.write { db -> [(any Error)?] in
                    // Writers are serialized, so checking first is race-free, and a duplicate never
                    // reaches the INSERT: a failed step can leave a reused statement reporting the
                    // stale error on its next execution, which would refuse a valid image.
                    let exists = try db.cachedStatement(sql: "SELECT 1 FROM images WHERE id = ?")
                    let insert = try db.cachedStatement(sql: SQLiteCatalog.insertSQL)
                    return try entries.map { image, check -> (any Error)? in
                        if try Int.fetchOne(exists, arguments: [image.id]) != nil {
                            return ImageError.conflict("An image with identifier \(image.id) already exists.")
                        }
                        // Earlier inserts of this batch are already visible to the usage read and the clash check.
                        do {
                            try check?({ try SQLiteCatalog.usage(db, project: $0) })
                            if let unique = image.uniqueness { try SQLiteCatalog.refuseClash(db, unique, except: image.id) }
                        } catch { return error }
                        try insert.execute(arguments: SQLiteCatalog.arguments(CatalogColumns.values(image)))
                        return nil
                    }
                }
                for (waiter, outcome) in zip(batch, outcomes) {
                    if let outcome { waiter.continuation.resume(throwing: outcome) } else { waiter.continuation.resume() }
                }
            } catch {
                for waiter in batch { waiter.continuation.resume(throwing: error) }
            }
        }
    }
}
