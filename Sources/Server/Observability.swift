import Foundation
import Metrics
import OpenStackAPI
import Prometheus
import Synchronization

/// The process's metrics: swift-metrics backed by one Prometheus registry, exposed at `/metrics`.
/// Bootstrapped once per process (several servers in one test process share it).
public enum Observability {
    public static let registry = PrometheusCollectorRegistry()
    private static let bootstrapped: Bool = {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return true
    }()

    public static func bootstrap() { _ = bootstrapped }

    /// The Prometheus text exposition of every metric.
    public static func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 << 10)
        registry.emit(into: &buffer)
        return buffer
    }

    /// One request: counted by front-end, method and status, timed by front-end.
    static func record(frontend: String, route: String, method: String, status: Int, since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let nanos = elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
        let key = RequestSeries(frontend: frontend, route: route, method: method, status: status)
        let (counter, timer) = handles.withLock { h -> (Metrics.Counter, Metrics.Timer) in
            let counter = h.counters[key] ?? {
                let made = Metrics.Counter(label: "imaged_http_requests_total",
                                   dimensions: [("frontend", frontend), ("route", route), ("method", method), ("status", String(status))])
                h.counters[key] = made
                return made
            }()
            let timer = h.timers[frontend] ?? {
                let made = Metrics.Timer(label: "imaged_http_request_duration_seconds", dimensions: [("frontend", frontend)],
                                         preferredDisplayUnit: .seconds)
                h.timers[frontend] = made
                return made
            }()
            return (counter, timer)
        }
        counter.increment()
        timer.recordNanoseconds(nanos)
    }

    /// One time series of the request counter.
    struct RequestSeries: Hashable {
        let frontend: String
        let route: String
        let method: String
        let status: Int
    }

    /// The request metrics' handles, made once per series rather than per request (making one takes the
    /// factory's lock and builds its label set: ~1.5 % of a GET). As many as the registry's series:
    /// routes are bounded by `route(_:)`.
    private static let handles = Mutex<(counters: [RequestSeries: Metrics.Counter], timers: [String: Metrics.Timer])>(([:], [:]))

    /// The route a path belongs to, as a bounded label: path words every front-end uses are kept, anything else
    /// (ids, names, hosts) becomes `{id}`, and paths deeper than six segments are cut, so callers cannot grow the
    /// number of time series.
    static func route(_ path: String) -> String {
        // The most frequent path of all (GET one image) without building its label again.
        if let id = OpenStackPaths.imageIDSegment(path), id.utf8.count > longestRouteWord { return "/v2/images/{id}" }
        let utf8 = path.utf8
        var out = ""
        out.reserveCapacity(48)
        var depth = 0
        // Segments between slashes, found in the UTF-8 bytes and sliced in place (every request pays
        // this; a Character-wise search was 2 % of a GET). A segment longer than every route word (an
        // id) is not hashed.
        var start = utf8.startIndex
        while start < utf8.endIndex {
            let end = utf8[start...].firstIndex(of: UInt8(ascii: "/")) ?? utf8.endIndex
            defer { start = end < utf8.endIndex ? utf8.index(after: end) : end }
            guard end > start else { continue }
            depth += 1
            if depth > 6 { out += "/…"; break }
            out += "/"
            let segment = path[start..<end]
            out += utf8.distance(from: start, to: end) <= longestRouteWord && routeWords.contains(segment) ? segment : "{id}"
        }
        if path.hasSuffix("/") && !out.isEmpty { out += "/" }
        return out.isEmpty ? "/" : out
    }

    static let longestRouteWord = routeWords.map(\.utf8.count).max() ?? 0

    static let routeWords: Set<Substring> = [
        // OpenStack
        "v2", "versions", "images", "file", "stage", "import", "members", "tags", "schemas", "image", "member",
        "info", "stores", "tasks", "task", "actions", "deactivate", "reactivate", "usage",
        // Avi
        "api", "login", "logout",
        // ZStack
        "zstack", "v1", "accounts", "sessions", "api-jobs", "backup-storage", "candidate-backup-storage", "uploads", "exports",
        "exported-images", "user-tags", "qga",
        // Danube and its IMGAPI
        "imgapi", "imagestore", "refresh", "snapshot", "vm", "status", "done", "log", "dc", "manage",
        // Scalr
        "v1beta0", "global", "account", "user", "user.v1beta0.yml", "account.v1beta0.yml", "global.v1beta0.yml",
    ]
}
