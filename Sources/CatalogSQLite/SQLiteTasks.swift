import CatalogSQL
import GRDB
import ImageCore

extension SQLiteCatalog {
    static let taskColumns = CatalogColumns.tasks

    static func task(_ row: Row) throws -> ImageTask {
        guard let status = ImageTask.Status(rawValue: row["status"]) else { throw ImageError(.internal, "corrupt task row") }
        return ImageTask(
            id: row["id"], type: row["type"], status: status, owner: row["owner"], imageId: row["image_id"],
            userId: row["user_id"], requestId: row["request_id"], input: row["input"], result: row["result"],
            message: row["message"], bytesDone: row["bytes_done"], bytesTotal: row["bytes_total"],
            attempts: row["attempts"], leaseOwner: row["lease_owner"], leaseExpiresAt: row["lease_expires_at"],
            createdAt: row["created_at"], updatedAt: row["updated_at"], expiresAt: row["expires_at"])
    }

    static func writeTask(_ db: Database, _ t: ImageTask) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO tasks (\(taskColumns)) VALUES (\(placeholders(CatalogColumns.taskNames.count)))",
            arguments: arguments(CatalogColumns.values(t)))
    }

    public func insertTask(_ task: ImageTask) async throws {
        try await pool.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM tasks WHERE id = ?", arguments: [task.id]) == true {
                throw ImageError.conflict("Task \(task.id) exists.")
            }
            try Self.writeTask(db, task)
        }
    }

    public func task(id: String) async throws -> ImageTask? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.taskColumns) FROM tasks WHERE id = ?", arguments: [id]).map(Self.task)
        }
    }

    public func tasks(imageId: String) async throws -> [ImageTask] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.taskColumns) FROM tasks WHERE image_id = ? ORDER BY created_at DESC, id",
                             arguments: [imageId]).map(Self.task)
        }
    }

    public func deleteTasks(expiredBefore time: Int64) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM tasks WHERE status IN ('success','failure') AND expires_at IS NOT NULL AND expires_at < ?",
                           arguments: [time])
            return db.changesCount
        }
    }

    public func countLiveTasks(owner: String, types: [String], now: Int64) async throws -> Int {
        guard !types.isEmpty else { return 0 }
        return try await pool.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM tasks WHERE owner = ? AND type IN (\(Self.placeholders(types.count))) "
                                 + "AND (expires_at IS NULL OR expires_at > ?)",
                             arguments: Self.arguments([.text(owner)] + types.map { .text($0) } + [.int(now)])) ?? 0
        }
    }

    public func listTasks(limit: Int) async throws -> [ImageTask] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.taskColumns) FROM tasks ORDER BY created_at DESC, id LIMIT ?",
                             arguments: [limit]).map(Self.task)
        }
    }

    public func updateTask(id: String, _ change: @escaping @Sendable (inout ImageTask) throws -> Void) async throws -> ImageTask? {
        try await pool.write { db -> ImageTask? in
            guard let original = try Row.fetchOne(db, sql: "SELECT \(Self.taskColumns) FROM tasks WHERE id = ?",
                                                  arguments: [id]).map(Self.task) else { return nil }
            var t = original
            try change(&t)
            t.id = original.id
            if t != original { try Self.writeTask(db, t) }
            return t
        }
    }

    public func claimTask(owner: String, now: Int64, leaseSeconds: Int64) async throws -> ImageTask? {
        try await pool.write { db -> ImageTask? in
            guard var t = try Row.fetchOne(db, sql: """
                SELECT \(Self.taskColumns) FROM tasks
                WHERE status = 'pending' OR (status = 'processing' AND (lease_expires_at IS NULL OR lease_expires_at < ?))
                ORDER BY created_at, id LIMIT 1
                """, arguments: [now]).map(Self.task) else { return nil }
            t.status = .processing
            t.attempts += 1
            t.leaseOwner = owner
            t.leaseExpiresAt = now + leaseSeconds
            t.updatedAt = now
            try Self.writeTask(db, t)
            return t
        }
    }
}
