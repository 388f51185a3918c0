import Metrics
import NIOConcurrencyHelpers
import NIOCore

/// How long and how much a client may hold the server (`--header-timeout`, `--idle-timeout`,
/// `--min-upload-rate`, `--upload-stall-seconds`, `--max-connections`, `--max-connections-per-client`).
public struct ConnectionLimits: Sendable, Equatable {
    /// Seconds from accepting a connection (or from the first byte of a later request) to a complete request head.
    public var headerTimeoutSeconds: Int64 = 10
    /// Seconds a keep-alive connection may wait for its next request.
    public var idleTimeoutSeconds: Int64 = 60
    /// A request body slower than this (bytes/s, while the server waits for it) over the stall window is cut off.
    public var minUploadBytesPerSecond: Int64 = 1024
    /// The window that rate is averaged over.
    public var uploadStallSeconds: Int64 = 30
    /// Open connections of this node, and of one client address.
    public var maxConnections = 4096
    public var maxConnectionsPerClient = 256
    /// Connections the kernel may hold accepted-but-not-yet-taken (listen(2)'s backlog; Linux caps it at
    /// `net.core.somaxconn`). A burst of connects past it loses SYNs, and each lost one waits 1 s, 3 s…
    /// for its retry: 4096, like Glance's eventlet, not Hummingbird's 256.
    public var listenBacklog = 4096

    public init() {}
}

/// Why the server closed a connection on its own; the `reason` label of `imaged_connections_refused_total`.
enum ConnectionRefusal: String, Sendable {
    case maxConnections = "max_connections"
    case perClient = "per_client"
    case headerTimeout = "header_timeout"
    case idle
    case slowUpload = "slow_upload"

    func count() {
        Counter(label: "imaged_connections_refused_total", dimensions: [("reason", rawValue)]).increment()
    }
}

/// Counts open connections per node and per client address; a connection over either limit is refused
/// when it is accepted (closed at once, before any byte is read or any TLS handshake is done).
final class ConnectionGate: Sendable {
    private struct Counts { var total = 0; var perClient: [String: Int] = [:] }
    private let counts = NIOLockedValueBox(Counts())
    private let limits: ConnectionLimits
    private let openGauge = Gauge(label: "imaged_connections_open")

    init(limits: ConnectionLimits) {
        self.limits = limits
        openGauge.record(0)
        // The counters exist from the start, so /metrics shows every reason at 0 before any refusal.
        for reason in [ConnectionRefusal.maxConnections, .perClient, .headerTimeout, .idle, .slowUpload] {
            Counter(label: "imaged_connections_refused_total", dimensions: [("reason", reason.rawValue)]).increment(by: 0)
        }
    }

    /// Admits the connection (and counts it until `release`) or names why not.
    func admit(_ client: String) -> ConnectionRefusal? {
        let (refusal, total): (ConnectionRefusal?, Int) = counts.withLockedValue { c in
            if c.total >= limits.maxConnections { return (.maxConnections, c.total) }
            if c.perClient[client, default: 0] >= limits.maxConnectionsPerClient { return (.perClient, c.total) }
            c.total += 1
            c.perClient[client, default: 0] += 1
            return (nil, c.total)
        }
        if refusal == nil { openGauge.record(total) }
        return refusal
    }

    func release(_ client: String) {
        let total = counts.withLockedValue { c in
            c.total -= 1
            let left = c.perClient[client, default: 1] - 1
            c.perClient[client] = left > 0 ? left : nil
            return c.total
        }
        openGauge.record(total)
    }
}
