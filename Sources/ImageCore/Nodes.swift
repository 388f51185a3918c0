/// The nodes of a cluster as the shared catalog knows them: each renews a heartbeat while it runs,
/// so another node can tell an upload in flight from one a dead node left behind.
public protocol NodeCatalog: Sendable {
    /// Records that `node` is alive at `now` (first beat inserts it).
    func beat(node: String, at now: Int64) async throws
    /// Every known node's last heartbeat (seconds since the epoch), by node id.
    func heartbeats() async throws -> [String: Int64]
    /// Drops a node's row: its clean shutdown, or a node dead for long.
    func forgetNode(_ node: String) async throws
}

/// Whose upload a requeue may undo: the caller's own (a failed upload), one named node's (the
/// reaper, for a node whose heartbeat stopped) or any (the single-node start-up scrub).
public enum UploadWriter: Sendable, Equatable {
    /// This node's: its own uploads, and images with no writer recorded (imports, older rows).
    case node(String)
    /// Only an upload recorded as this node's (the reaper names the dead node).
    case exactly(String)
    case any

    /// True when an image whose upload `recorded` writes (nil: none recorded) is this writer's.
    public func owns(_ recorded: String?) -> Bool {
        switch self {
        case .any: true
        case .node(let id): recorded == nil || recorded == id
        case .exactly(let id): recorded == id
        }
    }
}

/// The reaper's rule, kept apart so it can be tested without a clock or a catalog: which writers
/// are dead given the heartbeats, and whether this node may judge at all.
public struct WriterLiveness: Sendable, Equatable {
    /// A node whose last beat is older than this many seconds is dead (3 heartbeats by default).
    public var deadAfter: Int64

    public init(deadAfter: Int64) { self.deadAfter = deadAfter }

    /// Is the upload recorded as written by `writer` abandoned? A writer with no heartbeat row at all
    /// (forgotten, or from before heartbeats existed) is dead; this node itself never is.
    public func isAbandoned(writer: String?, heartbeats: [String: Int64], selfNode: String, now: Int64) -> Bool {
        guard let writer, writer != selfNode else { return false }
        // A resumable upload's session ends by its own expiry, not by a node's death.
        if UploadSession.isSessionWriter(writer) { return false }
        guard let last = heartbeats[writer] else { return true }
        return now - last > deadAfter
    }

    /// Whether this node's view is good enough to judge others: it must have reached the catalog
    /// continuously for `deadAfter` seconds, so that every live node had the time to beat too (after a
    /// catalog outage every heartbeat is old, yet nobody is dead).
    public func mayJudge(reachableSince: Int64?, now: Int64) -> Bool {
        guard let since = reachableSince else { return false }
        return now - since >= deadAfter
    }
}
