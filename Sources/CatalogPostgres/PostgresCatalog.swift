import CatalogSQL
import Foundation
import ImageCore
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The scale-out catalog: every node of a cluster opens the same database. Nothing about images is
/// answered from memory without the database's word (another node may change any row): a list page, or
/// an image by id, is answered again only when a check of the catalog's revision, started after the
/// last write any client was told of, says nothing was written since (`ListPageCache`, `image(id:)`,
/// `RevisionLease`). Writes lock
/// the rows they change (`SELECT … FOR UPDATE`), so concurrent writers on any node never lose an update.
public final class PostgresCatalog: Catalog {
    let client: PostgresClient
    let acquireWatchdog = AcquireWatchdog(timeout: PostgresCatalog.acquireTimeout)
    /// Spares decoding rows read before; answers instead of the database only after a check that the
    /// catalog's revision has not moved since the row was read (`image(id:)`: other nodes write).
    let decodeCache: ImageCache
    let logger: Logger
    /// The client's run loop when this catalog runs it itself (`open`, for tools and tests).
    let ownRun = Mutex<Task<Void, Never>?>(nil)
    public let location: PostgresLocation
    /// Quota overrides change rarely (`imaged quota set`); every node sees a change within 5 s.
    let quotaCache = TTLCache<String, QuotaLimits?>(seconds: 5)
    /// GETs by id under load are read together.
    let byIDBatcher: ReadBatcher<String, Image>
    /// List statements prepared on each connection, by SQL text (`preparedRows`).
    let preparedLists = Mutex<[PostgresConnection.ID: PreparedLists]>([:])
    /// List pages, answered again while the catalog's revision has not moved.
    let listPages = ListPageCache(capacity: 1_024, imageCapacity: 50_000)
    /// Concurrent lists and GETs check the revision together: one read answers every one waiting.
    /// One check in flight, as for GETs by id (`byIDLanes`): two made smaller batches for the same GETs.
    let revisionBatcher = ReadBatcher<Int, Int64>(lanes: 1, maxBatch: 4_096)
    /// The latest catalog revision a read on this node has found (`image(id:)` checks the revision
    /// only for a cached row read at this one: otherwise a write has committed since, and the row is
    /// read at once instead of after a check that would fail).
    let knownRevision = Atomic<Int64>(.min)
    /// GETs answered from the cache after a revision check, for tests and the bench's explanation.
    let revisionHits = Atomic<Int>(0)
    /// Lets a recent check answer for the reads after it; writes wait it out (`RevisionLease`).
    let lease: RevisionLease
    /// Revision checks run (each answers every read waiting for it), for tests and the bench.
    let revisionChecks = Atomic<Int>(0)

    /// A catalog whose connection pool the caller runs: `imaged serve` puts `service` into its
    /// ServiceGroup (started first, stopped last, so the pool closes after every request has
    /// finished), then calls `migrate()`. Nothing connects before the pool runs.
    /// `cacheBytes`: the memory the decoded rows kept may take (`ImageCache`; default 256 MiB).
    public init(location: PostgresLocation, logger: Logger = Logger(label: "imaged.postgres"), cacheBytes: Int? = nil) {
        self.location = location
        decodeCache = ImageCache(bytes: cacheBytes ?? ImageCache.defaultBytes)
        self.logger = logger
        client = PostgresClient(configuration: location.configuration, backgroundLogger: logger)
        byIDBatcher = ReadBatcher(lanes: Self.byIDLanes, maxBatch: Self.byIDMaxBatch)
        lease = RevisionLease(length: location.readLease)
    }

    /// One batch in flight at a time: the GETs that arrive meanwhile ride the next one. Per GET, a
    /// query costs this node and the database far more than a row does, so fewer, larger batches
    /// win: with 32 clients GETting, one lane answered 13.6k GETs/s, two 12.5k and four 11.1k (CPU
    /// per GET here 95, 105 and 121 µs; in PostgreSQL 14, 19 and 27 µs). An idle node is not slowed:
    /// a GET that finds the lane free runs at once. A batch of 64 ids is one indexed lookup each, so
    /// even at 1 ms to the database one lane carries 64,000 GETs/s, more than a node serves.
    static let byIDLanes = 1
    static let byIDMaxBatch = 64

    /// The connection pool, as a ServiceLifecycle service (postgres-nio's client is one).
    public var service: any Service { client }

    /// For short-lived tools and tests: runs the pool itself until `close()`, and migrates.
    public static func open(_ location: PostgresLocation, logger: Logger = Logger(label: "imaged.postgres")) async throws -> PostgresCatalog {
        let catalog = PostgresCatalog(location: location, logger: logger)
        let client = catalog.client
        catalog.ownRun.withLock { $0 = Task { await client.run() } }
        do {
            try await catalog.migrate()
        } catch {
            catalog.close()
            throw error
        }
        return catalog
    }

    /// Stops a pool `open` started (its connections close); a pool run as a service stops with its group.
    public func close() { ownRun.withLock { $0?.cancel() } }

    deinit { ownRun.withLock { $0?.cancel() } }

    // MARK: Statements

    static func bindings(_ values: [SQLValue]) -> PostgresBindings {
        var b = PostgresBindings(capacity: values.count)
        for v in values {
            switch v {
            case .null: b.appendNull()
            case .text(let s): b.append(s)
            case .int(let i): b.append(i)
            case .bool(let x): b.append(x)
            }
        }
        return b
    }

    static func query(_ sql: String, _ values: [SQLValue] = []) -> PostgresQuery {
        PostgresQuery(unsafeSQL: sql, binds: bindings(values))
    }

    /// Runs one statement, on `connection` when inside a transaction, else on any pooled connection.
    func rows(_ sql: String, _ values: [SQLValue] = [], on connection: PostgresConnection? = nil) async throws -> [PostgresRow] {
        let q = Self.query(sql, values)
        return try await Self.translatingErrors { [logger] in
            if let connection { return try await connection.whileOpen { $0.query(q, logger: logger) }.rows }
            return try await pooled { c in try await c.whileOpen { $0.query(q, logger: logger) }.rows }
        }
    }

    /// Runs `body`, turning postgres-nio's errors into the catalog's: a duplicate key into
    /// `UniqueViolation`, a lost or unreachable database into `.unavailable`.
    static func translatingErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let e as PSQLError {
            throw translate(e)
        } catch {
            throw unavailable(error) ?? error
        }
    }

    /// A duplicate key; callers turn it into their own conflict message.
    struct UniqueViolation: Error { let detail: String }

    static func translate(_ e: PSQLError) -> any Error {
        if e.serverInfo?[.sqlState] == "23505" { return UniqueViolation(detail: e.serverInfo?[.detail] ?? "") }
        return unavailable(e) ?? e
    }

    /// 08xxx connection exceptions, 57P01-03 shutdown / cannot connect now, 53300 too many connections.
    static func isUnavailable(sqlState state: String) -> Bool {
        state.hasPrefix("08") || state.hasPrefix("57P") || state == "53300"
    }

    /// PostgreSQL could not be reached or went away (restarting, shutting down, connection lost):
    /// the core's `.unavailable`, which every front-end answers 503 with `Retry-After`. The pool
    /// reconnects by itself; what was not committed was not acknowledged.
    static func unavailable(_ error: any Error) -> ImageError? {
        if let e = error as? PSQLError {
            switch e.code {
            case .connectionError, .serverClosedConnection, .uncleanShutdown, .clientClosedConnection, .poolClosed:
                return ImageError(.unavailable, "The catalog database is unavailable (\(e.code)); retry shortly.")
            case .server:
                let state = e.serverInfo?[.sqlState] ?? ""
                if Self.isUnavailable(sqlState: state) {
                    return ImageError(.unavailable, "The catalog database is unavailable (SQLSTATE \(state)); retry shortly.")
                }
                return nil
            default:
                return nil
            }
        }
        // postgres-nio's older API (prepared lists and reads, `executePrepared`) reports the same failures
        // as `PostgresError`, and a lost connection as the socket's own error.
        if let e = error as? PostgresError {
            switch e {
            case .connectionClosed:
                return ImageError(.unavailable, "The catalog database closed the connection; retry shortly.")
            case .protocol(let message) where message == "Unexpected connection close":
                return ImageError(.unavailable, "The catalog database closed the connection; retry shortly.")
            case .server(let server):
                let state = server.fields[.sqlState] ?? ""
                if Self.isUnavailable(sqlState: state) {
                    return ImageError(.unavailable, "The catalog database is unavailable (SQLSTATE \(state)); retry shortly.")
                }
                return nil
            case .protocol:
                return nil
            }
        }
        if error is IOError || error is ChannelError {
            return ImageError(.unavailable, "The connection to the catalog database failed; retry shortly.")
        }
        // The pool gave up connecting (postgres-nio's ConnectionPoolError, from a module not imported here).
        if String(describing: type(of: error)) == "ConnectionPoolError" {
            return ImageError(.unavailable, "The catalog database cannot be reached; retry shortly.")
        }
        return nil
    }

    /// BEGIN … COMMIT on one pooled connection; any error rolls back and is rethrown as it was
    /// (connection failures as `.unavailable`).
    func transaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await transactionOnce(body)
        } catch {
            throw Self.unavailable(error) ?? error
        }
    }

    /// Seconds a request waits for a pooled connection: while PostgreSQL is down the pool keeps
    /// trying to connect (and would hold requests up to its 60 s circuit breaker); past this the
    /// request is answered 503 instead.
    static let acquireTimeout: Duration = .seconds(5)

    /// Runs `work` on a pooled connection, or throws `.unavailable` when none is had within `acquireTimeout`
    /// (the work itself, once it has a connection, is not bounded). The wait runs in a child task,
    /// which the watchdog cancels when it lasts too long.
    func pooled<T: Sendable>(_ work: (PostgresConnection) async throws -> T) async throws -> T {
        try await withoutActuallyEscaping(work) { work in
            nonisolated(unsafe) let work = work  // awaited below before this function returns
            let (client, watchdog) = (self.client, self.acquireWatchdog)
            return try await withThrowingTaskGroup(of: T.self) { group in
                group.addTask {
                    let ticket = watchdog.waiting()
                    do {
                        return try await client.withConnection { c in
                            if watchdog.acquired(ticket) { throw AcquireTimedOut() }
                            return try await work(c)
                        }
                    } catch {
                        if error is AcquireTimedOut || watchdog.acquired(ticket) {
                            throw ImageError(.unavailable, "The catalog database cannot be reached; retry shortly.")
                        }
                        throw error
                    }
                }
                return try await group.next()!
            }
        }
    }

    /// Runs a statement whose rows are not wanted (BEGIN, COMMIT…) on `c`.
    static func run(_ sql: PostgresQuery, on c: PostgresConnection, logger: Logger) async throws {
        _ = try await c.whileOpen { $0.query(sql, logger: logger) }
    }

    private func transactionOnce<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await pooled { connection in
            try await Self.run("BEGIN", on: connection, logger: logger)
            do {
                let result = try await body(connection)
                try await Self.run("COMMIT", on: connection, logger: logger)
                return result
            } catch {
                try? await Self.run("ROLLBACK", on: connection, logger: logger)
                throw error
            }
        }
    }

    /// Creates the schema when missing and applies pending migrations, once whatever the number of
    /// nodes starting together; refuses a schema a newer imaged has migrated.
    public func migrate() async throws {
        try await transaction { c in
            // One node migrates at a time; the others wait, then find nothing to do.
            _ = try await rows("SELECT pg_advisory_xact_lock(7274, 0)", on: c)
            if let schema = location.schema { _ = try await rows("CREATE SCHEMA IF NOT EXISTS \"\(schema)\"", on: c) }
            _ = try await rows("CREATE TABLE IF NOT EXISTS imaged_migrations (id TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)", on: c)
            let applied = Set(try await rows("SELECT id FROM imaged_migrations", on: c).map { try $0.decode(String.self) })
            let unknown = applied.subtracting(PostgresSchema.migrations.map(\.id))
            if !unknown.isEmpty { throw CatalogSchemaTooNew(catalog: location.redacted, unknown: unknown.sorted()) }
            for m in PostgresSchema.migrations where !applied.contains(m.id) {
                for statement in m.statements { _ = try await rows(statement, on: c) }
                _ = try await rows("INSERT INTO imaged_migrations (id, applied_at) VALUES ($1, $2)",
                                   [.text(m.id), .int(Timestamp.now())], on: c)
                logger.notice("catalog migration applied: \(m.id)")
            }
        }
    }

    // MARK: Images

    static let columns = ListSQL.selectColumns(.postgres)
    static let selectByID = "SELECT \(columns) FROM images WHERE id = $1"

    /// `$1, …, $n`, with the JSON documents cast to JSONB.
    static func placeholders(_ names: [String]) -> String {
        names.enumerated().map { i, name in
            name == "tags" || name == "properties" ? "CAST($\(i + 1) AS JSONB)" : "$\(i + 1)"
        }.joined(separator: ", ")
    }

    static let insertSQL = "INSERT INTO images (\(CatalogColumns.images)) VALUES (\(placeholders(CatalogColumns.imageNames)))"
    /// Every column but `id` (values in column order from $2), then `WHERE id = $1`.
    static let updateSQL: String = {
        let names = CatalogColumns.imageNames
        let casts = placeholders(names).components(separatedBy: ", ")
        return "UPDATE images SET " + zip(names, casts).dropFirst().map { "\($0) = \($1)" }.joined(separator: ", ") + " WHERE id = $1"
    }()

    /// Column `i` of `r`; `binary`: whatever its description says, its bytes are in binary format.
    static func cell(_ r: PostgresRandomAccessRow, _ i: Int, binary: Bool) -> PostgresCell {
        var cell = r[i]
        if binary { cell.format = .binary }
        return cell
    }

    static func image(_ r: PostgresRandomAccessRow, binary: Bool = false) throws -> Image {
        func text(_ i: Int) throws -> String? { try cell(r, i, binary: binary).decode(String?.self) }
        func int(_ i: Int) throws -> Int64? { try cell(r, i, binary: binary).decode(Int64?.self) }
        func bool(_ i: Int) throws -> Bool { try cell(r, i, binary: binary).decode(Bool.self) }
        guard let id = try text(0), let status = try text(2).flatMap(ImageStatus.init(rawValue:)),
              let visibility = try text(3).flatMap(Visibility.init(rawValue:)) else {
            throw ImageError(.internal, "corrupt image row \((try? text(0)) ?? "?")")
        }
        return Image(
            id: id, name: try text(1), status: status, visibility: visibility,
            isProtected: try bool(4), osHidden: try bool(5),
            owner: try text(6), containerFormat: try text(7), diskFormat: try text(8), size: try int(9),
            virtualSize: try int(10), minDisk: try int(11) ?? 0, minRam: try int(12) ?? 0, checksum: try text(13),
            osHashAlgo: try text(14), osHashValue: try text(15), createdAt: try int(16) ?? 0, updatedAt: try int(17) ?? 0,
            deletedAt: try int(18), tags: try DocumentColumns.decodeTags(try text(19) ?? "[]"),
            properties: try DocumentColumns.decodeProperties(try text(20) ?? "{}"), version: try int(21) ?? 0,
            extensions: try DocumentColumns.decodeExtensions(try text(22) ?? "{}"),
            nameRule: try text(23).flatMap(NameRule.init(rawValue:)), writerNode: try text(24))
    }

    func images(_ sql: String, _ values: [SQLValue], on c: PostgresConnection? = nil) async throws -> [Image] {
        let ticket = decodeCache.ticket()
        return try await rows(sql, values, on: c).map { try imageUsingCache($0, since: ticket) }
    }

    /// Decodes a row unless the cache holds that version of it, as the SQLite catalog does for lists.
    /// Safe with other nodes writing: the cache only spares the decoding of a row this query has just
    /// read, whose version and `updated_at` it compares (every row write bumps the version); it never
    /// answers instead of the database.
    func imageUsingCache(_ row: PostgresRow, since ticket: ImageCache.ReadTicket, binary: Bool = false) throws -> Image {
        try imageUsingCache(row.makeRandomAccess(), since: ticket, binary: binary)
    }

    /// `revision`: the catalog revision the row was read at (in the same statement), recorded with it.
    /// `byID`: read for a GET, not met by a list (`ImageCache.lookup`).
    func imageUsingCache(_ r: PostgresRandomAccessRow, since ticket: ImageCache.ReadTicket, binary: Bool,
                         revision: Int64? = nil, byID: Bool = false) throws -> Image {
        guard let id = try Self.cell(r, 0, binary: binary).decode(String?.self) else { return try Self.image(r, binary: binary) }
        switch decodeCache.lookup(id, version: try Self.cell(r, 21, binary: binary).decode(Int64.self),
                                  updatedAt: try Self.cell(r, 17, binary: binary).decode(Int64.self), revision: revision,
                                  byID: byID) {
        case .hit(let cached):
            return cached
        case .miss(let admit):
            let image = try Self.image(r, binary: binary)
            if admit { decodeCache.offerRead(image, since: ticket, revision: revision) }
            return image
        }
    }

    /// A revision a read has just found: the latest known unless a later one was found meanwhile.
    func found(revision: Int64) {
        knownRevision.max(revision, ordering: .relaxed)
    }

    /// A check needs a project's usage, which a synchronous `UsageReader` cannot fetch: the check
    /// is run again once the usage has been read.
    struct UsageNeeded: Error { let project: String }

    /// Runs `body` with the usages it asks for, read on `c` after taking the project's quota lock,
    /// so writers checking one project's quota run one at a time (the same guarantee SQLite's single
    /// writer gives). `body` must not have effects beyond its result: it may run more than once.
    func withUsage<T>(on c: PostgresConnection, _ body: (@escaping UsageReader) throws -> T) async throws -> T {
        var known: [String: ProjectUsage] = [:]
        while true {
            let snapshot = known
            do {
                return try body { project in
                    if let u = snapshot[project] { return u }
                    throw UsageNeeded(project: project)
                }
            } catch let needed as UsageNeeded {
                guard known[needed.project] == nil, known.count < 8 else { throw ImageError(.internal, "usage read loop") }
                _ = try await rows("SELECT pg_advisory_xact_lock(7274, hashtext($1))", [.text(needed.project)], on: c)
                known[needed.project] = try await usage(project: needed.project, on: c)
            }
        }
    }

    public func insertImage(_ image: Image, check: (@Sendable (UsageReader) throws -> Void)?) async throws {
        do {
            try await transaction { c in
                if let check { try await withUsage(on: c) { try check($0) } }
                if let unique = image.uniqueness { try await refuseClash(unique, except: image.id, on: c) }
                _ = try await rows(Self.insertSQL, CatalogColumns.values(image), on: c)
            }
        } catch is UniqueViolation {
            throw ImageError.conflict("An image with identifier \(image.id) already exists.")
        }
        await waitOutLeases()
    }

    /// A row read at revision R is still the row while the catalog's revision is R: every commit that
    /// writes `images` or `image_members`, on any node or in plain SQL, moves it (`ListPageCache`). So
    /// a cached row read at the latest revision this node knows is answered when the revision is still
    /// R (`isCurrent`: a check started within the lease, or one this GET waits for), instead of a read
    /// of the row. Otherwise, or when the revision moved, the row is read.
    public func image(id: String) async throws -> Image? {
        if let (cached, at) = decodeCache.withRevision(id), at == knownRevision.load(ordering: .relaxed),
           try await isCurrent(at) {
            revisionHits.add(1, ordering: .relaxed)
            return cached
        }
        return try await byIDBatcher.read(id) { ids in try await self.images(ids: ids) }
    }

    /// The images of `ids` that exist, by id: one prepared statement, whatever the number. Each row
    /// carries the catalog revision of the statement's snapshot.
    func images(ids: [String]) async throws -> [String: Image] {
        try await Self.translatingErrors {
            try await pooled { c in
                var found: [String: Image] = [:]
                let ticket = self.decodeCache.ticket()
                let rows = ids.count == 1
                    ? try await self.executePrepared(.imageByID, [PostgresData(string: ids[0])], on: c)
                    : try await self.executePrepared(.imagesByIDs, [PostgresData(array: ids.map(PostgresData.init(string:)), elementType: .text)], on: c)
                var revision: Int64?
                for row in rows {
                    let r = row.makeRandomAccess()
                    if revision == nil { revision = try Self.cell(r, Self.revisionIndex, binary: true).decode(Int64?.self) }
                    let image = try self.imageUsingCache(r, since: ticket, binary: true, revision: revision, byID: true)
                    found[image.id] = image
                }
                if let revision { self.found(revision: revision) }
                return found
            }
        }
    }

    /// Where a row read with `revisionColumn` carries the revision: after the image's columns.
    static let revisionIndex = CatalogColumns.imageNames.count

    /// The hottest read, prepared once per connection (`executePrepared`): PostgreSQL then skips
    /// parsing and planning it on every GET.
    static let selectImageByID = "SELECT \(PostgresCatalog.columns), \(PostgresCatalog.revisionColumn) FROM images WHERE id = $1"

    /// Several GETs answered by one query (`ReadBatcher`); `id = ANY($1)` is an index lookup per id.
    static let selectImagesByIDs = "SELECT \(PostgresCatalog.columns), \(PostgresCatalog.revisionColumn) FROM images WHERE id = ANY($1)"

    func clash(_ check: UniquenessCheck, except id: String, on c: PostgresConnection?) async throws -> Image? {
        let st = ListSQL.buildCandidates(check, except: id, .postgres)
        return try await images(st.sql, st.values, on: c).first(where: check.clashes)
    }

    /// Inside a write: writers of one contested value take its lock first (held to the end of the
    /// transaction, after the quota lock, so locks are always taken in the same order), then look.
    /// A writer that waited sees the winner's committed row.
    func refuseClash(_ check: UniquenessCheck, except id: String, on c: PostgresConnection) async throws {
        _ = try await rows("SELECT pg_advisory_xact_lock(7275, hashtext($1))", [.text(check.lockKey)], on: c)
        if try await clash(check, except: id, on: c) != nil { throw check.conflict }
    }

    public func clashingImage(_ check: UniquenessCheck, except id: String) async throws -> Image? {
        try await clash(check, except: id, on: nil)
    }

    public func updateImage(id: String, _ change: @escaping @Sendable (inout Image, UsageReader) throws -> Void) async throws -> Image? {
        let (image, wrote) = try await transaction { c -> (Image?, Bool) in
            guard let original = try await images(Self.selectByID + " FOR UPDATE", [.text(id)], on: c).first else { return (nil, false) }
            var image = try await withUsage(on: c) { usage in
                var changed = original
                try change(&changed, usage)
                return changed
            }
            image.id = original.id
            guard image != original else { return (original, false) }
            if let unique = image.uniqueness(changedFrom: original) { try await refuseClash(unique, except: image.id, on: c) }
            image.version = original.version + 1
            _ = try await rows(Self.updateSQL, CatalogColumns.values(image), on: c)
            return (image, true)
        }
        if wrote { await waitOutLeases() }
        return image
    }

    /// A page read before is answered again when the revision it was read at is still the catalog's:
    /// no write has committed since, on any node (see `ListPageCache`). Otherwise the page is read
    /// with the revision in the same statement (one snapshot), and kept.
    public func listImages(_ query: ImageListQuery) async throws -> [Image] {
        let st = ListSQL.build(query, .postgres, extraColumn: Self.revisionColumn)
        let key = ListPageCache.Key(sql: st.sql, values: st.values)
        if let page = listPages.page(key), try await isCurrent(page.revision) {
            listPages.countHit()
            return page.images
        }
        if keysFirst.worthTrying(), let images = try await listByKeys(query, pageKey: key) { return images }
        let ticket = decodeCache.ticket()
        let (rows, binary) = try await preparedRows(st.sql, st.values)
        var revision: Int64?
        var images: [Image] = []
        images.reserveCapacity(rows.count)
        for row in rows {
            let r = row.makeRandomAccess()
            // Every row carries the revision (one snapshot); the first one's is read.
            if images.isEmpty { revision = try Self.cell(r, Self.revisionIndex, binary: binary).decode(Int64?.self) }
            images.append(try imageUsingCache(r, since: ticket, binary: binary, revision: revision))
        }
        if let revision { found(revision: revision) }
        // An empty page has no row to carry the revision; it is read again next time.
        if let revision { listPages.keep(key, ListPageCache.Page(revision: revision, images: images)) }
        return images
    }

    /// A list page read as keys first: the page's ids, versions and revision, then in full only the
    /// rows the cache does not hold at that version (one more statement, by id). With the page's rows
    /// cached, PostgreSQL neither reads nor sends a page of full rows (their JSON as text) and this node does
    /// not receive them: most of a list's cost on both sides. `nil` when a row changed or went away
    /// between the two statements: the caller reads the page in full, in one snapshot.
    func listByKeys(_ query: ImageListQuery, pageKey: ListPageCache.Key) async throws -> [Image]? {
        let st = ListSQL.build(query, .postgres, columns: "id, version, updated_at", extraColumn: Self.revisionColumn)
        let ticket = decodeCache.ticket()
        let (rows, binary) = try await preparedRows(st.sql, st.values)
        var revision: Int64?
        var images: [Image?] = []
        images.reserveCapacity(rows.count)
        var missing: [(index: Int, version: Int64, updatedAt: Int64, admit: Bool)] = []
        var missingIDs: [String] = []
        for row in rows {
            let r = row.makeRandomAccess()
            if images.isEmpty { revision = try Self.cell(r, 3, binary: binary).decode(Int64?.self) }
            let id = try Self.cell(r, 0, binary: binary).decode(String.self)
            let version = try Self.cell(r, 1, binary: binary).decode(Int64.self)
            let updatedAt = try Self.cell(r, 2, binary: binary).decode(Int64.self)
            switch decodeCache.lookup(id, version: version, updatedAt: updatedAt, revision: revision) {
            case .hit(let cached):
                images.append(cached)
            case .miss(let admit):
                missing.append((images.count, version, updatedAt, admit))
                missingIDs.append(id)
                images.append(nil)
            }
        }
        keysFirst.record(rows: rows.count, hits: rows.count - missing.count)
        if !missing.isEmpty {
            let fetched = try await Self.translatingErrors {
                try await pooled { c in
                    try await self.executePrepared(.imagesByIDs, [PostgresData(array: missingIDs.map(PostgresData.init(string:)), elementType: .text)], on: c)
                        .map { try Self.image($0.makeRandomAccess(), binary: true) }
                }
            }
            let byID = Dictionary(fetched.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            for (slot, id) in zip(missing, missingIDs) {
                // Changed since the keys were read: this page is no longer one snapshot.
                guard let image = byID[id], image.version == slot.version, image.updatedAt == slot.updatedAt else { return nil }
                // The same version as at the keys' revision: recorded at that (earlier) revision.
                if slot.admit { decodeCache.offerRead(image, since: ticket, revision: revision) }
                images[slot.index] = image
            }
        }
        let page = images.compactMap { $0 }
        if let revision {
            found(revision: revision)
            listPages.keep(pageKey, ListPageCache.Page(revision: revision, images: page))
        }
        return page
    }

    /// Whether lists are read keys first (`listByKeys`): while most rows lists meet are cached. With
    /// most missing, the second statement would cost more than the full rows it spares.
    let keysFirst = KeysFirstGauge()

    struct PreparedLists {
        let connection: PostgresConnection
        var bySQL: [String: PreparedQuery] = [:]
        /// The catalog's own statements (`executePrepared`).
        var own: [OwnStatement: PreparedQuery] = [:]
    }

    /// The catalog's own statements, prepared on each connection on first use (`executePrepared`) in
    /// addition to the list shapes. Named by a case, not by their text: a GET that misses the cache
    /// would otherwise hash the ~700-character by-id statement to find it.
    enum OwnStatement: Hashable, Sendable {
        case imageByID, imagesByIDs, revision

        var sql: String {
            switch self {
            case .imageByID: PostgresCatalog.selectImageByID
            case .imagesByIDs: PostgresCatalog.selectImagesByIDs
            case .revision: PostgresCatalog.selectRevision
            }
        }
    }

    /// Statements of one shape prepared per connection: a list's shape (filters, sort, scope) repeats
    /// while its values change, and PostgreSQL then parses it once per connection instead of on every
    /// list (its plan cache still decides whether to plan each execution). `SQLStatement` types every
    /// placeholder in the text, so the statement's parameters take the types bound here. A connection
    /// prepares at most `preparedPerConnection` shapes; others run unprepared, so a stream of odd
    /// shapes cannot grow a backend's memory. postgres-nio's `PreparedQuery` (the only prepared
    /// statements whose text is known at run time) describes its columns as text although every result
    /// column comes binary: its rows are read with `binary: true`.
    func preparedRows(_ sql: String, _ values: [SQLValue]) async throws -> (rows: [PostgresRow], binary: Bool) {
        try await Self.translatingErrors { [logger] in
            try await pooled { c in
                let limit = self.preparedPerConnection.load(ordering: .relaxed)
                let (known, room) = self.preparedLists.withLock { lists in
                    (lists[c.id]?.bySQL[sql], (lists[c.id]?.bySQL.count ?? 0) < limit)
                }
                let prepared: PreparedQuery
                if let known {
                    prepared = known
                } else if room {
                    prepared = try await self.prepare(sql, on: c) { $0.bySQL[sql] = $1 }
                } else {
                    let q = Self.query(sql, values)
                    return (try await c.whileOpen { $0.query(q, logger: logger) }.rows, false)
                }
                return (try await Self.execute(prepared, values.map(Self.data), on: c), true)
            }
        }
    }

    /// Runs one of the catalog's own statements on `c`, prepared there on first use; its rows come in
    /// binary (`preparedRows`).
    func executePrepared(_ statement: OwnStatement, _ binds: [PostgresData], on c: PostgresConnection) async throws -> [PostgresRow] {
        let prepared: PreparedQuery
        if let known = preparedLists.withLock({ $0[c.id]?.own[statement] }) {
            prepared = known
        } else {
            prepared = try await prepare(statement.sql, on: c) { $0.own[statement] = $1 }
        }
        return try await Self.execute(prepared, binds, on: c)
    }

    /// Prepares `sql` on `c` and records it there with `record`.
    func prepare(_ sql: String, on c: PostgresConnection,
                 record: (inout PreparedLists, PreparedQuery) -> Void) async throws -> PreparedQuery {
        let prepared = try await c.whileOpen { $0.prepare(query: sql) }
        preparedLists.withLock { lists in
            // A connection's first statement: forget the connections the pool has closed since.
            if lists[c.id] == nil { lists = lists.filter { !$0.value.connection.isClosed } }
            record(&lists[c.id, default: PreparedLists(connection: c)], prepared)
        }
        return prepared
    }

    static func execute(_ prepared: PreparedQuery, _ binds: [PostgresData], on c: PostgresConnection) async throws -> [PostgresRow] {
        try await c.whileOpen { _ in prepared.execute(binds) }
    }

    /// 64; tests lower it to reach the unprepared path.
    let preparedPerConnection = Atomic<Int>(64)

    static func data(_ value: SQLValue) -> PostgresData {
        switch value {
        case .null: .null
        case .text(let s): PostgresData(string: s)
        case .int(let i): PostgresData(int64: i)
        case .bool(let b): PostgresData(bool: b)
        }
    }

    /// The catalog's revision, as a column of a list (evaluated once per statement, in its snapshot).
    static let revisionColumn = "(\(selectRevision))"

    /// The catalog's revision now. A read that asks while another is in flight waits for the next one,
    /// which starts after it asked (`ReadBatcher`), so it sees every write committed before.
    func revision() async throws -> Int64 {
        let revision = try await revisionBatcher.read(0) { _ in
            let started = ContinuousClock.now
            self.revisionChecks.add(1, ordering: .relaxed)
            return try await Self.translatingErrors {
                try await self.pooled { c in
                    let rows = try await self.executePrepared(.revision, [], on: c)
                    let found = try rows.first.flatMap { try Self.cell($0.makeRandomAccess(), 0, binary: true).decode(Int64?.self) }
                    if let found {
                        self.found(revision: found)
                        self.lease.record(found, startedAt: started)
                    }
                    return [0: found ?? 0]
                }
            }
        }
        return revision ?? 0
    }

    /// Whether the catalog's revision is still `revision`: said by a check started within the lease
    /// (`RevisionLease`) without waiting, else by a check this read waits for. Under steady reads a
    /// check starts ahead of need once the lease is half gone, so the reads seldom wait.
    func isCurrent(_ revision: Int64) async throws -> Bool {
        switch lease.answer(for: revision) {
        case .current(let refresh):
            if refresh, lease.claimRefresh() {
                Task { [self] in
                    defer { lease.refreshEnded() }
                    _ = try? await self.revision()
                }
            }
            return true
        case .unknown:
            return try await self.revision() == revision
        }
    }

    /// After a commit that moved the revision, before the writer returns: a read asked from then on,
    /// on any node, is asked after every lease that could still vouch for the old revision has run
    /// out (`RevisionLease`). Not cut short when the writer's task is cancelled.
    func waitOutLeases() async {
        let wait = lease.commitWait
        guard wait > .zero else { return }
        await Task.detached { try? await Task.sleep(for: wait) }.value
    }

    /// The catalog's revision: every commit that writes images or members moves it (`ListPageCache`).
    static let selectRevision = "SELECT CAST(sum(n) AS BIGINT) FROM image_revisions"

    public func countImages(_ query: ImageListQuery) async throws -> Int {
        let st = ListSQL.buildCount(query, .postgres)
        return Int(try await rows(st.sql, st.values).first?.decode(Int64.self) ?? 0)
    }

    public func images(withStatus statuses: [ImageStatus]) async throws -> [Image] {
        guard !statuses.isEmpty else { return [] }
        var st = SQLStatement(.postgres)
        st.append("SELECT \(Self.columns) FROM images WHERE status IN (\(st.bindList(statuses.map { .text($0.rawValue) })))")
        return try await images(st.sql, st.values)
    }

    public func exportImages(after id: String?, limit: Int) async throws -> [Image] {
        try await images("SELECT \(Self.columns) FROM images WHERE id > $1 ORDER BY id LIMIT $2", [.text(id ?? ""), .int(Int64(limit))])
    }

    // MARK: Usage and quotas

    static let usageSQL = UsageSQL.select(.postgres)

    func usage(project: String, on c: PostgresConnection?) async throws -> ProjectUsage {
        guard let row = try await rows(Self.usageSQL, [.text(project)], on: c).first else { return ProjectUsage() }
        let (count, size, staged, uploading) = try row.decode((Int64, Int64, Int64, Int64).self)
        return ProjectUsage(imageCount: count, sizeTotal: size, stageTotal: staged, uploadingCount: uploading)
    }

    public func usage(project: String) async throws -> ProjectUsage {
        try await usage(project: project, on: nil)
    }

    public func usageByProject(project: String?) async throws -> [String: ProjectUsage] {
        var out: [String: ProjectUsage] = [:]
        for row in try await rows(UsageSQL.byProject(.postgres, one: project != nil), project.map { [.text($0)] } ?? []) {
            let (owner, count, size, staged, uploading) = try row.decode((String, Int64, Int64, Int64, Int64).self)
            out[owner] = ProjectUsage(imageCount: count, sizeTotal: size, stageTotal: staged, uploadingCount: uploading)
        }
        return out
    }

    public func storedShares(project: String?) async throws -> [StoredShare] {
        try await rows(UsageSQL.storedShares(.postgres, one: project != nil), project.map { [.text($0)] } ?? []).map { row in
            let (owner, format, stores, count, bytes) = try row.decode((String?, String?, String, Int64, Int64).self)
            return StoredShare(owner: owner, diskFormat: format, stores: stores, images: count, bytes: bytes)
        }
    }

    public func quotaOverride(project: String) async throws -> QuotaLimits? {
        if let hit = quotaCache.get(project) { return hit }
        let found = try await rows("SELECT \(CatalogColumns.quotas) FROM project_quotas WHERE project_id = $1",
                                   [.text(project)]).first.map { row in
            let (a, b, c, d) = try row.decode((Int64?, Int64?, Int64?, Int64?).self)
            return QuotaLimits(imageCountTotal: a, imageSizeTotal: b, imageStageTotal: c, imageCountUploading: d)
        }
        quotaCache.set(project, found)
        return found
    }

    public func quotaOverrides() async throws -> [String: QuotaLimits] {
        var out: [String: QuotaLimits] = [:]
        for row in try await rows("SELECT project_id, \(CatalogColumns.quotas) FROM project_quotas") {
            let (p, a, b, c, d) = try row.decode((String, Int64?, Int64?, Int64?, Int64?).self)
            out[p] = QuotaLimits(imageCountTotal: a, imageSizeTotal: b, imageStageTotal: c, imageCountUploading: d)
        }
        return out
    }

    public func setQuotaOverride(project: String, _ limits: QuotaLimits?) async throws {
        if let l = limits {
            _ = try await rows("""
                INSERT INTO project_quotas (project_id, \(CatalogColumns.quotas)) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (project_id) DO UPDATE SET image_count_total = excluded.image_count_total,
                    image_size_total = excluded.image_size_total, image_stage_total = excluded.image_stage_total,
                    image_count_uploading = excluded.image_count_uploading
                """, [.text(project), SQLValue(l.imageCountTotal), SQLValue(l.imageSizeTotal),
                      SQLValue(l.imageStageTotal), SQLValue(l.imageCountUploading)])
        } else {
            _ = try await rows("DELETE FROM project_quotas WHERE project_id = $1", [.text(project)])
        }
        quotaCache.remove(project)
    }

    // MARK: Members

    static func member(_ row: PostgresRow) throws -> ImageMember {
        let (imageId, memberId, status, created, updated) = try row.decode((String, String, String, Int64, Int64).self)
        guard let s = MemberStatus(rawValue: status) else { throw ImageError(.internal, "corrupt member row") }
        return ImageMember(imageId: imageId, memberId: memberId, status: s, createdAt: created, updatedAt: updated)
    }

    public func members(imageId: String) async throws -> [ImageMember] {
        try await rows("SELECT \(CatalogColumns.members) FROM image_members WHERE image_id = $1 ORDER BY created_at, member_id",
                       [.text(imageId)]).map(Self.member)
    }

    public func member(imageId: String, memberId: String) async throws -> ImageMember? {
        try await rows("SELECT \(CatalogColumns.members) FROM image_members WHERE image_id = $1 AND member_id = $2",
                       [.text(imageId), .text(memberId)]).first.map(Self.member)
    }

    public func insertMember(_ m: ImageMember) async throws {
        do {
            _ = try await rows("INSERT INTO image_members (\(CatalogColumns.members)) VALUES ($1, $2, $3, $4, $5)",
                               [.text(m.imageId), .text(m.memberId), .text(m.status.rawValue), .int(m.createdAt), .int(m.updatedAt)])
        } catch is UniqueViolation {
            throw ImageError.conflict("Member \(m.memberId) already exists on image \(m.imageId).")
        }
        await waitOutLeases()
    }

    public func updateMember(_ m: ImageMember) async throws {
        let updated = try await rows("UPDATE image_members SET status = $1, updated_at = $2 WHERE image_id = $3 AND member_id = $4 RETURNING 1",
                                     [.text(m.status.rawValue), .int(m.updatedAt), .text(m.imageId), .text(m.memberId)])
        if !updated.isEmpty { await waitOutLeases() }
    }

    public func deleteMember(imageId: String, memberId: String) async throws -> Bool {
        let deleted = try await !rows("DELETE FROM image_members WHERE image_id = $1 AND member_id = $2 RETURNING 1",
                                      [.text(imageId), .text(memberId)]).isEmpty
        if deleted { await waitOutLeases() }
        return deleted
    }
}

/// The watchdog ended a wait for a connection just as one was handed over.
struct AcquireTimedOut: Error {}
