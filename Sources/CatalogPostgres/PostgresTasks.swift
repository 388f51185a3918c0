import CatalogSQL
import ImageCore
import PostgresNIO

extension PostgresCatalog {
    static let taskInsertSQL = "INSERT INTO tasks (\(CatalogColumns.tasks)) VALUES (\(placeholders(CatalogColumns.taskNames)))"
    static let taskUpdateSQL = "UPDATE tasks SET " + CatalogColumns.taskNames.enumerated().dropFirst()
        .map { "\($1) = $\($0 + 1)" }.joined(separator: ", ") + " WHERE id = $1"

    static func task(_ row: PostgresRow) throws -> ImageTask {
        let r = row.makeRandomAccess()
        func text(_ i: Int) throws -> String? { try r[i].decode(String?.self) }
        func int(_ i: Int) throws -> Int64? { try r[i].decode(Int64?.self) }
        guard let id = try text(0), let type = try text(1), let status = try text(2).flatMap(ImageTask.Status.init(rawValue:)) else {
            throw ImageError(.internal, "corrupt task row")
        }
        return ImageTask(
            id: id, type: type, status: status, owner: try text(3), imageId: try text(4), userId: try text(5),
            requestId: try text(6), input: try text(7) ?? "{}", result: try text(8), message: try text(9) ?? "",
            bytesDone: try int(10) ?? 0, bytesTotal: try int(11), attempts: Int(try int(12) ?? 0), leaseOwner: try text(13),
            leaseExpiresAt: try int(14), createdAt: try int(15) ?? 0, updatedAt: try int(16) ?? 0, expiresAt: try int(17))
    }

    func tasks(_ sql: String, _ values: [SQLValue], on c: PostgresConnection? = nil) async throws -> [ImageTask] {
        try await rows(sql, values, on: c).map(Self.task)
    }

    public func insertTask(_ task: ImageTask) async throws {
        do {
            _ = try await rows(Self.taskInsertSQL, CatalogColumns.values(task))
        } catch is UniqueViolation {
            throw ImageError.conflict("Task \(task.id) exists.")
        }
    }

    public func task(id: String) async throws -> ImageTask? {
        try await tasks("SELECT \(CatalogColumns.tasks) FROM tasks WHERE id = $1", [.text(id)]).first
    }

    public func tasks(imageId: String) async throws -> [ImageTask] {
        try await tasks("SELECT \(CatalogColumns.tasks) FROM tasks WHERE image_id = $1 ORDER BY created_at DESC, id", [.text(imageId)])
    }

    public func deleteTasks(expiredBefore time: Int64) async throws -> Int {
        try await rows("DELETE FROM tasks WHERE status IN ('success','failure') AND expires_at IS NOT NULL AND expires_at < $1 RETURNING 1",
                       [.int(time)]).count
    }

    public func countLiveTasks(owner: String, types: [String], now: Int64) async throws -> Int {
        guard !types.isEmpty else { return 0 }
        let typeParams = types.indices.map { "$\($0 + 2)" }.joined(separator: ", ")
        let sql = "SELECT count(*) FROM tasks WHERE owner = $1 AND type IN (\(typeParams)) AND (expires_at IS NULL OR expires_at > $\(types.count + 2))"
        return Int(try await rows(sql, [.text(owner)] + types.map { .text($0) } + [.int(now)]).first?.decode(Int64.self) ?? 0)
    }

    public func listTasks(limit: Int) async throws -> [ImageTask] {
        try await tasks("SELECT \(CatalogColumns.tasks) FROM tasks ORDER BY created_at DESC, id LIMIT $1", [.int(Int64(limit))])
    }

    public func updateTask(id: String, _ change: @escaping @Sendable (inout ImageTask) throws -> Void) async throws -> ImageTask? {
        try await transaction { c -> ImageTask? in
            guard let original = try await tasks("SELECT \(CatalogColumns.tasks) FROM tasks WHERE id = $1 FOR UPDATE",
                                                 [.text(id)], on: c).first else { return nil }
            var t = original
            try change(&t)
            t.id = original.id
            if t != original { _ = try await rows(Self.taskUpdateSQL, CatalogColumns.values(t), on: c) }
            return t
        }
    }

    /// `SKIP LOCKED`: nodes claiming at the same moment take different tasks instead of queueing
    /// behind each other's row locks; a task is claimed by one node only.
    public func claimTask(owner: String, now: Int64, leaseSeconds: Int64) async throws -> ImageTask? {
        try await transaction { c -> ImageTask? in
            guard var t = try await tasks("""
                SELECT \(CatalogColumns.tasks) FROM tasks
                WHERE status = 'pending' OR (status = 'processing' AND (lease_expires_at IS NULL OR lease_expires_at < $1))
                ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
                """, [.int(now)], on: c).first else { return nil }
            t.status = .processing
            t.attempts += 1
            t.leaseOwner = owner
            t.leaseExpiresAt = now + leaseSeconds
            t.updatedAt = now
            _ = try await rows(Self.taskUpdateSQL, CatalogColumns.values(t), on: c)
            return t
        }
    }
}
