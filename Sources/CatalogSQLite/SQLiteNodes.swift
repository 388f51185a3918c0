import GRDB
import ImageCore

/// Node heartbeats (a single node writes its own; kept so a catalog moved to PostgreSQL, or read by
/// tools, means the same).
extension SQLiteCatalog {
    public func beat(node: String, at now: Int64) async throws {
        try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO nodes (id, heartbeat_at, started_at) VALUES (?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET heartbeat_at = MAX(nodes.heartbeat_at, excluded.heartbeat_at)
                """, arguments: [node, now, now])
        }
    }

    public func heartbeats() async throws -> [String: Int64] {
        try await pool.read { db in
            var out: [String: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, heartbeat_at FROM nodes") { out[row[0]] = row[1] }
            return out
        }
    }

    public func forgetNode(_ node: String) async throws {
        try await pool.write { db in try db.execute(sql: "DELETE FROM nodes WHERE id = ?", arguments: [node]) }
    }
}
