import CatalogSQL
import ImageCore
import PostgresNIO

/// Node heartbeats: every node of a cluster renews its row; the reapers read them all.
extension PostgresCatalog {
    public func beat(node: String, at now: Int64) async throws {
        _ = try await rows("""
            INSERT INTO nodes (id, heartbeat_at, started_at) VALUES ($1, $2, $2)
            ON CONFLICT (id) DO UPDATE SET heartbeat_at = GREATEST(nodes.heartbeat_at, EXCLUDED.heartbeat_at)
            """, [.text(node), .int(now)])
    }

    public func heartbeats() async throws -> [String: Int64] {
        var out: [String: Int64] = [:]
        for row in try await rows("SELECT id, heartbeat_at FROM nodes") {
            let (id, at) = try row.decode((String, Int64).self)
            out[id] = at
        }
        return out
    }

    public func forgetNode(_ node: String) async throws {
        _ = try await rows("DELETE FROM nodes WHERE id = $1", [.text(node)])
    }
}
